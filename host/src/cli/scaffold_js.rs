//! JavaScript/TypeScript plugin projects for `veneer plugin new --lang js` and
//! `veneer plugin build`: [`write_js_project`] writes a TypeScript project that
//! builds and passes its fixture cases as written, outside this repository;
//! [`build_js_project`] builds one into a component with the JS SDK's
//! `bin/veneer-js.mjs` (tsc, rolldown, componentize-js; it installs the SDK's
//! pinned toolchain with `npm ci` first when needed). Needs Node.js 20 or later
//! with npm. Checking and running the component is the caller's (the same
//! checks as any upload).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::author::scaffold::check_name;

/// The JS SDK (`guest-sdk/js`) of the checkout this veneer was built from.
pub fn default_js_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/js")
}

/// Writes a TypeScript plugin project named `name` into `dir` (created; it
/// must not exist or be empty), depending on the JS SDK of this checkout:
/// package.json, tsconfig.json, src/plugin.ts (a capped commission), a README
/// and fixture cases in tests/cases for `veneer plugin test`.
pub fn write_js_project(dir: &Path, name: &str) -> anyhow::Result<()> {
    check_name(name)?;
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} exists and is not empty; choose a new directory",
            dir.display()
        );
    }
    let sdk = std::fs::canonicalize(default_js_sdk()).with_context(|| {
        format!(
            "the JS SDK of this veneer build ({}) is gone; build veneer from a checkout that has guest-sdk/js",
            default_js_sdk().display()
        )
    })?;
    let sdk_text = sdk.display().to_string();
    let package = json!({
        "name": name,
        "version": "0.1.0",
        "private": true,
        "type": "module",
        "veneer": { "entry": "src/plugin.ts" },
        "scripts": {
            "build": format!("node {}/bin/veneer-js.mjs src/plugin.ts dist/{name}.wasm", sdk_text),
        },
        "devDependencies": { "veneer-sdk": format!("file:{sdk_text}") },
    });
    let tsconfig = json!({
        "compilerOptions": {
            "target": "es2022",
            "module": "esnext",
            "moduleResolution": "bundler",
            "strict": true,
            "noEmit": true,
            "paths": { "veneer-sdk": [sdk_text] },
        },
        "include": ["src"],
    });
    let files: [(&str, String); 8] = [
        ("package.json", pretty(&package)?),
        ("tsconfig.json", pretty(&tsconfig)?),
        ("src/plugin.ts", PLUGIN_TS.replace("{{name}}", name)),
        ("README.md", README.replace("{{name}}", name)),
        (".gitignore", "node_modules/\ndist/\n".to_owned()),
        ("tests/cases/commission-capped.json", CASE_CAPPED.to_owned()),
        (
            "tests/cases/commission-default.json",
            CASE_DEFAULT.to_owned(),
        ),
        (
            "tests/cases/bad-settings.json",
            CASE_BAD_SETTINGS.to_owned(),
        ),
    ];
    for (file, text) in files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Builds the JS/TS project in `dir` into `dir/dist/<name>.wasm` and returns
/// its path: `npm ci` in the project first when it has a lockfile and its
/// node_modules is missing or stale, then the SDK's `bin/veneer-js.mjs` (which
/// installs the SDK's own toolchain when needed). The SDK is the project's
/// `veneer-sdk` dependency when it is a `file:` path, else this checkout's.
/// Node's output goes to stderr, so stdout stays the caller's.
pub fn build_js_project(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("package.json");
    let text = std::fs::read_to_string(&manifest).with_context(|| {
        format!(
            "{} has no package.json: give the directory of a JS plugin project (`veneer plugin new NAME --lang js` makes one)",
            dir.display()
        )
    })?;
    let package: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", manifest.display()))?;
    let name = package["name"]
        .as_str()
        .with_context(|| format!("{} has no \"name\"", manifest.display()))?;
    check_name(name)?;
    let entry = package["veneer"]["entry"].as_str().with_context(|| {
        format!(
            "{} has no \"veneer\": {{\"entry\": …}}: name the plugin's module, for example \"src/plugin.ts\"",
            manifest.display()
        )
    })?;
    let sdk = match package["devDependencies"]["veneer-sdk"]
        .as_str()
        .or(package["dependencies"]["veneer-sdk"].as_str())
        .and_then(|spec| spec.strip_prefix("file:"))
    {
        Some(path) => dir.join(path),
        None => default_js_sdk(),
    };
    let builder = sdk.join("bin/veneer-js.mjs");
    if !builder.is_file() {
        bail!(
            "the JS SDK at {} has no bin/veneer-js.mjs; point the project's veneer-sdk dependency at a veneer checkout's guest-sdk/js",
            sdk.display()
        );
    }
    if dir.join("package-lock.json").is_file() && npm_install_needed(dir) {
        run(
            Command::new(npm()).args(["ci", "--no-audit", "--no-fund"]),
            dir,
            "npm ci",
        )?;
    }
    let out = dir.join("dist").join(format!("{name}.wasm"));
    run(
        Command::new("node")
            .arg(&builder)
            .arg(dir.join(entry))
            .arg(&out),
        dir,
        "node",
    )?;
    Ok(out)
}

/// Whether `dir/node_modules` is missing or older than `dir/package-lock.json`.
fn npm_install_needed(dir: &Path) -> bool {
    let modified = |path: PathBuf| {
        std::fs::metadata(path)
            .and_then(|meta| meta.modified())
            .ok()
    };
    match (
        modified(dir.join("node_modules/.package-lock.json")),
        modified(dir.join("package-lock.json")),
    ) {
        (Some(installed), Some(locked)) => installed < locked,
        _ => true,
    }
}

fn npm() -> &'static str {
    if cfg!(windows) { "npm.cmd" } else { "npm" }
}

/// Runs `command` in `dir`, its stdout sent to stderr; fails naming `what`.
fn run(command: &mut Command, dir: &Path, what: &str) -> anyhow::Result<()> {
    let status = command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .with_context(|| {
            format!("cannot run `{what}`: JavaScript plugins need Node.js 20 or later with npm")
        })?;
    if !status.success() {
        bail!(
            "`{what}` failed in {} ({status}); its output is above",
            dir.display()
        );
    }
    Ok(())
}

fn pretty(value: &Value) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(value)? + "\n")
}

const PLUGIN_TS: &str = r#"// {{name}}: a Veneer override plugin in TypeScript. It caps every commission
// at a fee the tenant sets. Each hook gets the platform's base and returns the
// tenant's; the hooks you do not override return the base and are not called.

import { Context, Plugin, PluginError, gross, refee, register } from "veneer-sdk";
import type { CommissionDecision, Sale } from "veneer-sdk";

/** The tenant's settings: JSON, each key optional (the default applies). */
interface Settings {
  /** Largest fee per line, in minor units (cents). */
  max_fee: number;
}

class Capped extends Plugin<Settings> {
  private readonly cap: bigint;

  // Built once per instance: check and convert the settings here, not per call.
  constructor(settings: Settings, ctx: Context) {
    super(settings, ctx);
    if (!Number.isSafeInteger(settings.max_fee) || settings.max_fee < 0) {
      throw new PluginError("bad-settings", `settings at /max_fee: expected whole cents, not ${settings.max_fee}`);
    }
    this.cap = BigInt(settings.max_fee);
  }

  override commission(sale: Sale, base: CommissionDecision): CommissionDecision {
    const cap = this.cap < base.maxFee ? this.cap : base.maxFee;
    const decision = refee({ ...base, maxFee: cap > base.minFee ? cap : base.minFee }, gross(sale));
    return { ...decision, note: `capped at ${this.settings.max_fee}` };
  }
}

export const hooks = register(Capped, {
  name: "{{name}}",
  version: "0.1.0",
  defaults: { max_fee: 5000 },
});
"#;

const README: &str = r#"# {{name}}

A Veneer override plugin in TypeScript, built into a WebAssembly component with
componentize-js. Needs Node.js 20 or later with npm (the first build installs
the SDK's pinned toolchain with `npm ci`).

```sh
veneer plugin build     # type-checks, bundles and componentizes src/plugin.ts into dist/{{name}}.wasm, then checks it as an upload would
veneer plugin test      # runs tests/cases/*.json against the component as the host does
```

`npm run build` builds without veneer. `veneer plugin run dist/{{name}}.wasm --hook
commission --input sale.json --settings settings.json` runs one hook by hand and
reports fuel, memory and time. Run `npm install` once if your editor should
resolve `veneer-sdk` through node_modules (tsconfig.json already points at it).

## The plugin

`src/plugin.ts` is one class extending `Plugin`: it is constructed once per
instance with the tenant's settings (JSON, checked against `defaults`: an
unknown key or a value of the wrong type is a `bad-settings` error naming it),
and each hook you override receives the base and returns the tenant's result.
Money is `bigint` (u64 in the WIT); `gross`, `refee` and `attribute` do the
usual sums. Throw `new PluginError(code, message)` to refuse on purpose; any
other exception ends the call as a trap.

## Fixture cases

Each file in `tests/cases/` is one case: `hook`, `settings`, `input` (what
`veneer plugin run --input` takes), optional `kv`, `policy`, `quota`, and
`expect`: the exact `output`, or the `outcome` (`plugin_error`, `out_of_fuel`,
...) with an optional `message_contains`.

## Limits

A JavaScript plugin carries its engine (StarlingMonkey): the component is about
12 MB, and each fresh instance starts from a snapshot of about 10 MB of memory.
See Veneer's docs/plugins-js.md for the figures and the quota it needs.
"#;

const CASE_CAPPED: &str = r#"{
  "hook": "commission",
  "description": "a 1,000.00 EUR bag: 12 % would be 120.00, the tenant caps it at 15.00",
  "settings": {"max_fee": 1500},
  "input": {
    "sale": {"order_id": "o-1", "sku": "bag-1", "category_id": "bags", "unit_price": 100000, "quantity": 1, "currency": "EUR"},
    "base": {"rule_id": "bags", "rate_bps": 1200, "min_fee": 100, "max_fee": 50000, "fee": 12000, "note": ""}
  },
  "expect": {
    "output": {"rule_id": "bags", "rate_bps": 1200, "min_fee": 100, "max_fee": 1500, "fee": 1500, "note": "capped at 1500"}
  }
}
"#;

const CASE_DEFAULT: &str = r#"{
  "hook": "commission",
  "description": "no settings: the default cap of 50.00",
  "input": {
    "sale": {"order_id": "o-2", "sku": "bag-2", "category_id": "bags", "unit_price": 100000, "quantity": 1, "currency": "EUR"},
    "base": {"rule_id": "bags", "rate_bps": 1200, "min_fee": 100, "max_fee": 50000, "fee": 12000, "note": ""}
  },
  "expect": {
    "output": {"rule_id": "bags", "rate_bps": 1200, "min_fee": 100, "max_fee": 5000, "fee": 5000, "note": "capped at 5000"}
  }
}
"#;

const CASE_BAD_SETTINGS: &str = r#"{
  "hook": "commission",
  "description": "settings of the wrong type are refused, naming the setting",
  "settings": {"max_fee": "lots"},
  "input": {
    "sale": {"order_id": "o-3", "sku": "bag-3", "category_id": "bags", "unit_price": 100000, "quantity": 1, "currency": "EUR"}
  },
  "expect": {"outcome": "plugin_error", "message_contains": "settings at /max_fee"}
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_project_and_refuses_a_non_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("rules");
        write_js_project(&project, "my-rules").unwrap();
        let package: Value =
            serde_json::from_str(&std::fs::read_to_string(project.join("package.json")).unwrap())
                .unwrap();
        assert_eq!(package["name"], "my-rules");
        assert_eq!(package["veneer"]["entry"], "src/plugin.ts");
        let sdk = package["devDependencies"]["veneer-sdk"].as_str().unwrap();
        assert!(
            Path::new(sdk.strip_prefix("file:").unwrap())
                .join("bin/veneer-js.mjs")
                .is_file(),
            "{sdk}"
        );
        let source = std::fs::read_to_string(project.join("src/plugin.ts")).unwrap();
        assert!(source.contains("name: \"my-rules\""), "{source}");
        for case in ["commission-capped", "commission-default", "bad-settings"] {
            let text =
                std::fs::read_to_string(project.join(format!("tests/cases/{case}.json"))).unwrap();
            serde_json::from_str::<Value>(&text).unwrap();
        }
        let err = write_js_project(&project, "my-rules").unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
    }

    #[test]
    fn build_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let err = build_js_project(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no package.json"), "{err}");
        std::fs::write(dir.path().join("package.json"), r#"{"name": "x"}"#).unwrap();
        let err = build_js_project(dir.path()).unwrap_err();
        assert!(err.to_string().contains("\"entry\""), "{err}");
    }
}
