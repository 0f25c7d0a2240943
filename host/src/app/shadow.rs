//! Shadow runs: a draft release run beside the live one on live traffic,
//! before it may go live. A tenant puts a release in shadow for its
//! installation at a sample rate; each live commission (a quote or an order
//! line) is then, with that probability, computed a second time through the
//! chain with the draft in its installation's place — after the live answer
//! is made, on a blocking thread, under a shadow slot of the host's
//! (`--shadow-concurrency`) and the host's pace (`--shadow-max-per-sec`; a
//! sampled call that finds no slot or no room in the pace is not shadowed,
//! nor is one of a release whose runs are all stored) and the platform's
//! shadow budget (`--shadow-max-fuel`,
//! `--shadow-max-ms`), never the tenant's plugin slots, so it cannot slow or
//! fail the live answer. Each run records the draft step's outcome, whether
//! the answer differs, both fees, fuel, memory and time; the report
//! summarizes them.
//!
//! The gate: a tenant (`shadow_gate` in its rollout settings) or the platform
//! (`--shadow-gate`, for every tenant; the higher applies) requires a new
//! commission release to have that many shadow runs, none failed, before it
//! is activated. A platform admin may force past it with a reason, audited.
//! A release that was live before (a return to it) and one that does not
//! implement the commission hook are not gated: the diff route shows exactly
//! what a configuration release changes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::plugins::{fresh_steps, load, load_steps};
use super::{Error, Result};
use crate::base::{CommissionDecision, Sale};
use crate::resolve::{Budget, Resolved, Resolver};
use crate::runtime::{Hook, OutcomeKind};
use crate::state::AppState;
use crate::storage::{ShadowRecord, ShadowRun};
use crate::tenancy::{TenantId, TenantState};

/// Differing or failed runs a report shows in full.
pub const REPORT_SAMPLES: u32 = 10;

/// The host's pace of shadow runs: at most one start per interval, so
/// shadowing takes a bounded share of the CPU whatever the traffic and the
/// sample rates; and the releases whose runs are all stored already (no
/// more are run for them).
#[derive(Debug)]
pub struct Pace {
    interval_ns: u64,
    next_ns: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
    full: moka::sync::Cache<(TenantId, i64), ()>,
}

impl Pace {
    /// At most `per_sec` starts per second (0: none).
    pub fn new(per_sec: u32) -> Self {
        Self {
            interval_ns: if per_sec == 0 {
                u64::MAX
            } else {
                1_000_000_000 / u64::from(per_sec)
            },
            next_ns: std::sync::atomic::AtomicU64::new(0),
            started: std::time::Instant::now(),
            full: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(3_600))
                .build(),
        }
    }

    /// Whether a run may start now (taking the slot if so).
    fn take(&self) -> bool {
        use std::sync::atomic::Ordering;
        if self.interval_ns == u64::MAX {
            return false;
        }
        let now = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let next = self.next_ns.load(Ordering::Relaxed);
        now >= next
            && self
                .next_ns
                .compare_exchange(
                    next,
                    now.saturating_add(self.interval_ns),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

/// After a live commission: runs the tenant's shadow releases on this sale,
/// each with its sample probability, in the background.
pub fn after_commission(
    app: &AppState,
    tenant: &Arc<TenantState>,
    sale: &Sale,
    live: &Resolved<CommissionDecision>,
) {
    for (index, shadow) in tenant.shadows.iter().enumerate() {
        if shadow.rate <= 0.0 || rand::random::<f64>() >= shadow.rate {
            continue;
        }
        let key = (tenant.record.id.clone(), shadow.step.release);
        if app.shadow_pace.full.contains_key(&key) || !app.shadow_pace.take() {
            continue;
        }
        // No free shadow slot: this call is not shadowed (never queued).
        let Ok(permit) = app.shadow_slots.clone().try_acquire_owned() else {
            continue;
        };
        let (app, tenant, sale, live) = (
            app.clone(),
            tenant.clone(),
            sale.clone(),
            live.value.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(err) = shadow_commission(&app, &tenant, index, sale, live).await {
                tracing::warn!(tenant = %tenant.record.id, error = %err, "a shadow run could not run or be recorded");
            }
        });
    }
}

async fn shadow_commission(
    app: &AppState,
    tenant: &Arc<TenantState>,
    index: usize,
    sale: Sale,
    live: CommissionDecision,
) -> Result<()> {
    let shadow = &tenant.shadows[index];
    // The chain as it would be with the draft in its installation's place.
    let mut steps: Vec<crate::tenancy::Step> = tenant.chain.clone();
    if shadow.replaces {
        steps[shadow.index] = shadow.step.clone();
    } else {
        steps.insert(shadow.index.min(steps.len()), shadow.step.clone());
    }
    let plugins = load_steps(app, &tenant.record.id, &steps).await?;
    if !plugins[shadow.index.min(plugins.len() - 1)].implements(Hook::Commission) {
        return Ok(());
    }
    let (runtime, base, state) = (app.runtime.clone(), app.base(), tenant.clone());
    let mut budget = Budget::new(
        app.config.shadow_max_fuel,
        Duration::from_millis(app.config.shadow_max_ms),
    );
    let input = sale.clone();
    let resolved = tokio::task::spawn_blocking(move || {
        let chain = fresh_steps(&steps, &plugins, &state.policies);
        Resolver::new(&runtime, &base).commission_chain(&chain, &mut budget, &input)
    })
    .await
    .map_err(Error::internal)?;
    // A sale the live path accepted is accepted here too.
    let Ok(resolved) = resolved else {
        return Ok(());
    };
    let release = shadow.step.release;
    let Some(run) = resolved.runs.iter().find(|r| {
        r.release == Some(release) && r.installation.as_deref() == Some(&shadow.step.installation)
    }) else {
        return Ok(());
    };
    let differs = resolved.value != live;
    let failed = run.outcome != OutcomeKind::Ok;
    let sample = (differs || failed)
        .then(|| json!({ "sale": sale, "live": live, "shadow": resolved.value }).to_string());
    let record = ShadowRun {
        installation: shadow.step.installation.clone(),
        release_id: release,
        hook: Hook::Commission.as_str().to_owned(),
        outcome: run.outcome.as_str().to_owned(),
        differs,
        live_fee: Some(live.fee),
        shadow_fee: Some(resolved.value.fee),
        currency: Some(sale.currency.clone()),
        fuel: run.stats.fuel_used,
        memory: run.stats.peak_memory_bytes,
        wall_us: u64::try_from(run.stats.wall_time.as_micros()).unwrap_or(u64::MAX),
        message: run.message.clone(),
        sample,
        created_at: 0,
    };
    let stored = app
        .storage
        .tenant(&tenant.record.id)
        .record_shadow_run(&record)
        .await?;
    if !stored {
        app.shadow_pace
            .full
            .insert((tenant.record.id.clone(), release), ());
    }
    Ok(())
}

/// Puts release `release` of `installation` in shadow at `rate`, audited;
/// every node starts shadowing it at once.
pub async fn start(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    installation: &str,
    release: i64,
    rate: f64,
) -> Result<ShadowRecord> {
    if !(0.0..=1.0).contains(&rate) || rate.is_nan() {
        return Err(Error::Invalid(format!(
            "rate {rate} is not a share of calls: give a number from 0 to 1 (0.1 shadows one call in ten)"
        )));
    }
    let db = app.storage.tenant(tenant);
    let before = db
        .shadows()
        .await?
        .into_iter()
        .find(|s| s.installation == installation);
    let shadow = db.set_shadow(installation, release, rate, actor).await?;
    app.invalidate(tenant);
    db.audit(
        actor,
        "release.shadow",
        None,
        before
            .map(|b| {
                json!({ "installation": installation, "release": b.release_id, "rate": b.rate })
                    .to_string()
            })
            .as_deref(),
        Some(
            &json!({ "installation": installation, "release": release, "rate": rate }).to_string(),
        ),
    )
    .await?;
    Ok(shadow)
}

/// Stops shadowing in `installation` (its runs stay for the report), audited.
pub async fn stop(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    installation: &str,
) -> Result<()> {
    let db = app.storage.tenant(tenant);
    if !db.remove_shadow(installation).await? {
        return Err(Error::NotFound(format!(
            "installation `{installation}` has no release in shadow"
        )));
    }
    app.invalidate(tenant);
    db.audit(
        actor,
        "release.shadow_stop",
        None,
        Some(&json!({ "installation": installation }).to_string()),
        None,
    )
    .await?;
    Ok(())
}

/// What a release's shadow runs found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// The installation.
    pub installation: String,
    /// The release reported on.
    pub release: i64,
    /// Whether it is in shadow now, and at which rate.
    pub shadow: Option<ShadowRecord>,
    /// Shadow runs recorded (at most `MAX_SHADOW_RUNS`).
    pub calls: u64,
    /// Runs whose draft step ended `ok`.
    pub ok: u64,
    /// Runs whose draft step did not, by outcome.
    pub failures: BTreeMap<String, u64>,
    /// Runs whose answer differs from the live one.
    pub differing: u64,
    /// `differing / calls`.
    pub differing_share: f64,
    /// The fee changes, per currency.
    pub fees: BTreeMap<String, FeeDeltas>,
    /// Fuel, memory and wall time of the draft step.
    pub usage: Usage,
    /// The newest runs that differed or failed: input and both answers.
    pub samples: Vec<Sample>,
    /// The activation gate as it stands for this release.
    pub gate: Gate,
}

/// How a draft changes fees in one currency, in minor units.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct FeeDeltas {
    /// Runs in this currency.
    pub calls: u64,
    /// Sum of the live fees.
    pub live_total: i128,
    /// Sum of the fees with the draft.
    pub shadow_total: i128,
    /// `shadow_total - live_total`.
    pub delta_total: i128,
    /// The largest increase of one fee (0 when none rose).
    pub largest_increase: i128,
    /// The largest decrease of one fee, as a negative number (0 when none fell).
    pub largest_decrease: i128,
    /// How the fees moved, relative to the live fee: `down_over_10pct`,
    /// `down_up_to_10pct`, `unchanged`, `up_up_to_10pct`, `up_over_10pct`.
    pub distribution: BTreeMap<&'static str, u64>,
}

/// Percentiles of the draft step's use.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Usage {
    /// Fuel: p50, p99, max.
    pub fuel: [u64; 3],
    /// Peak memory in bytes: p50, p99, max.
    pub memory_bytes: [u64; 3],
    /// Wall time in microseconds: p50, p99, max.
    pub wall_us: [u64; 3],
}

/// One differing or failed run, in full.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Sample {
    /// The draft step's outcome.
    pub outcome: String,
    /// What went wrong, for a failed run.
    pub message: Option<String>,
    /// The sale and both answers.
    pub sample: serde_json::Value,
    /// Unix milliseconds.
    pub at: i64,
}

/// The activation gate for one release.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Gate {
    /// Clean shadow runs required (0: no gate).
    pub required: u32,
    /// Whether the gate applies to this release (a commission release never
    /// live before).
    pub applies: bool,
    /// Whether activation would pass it now.
    pub passes: bool,
    /// Why not, when it does not.
    pub reason: Option<String>,
}

/// The report on `release`'s shadow runs.
pub async fn report(
    app: &AppState,
    tenant: &TenantState,
    installation: &str,
    release: i64,
) -> Result<Report> {
    let db = app.storage.tenant(&tenant.record.id);
    let record = db.release(installation, release).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "installation `{installation}` has no release {release}"
        ))
    })?;
    let runs = db.shadow_runs(release).await?;
    let samples = db.shadow_samples(release, REPORT_SAMPLES).await?;
    let shadow = db
        .shadows()
        .await?
        .into_iter()
        .find(|s| s.installation == installation && s.release_id == release);
    let mut report = summarize(installation, release, shadow, &runs);
    report.samples = samples
        .into_iter()
        .map(|run| Sample {
            outcome: run.outcome,
            message: run.message,
            sample: run
                .sample
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or(serde_json::Value::Null),
            at: run.created_at,
        })
        .collect();
    let applies = !record.ever_active
        && load(app, &tenant.record.id, &record.sha256)
            .await?
            .implements(Hook::Commission);
    report.gate = gate(required(app, tenant), applies, &report);
    Ok(report)
}

fn summarize(
    installation: &str,
    release: i64,
    shadow: Option<ShadowRecord>,
    runs: &[ShadowRun],
) -> Report {
    let calls = runs.len() as u64;
    let ok = runs.iter().filter(|r| r.outcome == "ok").count() as u64;
    let mut failures = BTreeMap::new();
    for run in runs.iter().filter(|r| r.outcome != "ok") {
        *failures.entry(run.outcome.clone()).or_insert(0) += 1;
    }
    let differing = runs.iter().filter(|r| r.differs).count() as u64;
    let mut fees: BTreeMap<String, FeeDeltas> = BTreeMap::new();
    for run in runs {
        let (Some(currency), Some(live), Some(shadow)) =
            (&run.currency, run.live_fee, run.shadow_fee)
        else {
            continue;
        };
        let f = fees.entry(currency.clone()).or_default();
        let (live, shadow) = (i128::from(live), i128::from(shadow));
        let delta = shadow - live;
        f.calls += 1;
        f.live_total += live;
        f.shadow_total += shadow;
        f.delta_total += delta;
        f.largest_increase = f.largest_increase.max(delta);
        f.largest_decrease = f.largest_decrease.min(delta);
        // Tenths of the live fee; a change from a zero fee counts as over 10 %.
        let over = delta.abs() * 10 > live;
        let bucket = match (delta.signum(), over) {
            (0, _) => "unchanged",
            (1, false) => "up_up_to_10pct",
            (1, true) => "up_over_10pct",
            (_, false) => "down_up_to_10pct",
            (_, true) => "down_over_10pct",
        };
        *f.distribution.entry(bucket).or_insert(0) += 1;
    }
    let percentiles = |mut values: Vec<u64>| -> [u64; 3] {
        if values.is_empty() {
            return [0; 3];
        }
        values.sort_unstable();
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        [at(0.5), at(0.99), values[values.len() - 1]]
    };
    Report {
        installation: installation.to_owned(),
        release,
        shadow,
        calls,
        ok,
        failures,
        differing,
        differing_share: if calls == 0 {
            0.0
        } else {
            differing as f64 / calls as f64
        },
        fees,
        usage: Usage {
            fuel: percentiles(runs.iter().map(|r| r.fuel).collect()),
            memory_bytes: percentiles(runs.iter().map(|r| r.memory).collect()),
            wall_us: percentiles(runs.iter().map(|r| r.wall_us).collect()),
        },
        samples: Vec::new(),
        gate: Gate {
            required: 0,
            applies: false,
            passes: true,
            reason: None,
        },
    }
}

/// Clean shadow runs a new commission release of this tenant needs: the
/// platform's requirement or the tenant's, whichever is higher.
fn required(app: &AppState, tenant: &TenantState) -> u32 {
    app.config
        .shadow_gate
        .max(tenant.rollout.shadow_gate.unwrap_or(0))
}

fn gate(required: u32, applies: bool, report: &Report) -> Gate {
    let failed = report.calls - report.ok;
    let reason = if !applies || required == 0 {
        None
    } else if failed > 0 {
        Some(format!(
            "{failed} of its {} shadow runs failed ({}); the gate needs {required} runs and none failed",
            report.calls,
            report
                .failures
                .iter()
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    } else if report.calls < u64::from(required) {
        Some(format!(
            "it has {} clean shadow runs and the gate needs {required}",
            report.calls
        ))
    } else {
        None
    };
    Gate {
        required,
        applies,
        passes: reason.is_none(),
        reason,
    }
}

/// Forcing an activation past the gate: who asked and why.
#[derive(Debug, Clone)]
pub struct Force {
    /// Whether the caller is a platform admin.
    pub platform_admin: bool,
    /// The reason given, for the audit log.
    pub reason: Option<String>,
}

/// Checks the gate before `release` of `installation` is activated. With a
/// valid `force`, a closed gate is passed and the reason returned (for the
/// audit log).
pub async fn check_gate(
    app: &AppState,
    tenant: &TenantState,
    installation: &str,
    release: i64,
    force: Option<&Force>,
) -> Result<Option<String>> {
    if let Some(force) = force {
        let reason = force.reason.as_deref().map(str::trim).unwrap_or("");
        if !force.platform_admin {
            return Err(Error::ForceNotAllowed(
                "only a platform admin may force an activation past the shadow gate".into(),
            ));
        }
        if reason.is_empty() {
            return Err(Error::ForceNotAllowed(
                "forcing past the shadow gate needs a `reason` (it goes to the audit log)".into(),
            ));
        }
    }
    if required(app, tenant) == 0 {
        return Ok(None);
    }
    let report = match report(app, tenant, installation, release).await {
        Ok(report) => report,
        // The activation itself says what is missing.
        Err(Error::NotFound(_)) => return Ok(None),
        Err(err) => return Err(err),
    };
    match (report.gate.reason, force) {
        (None, _) => Ok(None),
        (Some(why), Some(force)) => Ok(Some(format!(
            "forced past the shadow gate ({why}): {}",
            force.reason.as_deref().unwrap_or("").trim()
        ))),
        (Some(why), None) => Err(Error::ShadowGate(format!(
            "release {release} may not be activated yet: {why}. Put it in shadow (PUT /v1/installations/{installation}/shadow) until it has, or ask a platform admin to force it with a reason"
        ))),
    }
}
