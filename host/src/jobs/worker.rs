//! The run loop: claim while slots are free, run each job in a task of its own
//! that keeps its lease alive, record the outcome, and on shutdown give back
//! what did not finish.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, watch};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::{Instant, sleep, sleep_until};
use tracing::Instrument;

use super::{JobContext, JobError, JobFuture, JobHandler, WorkerConfig, backoff};
use crate::storage::{JobRecord, JobState, PlatformDb, Storage, StorageError};
use crate::tenancy::TenantId;

/// The longest pause between claims while the database is failing.
const MAX_OUTAGE_PAUSE: Duration = Duration::from_secs(30);

/// Tries to give a job back at shutdown before leaving it to lease expiry.
const RELEASE_TRIES: u32 = 3;

/// The smallest budget a job kind can have.
const MIN_BUDGET: Duration = Duration::from_millis(1);

/// Runs registered handlers on the jobs of every tenant. Build it, register
/// handlers, then [`start`](Worker::start) it.
pub struct Worker<C> {
    storage: Storage,
    app: Arc<C>,
    config: WorkerConfig,
    handlers: HashMap<String, Arc<dyn JobHandler<C>>>,
    budgets: HashMap<String, Duration>,
    observer: Option<Observer<C>>,
}

/// Told each recorded outcome: the app, the job's tenant and kind, and the
/// state the job was left in (`Done`; `Queued` again for a retry; `Dead`).
pub type Observer<C> = Arc<dyn Fn(&C, &str, &str, JobState) + Send + Sync>;

/// A started worker: stop it with [`shutdown`](WorkerHandle::shutdown).
/// Dropping the handle stops it too, as `shutdown(Duration::ZERO)` would, but
/// without waiting.
pub struct WorkerHandle {
    worker_id: String,
    stop: watch::Sender<Option<Duration>>,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl<C: Send + Sync + 'static> Worker<C> {
    /// A worker over `storage`, handing `app` to every handler. A concurrency
    /// of 0 counts as 1, a zero default budget as 1 ms, and an empty or
    /// NUL-bearing worker id is replaced by the default kind.
    pub fn new(storage: Storage, app: Arc<C>, mut config: WorkerConfig) -> Self {
        config.concurrency = config.concurrency.max(1);
        config.default_budget = config.default_budget.max(MIN_BUDGET);
        if config.worker_id.is_empty() || config.worker_id.contains('\0') {
            config.worker_id = WorkerConfig::default().worker_id;
        }
        Self {
            storage,
            app,
            config,
            handlers: HashMap::new(),
            budgets: HashMap::new(),
            observer: None,
        }
    }

    /// Tells `observer` every outcome recorded (for metrics).
    pub fn observe(&mut self, observer: impl Fn(&C, &str, &str, JobState) + Send + Sync + 'static) {
        self.observer = Some(Arc::new(observer));
    }

    /// Gives each attempt of a `kind` job `budget` of wall-clock time (at
    /// least 1 ms) instead of the default budget.
    pub fn set_budget(&mut self, kind: &str, budget: Duration) {
        self.budgets.insert(kind.to_owned(), budget.max(MIN_BUDGET));
    }

    /// Runs jobs of `kind` with `handler` (replacing any earlier one). Jobs of
    /// a kind with no handler are dead-lettered when claimed.
    pub fn register(&mut self, kind: &str, handler: impl JobHandler<C>) {
        self.handlers.insert(kind.to_owned(), Arc::new(handler));
    }

    /// [`register`](Worker::register) for a closure returning a boxed future:
    /// `worker.register_fn("sync", |app, job| Box::pin(async move { .. }))`.
    pub fn register_fn<F>(&mut self, kind: &str, handler: F)
    where
        F: for<'a> Fn(&'a C, &'a JobContext) -> JobFuture<'a> + Send + Sync + 'static,
    {
        self.register(kind, handler);
    }

    /// Starts the run loop on the current tokio runtime.
    pub fn start(self) -> WorkerHandle {
        let (stop, stopped) = watch::channel(None);
        let wake = Arc::new(Notify::new());
        let worker_id = self.config.worker_id.clone();
        let shared = Arc::new(Shared {
            platform: self.storage.platform(),
            storage: self.storage,
            app: self.app,
            handlers: self.handlers,
            budgets: self.budgets,
            observer: self.observer,
            config: self.config,
        });
        let span = tracing::info_span!("jobs_worker", worker = %worker_id);
        let task = tokio::spawn(run(shared, stopped, wake.clone()).instrument(span));
        WorkerHandle {
            worker_id,
            stop,
            wake,
            task,
        }
    }
}

impl WorkerHandle {
    /// Stops claiming, waits up to `grace` for running jobs to finish, then
    /// stops the rest and gives them back to the queue (their attempt not
    /// counted). Returns when the worker is done.
    pub async fn shutdown(self, grace: Duration) {
        // Fails only if the loop already ended, which is what we want anyway.
        let _ = self.stop.send(Some(grace));
        if let Err(e) = self.task.await {
            tracing::error!(worker = %self.worker_id, error = %e, "the jobs worker crashed");
        }
    }

    /// The id this worker leases jobs under.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Looks for ready jobs now instead of at the next poll (after enqueueing
    /// from the same process, for instance).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// What the loop and every job task share.
struct Shared<C> {
    storage: Storage,
    platform: PlatformDb,
    app: Arc<C>,
    handlers: HashMap<String, Arc<dyn JobHandler<C>>>,
    budgets: HashMap<String, Duration>,
    observer: Option<Observer<C>>,
    config: WorkerConfig,
}

impl<C> Shared<C> {
    fn worker(&self) -> &str {
        &self.config.worker_id
    }

    fn budget(&self, kind: &str) -> Duration {
        self.budgets
            .get(kind)
            .copied()
            .unwrap_or(self.config.default_budget)
    }

    /// The per-tenant cap as storage takes it.
    fn per_tenant(&self) -> u32 {
        match self.config.max_running_per_tenant {
            0 => u32::MAX,
            cap => cap,
        }
    }
}

/// The jobs running here: the task running each job, and the job of each task.
#[derive(Default)]
struct Running {
    jobs: HashMap<i64, (tokio::task::Id, Arc<AtomicBool>)>,
    tasks: HashMap<tokio::task::Id, i64>,
}

impl Running {
    fn insert(&mut self, job: i64, task: tokio::task::Id, letting_go: Arc<AtomicBool>) {
        self.jobs.insert(job, (task, letting_go));
        self.tasks.insert(task, job);
    }

    /// Whether a task here still runs `job`, rather than recording its outcome
    /// or having given it up (after which the job may rightly come back).
    fn still_runs(&self, job: i64) -> bool {
        self.jobs
            .get(&job)
            .is_some_and(|(_, letting_go)| !letting_go.load(Ordering::Acquire))
    }

    /// Forgets a finished task; returns its job if the task was cancelled
    /// before it could record the job's outcome.
    fn finished(&mut self, ended: Result<(tokio::task::Id, ()), JoinError>) -> Option<i64> {
        let (task, cancelled) = match ended {
            Ok((task, ())) => (task, false),
            Err(e) => (e.id(), true),
        };
        let job = self.tasks.remove(&task)?;
        // A newer run of the same job may have replaced this one.
        if self.jobs.get(&job).is_some_and(|(t, _)| *t == task) {
            self.jobs.remove(&job);
        }
        cancelled.then_some(job)
    }
}

async fn run<C: Send + Sync + 'static>(
    shared: Arc<Shared<C>>,
    mut stopped: watch::Receiver<Option<Duration>>,
    wake: Arc<Notify>,
) {
    let config = &shared.config;
    let mut tasks = JoinSet::new();
    let mut running = Running::default();
    let mut outage = 0u32;
    let mut stop = *stopped.borrow_and_update();
    tracing::info!(concurrency = config.concurrency, "jobs worker started");

    let grace = loop {
        // Checked here too, not only while waiting: a busy queue may keep the
        // loop from waiting for a while.
        match stopped.has_changed() {
            Ok(true) => stop = *stopped.borrow_and_update(),
            Ok(false) => {}
            Err(_) => stop = stop.or(Some(Duration::ZERO)),
        }
        if let Some(grace) = stop {
            break grace;
        }
        while let Some(ended) = tasks.try_join_next_with_id() {
            running.finished(ended);
        }
        let free = config.concurrency.saturating_sub(tasks.len());
        // None: no free slot, wait for a job to end.
        let mut pause = None;
        if free > 0 {
            let limit = u32::try_from(free).unwrap_or(u32::MAX);
            match shared
                .platform
                .claim_jobs(shared.worker(), limit, config.lease, shared.per_tenant())
                .await
            {
                Ok(jobs) => {
                    if outage > 0 {
                        tracing::info!("the database answers again; claiming jobs");
                        outage = 0;
                    }
                    // One job per tenant per claim: when this one brought
                    // any, claim again right away for the slots still free.
                    pause = Some(if jobs.is_empty() {
                        config.poll_interval
                    } else {
                        Duration::ZERO
                    });
                    for job in jobs {
                        spawn_job(&shared, &mut tasks, &mut running, job);
                    }
                }
                Err(e) => {
                    outage = outage.saturating_add(1);
                    let wait = config.poll_interval
                        + backoff(outage, config.poll_interval, MAX_OUTAGE_PAUSE);
                    tracing::warn!(error = %e, retry_in = ?wait, "cannot claim jobs");
                    pause = Some(wait);
                }
            }
        }
        if pause == Some(Duration::ZERO) {
            continue;
        }
        tokio::select! {
            changed = stopped.changed() => {
                // A dropped handle stops the worker without a grace period.
                stop = match changed {
                    Ok(()) => *stopped.borrow_and_update(),
                    Err(_) => Some(Duration::ZERO),
                };
            }
            Some(ended) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                running.finished(ended);
            }
            () = sleep(pause.unwrap_or_default()), if pause.is_some() => {}
            () = wake.notified() => {}
        }
    };

    tracing::info!(running = tasks.len(), ?grace, "jobs worker stopping");
    let deadline = Instant::now() + grace;
    while !tasks.is_empty() {
        tokio::select! {
            Some(ended) = tasks.join_next_with_id() => {
                running.finished(ended);
            }
            () = sleep_until(deadline) => break,
        }
    }
    tasks.abort_all();
    let mut unfinished = Vec::new();
    while let Some(ended) = tasks.join_next_with_id().await {
        unfinished.extend(running.finished(ended));
    }
    for id in unfinished {
        release(&shared.platform, id, shared.worker()).await;
    }
    tracing::info!("jobs worker stopped");
}

/// Gives an unfinished job back to the queue; if the database does not answer,
/// its lease runs out and another worker reclaims it.
async fn release(platform: &PlatformDb, id: i64, worker: &str) {
    for attempt in 1..=RELEASE_TRIES {
        match platform.release_job(id, worker).await {
            Ok(true) => {
                tracing::info!(job = id, "job given back to the queue");
                return;
            }
            // Finished or reclaimed meanwhile: nothing to give back.
            Ok(false) => return,
            Err(StorageError::Unavailable(e)) if attempt < RELEASE_TRIES => {
                tracing::warn!(job = id, error = %e, "cannot release a job yet");
                sleep(Duration::from_millis(100) * attempt).await;
            }
            Err(e) => {
                tracing::warn!(
                    job = id, error = %e,
                    "cannot release a job: it will be reclaimed when its lease expires"
                );
                return;
            }
        }
    }
}

fn spawn_job<C: Send + Sync + 'static>(
    shared: &Arc<Shared<C>>,
    tasks: &mut JoinSet<()>,
    running: &mut Running,
    job: JobRecord,
) {
    if running.still_runs(job.id) {
        // Our own job came back: its lease ran out while it was still running
        // here (the database was unreachable to extend it). The run in progress
        // carries on under the renewed lease.
        tracing::warn!(
            job = job.id,
            "reclaimed a job still running here; not starting it twice"
        );
        return;
    }
    let span = tracing::info_span!(
        "job", id = job.id, kind = %job.kind, tenant = %job.tenant_id, attempt = job.attempts
    );
    let id = job.id;
    let letting_go = Arc::new(AtomicBool::new(false));
    let handle = tasks.spawn(run_job(shared.clone(), job, letting_go.clone()).instrument(span));
    running.insert(id, handle.id(), letting_go);
}

/// Runs one job and records its outcome.
async fn run_job<C: Send + Sync + 'static>(
    shared: Arc<Shared<C>>,
    job: JobRecord,
    letting_go: Arc<AtomicBool>,
) {
    let (id, attempts) = (job.id, job.attempts);
    let (tenant_id, kind) = (job.tenant_id.clone(), job.kind.clone());
    let handler = shared.handlers.get(&job.kind).cloned();
    let outcome = match (handler, TenantId::new(&job.tenant_id)) {
        (None, _) => Some(Err(JobError::Fail(format!(
            "no handler registered for kind `{}`",
            job.kind
        )))),
        (_, Err(e)) => Some(Err(JobError::Fail(format!(
            "the job's tenant is not valid: {e}"
        )))),
        (Some(handler), Ok(tenant)) => {
            let context = JobContext {
                db: shared.storage.tenant(&tenant),
                tenant,
                job,
            };
            run_leased(&shared, handler, context).await
        }
    };
    // From here on a claim may rightly hand this job out again (a retry due
    // at once, or the lease lost), even before this task has ended.
    letting_go.store(true, Ordering::Release);
    if let Some(outcome) = outcome
        && let Some(state) = record(&shared, id, attempts, outcome).await
        && let Some(observer) = &shared.observer
    {
        observer(&shared.app, &tenant_id, &kind, state);
    }
}

/// Aborts the task it holds when dropped, so stopping a job task also stops
/// its handler.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the handler in a task of its own (so a panic is caught as a failure)
/// while extending the lease, for at most the kind's budget. `None` if the
/// lease was lost: the job is someone else's now, and this run stops.
async fn run_leased<C: Send + Sync + 'static>(
    shared: &Arc<Shared<C>>,
    handler: Arc<dyn JobHandler<C>>,
    context: JobContext,
) -> Option<Result<(), JobError>> {
    let id = context.job.id;
    let budget = shared.budget(&context.job.kind);
    let app = shared.app.clone();
    let started = Instant::now();
    let budget_ends = started.checked_add(budget).unwrap_or(started + DAY);
    let mut handler_task = AbortOnDrop(tokio::spawn(
        async move { handler.run(&app, &context).await }.in_current_span(),
    ));
    let lease = shared.config.lease;
    let every = (lease / 3).max(Duration::from_millis(10));
    let mut renew = tokio::time::interval_at(started + every, every);
    loop {
        tokio::select! {
            ended = &mut handler_task.0 => {
                return Some(match ended {
                    Ok(outcome) => outcome,
                    Err(e) if e.is_panic() => Err(JobError::Retry(format!(
                        "the handler panicked: {}",
                        panic_message(e.into_panic().as_ref())
                    ))),
                    Err(e) => Err(JobError::Retry(format!("the handler was cancelled: {e}"))),
                });
            }
            () = sleep_until(budget_ends) => {
                // Returning drops the handler task, which aborts it.
                tracing::warn!(?budget, "the job ran past its time budget; stopping it");
                return Some(Err(JobError::Retry(over_budget(budget))));
            }
            _ = renew.tick() => {
                // Never past the budget (plus one renewal period to record
                // the outcome): a stuck run cannot keep the job.
                let left = budget_ends.saturating_duration_since(Instant::now());
                let lease = renewal(lease, every, left);
                match shared.platform.extend_lease(id, shared.worker(), lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!("lost the job's lease to another worker; stopping this run");
                        return None;
                    }
                    // The lease may still hold; try again at the next tick.
                    Err(e) => tracing::warn!(error = %e, "cannot extend the job's lease"),
                }
            }
        }
    }
}

/// How far to extend a lease with `left` of the budget: the usual lease, but
/// never more than one renewal period past the budget.
fn renewal(lease: Duration, every: Duration, left: Duration) -> Duration {
    lease.min(left.saturating_add(every))
}

/// More than any budget is meant to be: stands in for an overflowing one.
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Why an attempt that ran out of time failed.
fn over_budget(budget: Duration) -> String {
    format!(
        "the job ran past its time budget of {} and was stopped; it is retried while \
         attempts are left",
        human(budget)
    )
}

/// `1.5 s`, `250 ms`: a budget as a person reads it.
fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

/// Records a job's outcome, retrying while the database is unavailable. If it
/// stays unavailable past the lease, the job is reclaimed and runs again.
/// Returns the state the job was left in, when this worker recorded it.
async fn record<C>(
    shared: &Shared<C>,
    id: i64,
    attempts: u32,
    outcome: Result<(), JobError>,
) -> Option<JobState> {
    let config = &shared.config;
    let worker = shared.worker();
    let give_up = Instant::now() + config.lease;
    let (retry_at, error) = match &outcome {
        Ok(()) => (None, None),
        Err(JobError::Retry(e)) => {
            let delay = backoff(attempts, config.base_backoff, config.max_backoff);
            (Some(unix_ms_in(delay)), Some(e.as_str()))
        }
        Err(JobError::Fail(e)) => (None, Some(e.as_str())),
    };
    for tries in 1u32.. {
        let stored = match error {
            None => shared
                .platform
                .complete_job(id, worker)
                .await
                .map(|done| done.then_some(JobState::Done)),
            Some(error) => shared.platform.fail_job(id, worker, error, retry_at).await,
        };
        match stored {
            Ok(Some(state)) => {
                match (state, error) {
                    (JobState::Dead, Some(error)) => {
                        tracing::warn!(%error, "job dead-lettered")
                    }
                    (_, Some(error)) => tracing::info!(%error, ?retry_at, "job will be retried"),
                    _ => tracing::debug!("job done"),
                }
                return Some(state);
            }
            Ok(None) => {
                tracing::warn!(
                    "the job's lease was taken over before its outcome was recorded; \
                     the other worker's run counts"
                );
                return None;
            }
            Err(StorageError::Unavailable(e)) if Instant::now() < give_up => {
                let wait = backoff(tries, Duration::from_millis(50), Duration::from_secs(2))
                    + Duration::from_millis(10);
                tracing::warn!(error = %e, "cannot record the job's outcome yet");
                sleep(wait).await;
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "cannot record the job's outcome: it will run again once its lease expires"
                );
                return None;
            }
        }
    }
    None
}

/// Unix milliseconds `delay` from now.
fn unix_ms_in(delay: Duration) -> i64 {
    SystemTime::now()
        .checked_add(delay)
        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .map_or(i64::MAX, |d| {
            i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
        })
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_read_as_people_write_them() {
        assert_eq!(human(Duration::from_millis(250)), "250 ms");
        assert_eq!(human(Duration::from_secs(300)), "300 s");
        assert_eq!(human(Duration::from_millis(1_500)), "1.500 s");
        let reason = over_budget(Duration::from_secs(60));
        assert!(reason.contains("time budget of 60 s"), "{reason}");
    }

    #[test]
    fn lease_renewals_never_outlast_the_budget() {
        let (lease, every) = (Duration::from_secs(30), Duration::from_secs(10));
        // Plenty of budget left: the usual lease.
        assert_eq!(renewal(lease, every, Duration::from_secs(600)), lease);
        // Near the end: up to one renewal period past it, no more.
        assert_eq!(
            renewal(lease, every, Duration::from_secs(4)),
            Duration::from_secs(14)
        );
        // Spent: one period to record the outcome, then the lease runs out.
        assert_eq!(renewal(lease, every, Duration::ZERO), every);
        assert_eq!(renewal(lease, every, Duration::MAX), lease);
    }
}
