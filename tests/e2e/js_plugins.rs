//! JavaScript and TypeScript plugins (guest-sdk/js, componentize-js) under the
//! unchanged sandbox: the TypeScript twin of luxury-consignment answers every
//! fixture case exactly as the Rust plugin does, hostile JS ends like hostile
//! Rust, the components import only what the host allows, and the SDK's
//! generated TypeScript types are those of the WIT.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use veneer::base::Sale;
use veneer::runtime::{LoadedPlugin, Outcome, OutcomeKind, Quota, Run, hook};
use veneer_plugin_artifacts as built_plugins;

use crate::util::{base, load, runtime, sale, settings};

/// The fuel docs/plugins-js.md tells admins to give a JS plugin's section hooks.
const JS_SECTION_FUEL: u64 = 100_000_000;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[derive(Deserialize)]
struct Twins {
    commission: Vec<CommissionCase>,
    categories: Vec<CategoriesCase>,
}

#[derive(Deserialize)]
struct CommissionCase {
    name: String,
    settings: Value,
    sale: Sale,
    expect: OutcomeName,
}

#[derive(Deserialize)]
struct CategoriesCase {
    name: String,
    settings: Value,
    expect: OutcomeName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OutcomeName {
    Ok,
    PluginError,
}

impl OutcomeName {
    fn kind(self) -> OutcomeKind {
        match self {
            OutcomeName::Ok => OutcomeKind::Ok,
            OutcomeName::PluginError => OutcomeKind::PluginError,
        }
    }
}

fn twins() -> Twins {
    let path = repo().join("plugins/js-luxury-consignment/fixtures/twins.json");
    let text = std::fs::read(&path).expect("the twins' fixture cases are readable");
    serde_json::from_slice(&text).expect("the twins' fixture cases parse")
}

/// Both outcomes are `expected` and equal; plugin errors agree on their code
/// (the messages are each language's own).
fn assert_twins<T: PartialEq + std::fmt::Debug>(
    name: &str,
    expected: OutcomeName,
    rust: &Run<T>,
    js: &Run<T>,
) {
    assert_eq!(
        rust.outcome.kind(),
        expected.kind(),
        "{name}: Rust {:?}",
        rust.outcome
    );
    match (&rust.outcome, &js.outcome) {
        (Outcome::PluginError { code: r, .. }, Outcome::PluginError { code: j, .. }) => {
            assert_eq!(r, j, "{name}: plugin error codes differ ({:?})", js.outcome);
        }
        (r, j) => assert_eq!(r, j, "{name}: the Rust and JS plugins disagree"),
    }
}

fn twin_plugins() -> (Arc<LoadedPlugin>, Arc<LoadedPlugin>) {
    (
        load(built_plugins::LUXURY_CONSIGNMENT),
        load(built_plugins::JS_LUXURY_CONSIGNMENT),
    )
}

#[test]
fn js_and_rust_luxury_consignment_agree_on_every_fixture_case() {
    let (rust, js) = twin_plugins();
    assert_eq!(
        rust.info().hooks,
        js.info().hooks,
        "both implement the same hooks"
    );
    let cases = twins();
    assert!(cases.commission.len() >= 20 && !cases.categories.is_empty());
    let quota = Quota::default();
    for case in &cases.commission {
        let data = settings(&case.settings.to_string());
        let decision = base().decide_commission(&case.sale);
        let input = (&case.sale, &decision);
        let r = runtime().run::<hook::Commission>(&rust, None, data.clone(), &quota, input);
        let j = runtime().run::<hook::Commission>(&js, None, data, &quota, input);
        assert_twins(&case.name, case.expect, &r, &j);
    }
    // The whole base tree crosses into JS and back: about 26 million fuel,
    // past the default 20 million. docs/plugins-js.md gives the quota an
    // admin sets for a JS plugin's section hooks; both twins run under it.
    let section_quota = Quota {
        fuel: JS_SECTION_FUEL,
        ..Quota::default()
    };
    for case in &cases.categories {
        let data = settings(&case.settings.to_string());
        let tree = &base().categories;
        let r = runtime().run::<hook::Categories>(&rust, None, data.clone(), &section_quota, tree);
        let j = runtime().run::<hook::Categories>(&js, None, data, &section_quota, tree);
        assert_twins(&case.name, case.expect, &r, &j);
        if let Outcome::Ok(out) = &j.outcome {
            assert!(
                out.len() > tree.len(),
                "{}: categories were added",
                case.name
            );
        }
    }
}

#[test]
fn js_components_import_only_the_veneer_interfaces() {
    for path in [
        built_plugins::JS_LUXURY_CONSIGNMENT,
        built_plugins::JS_HOSTILE,
    ] {
        let plugin = load(path);
        for import in &plugin.info().imports {
            assert!(
                import.starts_with("veneer:plugin/"),
                "{path} imports {import}: build.mjs turns every WASI feature off"
            );
        }
    }
}

fn hostile_js(mode: &str, quota: &Quota) -> Run<veneer::base::CommissionDecision> {
    let plugin = load(built_plugins::JS_HOSTILE);
    let line = sale("bags", 10_000);
    let decision = base().decide_commission(&line);
    let data = settings(&format!(r#"{{"mode": "{mode}"}}"#));
    runtime().run::<hook::Commission>(&plugin, None, data, quota, (&line, &decision))
}

/// After every failure the same plugin, well-behaved, still serves.
fn hostile_js_behaves() {
    let run = hostile_js("ok", &Quota::default());
    assert_eq!(run.outcome.kind(), OutcomeKind::Ok, "{:?}", run.outcome);
}

#[test]
fn js_endless_loop_runs_out_of_fuel() {
    let quota = Quota::default();
    let run = hostile_js("spin", &quota);
    assert_eq!(run.outcome, Outcome::OutOfFuel);
    assert!(
        run.stats.fuel_used >= quota.fuel - 10,
        "used {}",
        run.stats.fuel_used
    );
    hostile_js_behaves();
}

#[test]
fn js_huge_allocation_is_out_of_memory() {
    let quota = Quota::default();
    let run = hostile_js("alloc", &quota);
    assert_eq!(
        run.outcome.kind(),
        OutcomeKind::OutOfMemory,
        "{:?}",
        run.outcome
    );
    assert!(run.stats.peak_memory_bytes <= quota.memory_bytes);
    hostile_js_behaves();
}

#[test]
fn js_exceptions_trap_and_plugin_errors_are_values() {
    let run = hostile_js("throw", &Quota::default());
    assert_eq!(run.outcome.kind(), OutcomeKind::Trap, "{:?}", run.outcome);
    assert!(
        run.stats
            .logs
            .iter()
            .any(|line| line.message.contains("hostile plugin threw")),
        "the SDK logs the exception before the trap: {:?}",
        run.stats.logs
    );
    let run = hostile_js("error", &Quota::default());
    assert!(
        matches!(&run.outcome, Outcome::PluginError { code, .. } if code == "hostile-error"),
        "{:?}",
        run.outcome
    );
    hostile_js_behaves();
}

#[test]
fn generated_typescript_types_match_the_wit() {
    let out = Command::new("node")
        .arg(repo().join("guest-sdk/js/bin/types.mjs"))
        .arg("--check")
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn veneer(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_veneer"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the veneer binary runs")
}

/// A project from `write_js_project`, in a temp dir outside the repository,
/// builds, passes `veneer plugin check`, and answers each of its own fixture
/// cases as the case expects through `veneer plugin run`.
#[test]
fn a_scaffolded_js_project_builds_checks_and_passes_its_cases() {
    use veneer::cli::scaffold_js::{build_js_project, write_js_project};

    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("store-rules");
    assert!(!dir.starts_with(repo().canonicalize().unwrap()));
    write_js_project(&dir, "store-rules").expect("the project is written");
    let component = build_js_project(&dir).expect("the project builds");
    assert_eq!(component, dir.join("dist/store-rules.wasm"));

    let out = veneer(&["plugin".as_ref(), "check".as_ref(), component.as_os_str()]);
    assert!(
        out.status.success(),
        "check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let mut cases = 0;
    for entry in std::fs::read_dir(dir.join("tests/cases")).expect("cases") {
        let path = entry.expect("a case").path();
        let case: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let input = temp.path().join("input.json");
        let settings = temp.path().join("settings.json");
        std::fs::write(&input, case["input"].to_string()).unwrap();
        let given = case
            .get("settings")
            .cloned()
            .unwrap_or(serde_json::json!({}));
        std::fs::write(&settings, given.to_string()).unwrap();
        let hook = case["hook"].as_str().expect("a hook");
        let out = veneer(&[
            "plugin".as_ref(),
            "run".as_ref(),
            component.as_os_str(),
            "--hook".as_ref(),
            hook.as_ref(),
            "--input".as_ref(),
            input.as_os_str(),
            "--settings".as_ref(),
            settings.as_os_str(),
            "--json".as_ref(),
        ]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
            panic!("{err}: {}", String::from_utf8_lossy(&out.stderr));
        });
        let expect = &case["expect"];
        if let Some(output) = expect.get("output") {
            assert_eq!(report["outcome"], "ok", "{}: {report}", path.display());
            assert_eq!(&report["output"], output, "{}", path.display());
        } else {
            assert_eq!(
                report["outcome"],
                expect["outcome"],
                "{}: {report}",
                path.display()
            );
            let wanted = expect["message_contains"].as_str().unwrap_or("");
            assert!(
                report.to_string().contains(wanted),
                "{}: {wanted:?} not in {report}",
                path.display()
            );
        }
        cases += 1;
    }
    assert_eq!(cases, 3);
}
