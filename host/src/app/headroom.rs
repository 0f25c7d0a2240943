//! Headroom: what an installation's recent runs used against the quota its
//! live release runs under — p50, p99 and max of fuel, memory and wall time —
//! with a suggested quota (p99 times a safety factor, within the platform's
//! ceiling and the engine's floors) and a warning for each figure whose p99
//! passes half its quota. Computed from the recorded runs, which under load
//! are a sample (failures kept first), so it reads the shape, not a count.

use serde::Serialize;

use super::Result;
use crate::runtime::Quota;
use crate::state::AppState;
use crate::tenancy::TenantState;

/// How many of an installation's newest recorded runs are read by default.
pub const DEFAULT_WINDOW: u32 = 1_000;
/// The most that may be read at once.
pub const MAX_WINDOW: u32 = 10_000;
/// The suggested quota is the p99 times this.
pub const SAFETY_FACTOR: u64 = 4;

/// p50, p99 and max of one figure, with its quota.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
    /// What the live release may use.
    pub quota: u64,
    /// p99 as a share of the quota, in per cent.
    pub p99_percent_of_quota: f64,
}

/// An installation's headroom.
#[derive(Debug, Clone, Serialize)]
pub struct Headroom {
    pub installation: String,
    /// Runs read (the newest first).
    pub runs: usize,
    /// Of those, how many did not end `ok`.
    pub failed: usize,
    pub fuel: Option<Figure>,
    pub memory_bytes: Option<Figure>,
    pub wall_time_us: Option<Figure>,
    /// The live release's quota.
    pub quota: Option<Quota>,
    /// A quota fitted to what the runs used (fuel, memory, deadline), within
    /// the platform's ceiling.
    pub suggested: Option<Quota>,
    /// Figures whose p99 passes half their quota.
    pub warnings: Vec<String>,
}

/// The headroom of `installation` over its newest `window` recorded runs.
pub async fn headroom(
    app: &AppState,
    tenant: &TenantState,
    installation: &str,
    window: u32,
) -> Result<Headroom> {
    let db = app.storage.tenant(&tenant.record.id);
    if db.installation(installation).await?.is_none() {
        return Err(super::Error::NotFound(format!(
            "this tenant has no installation `{installation}`"
        )));
    }
    let figures = db
        .installation_run_figures(installation, window.clamp(1, MAX_WINDOW))
        .await?;
    let quota = tenant
        .chain
        .iter()
        .find(|step| step.installation == installation)
        .map(|step| step.quota);
    let ceiling = super::installations::ceiling(app, &tenant.record.id, installation).await?;
    Ok(compute(installation, &figures, quota, &ceiling))
}

/// The figures over `runs` ((fuel, memory, wall µs, outcome)), against `quota`.
pub fn compute(
    installation: &str,
    runs: &[(u64, u64, u64, String)],
    quota: Option<Quota>,
    ceiling: &Quota,
) -> Headroom {
    let column = |pick: fn(&(u64, u64, u64, String)) -> u64| {
        let mut values: Vec<u64> = runs.iter().map(pick).collect();
        values.sort_unstable();
        values
    };
    let (fuel, memory, wall) = (column(|r| r.0), column(|r| r.1), column(|r| r.2));
    let figure = |values: &[u64], limit: u64| -> Option<Figure> {
        let last = values.len().checked_sub(1)?;
        let at = |p: usize| values[(last * p).div_ceil(100)];
        let p99 = at(99);
        Some(Figure {
            p50: at(50),
            p99,
            max: values[last],
            quota: limit,
            p99_percent_of_quota: if limit == 0 {
                0.0
            } else {
                (p99 as f64 / limit as f64 * 1_000.0).round() / 10.0
            },
        })
    };
    let live = quota.unwrap_or(*ceiling);
    let fuel_figure = figure(&fuel, live.fuel);
    let memory_figure = figure(&memory, live.memory_bytes);
    let wall_figure = figure(&wall, live.deadline_ms.saturating_mul(1_000));
    let mut warnings = Vec::new();
    for (name, figure) in [
        ("fuel", &fuel_figure),
        ("memory", &memory_figure),
        ("wall time", &wall_figure),
    ] {
        if let Some(f) = figure
            && f.quota > 0
            && f.p99 > f.quota / 2
        {
            warnings.push(format!(
                "{name}: the p99 ({}) is {:.1} % of the quota ({}); raise the quota or make the plugin cheaper",
                f.p99, f.p99_percent_of_quota, f.quota
            ));
        }
    }
    let suggested = match (&fuel_figure, &memory_figure, &wall_figure) {
        (Some(f), Some(m), Some(w)) => {
            let mib = 1u64 << 20;
            Some(Quota {
                fuel: (f.p99.saturating_mul(SAFETY_FACTOR))
                    .clamp(1_000_000, ceiling.fuel.max(1_000_000)),
                memory_bytes: (m.p99.saturating_mul(2).div_ceil(mib) * mib)
                    .clamp(4 * mib, ceiling.memory_bytes.max(4 * mib)),
                deadline_ms: (w.p99.saturating_mul(SAFETY_FACTOR).div_ceil(1_000))
                    .clamp(10, ceiling.deadline_ms.max(10)),
                ..live
            })
        }
        _ => None,
    };
    Headroom {
        installation: installation.to_owned(),
        runs: runs.len(),
        failed: runs.iter().filter(|r| r.3 != "ok").count(),
        fuel: fuel_figure,
        memory_bytes: memory_figure,
        wall_time_us: wall_figure,
        quota,
        suggested,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(fuel: impl Iterator<Item = u64>) -> Vec<(u64, u64, u64, String)> {
        fuel.map(|f| (f, 2 << 20, 100, "ok".to_owned())).collect()
    }

    #[test]
    fn percentiles_warnings_and_a_suggestion_within_the_ceiling() {
        let quota = Quota {
            fuel: 100_000,
            ..Quota::default()
        };
        let h = compute("i", &runs(1..=100), Some(quota), &Quota::default());
        let fuel = h.fuel.expect("fuel");
        assert_eq!((fuel.p50, fuel.p99, fuel.max), (51, 100, 100));
        assert!(h.warnings.is_empty(), "{:?}", h.warnings);
        let suggested = h.suggested.expect("a suggestion");
        assert_eq!(suggested.fuel, 1_000_000, "at least the floor");
        assert_eq!(suggested.memory_bytes, 4 << 20);
        assert_eq!(suggested.deadline_ms, 10);

        // p99 past half the quota: a warning naming the figure.
        let h = compute("i", &runs(60_000..=60_100), Some(quota), &Quota::default());
        assert_eq!(h.warnings.len(), 1, "{:?}", h.warnings);
        assert!(h.warnings[0].starts_with("fuel"), "{:?}", h.warnings);
        // The suggestion never passes the platform's ceiling.
        let ceiling = Quota {
            fuel: 2_000_000,
            ..Quota::default()
        };
        let h = compute("i", &runs(900_000..=900_010), Some(quota), &ceiling);
        assert_eq!(h.suggested.expect("suggested").fuel, 2_000_000);
        // No runs: no figures, nothing suggested.
        let h = compute("i", &[], None, &Quota::default());
        assert!(h.fuel.is_none() && h.suggested.is_none() && h.runs == 0);
    }
}
