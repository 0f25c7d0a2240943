//! Automatic rollback: a release is watched for its first calls and minutes
//! after it goes live (`--rollback-calls`, `--rollback-secs`); when it fails
//! (any outcome but `ok`) `--rollback-failures` times within them on this
//! node, its installation goes back to the release live before it — once, and
//! only if the failing release is still live — and the change reaches every
//! node through the usual invalidation. The audit log and the release history
//! say why, and the tenant's admin contact gets an email. A tenant may set its
//! own thresholds (within `rollout_settings`' bounds) in place of the
//! platform's. The per-node breaker stays for the steady state.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::Result;
use crate::rollout_settings::{Bounds, ROLLBACK_SECS, RollbackThresholds, RolloutSettings};
use crate::state::AppState;
use crate::storage::ReleaseEvent;
use crate::tenancy::TenantId;

/// Who the history and the audit log name for an automatic rollback.
pub const ACTOR: &str = "veneer:auto-rollback";

/// What one node saw of one release on probation.
#[derive(Debug, Default)]
struct Counter {
    calls: u32,
    failures: u32,
    tripped: bool,
}

/// The releases on probation on this node.
#[derive(Clone)]
pub struct Probation {
    counters: moka::sync::Cache<(TenantId, String, i64), Arc<Mutex<Counter>>>,
    failures: u32,
    calls: u32,
    window: Duration,
}

impl std::fmt::Debug for Probation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probation")
            .field("failures", &self.failures)
            .field("calls", &self.calls)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Probation {
    /// Watches each new release for `calls` calls or `window`, rolling it
    /// back at `failures` failures (0: never).
    pub fn new(failures: u32, calls: u32, window: Duration) -> Self {
        Self {
            // Bounded: one small entry per release watched, gone after the
            // longest window (the platform's, or a tenant's own).
            counters: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(
                    window
                        .max(Duration::from_secs(*ROLLBACK_SECS.end()))
                        .max(Duration::from_secs(1)),
                )
                .build(),
            failures,
            calls,
            window,
        }
    }

    /// Counts one run of `release` (live since `live_since_ms`) under the
    /// tenant's own thresholds if it set them, else the platform's; the
    /// reason to roll it back when this run is the one that tips it over.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        own: Option<&RollbackThresholds>,
        tenant: &TenantId,
        installation: &str,
        release: i64,
        live_since_ms: i64,
        failed: bool,
        now_ms: i64,
    ) -> Option<String> {
        let (limit, calls, window) = match own {
            Some(own) => (own.failures, own.calls, Duration::from_secs(own.secs)),
            None => (self.failures, self.calls, self.window),
        };
        if limit == 0 {
            return None;
        }
        let age = now_ms.saturating_sub(live_since_ms);
        if age < 0 || u128::try_from(age).unwrap_or(u128::MAX) > window.as_millis() {
            return None;
        }
        let counter = self
            .counters
            .get_with((tenant.clone(), installation.to_owned(), release), || {
                Arc::new(Mutex::new(Counter::default()))
            });
        let mut c = counter.lock().unwrap_or_else(|p| p.into_inner());
        if c.tripped || c.calls >= calls {
            return None;
        }
        c.calls += 1;
        if failed {
            c.failures += 1;
        }
        if c.failures >= limit {
            c.tripped = true;
            return Some(format!(
                "release {release} failed {} of its first {} calls within {} s of going live (the limit is {} failures in {} calls or {} s)",
                c.failures,
                c.calls,
                age / 1_000,
                limit,
                calls,
                window.as_secs()
            ));
        }
        None
    }
}

/// Rolls `installation` of `tenant` back from `failing` (if it is still live),
/// audited with `reason`; the tenant's caches are invalidated on every node.
pub async fn roll_back(
    app: &AppState,
    tenant: &TenantId,
    installation: &str,
    failing: i64,
    reason: &str,
) -> Result<Option<ReleaseEvent>> {
    let db = app.storage.tenant(tenant);
    let Some(event) = db.rollback_from(installation, failing, ACTOR).await? else {
        return Ok(None);
    };
    app.invalidate(tenant);
    let mut sha = None;
    if let Some(id) = event.release_id
        && let Some(release) = db.release(installation, id).await?
    {
        sha = Some(release.sha256);
    }
    tracing::warn!(%tenant, installation, failing, back_to = ?event.release_id, reason, "rolled a failing release back");
    db.audit(
        ACTOR,
        "release.auto_rollback",
        sha.as_deref(),
        Some(&json!({ "installation": installation, "release": failing }).to_string()),
        Some(
            &json!({ "installation": installation, "release": event.release_id, "reason": reason })
                .to_string(),
        ),
    )
    .await?;
    // The tenant's rollout contact hears of it.
    let notify = db
        .rollout_settings()
        .await?
        .and_then(|json| serde_json::from_str::<RolloutSettings>(&json).ok())
        .and_then(|settings| settings.notify);
    if let Some(to) = notify {
        let back = event
            .release_id
            .map_or("no release (the installation is off)".to_owned(), |id| {
                format!("release {id}")
            });
        let subject = format!("Veneer rolled back release {failing} of `{installation}`");
        let text = format!(
            "Release {failing} of installation `{installation}` of tenant `{tenant}` was rolled back automatically to {back}.\n\nWhy: {reason}.\n\nThe release history and the audit log (release.auto_rollback) hold the details; its runs are in GET /v1/runs."
        );
        match super::email::notify_tenant(app, tenant, &to, &subject, &text).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::warn!(%tenant, "the rollback notice was not sent: the tenant has no email settings")
            }
            Err(err) => {
                tracing::error!(%tenant, error = %err, "the rollback notice could not be queued")
            }
        }
    }
    Ok(Some(event))
}

/// The platform's bounds on a tenant's rollout settings.
pub fn bounds(app: &AppState) -> Bounds {
    Bounds {
        max_recording_rate: app.config.record_max_rate.clamp(0.0, 1.0),
        max_retention_days: app.config.record_max_days,
    }
}

/// The platform's automatic rollback thresholds.
pub fn platform_thresholds(app: &AppState) -> RollbackThresholds {
    RollbackThresholds {
        failures: app.config.rollback_failures,
        calls: app.config.rollback_calls,
        secs: app.config.rollback_secs,
    }
}

/// Replaces a tenant's rollout settings, checked against the platform's
/// bounds, audited; every node applies them at once.
pub async fn set_settings(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    settings: &RolloutSettings,
) -> Result<()> {
    settings
        .validate(&bounds(app))
        .map_err(super::Error::InvalidRollout)?;
    let db = app.storage.tenant(tenant);
    let before = db.rollout_settings().await?;
    let json = serde_json::to_string(settings).map_err(super::Error::internal)?;
    db.set_rollout_settings(&json, actor).await?;
    app.invalidate(tenant);
    db.audit(
        actor,
        "rollout.settings",
        None,
        before.as_deref(),
        Some(&json),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_once_within_the_window_and_the_calls() {
        let p = Probation::new(3, 10, Duration::from_secs(60));
        let t = TenantId::new("acme").unwrap();
        let now = 1_000_000;
        assert_eq!(p.record(None, &t, "i", 1, now, true, now + 10), None);
        assert_eq!(p.record(None, &t, "i", 1, now, false, now + 10), None);
        assert_eq!(p.record(None, &t, "i", 1, now, true, now + 10), None);
        let reason = p
            .record(None, &t, "i", 1, now, true, now + 10)
            .expect("tripped");
        assert!(reason.contains("failed 3 of its first 4 calls"), "{reason}");
        assert_eq!(
            p.record(None, &t, "i", 1, now, true, now + 10),
            None,
            "once"
        );
        // Past the window, nothing is counted.
        assert_eq!(p.record(None, &t, "i", 2, now, true, now + 61_000), None);
        // Past the calls watched, failures no longer count.
        for _ in 0..10 {
            assert_eq!(p.record(None, &t, "j", 3, now, false, now), None);
        }
        for _ in 0..5 {
            assert_eq!(p.record(None, &t, "j", 3, now, true, now), None);
        }
        // A tenant's own thresholds instead of the platform's.
        let own = RollbackThresholds {
            failures: 1,
            calls: 2,
            secs: 10,
        };
        let reason = p
            .record(Some(&own), &t, "k", 4, now, true, now)
            .expect("one failure is enough for this tenant");
        assert!(
            reason.contains("the limit is 1 failures in 2 calls or 10 s"),
            "{reason}"
        );
        assert_eq!(
            p.record(Some(&own), &t, "k", 5, now, true, now + 11_000),
            None
        );
        // Off.
        let off = Probation::new(0, 10, Duration::from_secs(60));
        assert_eq!(off.record(None, &t, "i", 1, now, true, now), None);
    }
}
