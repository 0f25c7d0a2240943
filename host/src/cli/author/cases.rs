//! `veneer plugin test`: a project's fixture cases, one JSON file each
//! (`tests/cases/*.json`: hook, input, settings, key-value data, optional
//! policy and quota, and the expected output or outcome), run against the
//! component through the resolver's chain with the case as its one step, as
//! the host runs an installation and as `plugin run --policy` does. Each case
//! reports pass or fail with its fuel, memory, time and output against the
//! quota; any failure makes the exit code 1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::base::BaseConfig;
use crate::policy::Policy;
use crate::resolve::{Budget, ChainStep, Resolved, Resolver, RunRecord};
use crate::runtime::hook;
use crate::runtime::{
    Hook, LoadedPlugin, OutcomeKind, Quota, Runtime, RuntimeConfig, StaticTenantData,
};

/// One fixture case, as written in its file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// The hook to run.
    hook: Hook,
    /// What the case shows (printed on failure).
    #[serde(default)]
    description: Option<String>,
    /// The hook's input, as `plugin run --input` takes it (default: the base's).
    #[serde(default)]
    input: Option<Value>,
    /// The plugin's settings (default `{}`).
    #[serde(default)]
    settings: Option<Value>,
    /// The tenant's key-value data.
    #[serde(default)]
    kv: BTreeMap<String, String>,
    /// An output policy the result must keep.
    #[serde(default)]
    policy: Option<Policy>,
    /// Quota fields to change from the host's default.
    #[serde(default)]
    quota: Option<Quota>,
    /// What the run must give.
    expect: Expect,
}

/// A case's expectation: an exact output (outcome `ok` unless said), or an
/// outcome with an optional part of its message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    message_contains: Option<String>,
}

/// How one case went.
struct CaseResult {
    name: String,
    failure: Option<String>,
    run: Option<RunRecord>,
    quota: Quota,
}

/// Runs every case in `dir` against `component` and reports; exit 1 if any fails.
pub(super) fn run(
    component: &Path,
    dir: &Path,
    base_config: Option<&Path>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let files = case_files(dir)?;
    let base = BaseConfig::load_or_built_in(base_config)?;
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let bytes = super::super::read(component)?;
    let plugin = match runtime.load(&bytes) {
        Ok(plugin) => plugin,
        Err(err) => {
            if as_json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&super::super::rejected_json(&err))?
                );
            } else {
                outln!(
                    "{} is refused ({}): {err}\n0 passed, {} failed",
                    component.display(),
                    err.code(),
                    files.len()
                );
            }
            return Ok(ExitCode::from(1));
        }
    };
    let mut results = Vec::with_capacity(files.len());
    for file in &files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let result = match load_case(file) {
            Ok(case) => run_case(&runtime, &base, &plugin, name, case),
            Err(err) => CaseResult {
                name,
                failure: Some(format!("{err:#}")),
                run: None,
                quota: Quota::default(),
            },
        };
        results.push(result);
    }
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    let passed = results.len() - failed;
    if as_json {
        let cases: Vec<Value> = results.iter().map(case_json).collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "component": component,
                "plugin": plugin.info(),
                "passed": passed,
                "failed": failed,
                "cases": cases,
            }))?
        );
    } else {
        for result in &results {
            report(result)?;
        }
        outln!("{passed} passed, {failed} failed");
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The `.json` files of `dir`, sorted; at least one.
fn case_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "cannot read the cases directory {}: write one JSON file per case there (or give --cases)",
            dir.display()
        )
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "json") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        bail!(
            "{} has no .json case files: a test run without cases proves nothing",
            dir.display()
        );
    }
    Ok(files)
}

fn load_case(file: &Path) -> anyhow::Result<Case> {
    let case: Case = super::super::read_json(file)?;
    if case.expect.output.is_none() && case.expect.outcome.is_none() {
        bail!(
            "{}: `expect` needs an `output`, an `outcome`, or both",
            file.display()
        );
    }
    if let Some(policy) = &case.policy {
        policy
            .validate()
            .map_err(|why| anyhow::anyhow!("{}: policy: {why}", file.display()))?;
    }
    if let Some(quota) = &case.quota {
        quota
            .validate()
            .map_err(|why| anyhow::anyhow!("{}: {why}", file.display()))?;
    }
    Ok(case)
}

/// Runs one case as a one-step chain and compares what it gave with what it expects.
fn run_case(
    runtime: &Runtime,
    base: &BaseConfig,
    plugin: &Arc<LoadedPlugin>,
    name: String,
    case: Case,
) -> CaseResult {
    let quota = case.quota.unwrap_or_default();
    let fail = |failure: String| CaseResult {
        name: name.clone(),
        failure: Some(failure),
        run: None,
        quota,
    };
    if !plugin.implements(case.hook) {
        return fail(format!(
            "the plugin does not implement the {} hook, so the host would never run it",
            case.hook
        ));
    }
    let policies: Vec<Policy> = case.policy.into_iter().collect();
    let step = ChainStep {
        installation: "case",
        release: 1,
        plugin: Some(plugin),
        warm: None,
        data: Arc::new(StaticTenantData {
            settings: case
                .settings
                .map_or_else(|| "{}".to_owned(), |settings| settings.to_string()),
            kv: case.kv,
        }),
        quota,
        policies: &policies,
    };
    let steps = [step];
    let resolver = Resolver::new(runtime, base);
    let mut budget = Budget::unlimited();
    let resolved = match case.hook {
        Hook::Categories => super::super::categories_from(case.input, base).map(|input| {
            served(resolver.resolve_chain::<hook::Categories>(&steps, &mut budget, &input, ()))
        }),
        Hook::SizeCharts => super::super::size_charts_from(case.input, base).map(|input| {
            served(resolver.resolve_chain::<hook::SizeCharts>(
                &steps,
                &mut budget,
                &input,
                &base.categories,
            ))
        }),
        Hook::Commission => {
            super::super::commission_from(case.input, base).map(|(sale, decision)| {
                served(resolver.resolve_chain::<hook::Commission>(
                    &steps,
                    &mut budget,
                    (&sale, &decision),
                    (),
                ))
            })
        }
        Hook::Email => {
            super::super::email_from(case.input, base).map(|(def, template, context)| {
                served(resolver.resolve_chain::<hook::Email>(
                    &steps,
                    &mut budget,
                    (&template, &context),
                    def,
                ))
            })
        }
        Hook::ProductCategory => {
            super::super::product_category_from(case.input, base).map(|(product, choice)| {
                served(resolver.resolve_chain::<hook::ProductCategory>(
                    &steps,
                    &mut budget,
                    (&product, choice.as_deref()),
                    &base.categories,
                ))
            })
        }
    };
    let (output, run) = match resolved {
        Ok(resolved) => resolved,
        Err(err) => return fail(format!("the case's input: {err:#}")),
    };
    let Some(run) = run else {
        return fail("the plugin did not run".to_owned());
    };
    let failure = compare(&case.expect, &run, &output).map(|why| match &case.description {
        Some(description) => format!("{why} (case: {description})"),
        None => why,
    });
    CaseResult {
        name,
        failure,
        run: Some(run),
        quota,
    }
}

/// The plugin's output (the value served, when its run ended `ok`) and its run.
fn served<T: serde::Serialize>(resolved: Resolved<T>) -> (Value, Option<RunRecord>) {
    let run = resolved.runs.into_iter().next();
    (
        serde_json::to_value(&resolved.value).unwrap_or(Value::Null),
        run,
    )
}

/// Why the run does not meet the expectation, if it does not.
fn compare(expect: &Expect, run: &RunRecord, output: &Value) -> Option<String> {
    let wanted = expect.outcome.as_deref().unwrap_or("ok");
    if run.outcome.as_str() != wanted {
        return Some(format!(
            "expected outcome {wanted}, got {}{}",
            run.outcome.as_str(),
            run.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ));
    }
    if let Some(part) = &expect.message_contains {
        let message = run.message.as_deref().unwrap_or_default();
        if !message.contains(part.as_str()) {
            return Some(format!(
                "expected a message containing {part:?}, got {message:?}"
            ));
        }
    }
    if let Some(expected) = &expect.output {
        if run.outcome != OutcomeKind::Ok {
            return Some("an expected output needs outcome ok".to_owned());
        }
        if let Some((path, want, got)) = first_difference(expected, output, String::new()) {
            return Some(format!(
                "the output differs at {}: expected {want}, got {got}",
                if path.is_empty() { "/" } else { &path }
            ));
        }
    }
    None
}

/// The first place (a JSON Pointer) where `got` differs from `want`, with
/// both values there (`(absent)` for a missing one).
fn first_difference(want: &Value, got: &Value, path: String) -> Option<(String, String, String)> {
    let absent = || "(absent)".to_owned();
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let keys: std::collections::BTreeSet<&String> = w.keys().chain(g.keys()).collect();
            keys.into_iter().find_map(|key| {
                let here = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
                match (w.get(key), g.get(key)) {
                    (Some(a), Some(b)) => first_difference(a, b, here),
                    (Some(a), None) => Some((here, a.to_string(), absent())),
                    (None, Some(b)) => Some((here, absent(), b.to_string())),
                    (None, None) => None,
                }
            })
        }
        (Value::Array(w), Value::Array(g)) => {
            let common = w
                .iter()
                .zip(g)
                .enumerate()
                .find_map(|(i, (a, b))| first_difference(a, b, format!("{path}/{i}")));
            common.or_else(|| {
                (w.len() != g.len()).then(|| {
                    (
                        path.clone(),
                        format!("{} items", w.len()),
                        format!("{} items", g.len()),
                    )
                })
            })
        }
        _ if want == got => None,
        _ => Some((path, want.to_string(), got.to_string())),
    }
}

/// `used` of `limit`, and what is left, as a report line's part.
fn headroom(what: &str, used: u64, limit: u64, unit: &str) -> String {
    if used >= limit {
        return format!("{what} {used}{unit} of {limit}{unit}: LIMIT REACHED");
    }
    let left = super::super::percent(limit - used, limit);
    format!("{what} {used}{unit} of {limit}{unit} ({left:.2} % left)")
}

fn report(result: &CaseResult) -> anyhow::Result<()> {
    let verdict = if result.failure.is_some() {
        "FAIL"
    } else {
        "pass"
    };
    outln!("{verdict}  {}", result.name);
    if let Some(run) = &result.run {
        let stats = &run.stats;
        let q = &result.quota;
        let wall_us = u64::try_from(stats.wall_time.as_micros()).unwrap_or(u64::MAX);
        outln!(
            "      {}; {}; {}; {}",
            headroom("fuel", stats.fuel_used, q.fuel, ""),
            headroom("memory", stats.peak_memory_bytes, q.memory_bytes, " B"),
            headroom("time", wall_us, q.deadline_ms.saturating_mul(1000), " µs"),
            headroom("output", stats.output_bytes, q.output_bytes, " B"),
        );
    }
    if let Some(failure) = &result.failure {
        outln!("      {failure}");
    }
    Ok(())
}

fn case_json(result: &CaseResult) -> Value {
    let run = result.run.as_ref().map(|run| {
        json!({
            "outcome": run.outcome,
            "message": run.message,
            "fuel_used": run.stats.fuel_used,
            "peak_memory_bytes": run.stats.peak_memory_bytes,
            "wall_time_us": u64::try_from(run.stats.wall_time.as_micros()).unwrap_or(u64::MAX),
            "output_bytes": run.stats.output_bytes,
            "limits_reached": super::super::limits_reached(&result.quota, &run.stats)
                .into_iter()
                .map(|(field, _)| field)
                .collect::<Vec<_>>(),
        })
    });
    json!({
        "case": result.name,
        "passed": result.failure.is_none(),
        "failure": result.failure,
        "run": run,
        "quota": result.quota,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_difference_is_named_by_its_json_pointer() {
        let want = json!({"fee": 1500, "rows": [{"a": 1}, {"a": 2}], "x/y": 1});
        assert_eq!(first_difference(&want, &want.clone(), String::new()), None);
        let got = json!({"fee": 1800, "rows": [{"a": 1}, {"a": 2}], "x/y": 1});
        assert_eq!(
            first_difference(&want, &got, String::new()),
            Some(("/fee".into(), "1500".into(), "1800".into()))
        );
        let got = json!({"fee": 1500, "rows": [{"a": 1}, {"a": 3}], "x/y": 1});
        assert_eq!(
            first_difference(&want, &got, String::new()).unwrap().0,
            "/rows/1/a"
        );
        let got = json!({"fee": 1500, "rows": [{"a": 1}], "x/y": 2});
        assert_eq!(
            first_difference(&want, &got, String::new()).unwrap(),
            ("/rows".into(), "2 items".into(), "1 items".into())
        );
        let got = json!({"fee": 1500, "rows": [{"a": 1}, {"a": 2}]});
        assert_eq!(
            first_difference(&want, &got, String::new()).unwrap(),
            ("/x~1y".into(), "1".into(), "(absent)".into())
        );
    }

    #[test]
    fn headroom_says_when_a_limit_is_reached() {
        assert_eq!(headroom("fuel", 20, 20, ""), "fuel 20 of 20: LIMIT REACHED");
        assert_eq!(headroom("fuel", 5, 20, ""), "fuel 5 of 20 (75.00 % left)");
    }
}
