//! Plugin runs and usage, recorded off the request path: handlers hand records
//! to a bounded channel and a background task writes them in batches. Under
//! overload records are dropped (and counted) rather than slowing requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::resolve::RunRecord;
use crate::storage::{NewRun, Storage};
use crate::tenancy::TenantId;

/// Records waiting to be written, at most.
const QUEUE: usize = 10_000;
/// Run rows kept per tenant.
pub const RUNS_KEPT: u32 = 1_000;

enum Event {
    Run {
        tenant: TenantId,
        plugin: String,
        run: RunRecord,
    },
    Request {
        tenant: TenantId,
    },
}

/// The handle handlers use to record runs and requests.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Recorder {
    /// Starts the writer task on the current runtime.
    pub fn start(storage: Storage) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(storage, rx));
        Self {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    fn send(&self, event: Event) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records one plugin run of `tenant`'s plugin `plugin`.
    pub fn run(&self, tenant: &TenantId, plugin: &str, run: &RunRecord) {
        self.send(Event::Run {
            tenant: tenant.clone(),
            plugin: plugin.to_owned(),
            run: run.clone(),
        });
    }

    /// Counts one served request of `tenant`.
    pub fn request(&self, tenant: &TenantId) {
        self.send(Event::Request {
            tenant: tenant.clone(),
        });
    }

    /// Records dropped under overload since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Tally {
    requests: i64,
    runs: i64,
    fuel: i64,
}

/// Old runs are pruned every this many batches (pruning is a DELETE per tenant).
const PRUNE_EVERY: u64 = 64;

async fn writer(storage: Storage, mut rx: mpsc::Receiver<Event>) {
    let mut batch = Vec::with_capacity(256);
    let mut batches: u64 = 0;
    loop {
        batches += 1;
        let received = rx.recv_many(&mut batch, 256).await;
        if received == 0 {
            return;
        }
        let mut tallies: HashMap<TenantId, Tally> = HashMap::new();
        for event in batch.drain(..) {
            match event {
                Event::Request { tenant } => tallies.entry(tenant).or_default().requests += 1,
                Event::Run {
                    tenant,
                    plugin,
                    run,
                } => {
                    let tally = tallies.entry(tenant.clone()).or_default();
                    tally.runs += 1;
                    tally.fuel += i64::try_from(run.stats.fuel_used).unwrap_or(i64::MAX);
                    let logs =
                        serde_json::to_string(&run.stats.logs).unwrap_or_else(|_| "[]".into());
                    let record = NewRun {
                        sha256: &plugin,
                        hook: run.hook.as_str(),
                        outcome: run.outcome.as_str(),
                        message: run.message.as_deref(),
                        fuel_used: run.stats.fuel_used,
                        peak_memory_bytes: run.stats.peak_memory_bytes,
                        wall_time_us: u64::try_from(run.stats.wall_time.as_micros())
                            .unwrap_or(u64::MAX),
                        logs_json: &logs,
                    };
                    if let Err(err) = storage.tenant(&tenant).record_run(&record).await {
                        tracing::warn!(%tenant, error = %err, "could not record a plugin run");
                    }
                }
            }
        }
        for (tenant, tally) in tallies {
            let db = storage.tenant(&tenant);
            if let Err(err) = db.add_usage(tally.requests, tally.runs, tally.fuel).await {
                tracing::warn!(%tenant, error = %err, "could not record usage");
            }
            if tally.runs > 0
                && batches % PRUNE_EVERY == 1
                && let Err(err) = db.prune_runs(RUNS_KEPT).await
            {
                tracing::warn!(%tenant, error = %err, "could not prune old runs");
            }
        }
        // Batch writes a little instead of writing every run on its own.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
