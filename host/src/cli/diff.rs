//! `veneer plugin diff OLD.wasm NEW.wasm [--old-settings a.json] [--settings b.json]
//! [--sales sales.jsonl]`: what replacing OLD with NEW would change, computed
//! locally as the host would — each plugin resolved on the base, every section
//! diffed (`core::config_diff`), and the commission of every sale in the file
//! (one JSON sale per line) through both, summed into a blast radius.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::read;
use crate::base::{BaseConfig, Sale};
use crate::config_diff::{BlastRadius, Sections, diff};
use crate::resolve::{EffectiveConfig, Resolver};
use crate::runtime::{Quota, Runtime, RuntimeConfig, StaticTenantData};

/// Arguments of `veneer plugin diff`.
#[derive(Debug, Args)]
pub(super) struct DiffArgs {
    /// The plugin serving now (.wasm).
    old: PathBuf,
    /// The plugin to compare (.wasm; the same file to compare settings only).
    new: PathBuf,
    /// The old plugin's settings (default: `{}`).
    #[arg(long)]
    old_settings: Option<PathBuf>,
    /// The new plugin's settings (default: `{}`).
    #[arg(long)]
    settings: Option<PathBuf>,
    /// Sales, one JSON object per line, for the commission's blast radius.
    #[arg(long)]
    sales: Option<PathBuf>,
    /// Print one JSON object instead of a report.
    #[arg(long)]
    json: bool,
    /// A base-config directory (default: the one built into the binary).
    #[arg(long, env = "VENEER_BASE_CONFIG")]
    base_config: Option<PathBuf>,
}

pub(super) fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let base = BaseConfig::load_or_built_in(args.base_config.as_deref())?;
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let quota = Quota::default();
    let side = |file: &PathBuf, settings: &Option<PathBuf>| -> anyhow::Result<_> {
        let plugin = runtime.load(&read(file)?).map_err(|err| {
            anyhow::anyhow!("{} is refused ({}): {err}", file.display(), err.code())
        })?;
        let settings = match settings {
            Some(path) => {
                let text = String::from_utf8(read(path)?).context("settings must be UTF-8 JSON")?;
                serde_json::from_str::<serde_json::Value>(&text)
                    .with_context(|| format!("{} is not valid JSON", path.display()))?;
                text
            }
            None => "{}".to_owned(),
        };
        let data = Arc::new(StaticTenantData {
            settings,
            kv: Default::default(),
        });
        Ok((plugin, data))
    };
    let (old, old_data) = side(&args.old, &args.old_settings)?;
    let (new, new_data) = side(&args.new, &args.settings)?;
    let resolver = Resolver::new(&runtime, &base);
    let before = resolver.effective(Some(&old), old_data.clone(), &quota, String::new());
    let after = resolver.effective(Some(&new), new_data.clone(), &quota, String::new());
    let emails = |c: &EffectiveConfig| {
        c.emails
            .iter()
            .map(|(id, e)| (id.clone(), e.value.clone()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (before_emails, after_emails) = (emails(&before), emails(&after));
    let changes = diff(
        Sections {
            categories: &before.categories.value,
            size_charts: &before.size_charts.value,
            emails: &before_emails,
        },
        Sections {
            categories: &after.categories.value,
            size_charts: &after.size_charts.value,
            emails: &after_emails,
        },
    );
    let mut blast = None;
    if let Some(path) = &args.sales {
        let text = String::from_utf8(read(path)?).context("sales must be UTF-8 JSON lines")?;
        let mut radius = BlastRadius::default();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let sale: Sale = serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not a sale", path.display(), n + 1))?;
            let fee = |plugin, data: &Arc<StaticTenantData>| -> anyhow::Result<u64> {
                Ok(resolver
                    .commission(Some(plugin), None, data.clone(), &quota, &sale)
                    .with_context(|| format!("{} line {}", path.display(), n + 1))?
                    .value
                    .fee)
            };
            radius.add(&sale, fee(&old, &old_data)?, fee(&new, &new_data)?);
        }
        blast = Some(radius);
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "diff": changes, "blast_radius": blast }))?
        );
    } else {
        outln!("{}", serde_json::to_string_pretty(&changes)?);
        if let Some(b) = &blast {
            outln!();
            outln!(
                "commission over {} sales: {} lines change; fees {} -> {}",
                b.lines,
                b.affected,
                b.total_before,
                b.total_after
            );
            if let Some(c) = &b.largest_increase {
                outln!(
                    "largest increase  {} {}: {} -> {}",
                    c.order_id,
                    c.sku,
                    c.before,
                    c.after
                );
            }
            if let Some(c) = &b.largest_decrease {
                outln!(
                    "largest decrease  {} {}: {} -> {}",
                    c.order_id,
                    c.sku,
                    c.before,
                    c.after
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
