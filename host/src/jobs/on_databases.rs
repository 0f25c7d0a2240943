//! The worker running the queue on real databases (both backends): retries,
//! dead letters, reclaim after a worker dies, shutdown, two hosts sharing one
//! queue, the per-tenant cap and the fairness bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{JobContext, JobError, JobFuture, JobHandler, Worker, WorkerConfig};
use crate::storage::testing::harness::{Ctx, NO_CAP, claim_one, job, options, tid};
use crate::storage::{JobRecord, JobState, NewJob, Storage, StorageError};
use crate::test_support::wait_for as eventually;

crate::both_backends!(via crate::storage::testing::harness::run;
    worker_runs_retries_and_dead_letters_in_the_tenant_context,
    a_dead_workers_job_is_finished_by_another,
    an_unreachable_database_loses_no_job,
    shutdown_finishes_or_gives_back_running_jobs,
    dropping_the_handle_gives_back_running_jobs,
    two_workers_share_the_queue_and_run_each_job_once,
    a_backlog_delays_another_tenant_by_at_most_the_bound,
    a_tenant_at_its_cap_waits_while_other_tenants_are_claimed,
    a_suspended_tenants_jobs_are_held_until_it_is_resumed,
    a_job_past_its_budget_fails_and_is_retried_then_dead_lettered,
    a_slow_tenant_leaves_free_workers_to_the_others,
);

const LEASE: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn config(worker_id: &str, concurrency: usize) -> WorkerConfig {
    WorkerConfig {
        worker_id: worker_id.to_owned(),
        concurrency,
        lease: LEASE,
        poll_interval: Duration::from_millis(20),
        base_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(40),
        max_running_per_tenant: 2,
        default_budget: Duration::from_secs(60),
    }
}

async fn state_of(ctx: &Ctx, tenant: &str, id: i64) -> JobState {
    ctx.storage
        .tenant(&tid(tenant))
        .job(id)
        .await
        .unwrap()
        .unwrap()
        .state
}

/// What the test handlers share: runs per job id.
#[derive(Default)]
struct Runs(Mutex<HashMap<i64, u32>>);

impl Runs {
    fn count(&self, job: &JobContext) -> u32 {
        let mut runs = self.0.lock().unwrap();
        let n = runs.entry(job.job.id).or_default();
        *n += 1;
        *n
    }

    fn of(&self, id: i64) -> u32 {
        self.0.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
}

/// A handler as a type: fails temporarily until its third attempt.
struct Flaky;

impl JobHandler<Runs> for Flaky {
    fn run<'a>(&'a self, app: &'a Runs, job: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            app.count(job);
            if job.job.attempts < 3 {
                Err(JobError::Retry(format!(
                    "503 on attempt {}",
                    job.job.attempts
                )))
            } else {
                Ok(())
            }
        })
    }
}

async fn worker_runs_retries_and_dead_letters_in_the_tenant_context(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let beta = ctx.tenant("beta").await;
    let runs = Arc::new(Runs::default());
    let mut worker = Worker::new(ctx.storage.clone(), runs.clone(), config("w", 3));
    worker.register("flaky", Flaky);
    worker.register_fn("remember", |app: &Runs, job: &JobContext| {
        Box::pin(async move {
            app.count(job);
            // The job's own tenant context: its handle writes where it belongs.
            assert_eq!(job.db.tenant_id(), &job.tenant);
            assert_eq!(job.tenant.as_str(), job.job.tenant_id);
            let value = job.job.payload["value"].as_str().unwrap_or_default();
            job.db
                .kv_put("remembered", value)
                .await
                .map_err(|e| JobError::Retry(e.to_string()))
        })
    });
    worker.register_fn("broken", |app, job| {
        Box::pin(async move {
            app.count(job);
            Err(JobError::Fail("the payload names no order".into()))
        })
    });
    worker.register_fn("always-503", |app, job| {
        Box::pin(async move {
            app.count(job);
            Err(JobError::Retry("503 Service Unavailable".into()))
        })
    });
    worker.register_fn("panics", |app, job| {
        Box::pin(async move {
            app.count(job);
            panic!("boom in the handler");
        })
    });
    let handle = worker.start();
    assert_eq!(handle.worker_id(), "w");

    let enqueue = |db: crate::storage::TenantDb, kind: &'static str, payload: &'static str| async move {
        db.enqueue_job(&NewJob {
            payload,
            max_attempts: 3,
            ..job(kind)
        })
        .await
        .unwrap()
        .0
        .id
    };
    let flaky = enqueue(acme.clone(), "flaky", "{}").await;
    let remember_a = enqueue(acme.clone(), "remember", r#"{"value":"acme's"}"#).await;
    let remember_b = enqueue(beta.clone(), "remember", r#"{"value":"beta's"}"#).await;
    let broken = enqueue(acme.clone(), "broken", "{}").await;
    let unavailable = enqueue(beta.clone(), "always-503", "{}").await;
    let panics = enqueue(acme.clone(), "panics", "{}").await;
    let unknown = enqueue(beta.clone(), "no-such-kind", "{}").await;
    handle.wake();

    let all = [
        ("acme", flaky),
        ("acme", remember_a),
        ("beta", remember_b),
        ("acme", broken),
        ("beta", unavailable),
        ("acme", panics),
        ("beta", unknown),
    ];
    eventually("every job to settle", Duration::from_secs(30), || async {
        for (tenant, id) in all {
            if !matches!(
                state_of(&ctx, tenant, id).await,
                JobState::Done | JobState::Dead
            ) {
                return false;
            }
        }
        true
    })
    .await;
    handle.shutdown(Duration::from_secs(5)).await;

    let get = |tenant: &'static str, id: i64| {
        let db = ctx.storage.tenant(&tid(tenant));
        async move { db.job(id).await.unwrap().unwrap() }
    };
    let j = get("acme", flaky).await;
    assert_eq!(
        (j.state, j.attempts, runs.of(flaky)),
        (JobState::Done, 3, 3)
    );
    assert_eq!(j.last_error.as_deref(), Some("503 on attempt 2"));
    for (tenant, id, value) in [
        ("acme", remember_a, "acme's"),
        ("beta", remember_b, "beta's"),
    ] {
        assert_eq!(get(tenant, id).await.state, JobState::Done);
        let db = ctx.storage.tenant(&tid(tenant));
        assert_eq!(
            db.kv_get("remembered").await.unwrap().as_deref(),
            Some(value)
        );
    }
    let j = get("acme", broken).await;
    assert_eq!(
        (j.state, j.attempts, runs.of(broken)),
        (JobState::Dead, 1, 1)
    );
    assert_eq!(j.last_error.as_deref(), Some("the payload names no order"));
    let j = get("beta", unavailable).await;
    assert_eq!(
        (j.state, j.attempts, runs.of(unavailable)),
        (JobState::Dead, 3, 3)
    );
    assert_eq!(j.last_error.as_deref(), Some("503 Service Unavailable"));
    let j = get("acme", panics).await;
    assert_eq!(
        (j.state, j.attempts, runs.of(panics)),
        (JobState::Dead, 3, 3)
    );
    assert!(
        j.last_error
            .as_deref()
            .unwrap()
            .contains("panicked: boom in the handler")
    );
    let j = get("beta", unknown).await;
    assert_eq!(
        (j.state, j.attempts, runs.of(unknown)),
        (JobState::Dead, 1, 0)
    );
    assert_eq!(
        j.last_error.as_deref(),
        Some("no handler registered for kind `no-such-kind`")
    );
    // The dead letters are visible to their tenant, and retryable.
    let dead: Vec<i64> = beta
        .jobs(Some(JobState::Dead), 10)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(dead, [unknown, unavailable]);
    assert_eq!(
        beta.retry_job(unknown).await.unwrap().state,
        JobState::Queued
    );
}

async fn a_dead_workers_job_is_finished_by_another(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let (j, _) = acme.enqueue_job(&job("x")).await.unwrap();
    // A worker claims it and dies without a word.
    let claimed = claim_one(&ctx, "crashed", Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(claimed.id, j.id);

    let runs = Arc::new(Runs::default());
    let mut worker = Worker::new(ctx.storage.clone(), runs.clone(), config("survivor", 2));
    worker.register_fn("x", |app, job| {
        Box::pin(async move {
            app.count(job);
            Ok(())
        })
    });
    let handle = worker.start();
    eventually(
        "the reclaimed job to finish",
        Duration::from_secs(20),
        || async { state_of(&ctx, "acme", j.id).await == JobState::Done },
    )
    .await;
    handle.shutdown(Duration::from_secs(5)).await;
    let done = acme.job(j.id).await.unwrap().unwrap();
    assert_eq!((done.attempts, runs.of(j.id)), (2, 1));
}

async fn an_unreachable_database_loses_no_job(ctx: Ctx) {
    #[derive(Default)]
    struct Gated {
        runs: Runs,
        gate: tokio::sync::Notify,
    }
    /// Holds its first run until the gate opens.
    fn handler<'a>(app: &'a Gated, job: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            if app.runs.count(job) == 1 {
                app.gate.notified().await;
            }
            Ok(())
        })
    }
    let acme = ctx.tenant("acme").await;
    let (j, _) = acme.enqueue_job(&job("x")).await.unwrap();
    let gated = Arc::new(Gated::default());

    // A host whose database goes away while its job runs.
    let doomed = Storage::connect(&ctx.url, &options()).await.unwrap();
    let mut worker = Worker::new(
        doomed.clone(),
        gated.clone(),
        WorkerConfig {
            lease: Duration::from_millis(600),
            ..config("doomed", 2)
        },
    );
    worker.register_fn("x", handler);
    let doomed_worker = worker.start();
    eventually("the job to start", Duration::from_secs(20), || async {
        gated.runs.of(j.id) == 1
    })
    .await;
    doomed.close().await;
    gated.gate.notify_one();
    // It cannot record the outcome nor claim: it logs and backs off, and the
    // job's lease runs out.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(state_of(&ctx, "acme", j.id).await, JobState::Running);

    let mut worker = Worker::new(ctx.storage.clone(), gated.clone(), config("healthy", 2));
    worker.register_fn("x", handler);
    let healthy_worker = worker.start();
    eventually(
        "another host to finish the job",
        Duration::from_secs(20),
        || async { state_of(&ctx, "acme", j.id).await == JobState::Done },
    )
    .await;
    let started = Instant::now();
    doomed_worker.shutdown(Duration::from_secs(1)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    healthy_worker.shutdown(Duration::from_secs(1)).await;
    let done = acme.job(j.id).await.unwrap().unwrap();
    assert_eq!((done.attempts, done.locked_by), (2, None));
    assert_eq!(gated.runs.of(j.id), 2);
}

async fn shutdown_finishes_or_gives_back_running_jobs(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let runs = Arc::new(Runs::default());
    let mut worker = Worker::new(ctx.storage.clone(), runs.clone(), config("w", 4));
    worker.register_fn("stuck", |app, job| {
        Box::pin(async move {
            app.count(job);
            std::future::pending::<()>().await;
            Ok(())
        })
    });
    worker.register_fn("short", |app, job| {
        Box::pin(async move {
            app.count(job);
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(())
        })
    });
    let handle = worker.start();
    let (stuck, _) = acme.enqueue_job(&job("stuck")).await.unwrap();
    let (short, _) = acme.enqueue_job(&job("short")).await.unwrap();
    handle.wake();
    eventually("both jobs to start", Duration::from_secs(20), || async {
        runs.of(stuck.id) == 1 && runs.of(short.id) == 1
    })
    .await;

    let started = Instant::now();
    handle.shutdown(Duration::from_secs(1)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // The short one finished within the grace period; the stuck one is back in
    // the queue as if never claimed.
    assert_eq!(state_of(&ctx, "acme", short.id).await, JobState::Done);
    let back = acme.job(stuck.id).await.unwrap().unwrap();
    assert_eq!((back.state, back.attempts), (JobState::Queued, 0));
    assert!(back.locked_by.is_none() && back.lease_until.is_none());

    // Nothing lost: the next worker runs it.
    let mut worker = Worker::new(ctx.storage.clone(), runs.clone(), config("w2", 1));
    worker.register_fn("stuck", |app, job| {
        Box::pin(async move {
            app.count(job);
            Ok(())
        })
    });
    let handle = worker.start();
    eventually(
        "the given-back job to finish",
        Duration::from_secs(20),
        || async { state_of(&ctx, "acme", stuck.id).await == JobState::Done },
    )
    .await;
    handle.shutdown(Duration::ZERO).await;
    assert_eq!(runs.of(stuck.id), 2);
}

async fn dropping_the_handle_gives_back_running_jobs(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let runs = Arc::new(Runs::default());
    let mut worker = Worker::new(ctx.storage.clone(), runs.clone(), config("", 0));
    worker.register_fn("stuck", |app, job| {
        Box::pin(async move {
            app.count(job);
            std::future::pending::<()>().await;
            Ok(())
        })
    });
    let handle = worker.start();
    assert!(!handle.worker_id().is_empty(), "an empty id is replaced");
    let (stuck, _) = acme.enqueue_job(&job("stuck")).await.unwrap();
    eventually("the job to start", Duration::from_secs(20), || async {
        runs.of(stuck.id) == 1
    })
    .await;
    drop(handle);
    eventually(
        "the job to be given back",
        Duration::from_secs(20),
        || async { state_of(&ctx, "acme", stuck.id).await == JobState::Queued },
    )
    .await;
    assert_eq!(acme.job(stuck.id).await.unwrap().unwrap().attempts, 0);
}

async fn two_workers_share_the_queue_and_run_each_job_once(ctx: Ctx) {
    const TENANTS: usize = 5;
    const PER_TENANT: usize = 100;
    let mut handles = Vec::new();
    for t in 0..TENANTS {
        let db = ctx.tenant(&format!("t{t}")).await;
        db.enqueue_jobs(&vec![job("count"); PER_TENANT])
            .await
            .unwrap();
        handles.push(db);
    }
    // Two hosts: two pools on the same database.
    let other_host = Storage::connect(&ctx.url, &options()).await.unwrap();
    #[derive(Default)]
    struct Seen {
        runs: Runs,
        by_worker: Mutex<HashMap<String, usize>>,
    }
    let seen = Arc::new(Seen::default());
    let mut started = Vec::new();
    for (storage, id) in [
        (ctx.storage.clone(), "host-1"),
        (other_host.clone(), "host-2"),
    ] {
        let mut worker = Worker::new(storage, seen.clone(), config(id, 4));
        worker.register_fn("count", |seen: &Seen, job| {
            Box::pin(async move {
                seen.runs.count(job);
                let worker = job.job.locked_by.clone().unwrap_or_default();
                *seen.by_worker.lock().unwrap().entry(worker).or_default() += 1;
                tokio::task::yield_now().await;
                Ok(())
            })
        });
        started.push(worker.start());
    }
    eventually(
        "all 500 jobs to be done",
        Duration::from_secs(120),
        || async {
            let mut done = 0;
            for db in &handles {
                done += db.jobs(Some(JobState::Done), 1_000).await.unwrap().len();
            }
            done == TENANTS * PER_TENANT
        },
    )
    .await;
    for handle in started {
        handle.shutdown(Duration::from_secs(5)).await;
    }
    other_host.close().await;

    {
        let runs = seen.runs.0.lock().unwrap();
        assert_eq!(runs.len(), TENANTS * PER_TENANT);
        assert!(runs.values().all(|&n| n == 1), "a job ran twice");
        let by_worker = seen.by_worker.lock().unwrap();
        assert_eq!(by_worker.values().sum::<usize>(), TENANTS * PER_TENANT);
        assert!(
            by_worker.len() == 2 && by_worker.values().all(|&n| n > 0),
            "both hosts worked: {by_worker:?}"
        );
    }
    for db in &handles {
        for j in db.jobs(None, 1_000).await.unwrap() {
            assert_eq!((j.state, j.attempts), (JobState::Done, 1));
        }
    }
}

async fn a_backlog_delays_another_tenant_by_at_most_the_bound(ctx: Ctx) {
    const CONCURRENCY: usize = 2;
    // The bound documented in `crate::jobs`: B's job completes before the
    // backlog's tenant completes 2 × concurrency more jobs.
    const BOUND: usize = 2 * CONCURRENCY;
    let heavy = ctx.tenant("a-heavy").await;
    let light = ctx.tenant("b-light").await;
    assert_eq!(
        heavy
            .enqueue_jobs(&vec![job("work"); 10_000])
            .await
            .unwrap(),
        10_000
    );

    #[derive(Default)]
    struct Progress {
        heavy_done: AtomicUsize,
        light_started_at: Mutex<Option<usize>>,
        light_done_at: Mutex<Option<usize>>,
    }
    let progress = Arc::new(Progress::default());
    let mut worker = Worker::new(
        ctx.storage.clone(),
        progress.clone(),
        config("w", CONCURRENCY),
    );
    worker.register_fn("work", |p: &Progress, job| {
        Box::pin(async move {
            let light = job.tenant.as_str() == "b-light";
            if light {
                *p.light_started_at.lock().unwrap() = Some(p.heavy_done.load(Ordering::SeqCst));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            if light {
                *p.light_done_at.lock().unwrap() = Some(p.heavy_done.load(Ordering::SeqCst));
            } else {
                p.heavy_done.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        })
    });
    let handle = worker.start();
    eventually(
        "the backlog to be under way",
        Duration::from_secs(30),
        || async { progress.heavy_done.load(Ordering::SeqCst) >= 30 },
    )
    .await;

    light.enqueue_job(&job("work")).await.unwrap();
    // Read once the job is queued. A free worker may claim it before this read
    // (the heavy tenant is at its cap of running jobs), so the counts below
    // saturate at zero.
    let ready_at = progress.heavy_done.load(Ordering::SeqCst);
    eventually(
        "the light tenant's job",
        Duration::from_secs(30),
        || async { progress.light_done_at.lock().unwrap().is_some() },
    )
    .await;
    handle.shutdown(Duration::from_secs(5)).await;

    let started = progress
        .light_started_at
        .lock()
        .unwrap()
        .unwrap()
        .saturating_sub(ready_at);
    let done = progress
        .light_done_at
        .lock()
        .unwrap()
        .unwrap()
        .saturating_sub(ready_at);
    eprintln!(
        "{:?}: after the light job was ready, the backlog completed {started} jobs before it \
         started and {done} before it completed (bound {BOUND})",
        ctx.backend()
    );
    assert!(done <= BOUND, "{done} > {BOUND}");
    assert!(started <= done);
    let left = heavy
        .jobs(Some(JobState::Queued), 10_000)
        .await
        .unwrap()
        .len();
    assert!(left > 9_000, "the backlog was still there: {left} queued");
}

// ---------------------------------------------------------------------------
// Bounds: the per-tenant cap, suspension, the time budget.

async fn a_tenant_at_its_cap_waits_while_other_tenants_are_claimed(ctx: Ctx) {
    const CAP: u32 = 2;
    let platform = ctx.storage.platform();
    let heavy = ctx.tenant("heavy").await;
    let light = ctx.tenant("light").await;
    heavy.enqueue_jobs(&vec![job("x"); 10]).await.unwrap();
    let claim = |limit: u32| {
        let platform = platform.clone();
        async move { platform.claim_jobs("w", limit, LEASE, CAP).await.unwrap() }
    };
    let tenants = |jobs: &[JobRecord]| jobs.iter().map(|j| j.tenant_id.clone()).collect::<Vec<_>>();

    // Heavy fills its cap, one job per claim; then nothing more of it is
    // claimed, however many of its jobs are ready.
    let mut heavy_running = Vec::new();
    for _ in 0..CAP {
        let got = claim(10).await;
        assert_eq!(tenants(&got), ["heavy"]);
        heavy_running.extend(got);
    }
    assert!(claim(10).await.is_empty(), "heavy is at its cap");

    // Light is served (twice, so that heavy is now the least recently served
    // tenant, first in the rotation) ...
    light.enqueue_jobs(&vec![job("x"); 3]).await.unwrap();
    for _ in 0..2 {
        let got = claim(1).await;
        assert_eq!(tenants(&got), ["light"]);
        assert!(platform.complete_job(got[0].id, "w").await.unwrap());
    }
    // ... and a claim of one still takes light's job, not nothing: a capped
    // tenant does not use up the claim's limit.
    let got = claim(1).await;
    assert_eq!(tenants(&got), ["light"], "the capped tenant is passed over");
    assert!(platform.complete_job(got[0].id, "w").await.unwrap());

    // One of heavy's jobs ends: heavy gets the freed place, and only it.
    assert!(
        platform
            .complete_job(heavy_running[0].id, "w")
            .await
            .unwrap()
    );
    let got = claim(10).await;
    assert_eq!(tenants(&got), ["heavy"]);
    heavy_running[0] = got[0].clone();
    assert!(claim(10).await.is_empty());

    // A job whose lease ran out (its worker died) no longer counts, and is
    // the one heavy gets back first.
    let orphan = heavy_running[1].id;
    assert!(
        platform
            .extend_lease(orphan, "w", Duration::from_millis(1))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(30)).await;
    let got = claim(10).await;
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id, got[0].attempts), (orphan, 2));
    assert!(claim(10).await.is_empty());
    let running = heavy.jobs(Some(JobState::Running), 100).await.unwrap();
    assert_eq!(running.len(), CAP as usize);

    // A cap of 0 counts as 1.
    let solo = ctx.tenant("solo").await;
    solo.enqueue_jobs(&vec![job("x"); 3]).await.unwrap();
    let got = platform.claim_jobs("w", 10, LEASE, 0).await.unwrap();
    assert_eq!(tenants(&got), ["solo"]);
    assert!(
        platform
            .claim_jobs("w", 10, LEASE, 0)
            .await
            .unwrap()
            .is_empty()
    );

    // Hosts claiming at the same moment never take a tenant past its cap.
    let crowd = ctx.tenant("crowd").await;
    crowd.enqueue_jobs(&vec![job("x"); 40]).await.unwrap();
    let other_host = Storage::connect(&ctx.url, &options()).await.unwrap();
    let mut claims = tokio::task::JoinSet::new();
    for i in 0..12 {
        let storage = if i % 2 == 0 {
            ctx.storage.clone()
        } else {
            other_host.clone()
        };
        claims.spawn(async move {
            storage
                .platform()
                .claim_jobs(&format!("w{i}"), 10, LEASE, CAP)
                .await
        });
    }
    let mut crowd_claimed = 0;
    while let Some(done) = claims.join_next().await {
        let jobs = match done.unwrap() {
            Ok(jobs) => jobs,
            // SQLite may answer "busy" to a claimer that waited too long: a
            // claim that took nothing.
            Err(StorageError::Unavailable(_)) => Vec::new(),
            Err(e) => panic!("{e}"),
        };
        crowd_claimed += jobs.iter().filter(|j| j.tenant_id == "crowd").count();
    }
    other_host.close().await;
    assert!(crowd_claimed <= CAP as usize, "{crowd_claimed} claimed");
    assert_eq!(
        crowd
            .jobs(Some(JobState::Running), 100)
            .await
            .unwrap()
            .len(),
        crowd_claimed
    );
}

async fn a_suspended_tenants_jobs_are_held_until_it_is_resumed(ctx: Ctx) {
    use crate::storage::{TenantPatch, TenantStatus};
    let platform = ctx.storage.platform();
    let held = ctx.tenant("held").await;
    let other = ctx.tenant("other").await;
    // Three kinds of ready job: one whose worker died (expired lease), one
    // due for a retry, one queued.
    let (orphan, _) = held.enqueue_job(&job("send")).await.unwrap();
    let (retrying, _) = held.enqueue_job(&job("send")).await.unwrap();
    let (queued, _) = held.enqueue_job(&job("send")).await.unwrap();
    assert_eq!(claim_one(&ctx, "w", LEASE).await.unwrap().id, orphan.id);
    assert_eq!(claim_one(&ctx, "w", LEASE).await.unwrap().id, retrying.id);
    let state = platform
        .fail_job(retrying.id, "w", "451 try later", Some(now_ms()))
        .await
        .unwrap();
    assert_eq!(state, Some(JobState::Queued));
    assert!(
        platform
            .extend_lease(orphan.id, "w", Duration::from_millis(1))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(30)).await;

    let status = |status| TenantPatch {
        status: Some(status),
        ..TenantPatch::default()
    };
    platform
        .update_tenant(&tid("held"), &status(TenantStatus::Suspended))
        .await
        .unwrap();
    let snapshot = || async {
        let mut jobs: Vec<_> = held
            .jobs(None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|j| (j.id, j.state, j.attempts, j.run_at, j.locked_by))
            .collect();
        jobs.sort_by_key(|j| j.0);
        jobs
    };
    let before = snapshot().await;
    let (theirs, _) = other.enqueue_job(&job("send")).await.unwrap();

    // Suspended: nothing of it is claimed; the other tenant is served.
    let got = platform.claim_jobs("w2", 10, LEASE, NO_CAP).await.unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), [theirs.id]);
    for _ in 0..3 {
        assert!(
            platform
                .claim_jobs("w2", 10, LEASE, NO_CAP)
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(snapshot().await, before, "held jobs are untouched");

    // Resumed: all three come back, the orphan first.
    platform
        .update_tenant(&tid("held"), &status(TenantStatus::Active))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let j = claim_one(&ctx, "w3", LEASE).await.unwrap();
        assert_eq!(j.tenant_id, "held");
        ids.push(j.id);
    }
    assert_eq!(ids[0], orphan.id);
    ids.sort();
    let mut expected = vec![orphan.id, retrying.id, queued.id];
    expected.sort();
    assert_eq!(ids, expected);
}

/// Counts how many runs of a handler were stopped (dropped unfinished).
struct Stopped<'a>(&'a AtomicUsize);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

async fn a_job_past_its_budget_fails_and_is_retried_then_dead_lettered(ctx: Ctx) {
    #[derive(Default)]
    struct App {
        runs: Runs,
        stopped: AtomicUsize,
    }
    const BUDGET: Duration = Duration::from_millis(300);
    let acme = ctx.tenant("acme").await;
    let app = Arc::new(App::default());
    let mut worker = Worker::new(ctx.storage.clone(), app.clone(), config("w", 3));
    worker.register_fn("stuck", |app: &App, job| {
        Box::pin(async move {
            app.runs.count(job);
            let _guard = Stopped(&app.stopped);
            std::future::pending::<()>().await;
            Ok(())
        })
    });
    worker.set_budget("stuck", BUDGET);
    worker.register_fn("in-time", |app: &App, job| {
        Box::pin(async move {
            app.runs.count(job);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(())
        })
    });
    worker.set_budget("in-time", BUDGET);
    // The default budget (60 s in `config`) covers every other kind.
    worker.register_fn("slowish", |app: &App, job| {
        Box::pin(async move {
            app.runs.count(job);
            tokio::time::sleep(BUDGET * 2).await;
            Ok(())
        })
    });
    let handle = worker.start();
    let started = Instant::now();
    let (stuck, _) = acme
        .enqueue_job(&NewJob {
            max_attempts: 2,
            ..job("stuck")
        })
        .await
        .unwrap();
    let (in_time, _) = acme.enqueue_job(&job("in-time")).await.unwrap();
    let (slowish, _) = acme.enqueue_job(&job("slowish")).await.unwrap();
    handle.wake();

    eventually(
        "the stuck job to be dead",
        Duration::from_secs(20),
        || async { state_of(&ctx, "acme", stuck.id).await == JobState::Dead },
    )
    .await;
    let took = started.elapsed();
    let dead = acme.job(stuck.id).await.unwrap().unwrap();
    assert_eq!((dead.attempts, app.runs.of(stuck.id)), (2, 2));
    let error = dead.last_error.unwrap();
    assert!(error.contains("time budget of 300 ms"), "{error}");
    assert!(
        took >= BUDGET * 2 && took < Duration::from_secs(15),
        "two attempts of {BUDGET:?}: {took:?}"
    );
    eventually(
        "both runs to be stopped",
        Duration::from_secs(5),
        || async { app.stopped.load(Ordering::SeqCst) == 2 },
    )
    .await;

    for id in [in_time.id, slowish.id] {
        eventually(
            "the other jobs to finish",
            Duration::from_secs(20),
            || async { state_of(&ctx, "acme", id).await == JobState::Done },
        )
        .await;
        let done = acme.job(id).await.unwrap().unwrap();
        assert_eq!((done.attempts, done.last_error), (1, None));
    }
    handle.shutdown(Duration::from_secs(5)).await;
}

async fn a_slow_tenant_leaves_free_workers_to_the_others(ctx: Ctx) {
    #[derive(Default)]
    struct App {
        runs: Runs,
        slow_now: AtomicUsize,
        slow_most: AtomicUsize,
    }
    let slow = ctx.tenant("slow").await;
    let quick = ctx.tenant("quick").await;
    let app = Arc::new(App::default());
    // Three slots, at most two for one tenant (as `config` says).
    let mut worker = Worker::new(ctx.storage.clone(), app.clone(), config("w", 3));
    worker.register_fn("work", |app: &App, job| {
        Box::pin(async move {
            app.runs.count(job);
            if job.tenant.as_str() == "slow" {
                let now = app.slow_now.fetch_add(1, Ordering::SeqCst) + 1;
                app.slow_most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(30)).await;
                app.slow_now.fetch_sub(1, Ordering::SeqCst);
            }
            Ok(())
        })
    });
    let handle = worker.start();
    slow.enqueue_jobs(&vec![job("work"); 6]).await.unwrap();
    handle.wake();
    eventually(
        "the slow jobs to start",
        Duration::from_secs(20),
        || async { app.slow_now.load(Ordering::SeqCst) == 2 },
    )
    .await;
    // Give the worker time to claim more of them if it would.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let ready = Instant::now();
    let (mine, _) = quick.enqueue_job(&job("work")).await.unwrap();
    eventually(
        "the quick tenant's job",
        Duration::from_secs(20),
        || async { state_of(&ctx, "quick", mine.id).await == JobState::Done },
    )
    .await;
    let waited = ready.elapsed();
    eprintln!(
        "{:?}: the quick tenant's job was done {waited:?} after it was ready",
        ctx.backend()
    );
    assert!(
        waited < Duration::from_secs(5),
        "waited {waited:?} behind the slow tenant"
    );
    assert_eq!(app.slow_most.load(Ordering::SeqCst), 2, "the cap held");
    assert_eq!(
        slow.jobs(Some(JobState::Running), 10).await.unwrap().len(),
        2
    );
    handle.shutdown(Duration::ZERO).await;
    assert_eq!(
        slow.jobs(Some(JobState::Queued), 10).await.unwrap().len(),
        6,
        "the slow ones were given back"
    );
}
