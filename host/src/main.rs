//! The `veneer` binary: a thin shim over [`veneer::cli`].

fn main() -> std::process::ExitCode {
    veneer::cli::main()
}
