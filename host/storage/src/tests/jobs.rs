//! Background jobs: the queue through the tenant and platform handles, then the
//! worker (`crate::jobs`) running it on real databases: retries, dead letters,
//! reclaim after a worker dies, shutdown, two hosts sharing one queue, and the
//! fairness bound. On PostgreSQL, tenant `a` attacks `b`'s jobs from below.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::postgres::PgQueryResult;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::harness::{Ctx, on_postgres, options, tid};
use crate::jobs::{JobContext, JobError, JobFuture, JobHandler, Worker, WorkerConfig};
use crate::storage::time::now_ms;
use crate::storage::{JobRecord, JobState, MAX_JOB_ERROR_BYTES, NewJob, Storage, StorageError};
use crate::test_support::wait_for as eventually;

crate::both_backends!(via crate::storage::tests::harness::run;
    enqueue_dedupes_per_tenant_and_checks_input,
    claim_leases_one_job_and_complete_finishes_it,
    failures_back_off_then_dead_letter,
    dead_jobs_are_retried_by_their_own_tenant_only,
    expired_leases_are_reclaimed_and_the_old_owner_loses,
    a_released_job_keeps_its_place_and_its_attempts,
    claims_take_one_job_per_tenant_in_rotation,
    pruning_removes_only_old_done_jobs,
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

/// A per-tenant cap no test reaches, for the tests about something else.
const NO_CAP: u32 = u32::MAX;

fn job(kind: &str) -> NewJob<'_> {
    NewJob {
        kind,
        payload: r#"{"n":1}"#,
        max_attempts: 3,
        run_at: None,
        dedupe_key: None,
    }
}

async fn claim_one(ctx: &Ctx, worker: &str, lease: Duration) -> Option<JobRecord> {
    let mut claimed = ctx
        .storage
        .platform()
        .claim_jobs(worker, 1, lease, NO_CAP)
        .await
        .unwrap();
    assert!(claimed.len() <= 1);
    claimed.pop()
}

async fn enqueue_jobs_are_stored_as_given(ctx: &Ctx) {
    let acme = ctx.storage.tenant(&tid("acme"));
    let at = now_ms() + 3_600_000;
    let (later, created) = acme
        .enqueue_job(&NewJob {
            run_at: Some(at),
            max_attempts: 7,
            payload: r##"{"order":"#1001","lines":[1,2]}"##,
            ..job("sync-order")
        })
        .await
        .unwrap();
    assert!(created);
    assert_eq!(
        (
            later.kind.as_str(),
            later.state,
            later.attempts,
            later.max_attempts,
            later.run_at
        ),
        ("sync-order", JobState::Queued, 0, 7, at)
    );
    assert_eq!(later.payload, json!({"order": "#1001", "lines": [1, 2]}));
}

async fn enqueue_dedupes_per_tenant_and_checks_input(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let beta = ctx.tenant("beta").await;
    let before = now_ms();
    let keyed = NewJob {
        dedupe_key: Some("webhook-1"),
        ..job("webhook")
    };
    let (first, created) = acme.enqueue_job(&keyed).await.unwrap();
    assert!(created);
    assert_eq!(first.tenant_id, "acme");
    assert_eq!(
        (
            first.kind.as_str(),
            first.state,
            first.attempts,
            first.max_attempts
        ),
        ("webhook", JobState::Queued, 0, 3)
    );
    assert_eq!(first.payload, json!({"n": 1}));
    assert!(first.run_at >= before && first.run_at == first.created_at);
    assert!(first.locked_by.is_none() && first.lease_until.is_none());
    assert!(first.finished_at.is_none() && first.last_error.is_none());

    // The same key again: the existing job, untouched.
    let (again, created) = acme
        .enqueue_job(&NewJob {
            payload: r#"{"n":2}"#,
            ..keyed
        })
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.id, first.id);
    assert_eq!(again.payload, json!({"n": 1}));
    // Keys are per tenant.
    let (theirs, created) = beta.enqueue_job(&keyed).await.unwrap();
    assert!(created);
    assert_ne!(theirs.id, first.id);
    assert_eq!(theirs.tenant_id, "beta");
    // Without a key nothing is deduplicated.
    let (a, _) = acme.enqueue_job(&job("plain")).await.unwrap();
    let (b, _) = acme.enqueue_job(&job("plain")).await.unwrap();
    assert_ne!(a.id, b.id);
    enqueue_jobs_are_stored_as_given(&ctx).await;

    // A batch, in several statements, one transaction: keys taken before or
    // earlier in the batch are skipped.
    let keys: Vec<String> = (0..250).map(|i| format!("k{i}")).collect();
    let mut batch: Vec<NewJob> = keys
        .iter()
        .map(|k| NewJob {
            dedupe_key: Some(k),
            ..job("bulk")
        })
        .collect();
    batch.push(NewJob {
        dedupe_key: Some("k0"),
        ..job("bulk")
    });
    batch.push(keyed);
    batch.push(job("bulk"));
    assert_eq!(acme.enqueue_jobs(&batch).await.unwrap(), 251);
    assert_eq!(acme.enqueue_jobs(&[]).await.unwrap(), 0);
    let all = acme.jobs(None, 1_000).await.unwrap();
    assert_eq!(all.len(), 4 + 251);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(acme.jobs(None, 10).await.unwrap().len(), 10);
    assert_eq!(beta.jobs(None, 1_000).await.unwrap().len(), 1);

    // Bad input is refused and stores nothing, even mid-batch.
    for bad in [
        NewJob {
            kind: "",
            ..job("x")
        },
        NewJob {
            payload: "{not json",
            ..job("x")
        },
        NewJob {
            max_attempts: 0,
            ..job("x")
        },
        NewJob {
            dedupe_key: Some("nul\0"),
            ..job("x")
        },
    ] {
        assert!(
            matches!(acme.enqueue_job(&bad).await, Err(StorageError::Invalid(_))),
            "{bad:?}"
        );
        assert!(matches!(
            acme.enqueue_jobs(&[job("fine"), bad]).await,
            Err(StorageError::Invalid(_))
        ));
    }
    assert_eq!(acme.jobs(None, 1_000).await.unwrap().len(), 4 + 251);

    let ghost = ctx.storage.tenant(&tid("ghost"));
    match ghost.enqueue_job(&job("x")).await {
        Err(StorageError::NotFound(m)) => assert!(m.contains("ghost"), "{m}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        ghost.enqueue_jobs(&[job("x")]).await,
        Err(StorageError::NotFound(_))
    ));
}

async fn claim_leases_one_job_and_complete_finishes_it(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let platform = ctx.storage.platform();
    let (now_job, _) = acme.enqueue_job(&job("sync")).await.unwrap();
    let (later, _) = acme
        .enqueue_job(&NewJob {
            run_at: Some(now_ms() + 3_600_000),
            ..job("later")
        })
        .await
        .unwrap();

    let before = now_ms();
    let claimed = platform.claim_jobs("w1", 10, LEASE, NO_CAP).await.unwrap();
    assert_eq!(claimed.len(), 1, "the later job is not due");
    let c = &claimed[0];
    assert_eq!(c.id, now_job.id);
    assert_eq!((c.state, c.attempts), (JobState::Running, 1));
    assert_eq!(c.locked_by.as_deref(), Some("w1"));
    let lease_until = c.lease_until.unwrap();
    assert!(lease_until >= before + 30_000 && lease_until <= now_ms() + 30_000);
    assert_eq!(
        acme.job(c.id).await.unwrap().unwrap().state,
        JobState::Running
    );

    // Leased: nobody else gets it.
    assert!(
        platform
            .claim_jobs("w2", 10, LEASE, NO_CAP)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!platform.complete_job(c.id, "w2").await.unwrap());
    assert!(platform.complete_job(c.id, "w1").await.unwrap());
    assert!(
        !platform.complete_job(c.id, "w1").await.unwrap(),
        "only once"
    );
    let done = acme.job(c.id).await.unwrap().unwrap();
    assert_eq!((done.state, done.attempts), (JobState::Done, 1));
    assert!(done.finished_at.is_some() && done.locked_by.is_none() && done.lease_until.is_none());

    let ids = |jobs: Vec<JobRecord>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(
        ids(acme.jobs(Some(JobState::Done), 10).await.unwrap()),
        [now_job.id]
    );
    assert_eq!(
        ids(acme.jobs(Some(JobState::Queued), 10).await.unwrap()),
        [later.id]
    );
    assert!(
        acme.jobs(Some(JobState::Running), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        platform
            .claim_jobs("w1", 10, LEASE, NO_CAP)
            .await
            .unwrap()
            .is_empty()
    );

    assert!(
        platform
            .claim_jobs("w1", 0, LEASE, NO_CAP)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        platform.claim_jobs("", 1, LEASE, NO_CAP).await,
        Err(StorageError::Invalid(_))
    ));
}

async fn failures_back_off_then_dead_letter(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let platform = ctx.storage.platform();
    let (j, _) = acme.enqueue_job(&job("flaky")).await.unwrap();

    // Attempt 1 fails for a while: queued again, not before its retry time.
    let c = claim_one(&ctx, "w", LEASE).await.unwrap();
    assert_eq!(c.attempts, 1);
    let retry_at = now_ms() + 300;
    assert!(
        platform
            .fail_job(j.id, "other", "nope", Some(retry_at))
            .await
            .unwrap()
            .is_none()
    );
    let state = platform
        .fail_job(j.id, "w", "timeout 1", Some(retry_at))
        .await
        .unwrap();
    assert_eq!(state, Some(JobState::Queued));
    let queued = acme.job(j.id).await.unwrap().unwrap();
    assert_eq!(
        (queued.state, queued.attempts, queued.run_at),
        (JobState::Queued, 1, retry_at)
    );
    assert_eq!(queued.last_error.as_deref(), Some("timeout 1"));
    assert!(
        queued.locked_by.is_none() && queued.lease_until.is_none() && queued.finished_at.is_none()
    );
    assert!(claim_one(&ctx, "w", LEASE).await.is_none(), "backing off");
    tokio::time::sleep(Duration::from_millis(350)).await;

    // Attempts 2 and 3; the third failure is the last.
    let c = claim_one(&ctx, "w", LEASE).await.unwrap();
    assert_eq!((c.id, c.attempts), (j.id, 2));
    let state = platform
        .fail_job(j.id, "w", "timeout 2", Some(now_ms()))
        .await
        .unwrap();
    assert_eq!(state, Some(JobState::Queued));
    let c = claim_one(&ctx, "w", LEASE).await.unwrap();
    assert_eq!(c.attempts, 3);
    let long = format!("timeout 3 {}", "x".repeat(3 * MAX_JOB_ERROR_BYTES));
    let state = platform
        .fail_job(j.id, "w", &long, Some(now_ms()))
        .await
        .unwrap();
    assert_eq!(state, Some(JobState::Dead));
    let dead = acme.job(j.id).await.unwrap().unwrap();
    assert_eq!((dead.state, dead.attempts), (JobState::Dead, 3));
    assert!(dead.finished_at.is_some() && dead.locked_by.is_none());
    let error = dead.last_error.unwrap();
    assert!(
        error.starts_with("timeout 3 xxx") && error.len() <= MAX_JOB_ERROR_BYTES,
        "{}",
        error.len()
    );
    assert!(
        claim_one(&ctx, "w", LEASE).await.is_none(),
        "the dead stay dead"
    );
    let dead_letters = acme.jobs(Some(JobState::Dead), 10).await.unwrap();
    assert_eq!(dead_letters.len(), 1);

    // A permanent failure dead-letters at once, attempts left or not.
    let (k, _) = acme.enqueue_job(&job("broken")).await.unwrap();
    claim_one(&ctx, "w", LEASE).await.unwrap();
    let state = platform
        .fail_job(k.id, "w", "bad payload\0!", None)
        .await
        .unwrap();
    assert_eq!(state, Some(JobState::Dead));
    let dead = acme.job(k.id).await.unwrap().unwrap();
    assert_eq!(dead.attempts, 1);
    assert_eq!(dead.last_error.as_deref(), Some("bad payload\u{FFFD}!"));
    assert!(
        platform
            .fail_job(k.id, "w", "again", None)
            .await
            .unwrap()
            .is_none()
    );
}

async fn dead_jobs_are_retried_by_their_own_tenant_only(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let beta = ctx.tenant("beta").await;
    let platform = ctx.storage.platform();
    let (j, _) = acme
        .enqueue_job(&NewJob {
            max_attempts: 1,
            ..job("once")
        })
        .await
        .unwrap();
    claim_one(&ctx, "w", LEASE).await.unwrap();
    let state = platform
        .fail_job(j.id, "w", "boom", Some(now_ms()))
        .await
        .unwrap();
    assert_eq!(state, Some(JobState::Dead), "no attempts left");

    // The attack: beta names acme's job id.
    assert!(beta.job(j.id).await.unwrap().is_none());
    assert!(matches!(
        beta.retry_job(j.id).await,
        Err(StorageError::NotFound(_))
    ));
    assert!(beta.jobs(None, 100).await.unwrap().is_empty());
    assert!(
        beta.jobs(Some(JobState::Dead), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        acme.job(j.id).await.unwrap().unwrap().state,
        JobState::Dead,
        "untouched"
    );
    assert!(matches!(
        acme.retry_job(j.id + 1_000).await,
        Err(StorageError::NotFound(_))
    ));

    let before = now_ms();
    let retried = acme.retry_job(j.id).await.unwrap();
    assert_eq!((retried.state, retried.attempts), (JobState::Queued, 0));
    assert!(retried.run_at >= before && retried.finished_at.is_none());
    assert_eq!(
        retried.last_error.as_deref(),
        Some("boom"),
        "kept for the record"
    );
    match acme.retry_job(j.id).await {
        Err(StorageError::Conflict(m)) => assert!(m.contains("queued"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let c = claim_one(&ctx, "w", LEASE).await.unwrap();
    assert_eq!((c.id, c.attempts), (j.id, 1));
    assert!(platform.complete_job(j.id, "w").await.unwrap());
    assert!(matches!(
        acme.retry_job(j.id).await,
        Err(StorageError::Conflict(_))
    ));
}

async fn expired_leases_are_reclaimed_and_the_old_owner_loses(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let platform = ctx.storage.platform();
    let (j, _) = acme.enqueue_job(&job("slow")).await.unwrap();
    let first = claim_one(&ctx, "w1", Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(first.attempts, 1);
    tokio::time::sleep(Duration::from_millis(30)).await;

    let second = claim_one(&ctx, "w2", LEASE).await.unwrap();
    assert_eq!(second.id, j.id);
    assert_eq!(
        (second.attempts, second.locked_by.as_deref()),
        (2, Some("w2"))
    );
    // w1 comes back from the dead: it owns nothing any more.
    assert!(!platform.complete_job(j.id, "w1").await.unwrap());
    assert!(
        platform
            .fail_job(j.id, "w1", "late", None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!platform.extend_lease(j.id, "w1", LEASE).await.unwrap());
    assert!(!platform.release_job(j.id, "w1").await.unwrap());
    let lease = second.lease_until.unwrap();
    assert!(platform.extend_lease(j.id, "w2", LEASE * 2).await.unwrap());
    let extended = acme.job(j.id).await.unwrap().unwrap();
    assert!(extended.lease_until.unwrap() > lease);
    assert!(platform.complete_job(j.id, "w2").await.unwrap());
    assert_eq!(acme.job(j.id).await.unwrap().unwrap().last_error, None);

    // A lease that expires on the last attempt is dead-lettered, not run again.
    let (k, _) = acme
        .enqueue_job(&NewJob {
            max_attempts: 1,
            ..job("fatal")
        })
        .await
        .unwrap();
    claim_one(&ctx, "w1", Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(claim_one(&ctx, "w2", LEASE).await.is_none());
    let dead = acme.job(k.id).await.unwrap().unwrap();
    assert_eq!((dead.state, dead.attempts), (JobState::Dead, 1));
    let error = dead.last_error.unwrap();
    assert!(
        error.contains("lease expired") && error.contains("w1"),
        "{error}"
    );
    assert!(dead.finished_at.is_some() && dead.locked_by.is_none());
}

async fn a_released_job_keeps_its_place_and_its_attempts(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let platform = ctx.storage.platform();
    let (j, _) = acme.enqueue_job(&job("x")).await.unwrap();
    let (k, _) = acme.enqueue_job(&job("x")).await.unwrap();
    let c = claim_one(&ctx, "w1", LEASE).await.unwrap();
    assert_eq!((c.id, c.attempts), (j.id, 1));
    assert!(!platform.release_job(j.id, "w2").await.unwrap());
    assert!(platform.release_job(j.id, "w1").await.unwrap());
    let released = acme.job(j.id).await.unwrap().unwrap();
    assert_eq!((released.state, released.attempts), (JobState::Queued, 0));
    assert_eq!(released.run_at, j.run_at);
    assert!(released.locked_by.is_none() && released.lease_until.is_none());
    assert!(!platform.release_job(j.id, "w1").await.unwrap());
    // Still first in line, ahead of the job enqueued after it.
    let again = claim_one(&ctx, "w2", LEASE).await.unwrap();
    assert_eq!((again.id, again.attempts), (j.id, 1));
    assert_eq!(claim_one(&ctx, "w2", LEASE).await.unwrap().id, k.id);
}

async fn claims_take_one_job_per_tenant_in_rotation(ctx: Ctx) {
    let platform = ctx.storage.platform();
    let a = ctx.tenant("a").await;
    let b = ctx.tenant("b").await;
    let c = ctx.tenant("c").await;
    a.enqueue_jobs(&vec![job("x"); 500]).await.unwrap();
    b.enqueue_jobs(&vec![job("x"); 4]).await.unwrap();
    c.enqueue_jobs(&vec![job("x"); 4]).await.unwrap();

    // One claim: one job from each tenant, never two from the backlog.
    let round = platform.claim_jobs("w", 10, LEASE, NO_CAP).await.unwrap();
    let mut tenants: Vec<_> = round.iter().map(|j| j.tenant_id.clone()).collect();
    tenants.sort();
    assert_eq!(tenants, ["a", "b", "c"]);
    for j in &round {
        assert!(platform.complete_job(j.id, "w").await.unwrap());
    }

    // One at a time: strict rotation while everyone has work, whatever the
    // backlog, and each tenant's jobs oldest first.
    let mut order = Vec::new();
    let mut last_id: HashMap<String, i64> = HashMap::new();
    for _ in 0..6 {
        let j = claim_one(&ctx, "w", LEASE).await.unwrap();
        if let Some(prev) = last_id.insert(j.tenant_id.clone(), j.id) {
            assert!(j.id > prev, "oldest first within a tenant");
        }
        assert!(platform.complete_job(j.id, "w").await.unwrap());
        order.push(j.tenant_id);
    }
    for window in order.windows(3) {
        let mut w = window.to_vec();
        w.sort();
        assert_eq!(w, ["a", "b", "c"], "{order:?}");
    }

    // A newcomer goes first, ahead of every tenant served before.
    let d = ctx.tenant("d").await;
    let (dj, _) = d.enqueue_job(&job("x")).await.unwrap();
    assert_eq!(claim_one(&ctx, "w", LEASE).await.unwrap().id, dj.id);
    // Tenants with nothing ready are skipped; the backlog carries on.
    let rest = platform.claim_jobs("w", 10, LEASE, NO_CAP).await.unwrap();
    let tenants: Vec<_> = rest.iter().map(|j| j.tenant_id.as_str()).collect();
    assert_eq!(tenants.len(), 3, "{tenants:?}");
    assert!(!tenants.contains(&"d"));
}

async fn pruning_removes_only_old_done_jobs(ctx: Ctx) {
    let acme = ctx.tenant("acme").await;
    let platform = ctx.storage.platform();
    let keyed = NewJob {
        dedupe_key: Some("once"),
        ..job("x")
    };
    let (done, _) = acme.enqueue_job(&keyed).await.unwrap();
    claim_one(&ctx, "w", LEASE).await.unwrap();
    assert!(platform.complete_job(done.id, "w").await.unwrap());
    let (dead, _) = acme.enqueue_job(&job("y")).await.unwrap();
    claim_one(&ctx, "w", LEASE).await.unwrap();
    platform.fail_job(dead.id, "w", "gone", None).await.unwrap();
    let (queued, _) = acme.enqueue_job(&job("z")).await.unwrap();

    assert_eq!(
        platform.prune_done_jobs(3_600_000).await.unwrap(),
        0,
        "too recent"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(platform.prune_done_jobs(0).await.unwrap(), 1);
    assert!(acme.job(done.id).await.unwrap().is_none());
    assert_eq!(
        acme.job(dead.id).await.unwrap().unwrap().state,
        JobState::Dead
    );
    assert_eq!(
        acme.job(queued.id).await.unwrap().unwrap().state,
        JobState::Queued
    );
    // The key is free again.
    assert!(acme.enqueue_job(&keyed).await.unwrap().1);
}

// ---------------------------------------------------------------------------
// The worker.

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

// ---------------------------------------------------------------------------
// PostgreSQL row-level security on the jobs tables, attacked from below.

async fn app_connection(url: &str) -> PgConnection {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query("SET ROLE veneer_app")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

async fn exec(conn: &mut PgConnection, sql: &str) -> Result<PgQueryResult, sqlx::Error> {
    // Only the literal statements below, never input.
    sqlx::query(AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
}

async fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
        .fetch_one(conn)
        .await
        .unwrap()
}

fn refused(result: Result<PgQueryResult, sqlx::Error>, what: &str) {
    match result {
        Err(sqlx::Error::Database(e)) => {
            assert_eq!(e.code().as_deref(), Some("42501"), "{what}: {e}")
        }
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

fn none_affected(result: Result<PgQueryResult, sqlx::Error>, what: &str) {
    match result {
        Ok(done) => assert_eq!(done.rows_affected(), 0, "{what}"),
        Err(e) => panic!("{what}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_a_cannot_see_or_touch_b_jobs() {
    on_postgres(|ctx: Ctx| async move {
        let a = ctx.tenant("a").await;
        let b = ctx.tenant("b").await;
        ctx.tenant("c").await;
        a.enqueue_job(&job("mine")).await.unwrap();
        b.enqueue_jobs(&[job("secret"), job("secret")]).await.unwrap();
        // Give b a dead job, the kind a would most like to replay.
        let platform = ctx.storage.platform();
        let claimed = platform.claim_jobs("w", 10, LEASE, NO_CAP).await.unwrap();
        let b_job = claimed.iter().find(|j| j.tenant_id == "b").unwrap().id;
        platform.fail_job(b_job, "w", "boom", None).await.unwrap();
        let b_before: Vec<_> = b
            .jobs(None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|j| (j.id, j.state, j.attempts, j.updated_at))
            .collect();

        let mut conn = app_connection(&ctx.url).await;
        sqlx::query("SELECT set_config('app.tenant_id', 'a', false)")
            .execute(&mut conn)
            .await
            .unwrap();
        for table in ["jobs", "job_tenants"] {
            let of_b = count(&mut conn, &format!("SELECT count(*) FROM {table} WHERE tenant_id = 'b'")).await;
            assert_eq!(of_b, 0, "{table}: a reads b's rows");
            let visible = count(&mut conn, &format!("SELECT count(*) FROM {table}")).await;
            assert_eq!(visible, 1, "{table}: a sees only its own row");
            none_affected(
                exec(&mut conn, &format!("DELETE FROM {table} WHERE tenant_id <> 'a'")).await,
                "delete b",
            );
        }
        none_affected(
            exec(&mut conn, "UPDATE jobs SET state = 'queued', attempts = 0, finished_at = NULL WHERE tenant_id = 'b'").await,
            "replay b's dead job",
        );
        none_affected(
            exec(&mut conn, "UPDATE jobs SET tenant_id = 'a' WHERE tenant_id = 'b'").await,
            "steal b's jobs",
        );
        refused(
            exec(&mut conn, "UPDATE jobs SET tenant_id = 'b' WHERE tenant_id = 'a'").await,
            "give a job to b",
        );
        refused(
            exec(
                &mut conn,
                "INSERT INTO jobs (tenant_id, kind, payload, state, attempts, max_attempts, \
                 run_at, created_at, updated_at) VALUES ('b', 'evil', '{}', 'queued', 0, 1, 0, 0, 0)",
            )
            .await,
            "forge a job for b",
        );
        // The turn order is the platform's: no tenant moves itself or others.
        none_affected(
            exec(&mut conn, "UPDATE job_tenants SET serve_seq = -1").await,
            "jump the queue",
        );
        refused(
            exec(&mut conn, "INSERT INTO job_tenants (tenant_id, serve_seq, last_served_at) VALUES ('b', 0, 0)").await,
            "put b in the rotation",
        );
        sqlx::query("SELECT set_config('app.tenant_id', 'c', false)")
            .execute(&mut conn)
            .await
            .unwrap();
        refused(
            exec(&mut conn, "INSERT INTO job_tenants (tenant_id, serve_seq, last_served_at) VALUES ('c', -100, 0)").await,
            "join ahead of everyone",
        );
        // With no tenant at all, nothing.
        sqlx::query("SELECT set_config('app.tenant_id', '', false)")
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(count(&mut conn, "SELECT count(*) FROM jobs").await, 0);
        assert_eq!(count(&mut conn, "SELECT count(*) FROM job_tenants").await, 0);
        none_affected(exec(&mut conn, "DELETE FROM jobs").await, "delete all");
        conn.close().await.unwrap();

        let b_after: Vec<_> = b
            .jobs(None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|j| (j.id, j.state, j.attempts, j.updated_at))
            .collect();
        assert_eq!(b_after, b_before, "b's jobs are intact");
        assert_eq!(a.jobs(None, 100).await.unwrap().len(), 1);

        // Both tables are under forced RLS and not the application's.
        let mut owner = PgConnection::connect(&ctx.url).await.unwrap();
        for table in ["jobs", "job_tenants"] {
            let (owner_name, enabled, forced): (String, bool, bool) = sqlx::query_as(
                "SELECT pg_get_userbyid(c.relowner)::text, c.relrowsecurity, c.relforcerowsecurity \
                   FROM pg_class c WHERE c.oid = to_regclass($1)",
            )
            .bind(table)
            .fetch_one(&mut owner)
            .await
            .unwrap();
            assert_ne!(owner_name, "veneer_app", "{table}");
            assert!(enabled && forced, "{table}");
        }
        owner.close().await.unwrap();
    })
    .await;
}
