//! Background jobs: the queue through the tenant and platform handles on real
//! databases (the worker running it is tested in `veneer::jobs`). On
//! PostgreSQL, tenant `a` attacks `b`'s jobs from below.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use sqlx::postgres::PgQueryResult;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::testing::harness::{Ctx, NO_CAP, claim_one, job, on_postgres, tid};
use crate::time::now_ms;
use crate::{JobQueue, JobRecord, JobState, MAX_JOB_ERROR_BYTES, NewJob, StorageError};

crate::both_backends!(via crate::testing::harness::run;
    enqueue_dedupes_per_tenant_and_checks_input,
    claim_leases_one_job_and_complete_finishes_it,
    failures_back_off_then_dead_letter,
    dead_jobs_are_retried_by_their_own_tenant_only,
    expired_leases_are_reclaimed_and_the_old_owner_loses,
    a_released_job_keeps_its_place_and_its_attempts,
    claims_take_one_job_per_tenant_in_rotation,
    pruning_removes_only_old_done_jobs,
    the_queue_is_summed_per_kind_across_tenants,
);

const LEASE: Duration = Duration::from_secs(30);

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

/// The metrics' view of the queue: queued and running jobs per kind across
/// every tenant, and the oldest due run time (a job not due yet is queued but
/// not waiting).
async fn the_queue_is_summed_per_kind_across_tenants(ctx: Ctx) {
    let platform = ctx.storage.platform();
    assert_eq!(platform.job_queue().await.unwrap(), Vec::<JobQueue>::new());
    let acme = ctx.tenant("acme").await;
    let beta = ctx.tenant("beta").await;
    let past = now_ms() - 60_000;
    acme.enqueue_job(&NewJob {
        run_at: Some(past),
        ..job("mail")
    })
    .await
    .unwrap();
    beta.enqueue_job(&job("mail")).await.unwrap();
    beta.enqueue_job(&NewJob {
        run_at: Some(now_ms() + 3_600_000),
        ..job("sync")
    })
    .await
    .unwrap();
    acme.enqueue_job(&job("sync")).await.unwrap();
    // acme's oldest ready job is its `mail` one: it runs.
    let running = claim_one(&ctx, "w1", LEASE).await.unwrap();
    assert_eq!(
        (running.tenant_id.as_str(), running.kind.as_str()),
        ("acme", "mail")
    );
    let queue = platform.job_queue().await.unwrap();
    assert_eq!(queue.len(), 2, "{queue:?}");
    let (mail, sync) = (&queue[0], &queue[1]);
    assert_eq!(
        (mail.kind.as_str(), mail.queued, mail.running),
        ("mail", 1, 1)
    );
    let waiting = mail.oldest_ready_run_at.expect("beta's mail is due");
    assert!(waiting > past && waiting <= now_ms());
    assert_eq!(
        (sync.kind.as_str(), sync.queued, sync.running),
        ("sync", 2, 0)
    );
    assert!(
        sync.oldest_ready_run_at.is_some_and(|at| at <= now_ms()),
        "acme's sync is due, beta's later one does not count"
    );
    ctx.storage
        .platform()
        .complete_job(running.id, "w1")
        .await
        .unwrap();
    let queue = platform.job_queue().await.unwrap();
    assert_eq!((queue[0].queued, queue[0].running), (1, 0));
}
