//! Builds the plugin crates for `wasm32-wasip2`, and the JavaScript/TypeScript
//! plugins with `guest-sdk/js` (componentize-js, which it installs with `npm ci`
//! when needed), and exposes each component's path (and the example plugins'
//! bytes) in `$OUT_DIR/plugins.rs`, so tests, benches and the demo use the real
//! components. Makes sure the wasm target is installed first: a fresh machine
//! has the toolchain but not the target, and rustup does not add it on its own.
//! A JS component is rebuilt only when one of its inputs (its project, the JS
//! SDK, the lockfile, the WIT) is newer than it or another checkout built it:
//! componentizing takes seconds, and this script reruns on any plugin change.
//!
//! This runs only when something depends on this crate: the host's tests and
//! benches (a dev-dependency) and a host built with its `demo-plugins` feature
//! (`cargo run -p veneer --features demo-plugins -- serve --dev`), never on a
//! plain `cargo check` or build of the host.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (crate name, constant name) of every plugin built.
const PLUGINS: &[(&str, &str)] = &[
    ("plugin-luxury-consignment", "LUXURY_CONSIGNMENT"),
    ("plugin-sneaker-store", "SNEAKER_STORE"),
    ("plugin-email-rebrand", "EMAIL_REBRAND"),
    ("plugin-declarative-overrides", "DECLARATIVE_OVERRIDES"),
    ("plugin-hostile", "HOSTILE"),
    ("plugin-hostile-describe", "HOSTILE_DESCRIBE"),
    ("plugin-wit-v2-fixture", "WIT_V2_FIXTURE"),
];

/// (project directory under `plugins/`, entry file, constant name) of every
/// JavaScript/TypeScript plugin built.
const JS_PLUGINS: &[(&str, &str, &str)] = &[
    (
        "js-luxury-consignment",
        "src/plugin.ts",
        "JS_LUXURY_CONSIGNMENT",
    ),
    ("js-hostile", "src/plugin.js", "JS_HOSTILE"),
];

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "plugin";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("plugins/artifacts sits two levels below the workspace root")
        .to_owned();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Relative paths: cargo resolves them against the package root of the
    // checkout being built. Absolute ones would point every checkout sharing
    // this target dir (a CI clone, a second worktree) at whichever checkout ran
    // the script last, and its fixtures would be built from that one's sources.
    // Not all of guest-sdk: its js/node_modules (thousands of files, rewritten
    // by `npm ci`) is no input.
    for path in [
        "plugins",
        "guest-sdk/Cargo.toml",
        "guest-sdk/src",
        "guest-sdk/macros",
        "guest-sdk/js/package.json",
        "guest-sdk/js/package-lock.json",
        "guest-sdk/js/src",
        "guest-sdk/js/bin",
        "guest-sdk/js/types",
        "wit",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed=../../{path}");
    }
    println!("cargo:rerun-if-env-changed=VENEER_PLUGIN_TARGET_DIR");

    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out: keep the plugin build
    // beside it so every host profile shares one plugin build.
    let target_dir = env::var_os("VENEER_PLUGIN_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            out_dir
                .ancestors()
                .nth(4)
                .map(|target| target.join("wasm-plugins"))
                .unwrap_or_else(|| out_dir.join("wasm-plugins"))
        });

    ensure_target();

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .arg("build")
        .arg("--profile")
        .arg(PROFILE)
        .arg("--target")
        .arg(TARGET)
        .arg("--target-dir")
        .arg(&target_dir);
    for (krate, _) in PLUGINS {
        cmd.arg("-p").arg(krate);
    }
    // The host's own flags and target settings must not leak into the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_LTO",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("failed to run cargo to build the plugins");
    assert!(
        status.success(),
        "building the plugins for {TARGET} failed (see the output above)"
    );

    let js_dir = target_dir.join("js");
    let js_built: Vec<(&str, &str, PathBuf)> = JS_PLUGINS
        .iter()
        .map(|(project, entry, constant)| {
            let out = js_dir.join(format!("{}.wasm", project.replace('-', "_")));
            build_js(&root, project, entry, &out);
            (*project, *constant, out)
        })
        .collect();

    let wasm_dir = target_dir.join(TARGET).join(PROFILE);
    let mut code = String::from(
        "// Generated by plugins/artifacts/build.rs: paths of the plugin components.\n",
    );
    let mut all = String::from(
        "/// Every plugin built for tests and the demo: (crate name, path).\npub const ALL: &[(&str, &str)] = &[\n",
    );
    for (krate, constant) in PLUGINS {
        let path = wasm_dir.join(format!("{}.wasm", krate.replace('-', "_")));
        assert!(
            path.exists(),
            "expected {} after building the plugins",
            path.display()
        );
        writeln!(
            code,
            "/// The `{krate}` component.\npub const {constant}: &str = {:?};",
            path.display().to_string()
        )
        .expect("writing to a String");
        writeln!(all, "    ({krate:?}, {constant}),").expect("writing to a String");
    }
    for (project, constant, path) in &js_built {
        writeln!(
            code,
            "/// The `plugins/{project}` component (JavaScript, componentize-js).\npub const {constant}: &str = {:?};",
            path.display().to_string()
        )
        .expect("writing to a String");
        writeln!(all, "    ({:?}, {constant}),", format!("plugin-{project}"))
            .expect("writing to a String");
    }
    all.push_str("];\n");
    code.push_str(&all);
    // The example plugins' bytes, embedded for the demo tenants (not the hostile
    // ones, nor the test fixtures).
    code.push_str("/// The example plugins' bytes, for seeding the demo.\npub mod bytes {\n");
    for (krate, constant) in PLUGINS
        .iter()
        .filter(|(k, _)| !k.starts_with("plugin-hostile") && !k.ends_with("-fixture"))
    {
        let path = wasm_dir.join(format!("{}.wasm", krate.replace('-', "_")));
        writeln!(code, "    /// The `{krate}` component.\n    pub const {constant}: &[u8] = include_bytes!({:?});", path.display().to_string())
            .expect("writing to a String");
    }
    code.push_str("}\n");
    std::fs::write(out_dir.join("plugins.rs"), code).expect("cannot write plugins.rs");
}

/// Builds the JS plugin `plugins/<project>/<entry>` into `out` with
/// `guest-sdk/js/bin/veneer-js.mjs` (which runs `npm ci` first when needed),
/// unless `out` is newer than every input and was built from this checkout.
fn build_js(root: &Path, project: &str, entry: &str, out: &Path) {
    let sdk = root.join("guest-sdk/js");
    let inputs = [
        root.join("plugins").join(project),
        sdk.join("package.json"),
        sdk.join("package-lock.json"),
        sdk.join("src"),
        sdk.join("bin"),
        root.join("wit"),
    ];
    let newest = inputs.iter().filter_map(|path| newest_mtime(path)).max();
    // The stamp names the checkout and the newest input it was built from.
    let stamp = out.with_extension("stamp");
    let want = format!("{}\n{:?}\n", root.display(), newest);
    let current = out.exists() && std::fs::read_to_string(&stamp).is_ok_and(|have| have == want);
    if current {
        return;
    }
    std::fs::create_dir_all(out.parent().expect("the output has a directory"))
        .expect("cannot create the JS plugin output directory");
    let status = Command::new("node")
        .arg(sdk.join("bin/veneer-js.mjs"))
        .arg(root.join("plugins").join(project).join(entry))
        .arg(out)
        .status()
        .unwrap_or_else(|err| {
            panic!("cannot run `node` to build plugins/{project} ({err}); install Node.js 20 or later with npm")
        });
    assert!(
        status.success(),
        "building plugins/{project} with componentize-js failed (see the output above)"
    );
    std::fs::write(&stamp, want).expect("cannot write the JS plugin's stamp");
}

/// The latest modification time of `path` or anything under it, skipping
/// `node_modules`.
fn newest_mtime(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    let own = meta.modified().ok();
    if !meta.is_dir() {
        return own;
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name() != "node_modules")
        .filter_map(|entry| newest_mtime(&entry.path()))
        .chain(own)
        .max()
}

/// Installs the wasm target for the active toolchain if it is missing.
fn ensure_target() {
    let toolchain = env::var("RUSTUP_TOOLCHAIN").ok();
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if let Some(sysroot) = &sysroot
        && has_target(sysroot)
    {
        return;
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", TARGET]);
    if let Some(toolchain) = &toolchain {
        cmd.args(["--toolchain", toolchain]);
    }
    match cmd.status() {
        Ok(status) if status.success() => {}
        Ok(status) => {
            panic!("`rustup target add {TARGET}` failed ({status}); install the target and rebuild")
        }
        Err(err) => {
            panic!("cannot run rustup to add {TARGET} ({err}); install the target and rebuild")
        }
    }
}

fn has_target(sysroot: &Path) -> bool {
    sysroot
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
}
