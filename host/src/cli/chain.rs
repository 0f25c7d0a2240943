//! `veneer plugin run --plugin a.wasm --settings a.json --plugin b.wasm …`
//! (and any run with `--policy`): a chain run exactly as the host composes a
//! tenant's installations (the resolver's chain: each step gets the previous
//! step's validated output, a result breaking the output policy or failing is
//! skipped and its input passes on), reported step by step.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{
    RunArgs, categories_input, commission_input, email_input, product_category_input, read,
    read_json, size_charts_input,
};
use crate::base::BaseConfig;
use crate::policy::Policy;
use crate::resolve::{Budget, ChainStep, Resolved, Resolver};
use crate::runtime::hook;
use crate::runtime::{Hook, LoadedPlugin, OutcomeKind, Quota, Runtime, StaticTenantData};

/// Loads each plugin, runs the hook through the chain and reports each step.
/// Exit code 1 when a component is refused or a step did not end `ok` (the
/// host would have skipped it).
pub(super) fn run(
    runtime: &Runtime,
    base: &BaseConfig,
    files: &[PathBuf],
    settings: impl Fn(usize) -> anyhow::Result<String>,
    kv: &BTreeMap<String, String>,
    quota: &Quota,
    args: &RunArgs,
) -> anyhow::Result<ExitCode> {
    let mut plugins: Vec<Arc<LoadedPlugin>> = Vec::with_capacity(files.len());
    for file in files {
        match runtime.load(&read(file)?) {
            Ok(plugin) => plugins.push(plugin),
            Err(err) => {
                let message = format!("{} is refused ({}): {err}", file.display(), err.code());
                if args.json {
                    outln!(
                        "{}",
                        serde_json::to_string_pretty(&json!({
                            "outcome": "rejected",
                            "plugin": file,
                            "message": message,
                        }))?
                    );
                } else {
                    outln!("outcome: rejected\n{message}");
                }
                return Ok(ExitCode::from(1));
            }
        }
    }
    let policies: Vec<Policy> = match &args.policy {
        Some(path) => {
            let policy: Policy = read_json(path)?;
            policy
                .validate()
                .map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?;
            vec![policy]
        }
        None => Vec::new(),
    };
    let names: Vec<String> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            format!(
                "{}:{}",
                i + 1,
                f.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            )
        })
        .collect();
    let mut steps = Vec::with_capacity(files.len());
    for (i, plugin) in plugins.iter().enumerate() {
        steps.push(ChainStep {
            installation: &names[i],
            release: i as i64 + 1,
            plugin: Some(plugin),
            warm: None,
            data: Arc::new(StaticTenantData {
                settings: settings(i)?,
                kv: kv.clone(),
            }),
            quota: *quota,
            policies: &policies,
        });
    }
    let resolver = Resolver::new(runtime, base);
    let mut budget = Budget::unlimited();
    let (output, runs, source) = match args.hook {
        Hook::Categories => {
            let input = categories_input(args, base)?;
            parts(resolver.resolve_chain::<hook::Categories>(&steps, &mut budget, &input, ()))
        }
        Hook::SizeCharts => {
            let input = size_charts_input(args, base)?;
            parts(resolver.resolve_chain::<hook::SizeCharts>(
                &steps,
                &mut budget,
                &input,
                &base.categories,
            ))
        }
        Hook::Commission => {
            let (sale, decision) = commission_input(args, base)?;
            parts(resolver.resolve_chain::<hook::Commission>(
                &steps,
                &mut budget,
                (&sale, &decision),
                (),
            ))
        }
        Hook::Email => {
            let (def, template, context) = email_input(args, base)?;
            parts(resolver.resolve_chain::<hook::Email>(
                &steps,
                &mut budget,
                (&template, &context),
                def,
            ))
        }
        Hook::ProductCategory => {
            let (product, choice) = product_category_input(args, base)?;
            parts(resolver.resolve_chain::<hook::ProductCategory>(
                &steps,
                &mut budget,
                (&product, choice.as_deref()),
                &base.categories,
            ))
        }
    };
    let step_reports: Vec<Value> = steps
        .iter()
        .zip(files)
        .map(|(step, file)| {
            let run = runs
                .iter()
                .find(|r| r.installation.as_deref() == Some(step.installation));
            match run {
                None => json!({
                    "plugin": file,
                    "outcome": "skipped",
                    "message": format!("the plugin does not implement the {} hook", args.hook),
                }),
                Some(run) => json!({
                    "plugin": file,
                    "sha256": run.plugin,
                    "outcome": run.outcome,
                    "message": run.message,
                    "fuel_used": run.stats.fuel_used,
                    "peak_memory_bytes": run.stats.peak_memory_bytes,
                    "wall_time_us": u64::try_from(run.stats.wall_time.as_micros()).unwrap_or(u64::MAX),
                    "logs": run.stats.logs,
                }),
            }
        })
        .collect();
    let failed = runs.iter().any(|r| r.outcome != OutcomeKind::Ok);
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "hook": args.hook,
                "source": source,
                "steps": step_reports,
                "quota": quota,
                "output": output,
            }))?
        );
    } else {
        outln!("{}", serde_json::to_string_pretty(&output)?);
        outln!();
        outln!("hook         {}", args.hook);
        outln!(
            "served       {}",
            if source == "plugin" {
                "the chain's output"
            } else {
                "the base (no step's output survived)"
            }
        );
        for (i, step) in step_reports.iter().enumerate() {
            outln!(
                "step {}       {} — {}{}{}",
                i + 1,
                step["plugin"].as_str().unwrap_or_default(),
                step["outcome"].as_str().unwrap_or_default(),
                step["fuel_used"]
                    .as_u64()
                    .map(|f| format!(", {f} fuel"))
                    .unwrap_or_default(),
                step["message"]
                    .as_str()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default(),
            );
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn parts<T: serde::Serialize>(
    resolved: Resolved<T>,
) -> (Value, Vec<crate::resolve::RunRecord>, &'static str) {
    let source = match resolved.source {
        crate::resolve::Source::Plugin => "plugin",
        crate::resolve::Source::Base => "base",
    };
    (
        serde_json::to_value(&resolved.value).unwrap_or(Value::Null),
        resolved.runs,
        source,
    )
}
