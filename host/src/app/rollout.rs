//! Automatic rollback: a release is watched for its first calls and minutes
//! after it goes live (`--rollback-calls`, `--rollback-secs`); when it fails
//! (any outcome but `ok`) `--rollback-failures` times within them on this
//! node, its installation goes back to the release live before it — once, and
//! only if the failing release is still live — and the change reaches every
//! node through the usual invalidation. The audit log and the release history
//! say why. The per-node breaker stays for the steady state.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::Result;
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
            // Bounded: one small entry per release watched, gone after the window.
            counters: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(window.max(Duration::from_secs(1)))
                .build(),
            failures,
            calls,
            window,
        }
    }

    /// Counts one run of `release` (live since `live_since_ms`); the reason
    /// to roll it back when this run is the one that tips it over.
    pub fn record(
        &self,
        tenant: &TenantId,
        installation: &str,
        release: i64,
        live_since_ms: i64,
        failed: bool,
        now_ms: i64,
    ) -> Option<String> {
        if self.failures == 0 {
            return None;
        }
        let age = now_ms.saturating_sub(live_since_ms);
        if age < 0 || u128::try_from(age).unwrap_or(u128::MAX) > self.window.as_millis() {
            return None;
        }
        let counter = self
            .counters
            .get_with((tenant.clone(), installation.to_owned(), release), || {
                Arc::new(Mutex::new(Counter::default()))
            });
        let mut c = counter.lock().unwrap_or_else(|p| p.into_inner());
        if c.tripped || c.calls >= self.calls {
            return None;
        }
        c.calls += 1;
        if failed {
            c.failures += 1;
        }
        if c.failures >= self.failures {
            c.tripped = true;
            return Some(format!(
                "release {release} failed {} of its first {} calls within {} s of going live (the limit is {} failures in {} calls or {} s)",
                c.failures,
                c.calls,
                age / 1_000,
                self.failures,
                self.calls,
                self.window.as_secs()
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
    Ok(Some(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_once_within_the_window_and_the_calls() {
        let p = Probation::new(3, 10, Duration::from_secs(60));
        let t = TenantId::new("acme").unwrap();
        let now = 1_000_000;
        assert_eq!(p.record(&t, "i", 1, now, true, now + 10), None);
        assert_eq!(p.record(&t, "i", 1, now, false, now + 10), None);
        assert_eq!(p.record(&t, "i", 1, now, true, now + 10), None);
        let reason = p.record(&t, "i", 1, now, true, now + 10).expect("tripped");
        assert!(reason.contains("failed 3 of its first 4 calls"), "{reason}");
        assert_eq!(p.record(&t, "i", 1, now, true, now + 10), None, "once");
        // Past the window, nothing is counted.
        assert_eq!(p.record(&t, "i", 2, now, true, now + 61_000), None);
        // Past the calls watched, failures no longer count.
        for _ in 0..10 {
            assert_eq!(p.record(&t, "j", 3, now, false, now), None);
        }
        for _ in 0..5 {
            assert_eq!(p.record(&t, "j", 3, now, true, now), None);
        }
        // Off.
        let off = Probation::new(0, 10, Duration::from_secs(60));
        assert_eq!(off.record(&t, "i", 1, now, true, now), None);
    }
}
