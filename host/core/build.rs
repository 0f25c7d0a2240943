//! Embeds the files of the repository's `base-config/` as `$OUT_DIR/base_config.rs`,
//! so the binary carries its default base configuration (`BaseConfig::built_in`).

use std::env;
use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Relative to the package root (host/core): see host/build.rs on why not absolute.
    println!("cargo:rerun-if-changed=../../base-config");
    let dir = manifest_dir.join("../../base-config");
    let mut files = Vec::new();
    let mut walk = vec![(dir, String::new())];
    while let Some((path, prefix)) = walk.pop() {
        let entries = std::fs::read_dir(&path).expect("base-config/ is readable");
        for entry in entries {
            let entry = entry.expect("base-config/ entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("{prefix}{name}");
            if entry.file_type().expect("file type").is_dir() {
                walk.push((entry.path(), format!("{rel}/")));
            } else {
                files.push((rel, entry.path()));
            }
        }
    }
    files.sort();
    let mut code = String::from(
        "/// The files of `base-config/` this binary was built with: (relative path, bytes).\npub const FILES: &[(&str, &[u8])] = &[\n",
    );
    for (rel, path) in files {
        writeln!(
            code,
            "    ({rel:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a String");
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("base_config.rs"), code).expect("cannot write base_config.rs");
}
