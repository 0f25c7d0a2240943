//! Live base-configuration updates. A candidate base (the `--base-config`
//! directory as it is now on disk) is loaded and validated; every tenant's
//! effective configuration is computed under it — with the tenant's own chain
//! of plugins, as it would be served — and compared, section by section, with
//! what is served now; plugin runs that would fail under it are listed. A
//! check stops there; a reload then swaps the base in whole, forgets every
//! cached configuration here, and asks every other node to reload its own
//! directory (the same files must be deployed on every node). A candidate that
//! does not load or validate is refused and the old base keeps serving.
//!
//! The comparison is bounded: at most [`MAX_TENANTS`] tenants and
//! [`CHECK_TIME`] in all (the report says when it stopped early); each
//! tenant's plugin runs are bounded by the chain budget like any request's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Error, Result};
use crate::base::BaseConfig;
use crate::resolve::EffectiveConfig;
use crate::state::AppState;

/// Tenants one check compares at most.
pub const MAX_TENANTS: usize = 10_000;
/// How long one check may take in all.
pub const CHECK_TIME: Duration = Duration::from_secs(120);

/// What a candidate base would do to the tenants.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BaseReport {
    /// The version served now.
    pub from_version: String,
    /// The candidate's version.
    pub to_version: String,
    /// Whether it was swapped in (a reload) or only checked.
    pub applied: bool,
    /// Tenants compared.
    pub tenants_checked: usize,
    /// Whether the bounds stopped it before every tenant was compared.
    pub truncated: bool,
    /// Tenants whose effective configuration changes, or whose plugins would
    /// fail under it, by id.
    pub tenants: BTreeMap<String, TenantImpact>,
}

/// One tenant's effective configuration under the candidate.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantImpact {
    /// Sections that change: `categories`, `size_charts`, `emails`.
    pub changed: Vec<&'static str>,
    /// The section by section difference.
    pub diff: crate::config_diff::ConfigDiff,
    /// Plugin runs that would not end `ok` (their input passes on, so the
    /// tenant keeps being served): `installation hook: outcome message`.
    pub failures: Vec<String>,
}

/// The base in the `--base-config` directory, loaded and validated. Conflict
/// when the server runs the built-in base (nothing to reload from).
pub fn load_candidate(app: &AppState) -> Result<Arc<BaseConfig>> {
    let Some(dir) = &app.config.base_config else {
        return Err(Error::Conflict(
            "this server runs the base configuration built into its binary: start it with \
             --base-config <dir> to reload one from disk"
                .into(),
        ));
    };
    BaseConfig::load_or_built_in(Some(dir.as_path()))
        .map(Arc::new)
        .map_err(|err| {
            Error::InvalidBase(format!(
                "the base configuration in {} does not load, the served one stays: {err:#}",
                dir.display()
            ))
        })
}

/// Compares every tenant's served configuration with the one `candidate`
/// would give.
pub async fn check(app: &AppState, candidate: Arc<BaseConfig>) -> Result<BaseReport> {
    let current = app.base();
    let started = Instant::now();
    let mut report = BaseReport {
        from_version: current.version.clone(),
        to_version: candidate.version.clone(),
        applied: false,
        tenants_checked: 0,
        truncated: false,
        tenants: BTreeMap::new(),
    };
    for record in app.storage.platform().list_tenants().await? {
        if report.tenants_checked >= MAX_TENANTS || started.elapsed() > CHECK_TIME {
            report.truncated = true;
            break;
        }
        let Some(state) = app.tenant_state(&record.id).await? else {
            continue;
        };
        report.tenants_checked += 1;
        let served = super::config::effective(app, &state).await?;
        let next = super::config::resolve_unrecorded(app, &state, candidate.clone(), String::new())
            .await?;
        if let Some(impact) = impact(&served, &next) {
            report.tenants.insert(record.id.to_string(), impact);
        }
    }
    Ok(report)
}

fn impact(served: &EffectiveConfig, next: &EffectiveConfig) -> Option<TenantImpact> {
    let emails = |config: &EffectiveConfig| -> BTreeMap<String, crate::base::EmailTemplate> {
        config
            .emails
            .iter()
            .map(|(id, e)| (id.clone(), e.value.clone()))
            .collect()
    };
    let (before, after) = (emails(served), emails(next));
    let diff = crate::config_diff::diff(
        crate::config_diff::Sections {
            categories: &served.categories.value,
            size_charts: &served.size_charts.value,
            emails: &before,
        },
        crate::config_diff::Sections {
            categories: &next.categories.value,
            size_charts: &next.size_charts.value,
            emails: &after,
        },
    );
    let mut changed = Vec::new();
    if served.categories.value != next.categories.value {
        changed.push("categories");
    }
    if served.size_charts.value != next.size_charts.value {
        changed.push("size_charts");
    }
    if before != after {
        changed.push("emails");
    }
    let failures: Vec<String> = next
        .runs()
        .filter(|r| r.outcome != crate::runtime::OutcomeKind::Ok)
        .map(|r| {
            format!(
                "{} {}: {} {}",
                r.installation.as_deref().unwrap_or("-"),
                r.hook,
                r.outcome,
                r.message.as_deref().unwrap_or("")
            )
            .trim_end()
            .to_owned()
        })
        .collect();
    (!changed.is_empty() || !failures.is_empty()).then_some(TenantImpact {
        changed,
        diff,
        failures,
    })
}

/// Loads the candidate, checks it against every tenant, swaps it in, forgets
/// what was derived from the old base here and asks the other nodes to
/// reload theirs. The old base stays when the candidate does not load.
pub async fn reload(app: &AppState, actor: &str) -> Result<BaseReport> {
    let candidate = load_candidate(app)?;
    let mut report = check(app, candidate.clone()).await?;
    app.base_config.store(candidate);
    app.invalidation.base();
    report.applied = true;
    tracing::info!(
        actor,
        from = %report.from_version,
        to = %report.to_version,
        tenants_changed = report.tenants.len(),
        "base configuration reloaded"
    );
    Ok(report)
}

/// Reloads this node's base from its own directory because another node
/// reloaded (no report: that node made it). The old base stays when it does
/// not load.
pub fn follow(app: &AppState) {
    match load_candidate(app) {
        Ok(candidate) => {
            let version = candidate.version.clone();
            app.base_config.store(candidate);
            app.invalidation.forget_all();
            tracing::info!(%version, "base configuration reloaded (another node asked)");
        }
        Err(err) => {
            tracing::error!(error = %err, "another node reloaded the base configuration, but this node's does not load; keeping the old one");
        }
    }
}
