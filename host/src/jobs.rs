//! Background jobs: the worker that runs what tenants enqueued, with the
//! tenant's context restored. It owns the run loop, handler dispatch by job
//! kind, retries with backoff, lease keeping and shutdown; the queue itself
//! (tables, claims, the fair order) is `storage`'s, and this module runs no SQL.
//! It is generic over the application state `C` handed to handlers, so it does
//! not depend on the server.
//!
//! Our own small worker, like the queue under it (see `storage::jobs`): no
//! existing crate claims from both SQLite and PostgreSQL through tenant-scoped
//! handles under row-level security.
//!
//! **Delivery.** At least once. A job runs in its tenant's context (a
//! [`TenantDb`] bound to the job's tenant), under a lease the worker extends
//! every `lease / 3` while the handler runs. [`JobError::Retry`] (and a handler
//! panic) queue it again after [`backoff`]`(attempt)`; [`JobError::Fail`], a kind
//! with no handler, and the last attempt dead-letter it, where its tenant can
//! see and retry it. If the worker dies, the lease runs out and another worker
//! reclaims the job; if the database is unreachable, the worker logs, backs off
//! and tries again, and a result it could not record is recovered the same
//! way. [`WorkerHandle::shutdown`] stops claiming, lets running jobs finish
//! within a grace period and gives the rest back to the queue (the attempt not
//! counted). Handlers must therefore be idempotent: a job may run again after a
//! crash, a lost lease or a shutdown.
//!
//! **Time budget.** Each attempt runs under a wall-clock budget (per job kind,
//! [`Worker::set_budget`], else [`WorkerConfig::default_budget`]). When it
//! passes, the handler is stopped and the attempt fails with a reason that
//! names the budget ([`JobError::Retry`]: backoff, then the dead letter once
//! the attempts are used up). The lease is never extended past the budget, so
//! even a handler that blocks its thread cannot keep the job: the attempt is
//! recorded as failed at the budget, and were this worker itself stuck, the
//! lease would run out shortly after it and another worker reclaim the job.
//! (A handler that blocks a thread keeps that thread until it returns; the
//! plugin calls handlers make are bounded by their own deadline.)
//!
//! **Per-tenant cap.** At most [`WorkerConfig::max_running_per_tenant`] jobs
//! of one tenant run at once across every worker sharing the database, and a
//! suspended tenant's jobs are not claimed at all until it is resumed (both
//! enforced by the claim in `storage`). So with `concurrency` above the cap,
//! one tenant's slow jobs leave the other slots to the other tenants: their
//! ready jobs are claimed at the next claim, within `poll_interval`.
//!
//! **Fairness bound.** Storage hands out at most one job per tenant per claim,
//! least recently served tenant first, and this worker claims as soon as one
//! of its `concurrency` slots is free. So when tenant B's job becomes ready
//! while tenant A has any backlog (10,000 jobs or more), the first claim that
//! starts afterwards takes B's job: before that, at most `concurrency` of A's
//! jobs finish here, the ones already running (with several workers, the sum of
//! their concurrency). While B's job runs, the other `concurrency - 1` slots
//! keep serving A, so with handlers of similar duration **B's job completes
//! before `2 × concurrency` more of A's jobs complete** (two claim rounds of
//! every slot), whatever A's backlog. The storage tests check this with 10,000
//! queued jobs, `concurrency = 2` and 1 ms handlers. With more tenants ready, B
//! additionally waits for at most one job of each of them.

mod worker;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use rand::Rng;

use crate::storage::{JobRecord, TenantDb};
use crate::tenancy::TenantId;

pub use worker::{Observer, Worker, WorkerHandle};

/// What a handler gets besides the application state: the job and its tenant's
/// context.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The tenant the job belongs to.
    pub tenant: TenantId,
    /// That tenant's data, and only that tenant's.
    pub db: TenantDb,
    /// The job as claimed (`attempts` counts this run).
    pub job: JobRecord,
}

/// Why a handler did not finish its job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Temporary (a timeout, a 503, a rate limit): run it again after a backoff,
    /// while attempts are left.
    #[error("{0}")]
    Retry(String),
    /// Permanent (bad payload, a 4xx): dead-letter it now.
    #[error("{0}")]
    Fail(String),
}

/// The future a handler returns.
pub type JobFuture<'a> = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'a>>;

/// Runs jobs of one kind. `C` is the application state the worker was given.
///
/// Closures `|app: &C, job: &JobContext| -> JobFuture` are handlers too; pass
/// them to [`Worker::register_fn`], which spells out the signature the compiler
/// needs to infer their lifetimes.
pub trait JobHandler<C>: Send + Sync + 'static {
    /// Does the work. Must be idempotent: a job may run more than once.
    fn run<'a>(&'a self, app: &'a C, job: &'a JobContext) -> JobFuture<'a>;
}

impl<C, F> JobHandler<C> for F
where
    F: for<'a> Fn(&'a C, &'a JobContext) -> JobFuture<'a> + Send + Sync + 'static,
{
    fn run<'a>(&'a self, app: &'a C, job: &'a JobContext) -> JobFuture<'a> {
        self(app, job)
    }
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names this worker in the jobs it leases; must be unique among the workers
    /// sharing a database (the default is).
    pub worker_id: String,
    /// Jobs run at once (at least 1).
    pub concurrency: usize,
    /// How long a claim holds a job; extended every third of it while the
    /// handler runs. A dead worker's jobs are reclaimed after this long.
    pub lease: Duration,
    /// How often an idle worker looks for ready jobs.
    pub poll_interval: Duration,
    /// First retry delay ceiling; doubles with each attempt.
    pub base_backoff: Duration,
    /// Largest retry delay ceiling.
    pub max_backoff: Duration,
    /// Jobs of one tenant running at once, across every worker sharing the
    /// database (0: no cap).
    pub max_running_per_tenant: u32,
    /// Wall-clock budget of one attempt of a job whose kind has none of its
    /// own ([`Worker::set_budget`]).
    pub default_budget: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            worker_id: default_worker_id(),
            concurrency: 4,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(200),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5 * 60),
            max_running_per_tenant: DEFAULT_RUNNING_PER_TENANT,
            default_budget: DEFAULT_BUDGET,
        }
    }
}

/// Default cap on one tenant's running jobs: small, so that with the default
/// concurrency (4) one tenant can never hold every slot.
pub const DEFAULT_RUNNING_PER_TENANT: u32 = 2;

/// Default budget of one attempt of a job.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(5 * 60);

/// The delay before retry number `attempt` (1 for the first retry): a uniformly
/// random duration between zero and `min(max, base × 2^(attempt-1))` ("full
/// jitter"), so jobs failing together do not come back together.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let doublings = attempt.saturating_sub(1).min(64);
    let ceiling = base
        .as_nanos()
        .saturating_mul(1u128 << doublings)
        .min(max.as_nanos());
    // Up to 584 years: plenty for a retry delay.
    let ceiling = u64::try_from(ceiling).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=ceiling))
}

/// `<hostname or pid>-<random>`: readable in the jobs table, unique per process.
fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && !h.contains('\0'))
        .unwrap_or_else(|| format!("pid{}", std::process::id()));
    format!("{host}-{:08x}", rand::rng().random::<u32>())
}

#[cfg(test)]
mod on_databases;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_the_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        for attempt in 0..100 {
            let ceiling = match attempt {
                0 | 1 => base,
                n if n < 7 => base * (1 << (n - 1)),
                _ => max,
            };
            for _ in 0..20 {
                let d = backoff(attempt, base, max);
                assert!(d <= ceiling, "attempt {attempt}: {d:?} > {ceiling:?}");
            }
        }
        // Jittered: not always the same value, and not always tiny.
        let samples: Vec<_> = (0..200).map(|_| backoff(8, base, max)).collect();
        assert!(samples.iter().any(|d| *d > max / 2));
        assert!(samples.iter().any(|d| *d != samples[0]));
        // Extremes neither panic nor overflow.
        assert!(backoff(u32::MAX, Duration::MAX, Duration::MAX) <= Duration::MAX);
        assert_eq!(backoff(3, Duration::ZERO, max), Duration::ZERO);
    }

    #[test]
    fn default_config_has_a_unique_readable_worker_id() {
        let a = WorkerConfig::default();
        let b = WorkerConfig::default();
        assert_ne!(a.worker_id, b.worker_id);
        let (host, suffix) = a.worker_id.rsplit_once('-').unwrap();
        assert!(!host.is_empty());
        assert_eq!(suffix.len(), 8);
        assert_eq!(
            (a.concurrency, a.lease, a.poll_interval),
            (4, Duration::from_secs(30), Duration::from_millis(200))
        );
        assert_eq!(
            (a.base_backoff, a.max_backoff),
            (Duration::from_secs(1), Duration::from_secs(300))
        );
        assert_eq!(
            (a.max_running_per_tenant, a.default_budget),
            (2, Duration::from_secs(300))
        );
    }

    #[test]
    fn job_errors_read_as_their_message() {
        assert_eq!(
            JobError::Retry("503 from Shopify".into()).to_string(),
            "503 from Shopify"
        );
        assert_eq!(
            JobError::Fail("bad payload".into()).to_string(),
            "bad payload"
        );
    }
}
