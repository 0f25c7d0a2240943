//! Plugin runs and usage, recorded off the request path. The use cases
//! (`app::runs`, and the request extractor for request counts) add to an
//! in-memory batch (a short lock, no I/O); a background task takes the batch
//! every [`FLUSH_EVERY`] and writes each tenant's part in one transaction: its
//! run rows, its usage counters, now and then the pruning of old runs.
//!
//! Usage counts (requests, runs, fuel) are never dropped. Run rows are a
//! debugging log of which only the newest [`RUNS_KEPT`] per tenant are kept;
//! under load it is a sample: a batch holds at most [`ROWS_PER_TENANT`] rows per
//! tenant (a newer run replaces the oldest successful one, so failures stay
//! ahead of successes) and at most [`ROWS_PER_BATCH`] in all; rows beyond that
//! are dropped and counted ([`Recorder::dropped`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::resolve::RunRecord;
use crate::runtime::OutcomeKind;
use crate::storage::{NewRun, Storage, StorageError, UsageDelta};
use crate::tenancy::TenantId;

/// Run rows kept per tenant.
pub const RUNS_KEPT: u32 = 1_000;
/// Run rows one batch holds per tenant (at most 2,500 a second written).
pub const ROWS_PER_TENANT: usize = 50;
/// Run rows one batch holds, over all tenants.
pub const ROWS_PER_BATCH: usize = 10_000;
/// How often the batch is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// A tenant's old runs are pruned every this many of its written batches.
const PRUNE_EVERY: u64 = 64;

#[derive(Default)]
struct TenantBatch {
    usage: UsageDelta,
    runs: VecDeque<RunRecord>,
}

#[derive(Default)]
struct Batch {
    tenants: HashMap<TenantId, TenantBatch>,
    rows: usize,
}

impl Batch {
    fn tenant(&mut self, tenant: &TenantId) -> &mut TenantBatch {
        // Look up first: the id is cloned only for a tenant new to this batch.
        if !self.tenants.contains_key(tenant) {
            self.tenants.insert(tenant.clone(), TenantBatch::default());
        }
        self.tenants
            .get_mut(tenant)
            .expect("inserted just above if missing")
    }
}

struct Shared {
    batch: Mutex<Batch>,
    dropped: AtomicU64,
}

impl Shared {
    fn batch(&self) -> MutexGuard<'_, Batch> {
        // A panic while holding the lock leaves a consistent batch: counters
        // and a queue are updated with no step that can panic halfway.
        self.batch.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The handle handlers use to record runs and requests.
#[derive(Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Recorder {
    /// Starts the writer task on the current runtime. It writes the last batch
    /// and ends once every handle is dropped.
    pub fn start(storage: Storage) -> Self {
        let recorder = Self::unstarted();
        tokio::spawn(writer(storage, recorder.shared.clone()));
        recorder
    }

    fn unstarted() -> Self {
        Self {
            shared: Arc::new(Shared {
                batch: Mutex::new(Batch::default()),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Records one plugin run of `tenant`'s plugin `plugin`.
    pub fn run(&self, tenant: &TenantId, run: &RunRecord) {
        let fuel = i64::try_from(run.stats.fuel_used).unwrap_or(i64::MAX);
        let mut batch = self.shared.batch();
        let mut full = batch.rows >= ROWS_PER_BATCH;
        let entry = batch.tenant(tenant);
        entry.usage.plugin_runs += 1;
        entry.usage.fuel = entry.usage.fuel.saturating_add(fuel);
        let mut added = 1;
        if entry.runs.len() >= ROWS_PER_TENANT {
            // A sample under load: the newest run takes the place of the oldest
            // success (or of the oldest run, when all failed).
            let oldest_ok = entry
                .runs
                .iter()
                .position(|r| r.outcome == OutcomeKind::Ok)
                .unwrap_or(0);
            entry.runs.remove(oldest_ok);
            added = 0;
            full = false;
        }
        if full {
            drop(batch);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        entry.runs.push_back(run.clone());
        batch.rows += added;
    }

    /// Counts one served request of `tenant`.
    pub fn request(&self, tenant: &TenantId) {
        self.shared.batch().tenant(tenant).usage.requests += 1;
    }

    /// Run rows dropped because a batch was full, since start.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

async fn writer(storage: Storage, shared: Arc<Shared>) {
    let mut written: HashMap<TenantId, u64> = HashMap::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Only the writer holds it: every handle is gone, so is the server.
        let last = Arc::strong_count(&shared) == 1;
        let batch = std::mem::take(&mut *shared.batch());
        for (tenant, part) in batch.tenants {
            let count = written.entry(tenant.clone()).or_default();
            *count += 1;
            let prune = (!part.runs.is_empty() && *count % PRUNE_EVERY == 1).then_some(RUNS_KEPT);
            let usage = part.usage;
            if !write(&storage, &tenant, part, prune).await {
                // Counts survive a database outage: they go into the next batch.
                // (The run rows are a log; they are dropped.)
                let mut batch = shared.batch();
                let entry = &mut batch.tenant(&tenant).usage;
                entry.requests = entry.requests.saturating_add(usage.requests);
                entry.plugin_runs = entry.plugin_runs.saturating_add(usage.plugin_runs);
                entry.fuel = entry.fuel.saturating_add(usage.fuel);
            }
        }
        if last {
            return;
        }
    }
}

/// Writes one tenant's part of a batch; false if the database was unavailable
/// (the caller keeps the counts for the next batch). Any other refusal, such as
/// a tenant deleted meanwhile, is final.
async fn write(
    storage: &Storage,
    tenant: &TenantId,
    part: TenantBatch,
    prune: Option<u32>,
) -> bool {
    let logs: Vec<String> = part
        .runs
        .iter()
        .map(|run| serde_json::to_string(&run.stats.logs).unwrap_or_else(|_| "[]".into()))
        .collect();
    let rows: Vec<NewRun<'_>> = part
        .runs
        .iter()
        .zip(&logs)
        .map(|(run, logs)| NewRun {
            sha256: &run.plugin,
            installation: run.installation.as_deref(),
            release_id: run.release,
            hook: run.hook.as_str(),
            outcome: run.outcome.as_str(),
            message: run.message.as_deref(),
            fuel_used: run.stats.fuel_used,
            peak_memory_bytes: run.stats.peak_memory_bytes,
            wall_time_us: u64::try_from(run.stats.wall_time.as_micros()).unwrap_or(u64::MAX),
            logs_json: logs,
        })
        .collect();
    match storage
        .tenant(tenant)
        .record_batch(&rows, part.usage, prune)
        .await
    {
        Ok(()) => true,
        Err(err @ StorageError::Unavailable(_)) => {
            tracing::warn!(%tenant, runs = rows.len(), error = %err, "could not record usage and plugin runs; the counts are kept for the next batch");
            false
        }
        Err(err) => {
            tracing::warn!(%tenant, runs = rows.len(), error = %err, "could not record usage and plugin runs");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Hook, RunStats};
    use crate::storage::testing::harness::{Ctx, tid};

    fn record(fuel: u64) -> RunRecord {
        with_outcome(fuel, OutcomeKind::Ok)
    }

    fn with_outcome(fuel: u64, outcome: OutcomeKind) -> RunRecord {
        RunRecord {
            installation: Some("main".into()),
            release: Some(1),
            plugin: "c".repeat(64),
            hook: Hook::Commission,
            outcome,
            message: None,
            stats: RunStats {
                fuel_used: fuel,
                ..RunStats::default()
            },
            budget_spent: false,
        }
    }

    #[test]
    fn a_batch_keeps_every_count_and_a_bounded_sample_of_rows() {
        let recorder = Recorder::unstarted();
        // One tenant with many runs, two of them failures: the failures and the
        // newest successes make up its sample.
        let busy = tid("busy");
        for fuel in 0..3_000 {
            let outcome = if fuel == 10 || fuel == 20 {
                OutcomeKind::OutOfFuel
            } else {
                OutcomeKind::Ok
            };
            recorder.run(&busy, &with_outcome(fuel, outcome));
            recorder.request(&busy);
        }
        {
            let batch = recorder.shared.batch();
            let part = &batch.tenants[&busy];
            assert_eq!(
                part.usage,
                UsageDelta {
                    requests: 3_000,
                    plugin_runs: 3_000,
                    fuel: (0..3_000).sum(),
                }
            );
            let fuel: Vec<u64> = part.runs.iter().map(|r| r.stats.fuel_used).collect();
            let mut expected = vec![10, 20];
            expected.extend(3_000 - ROWS_PER_TENANT as u64 + 2..3_000);
            assert_eq!(fuel, expected, "failures first, then the newest");
            assert_eq!(batch.rows, ROWS_PER_TENANT);
        }
        // Enough tenants to fill the batch: the last ones' rows are dropped,
        // their counts kept.
        let tenants = ROWS_PER_BATCH / ROWS_PER_TENANT + 1;
        for n in 0..tenants {
            let tenant = tid(&format!("t{n}"));
            for fuel in 0..ROWS_PER_TENANT as u64 {
                recorder.run(&tenant, &record(fuel));
            }
        }
        let batch = recorder.shared.batch();
        assert_eq!(batch.rows, ROWS_PER_BATCH);
        let last = &batch.tenants[&tid(&format!("t{}", tenants - 1))];
        assert_eq!(
            last.usage.plugin_runs, ROWS_PER_TENANT as i64,
            "counted all the same"
        );
        assert!(last.runs.is_empty(), "the batch was full before its rows");
        drop(batch);
        assert_eq!(recorder.dropped(), 2 * ROWS_PER_TENANT as u64);
    }

    async fn written_counts_match_what_was_recorded(ctx: Ctx) {
        let acme = ctx.tenant("acme").await;
        let beta = ctx.tenant("beta").await;
        let recorder = Recorder::start(ctx.storage.clone());
        let (a, b, ghost) = (tid("acme"), tid("beta"), tid("ghost"));
        for fuel in 1..=2_500 {
            recorder.run(&a, &record(fuel));
            recorder.request(&a);
            if fuel % 100 == 0 {
                tokio::task::yield_now().await;
            }
        }
        for _ in 0..20_000 {
            recorder.request(&b);
        }
        // A tenant that does not exist is refused, and does not hold up others.
        recorder.request(&ghost);
        drop(recorder);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (ua, ub) = (acme.usage(1).await.unwrap(), beta.usage(1).await.unwrap());
            let got = |u: &[crate::storage::UsageRecord]| {
                u.first().map(|u| (u.requests, u.plugin_runs, u.fuel_used))
            };
            if got(&ua) == Some((2_500, 2_500, (1..=2_500).sum()))
                && got(&ub) == Some((20_000, 0, 0))
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "usage never matched: acme {ua:?}, beta {ub:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let runs = acme.runs(5_000).await.unwrap();
        assert_eq!(runs[0].fuel_used, 2_500, "the newest run is kept");
        assert_eq!(runs[0].installation.as_deref(), Some("main"));
        assert_eq!(runs[0].release_id, Some(1));
        assert!(runs.len() >= ROWS_PER_TENANT, "{}", runs.len());
        assert!(beta.runs(10).await.unwrap().is_empty());
    }

    crate::both_backends!(via crate::storage::testing::harness::run; written_counts_match_what_was_recorded);
}
