//! The files of a new Rust plugin project (`veneer plugin new NAME`): a crate
//! of its own (its own `[workspace]`, so it builds wherever it is put) that
//! depends on veneer-sdk alone, with a sample plugin and its native tests, a
//! README, and fixture cases for `veneer plugin test` that pass as written.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The SDK's manifest as this binary was built: its version is the one a
/// project outside any checkout depends on.
const SDK_MANIFEST: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../guest-sdk/Cargo.toml"
));

/// Where a new project takes veneer-sdk from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Sdk {
    /// A path dependency (a checkout's `guest-sdk`).
    Path(PathBuf),
    /// A version dependency on the published crate.
    Version(String),
}

impl Sdk {
    /// The checkout this binary was built from, when its SDK is still there
    /// (a developer's veneer); else the published SDK of the version built in.
    pub(super) fn default_for_this_build() -> Self {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
        match sdk_at(&checkout) {
            Ok(path) => Sdk::Path(path),
            Err(_) => Sdk::Version(sdk_version()),
        }
    }

    /// The dependency line of the project's Cargo.toml.
    fn dependency(&self) -> String {
        match self {
            Sdk::Path(path) => format!(
                "veneer-sdk = {{ path = {} }}",
                toml::Value::String(path.display().to_string())
            ),
            Sdk::Version(version) => format!("veneer-sdk = \"{version}\""),
        }
    }
}

impl fmt::Display for Sdk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sdk::Path(path) => write!(f, "from {}", path.display()),
            Sdk::Version(version) => write!(f, "{version} from the registry"),
        }
    }
}

/// The version in the built-in SDK manifest.
fn sdk_version() -> String {
    toml::from_str::<toml::Table>(SDK_MANIFEST)
        .ok()
        .and_then(|manifest| {
            manifest
                .get("package")?
                .get("version")?
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned())
}

/// `path`, made absolute, if it is the veneer-sdk crate.
pub(super) fn sdk_at(path: &Path) -> anyhow::Result<PathBuf> {
    let manifest = path.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).with_context(|| {
        format!(
            "--sdk-path {}: no Cargo.toml there; give a veneer checkout's guest-sdk directory",
            path.display()
        )
    })?;
    let name = toml::from_str::<toml::Table>(&text)
        .ok()
        .and_then(|m| m.get("package")?.get("name")?.as_str().map(str::to_owned));
    if name.as_deref() != Some("veneer-sdk") {
        bail!(
            "--sdk-path {}: that crate is not veneer-sdk; give a veneer checkout's guest-sdk directory",
            path.display()
        );
    }
    path.canonicalize()
        .with_context(|| format!("cannot resolve {}", path.display()))
}

/// Checks a plugin name (Rust or JS): it becomes a package name and a directory.
pub(in crate::cli) fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "`{name}` is not a plugin name: use lowercase letters, digits and `-`, starting with a letter (at most 64), for example `my-store-rules`"
        );
    }
    Ok(())
}

/// `my-store-rules` → `MyStoreRules`.
fn type_name(name: &str) -> String {
    name.split('-')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Writes a Rust plugin project into `dir` (created; it must not exist or be
/// empty) and returns the files written, relative to it.
pub(super) fn rust(dir: &Path, name: &str, sdk: &Sdk) -> anyhow::Result<Vec<PathBuf>> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            bail!(
                "{} exists and is not empty: choose another name or --dir",
                dir.display()
            );
        }
    }
    let ty = type_name(name);
    let files: Vec<(&str, String)> = vec![
        ("Cargo.toml", cargo_toml(name, sdk)),
        (".gitignore", "/target\n".to_owned()),
        ("README.md", readme(name)),
        ("src/lib.rs", LIB_RS.replace("{{Type}}", &ty)),
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
    let mut written = Vec::with_capacity(files.len());
    for (path, text) in files {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&full, text).with_context(|| format!("cannot write {}", full.display()))?;
        written.push(PathBuf::from(path));
    }
    Ok(written)
}

fn cargo_toml(name: &str, sdk: &Sdk) -> String {
    format!(
        r#"[package]
name = "{name}"
description = "A Veneer override plugin: caps each sale line's commission at a fee the tenant sets"
version = "0.1.0"
edition = "2024"
publish = false

# A project of its own, wherever it is put.
[workspace]

[lib]
# cdylib: the WebAssembly component; rlib: the native unit tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
{dependency}

# What `veneer plugin build` uses (cargo build --release --target wasm32-wasip2):
# small, fast components.
[profile.release]
lto = true
codegen-units = 1
strip = "debuginfo"
"#,
        dependency = sdk.dependency()
    )
}

fn readme(name: &str) -> String {
    README.replace("{{name}}", name)
}

const README: &str = r##"# {{name}}

A [Veneer](https://example.invalid/veneer) override plugin, written in Rust with
`veneer-sdk`. As generated it caps the commission of every sale line at a fee the
tenant sets (`max_fee`, in minor units).

## Work on it

```sh
cargo test              # the plugin's logic, natively (src/lib.rs has the tests)
veneer plugin build     # builds target/wasm32-wasip2/release/*.wasm and checks it as an upload would
veneer plugin test      # runs tests/cases/*.json against the component as the host does
```

`veneer plugin build` adds the `wasm32-wasip2` target to your toolchain if it is
missing. `veneer plugin run <component> --hook commission --input sale.json` runs one
hook by hand and reports fuel, memory and time.

## Fixture cases

Each file in `tests/cases/` is one case:

```json
{
  "hook": "commission",
  "description": "what it shows",
  "settings": {"max_fee": 1500},
  "input": {"sale": {...}, "base": {...}},
  "kv": {"key": "value"},
  "policy": {"commission": {"max_rate_bps": 3000}},
  "quota": {"fuel": 5000000},
  "expect": {"output": {...}}
}
```

`hook` is `categories`, `size-charts`, `commission` or `email`; `input` is what
`veneer plugin run --input` takes for that hook (default: the platform's base);
`settings` (default `{}`), `kv`, `policy` and `quota` are optional. `expect` gives the
`output` the hook must return exactly, or the `outcome` it must end with
(`plugin_error`, `out_of_fuel`, `invalid_output`, `policy_violation`, ...) and
optionally `message_contains`. `veneer plugin test` prints each case's result with its
fuel, memory, time and output against the quota, and exits 1 if any case fails.

## Settings

`Settings` in `src/lib.rs` is both what the tenant writes (JSON) and, derived from it,
the JSON Schema the host checks a release's settings against and the console shows as a
form: doc comments become descriptions, `#[schemars(range(...))]` a bound.

## Ship it

Upload `target/wasm32-wasip2/release/{{name}}.wasm` (with `-` as `_`) with
`POST /v1/plugins`, then create a release of an installation with its settings and
activate it (see Veneer's README, "Installations, releases and the chain", and
docs/plugins.md, the author's guide).
"##;

const LIB_RS: &str = r##"//! A Veneer override plugin: caps the commission of every sale line at a fee
//! the tenant sets.

use veneer_sdk::{CommissionDecision, Context, Plugin, PluginError, Sale};

/// The tenant's settings. The JSON Schema the host checks them against is
/// derived from this type (doc comments included).
#[veneer_sdk::settings]
#[derive(Debug)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The largest commission per sale line, in minor units (cents).
    #[schemars(range(min = 1))]
    pub max_fee: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { max_fee: 5_000 }
    }
}

/// The plugin, built once per instance from its settings.
#[derive(Debug)]
pub struct {{Type}} {
    max_fee: u64,
    note: String,
}

#[veneer_sdk::plugin]
impl Plugin for {{Type}} {
    type Settings = Settings;

    fn new(settings: Settings, _ctx: &Context) -> Result<Self, PluginError> {
        if settings.max_fee == 0 {
            return Err(PluginError::bad_settings("/max_fee", "must be at least 1"));
        }
        // Done once per instance, not on every call.
        let note = format!("capped at {}", settings.max_fee);
        Ok(Self {
            max_fee: settings.max_fee,
            note,
        })
    }

    fn commission(
        &self,
        _ctx: &Context,
        sale: &Sale,
        mut base: CommissionDecision,
    ) -> Result<CommissionDecision, PluginError> {
        base.max_fee = base.max_fee.min(self.max_fee).max(base.min_fee);
        base.refee(sale.gross());
        base.note.clone_from(&self.note);
        Ok(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(unit_price: u64) -> Sale {
        Sale {
            order_id: "o-1".into(),
            sku: "bag-1".into(),
            category_id: "bags".into(),
            unit_price,
            quantity: 1,
            currency: "EUR".into(),
            seller_id: None,
            attributes: vec![],
        }
    }

    fn base() -> CommissionDecision {
        CommissionDecision {
            rule_id: "bags".into(),
            rate_bps: 1_200,
            min_fee: 100,
            max_fee: 50_000,
            fee: 12_000,
            note: String::new(),
        }
    }

    #[test]
    fn the_fee_is_capped_at_the_tenant_s_maximum() {
        let ctx = Context::testing();
        let plugin: {{Type}} = veneer_sdk::instantiate(r#"{"max_fee": 1500}"#, &ctx).unwrap();
        let decision = plugin.commission(&ctx, &sale(100_000), base()).unwrap();
        assert_eq!((decision.fee, decision.max_fee), (1_500, 1_500));
        assert_eq!(decision.note, "capped at 1500");
        // Below the cap, the rate decides.
        let cheap = plugin.commission(&ctx, &sale(5_000), base()).unwrap();
        assert_eq!(cheap.fee, 600);
    }

    #[test]
    fn settings_that_do_not_fit_name_their_path() {
        let err = veneer_sdk::instantiate::<{{Type}}>(r#"{"max_fee": "lots"}"#, &Context::testing())
            .unwrap_err();
        assert_eq!(err.code, "bad-settings");
        assert!(err.message.starts_with("settings at /max_fee:"), "{}", err.message);
    }

    #[test]
    fn describe_reports_the_commission_hook_and_the_schema() {
        let info = veneer_sdk::describe::<{{Type}}>();
        assert_eq!(info.hooks, ["commission"]);
        assert!(info.settings_schema.unwrap().contains("max_fee"));
    }
}
"##;

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
    fn names_are_package_names() {
        for good in ["a", "my-store-rules", "rules2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "My",
            "2rules",
            "a_b",
            "a-",
            "../x",
            "a b",
            &"a".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(type_name("my-store-rules"), "MyStoreRules");
    }

    #[test]
    fn the_built_in_sdk_version_is_the_sdk_s() {
        let version = sdk_version();
        assert!(version.starts_with("0."), "{version}");
        assert_eq!(
            Sdk::Version(version.clone()).dependency(),
            format!("veneer-sdk = \"{version}\"")
        );
        assert_eq!(
            Sdk::Path(PathBuf::from("/x/guest-sdk")).dependency(),
            "veneer-sdk = { path = \"/x/guest-sdk\" }"
        );
    }

    #[test]
    fn a_project_is_written_into_an_empty_directory_only() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("p");
        let files = rust(&target, "p", &Sdk::Version("0.2.0".into())).unwrap();
        assert!(files.contains(&PathBuf::from("tests/cases/commission-capped.json")));
        let lib = std::fs::read_to_string(target.join("src/lib.rs")).unwrap();
        assert!(lib.contains("impl Plugin for P {"));
        assert!(!lib.contains("{{"), "every placeholder filled");
        let err = rust(&target, "p", &Sdk::Version("0.2.0".into())).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        for case in [CASE_CAPPED, CASE_DEFAULT, CASE_BAD_SETTINGS] {
            serde_json::from_str::<serde_json::Value>(case).unwrap();
        }
    }
}
