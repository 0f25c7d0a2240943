//! `veneer plugin new | build | test`: a plugin author's loop. `new` writes a
//! project that builds and tests on its own, outside this repository
//! ([`scaffold`]); `build` compiles it for `wasm32-wasip2` with cargo (adding
//! the target first if the toolchain lacks it) and checks the component as an
//! upload would; `test` builds it and runs its fixture cases through the
//! resolver, as `plugin run` does ([`cases`]). Nothing here opens a database
//! or a server.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};

mod cases;
pub(super) mod scaffold;

/// The target plugins are built for.
const TARGET: &str = "wasm32-wasip2";

/// The language of a new plugin project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Lang {
    /// Rust with veneer-sdk.
    Rust,
    /// JavaScript or TypeScript (componentize-js).
    Js,
}

#[derive(Debug, Args)]
pub(super) struct NewArgs {
    /// The plugin's name: lowercase letters, digits and `-`, starting with a
    /// letter (the package name; the directory's too unless --dir says).
    name: String,
    /// The directory to create (default: ./NAME). It must not exist, or be empty.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The language of the plugin.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// Depend on the SDK at this path (a veneer checkout's `guest-sdk`).
    /// Default: the checkout this veneer was built from when it is still
    /// there, else the published veneer-sdk of this version.
    #[arg(long)]
    sdk_path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct BuildArgs {
    /// The plugin project (default: the current directory).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Print the check's JSON instead of a report.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(super) struct TestArgs {
    /// The plugin project (default: the current directory).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Test this component instead of building the project.
    #[arg(long)]
    component: Option<PathBuf>,
    /// The directory of fixture cases (default: DIR/tests/cases).
    #[arg(long)]
    cases: Option<PathBuf>,
    /// Print one JSON object instead of a report.
    #[arg(long)]
    json: bool,
    /// A base-config directory (default: the one built into the binary).
    #[arg(long, env = "VENEER_BASE_CONFIG")]
    base_config: Option<PathBuf>,
}

/// `veneer plugin new`.
pub(super) fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    scaffold::check_name(&args.name)?;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    if args.lang == Lang::Js {
        super::scaffold_js::write_js_project(&dir, &args.name)?;
        outln!("created {} ({}), TypeScript", dir.display(), args.name);
        outln!();
        outln!("next:");
        outln!("  cd {}", dir.display());
        outln!(
            "  veneer plugin build   # npm ci when needed, the component, checked as an upload would be"
        );
        outln!(
            "  veneer plugin test    # the fixture cases in tests/cases, run as the host runs them"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let sdk = match args.sdk_path {
        Some(path) => scaffold::Sdk::Path(scaffold::sdk_at(&path)?),
        None => scaffold::Sdk::default_for_this_build(),
    };
    let written = scaffold::rust(&dir, &args.name, &sdk)?;
    outln!(
        "created {} ({}), veneer-sdk {}",
        dir.display(),
        args.name,
        sdk
    );
    for file in written {
        outln!("  {}", file.display());
    }
    outln!();
    outln!("next:");
    outln!("  cd {}", dir.display());
    outln!("  cargo test            # the plugin's logic, natively");
    outln!("  veneer plugin build   # the component, checked as an upload would be");
    outln!("  veneer plugin test    # the fixture cases in tests/cases, run as the host runs them");
    Ok(ExitCode::SUCCESS)
}

/// `veneer plugin build`.
pub(super) fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let component = build_component(&args.dir)?;
    if !args.json {
        outln!("built {}", component.display());
    }
    super::check_component(&component, args.json)
}

/// `veneer plugin test`.
pub(super) fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let component = match &args.component {
        Some(path) => path.clone(),
        None => build_component(&args.dir)?,
    };
    let cases_dir = args
        .cases
        .clone()
        .unwrap_or_else(|| args.dir.join("tests").join("cases"));
    cases::run(
        &component,
        &cases_dir,
        args.base_config.as_deref(),
        args.json,
    )
}

/// Builds the project in `dir` for [`TARGET`] in release mode and returns the
/// component's path. Cargo's progress goes to stderr as usual.
fn build_component(dir: &Path) -> anyhow::Result<PathBuf> {
    if !dir.join("Cargo.toml").is_file() && dir.join("package.json").is_file() {
        return super::scaffold_js::build_js_project(dir);
    }
    if !dir.join("Cargo.toml").is_file() {
        bail!(
            "{} has no Cargo.toml or package.json: give the directory of a plugin project (`veneer plugin new NAME` makes one)",
            dir.display()
        );
    }
    ensure_target(dir)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir)
        .args(["build", "--release", "--target", TARGET])
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // A build target or flags meant for the host must not reach the plugin's build.
    for var in [
        "CARGO_BUILD_TARGET",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd
        .output()
        .context("cannot run cargo: is Rust installed (rustup.rs)?")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "cargo build --release --target {TARGET} failed in {} (the errors are above)",
            dir.display()
        );
    }
    let mut components = Vec::new();
    for line in stdout.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let cdylib = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"));
        if !cdylib {
            continue;
        }
        for file in message["filenames"].as_array().into_iter().flatten() {
            if let Some(file) = file.as_str().filter(|f| f.ends_with(".wasm")) {
                components.push(PathBuf::from(file));
            }
        }
    }
    match components.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!(
            "the build made no component: the plugin's Cargo.toml needs `crate-type = [\"cdylib\", \"rlib\"]` under [lib]"
        ),
        many => bail!(
            "the build made {} components ({}); build a single plugin crate",
            many.len(),
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Adds [`TARGET`] to the toolchain that builds `dir` when it lacks it (a
/// fresh toolchain has only the host's target, and rustup adds no other on
/// its own).
fn ensure_target(dir: &Path) -> anyhow::Result<()> {
    let sysroot = Command::new("rustc")
        .current_dir(dir)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if let Some(sysroot) = sysroot
        && sysroot
            .join("lib/rustlib")
            .join(TARGET)
            .join("lib")
            .is_dir()
    {
        return Ok(());
    }
    eprintln!("adding the {TARGET} target to the toolchain (rustup target add {TARGET})");
    let status = Command::new("rustup")
        .current_dir(dir)
        .args(["target", "add", TARGET])
        .status()
        .with_context(|| {
            format!(
                "cannot run rustup to add {TARGET}; install the target yourself and build again"
            )
        })?;
    if !status.success() {
        bail!(
            "`rustup target add {TARGET}` failed ({status}); install the target yourself and build again"
        );
    }
    Ok(())
}
