//! `veneer plugin replay NEW.wasm --records records.jsonl [--settings s.json]`
//! (or a chain: `--plugin a.wasm --settings a.json --plugin b.wasm …`): the
//! commission calls a tenant recorded (`GET /v1/records`) run again locally
//! through the plugin, as the host runs them (the base decision, then each
//! step given the previous one's validated output), each answer compared with
//! the one served. Prints how many match, each difference, each failure with
//! its message and fuel — a production failure reproduced on a laptop. Exit
//! code 1 when a step failed, 0 otherwise (differences are what a replay is
//! for).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};

use super::{read, read_json};
use crate::base::{BaseConfig, CommissionDecision, Sale};
use crate::resolve::{Budget, ChainStep, Resolver};
use crate::runtime::{LoadedPlugin, OutcomeKind, Quota, Runtime, RuntimeConfig, StaticTenantData};

/// Differences and failures printed in full (all are counted).
const SHOWN: usize = 20;

/// Arguments of `veneer plugin replay`.
#[derive(Debug, Args)]
pub(super) struct ReplayArgs {
    /// The plugin to replay through (.wasm); or give a chain with `--plugin`.
    file: Option<PathBuf>,
    /// One step of a chain (repeat, in order), each followed by its `--settings`.
    #[arg(long = "plugin")]
    plugins: Vec<PathBuf>,
    /// The recorded calls: JSONL as `GET /v1/records` exports them.
    #[arg(long)]
    records: PathBuf,
    /// Settings (JSON file) per plugin, in order (default: `{}`).
    #[arg(long)]
    settings: Vec<PathBuf>,
    /// The tenant's key-value data as a JSON object of strings.
    #[arg(long)]
    kv: Option<PathBuf>,
    /// Fuel per step (default: the host's default quota).
    #[arg(long)]
    fuel: Option<u64>,
    /// Print one JSON object instead of a report.
    #[arg(long)]
    json: bool,
    /// A base-config directory (default: the one built into the binary).
    #[arg(long, env = "VENEER_BASE_CONFIG")]
    base_config: Option<PathBuf>,
}

pub(super) fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let files: Vec<PathBuf> = match (&args.file, args.plugins.is_empty()) {
        (Some(file), true) => vec![file.clone()],
        (None, false) => args.plugins.clone(),
        _ => anyhow::bail!("give one plugin file, or a chain with --plugin (not both)"),
    };
    if args.settings.len() > files.len() {
        anyhow::bail!("more --settings than plugins");
    }
    let base = BaseConfig::load_or_built_in(args.base_config.as_deref())?;
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let mut quota = Quota::default();
    if let Some(fuel) = args.fuel {
        quota.fuel = fuel;
    }
    let kv: BTreeMap<String, String> = match &args.kv {
        Some(path) => read_json(path)?,
        None => BTreeMap::new(),
    };
    let mut plugins: Vec<Arc<LoadedPlugin>> = Vec::with_capacity(files.len());
    let mut data = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        let plugin = runtime.load(&read(file)?).map_err(|err| {
            anyhow::anyhow!("{} is refused ({}): {err}", file.display(), err.code())
        })?;
        plugins.push(plugin);
        let settings = match args.settings.get(i) {
            Some(path) => {
                let text = String::from_utf8(read(path)?).context("settings must be UTF-8 JSON")?;
                serde_json::from_str::<Value>(&text)
                    .with_context(|| format!("{} is not valid JSON", path.display()))?;
                text
            }
            None => "{}".to_owned(),
        };
        data.push(Arc::new(StaticTenantData {
            settings,
            kv: kv.clone(),
        }));
    }
    let names: Vec<String> = (1..=files.len()).map(|i| format!("step-{i}")).collect();
    let steps: Vec<ChainStep<'_>> = plugins
        .iter()
        .enumerate()
        .map(|(i, plugin)| ChainStep {
            installation: &names[i],
            release: i as i64 + 1,
            plugin: Some(plugin),
            warm: None,
            data: data[i].clone(),
            quota,
            policies: &[],
        })
        .collect();
    let resolver = Resolver::new(&runtime, &base);
    let text = String::from_utf8(read(&args.records)?).context("the records must be UTF-8")?;

    let (mut replayed, mut same, mut skipped, mut fuel_total, mut fuel_max) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut differences = Vec::new();
    let mut failures = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not JSON", args.records.display(), n + 1))?;
        if record["hook"] != "commission" {
            skipped += 1;
            continue;
        }
        let sale: Sale =
            serde_json::from_value(record["input"]["sale"].clone()).with_context(|| {
                format!(
                    "{} line {}: input.sale is not a sale",
                    args.records.display(),
                    n + 1
                )
            })?;
        let recorded: CommissionDecision = serde_json::from_value(record["output"].clone())
            .with_context(|| {
                format!(
                    "{} line {}: output is not a decision",
                    args.records.display(),
                    n + 1
                )
            })?;
        let mut budget = Budget::unlimited();
        let resolved = match resolver.commission_chain(&steps, &mut budget, &sale) {
            Ok(resolved) => resolved,
            Err(err) => {
                failures.push(json!({ "record": record["id"], "outcome": "invalid_sale", "message": err.to_string() }));
                continue;
            }
        };
        replayed += 1;
        let fuel: u64 = resolved.runs.iter().map(|r| r.stats.fuel_used).sum();
        fuel_total += fuel;
        fuel_max = fuel_max.max(fuel);
        for run in resolved
            .runs
            .iter()
            .filter(|r| r.outcome != OutcomeKind::Ok)
        {
            failures.push(json!({
                "record": record["id"],
                "step": run.installation,
                "outcome": run.outcome.as_str(),
                "message": run.message,
                "fuel": run.stats.fuel_used,
            }));
        }
        if resolved.value == recorded {
            same += 1;
        } else {
            differences.push(json!({
                "record": record["id"],
                "sale": sale,
                "recorded": recorded,
                "replayed": resolved.value,
                "fee_delta": i128::from(resolved.value.fee) - i128::from(recorded.fee),
            }));
        }
    }
    let summary = json!({
        "replayed": replayed,
        "same": same,
        "differing": differences.len(),
        "failed": failures.len(),
        "skipped": skipped,
        "fuel": { "total": fuel_total, "max": fuel_max },
        "differences": differences,
        "failures": failures,
    });
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        outln!(
            "replayed {replayed} recorded commission calls ({skipped} of other hooks skipped): {same} the same, {} different, {} failed steps; fuel {fuel_total} in all, {fuel_max} at most per call",
            differences.len(),
            failures.len()
        );
        for d in differences.iter().take(SHOWN) {
            outln!(
                "  record {}: fee {} -> {} ({:+}), rate {} -> {} bps",
                d["record"],
                d["recorded"]["fee"],
                d["replayed"]["fee"],
                d["fee_delta"].as_i64().unwrap_or(0),
                d["recorded"]["rate_bps"],
                d["replayed"]["rate_bps"]
            );
        }
        for f in failures.iter().take(SHOWN) {
            outln!(
                "  record {}: {} {}: {} (fuel {})",
                f["record"],
                f["step"].as_str().unwrap_or("-"),
                f["outcome"].as_str().unwrap_or(""),
                f["message"].as_str().unwrap_or(""),
                f["fuel"]
            );
        }
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
