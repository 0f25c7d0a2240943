//! Background jobs: a durable queue per tenant, in the same database as the rest,
//! on SQLite and PostgreSQL. A tenant enqueues, lists and retries its own jobs
//! through [`TenantDb`]; workers claim, finish and prune them through
//! [`PlatformDb`] (the worker itself is `veneer::jobs`).
//!
//! Our own small module rather than a queue crate: the ones for sqlx each serve
//! one backend (PostgreSQL only, or SQLite only), know nothing of row-level
//! security, and would hand the worker a bare pool instead of our tenant-scoped
//! handles. What we need fits in a table, a handful of statements and the
//! scheduling rule below.
//!
//! **Lifecycle.** `queued` (waits for `run_at`) → `running` (claimed: leased to
//! one worker until `lease_until`, `attempts` counted at the claim) → `done`; or
//! back to `queued` at a later `run_at` after a temporary failure; or `dead`
//! when a failure is permanent or the attempts are used up. Dead jobs stay,
//! visible and retryable by their tenant. Nothing is deleted but done jobs
//! ([`PlatformDb::prune_done_jobs`]). Delivery is at least once: a worker that
//! dies mid-job loses its lease and the job runs again, so handlers must be
//! idempotent.
//!
//! **Fairness.** A claim gives each tenant **at most one job**, and takes
//! tenants in least-recently-served order (`job_tenants.serve_seq`, bumped past
//! every other tenant's when a tenant is served; a tenant seen for the first
//! time starts at 0, ahead of all). A tenant's job is its oldest ready one: an
//! expired lease to reclaim first, then queued jobs by `run_at`, `id`. So once a
//! job of tenant B is ready, every other tenant gets at most one more job
//! claimed before B's, whatever its backlog: at most `T - 1` jobs (T = tenants
//! with ready jobs) are claimed ahead of it, besides the jobs already running
//! and the claims already under way when it became ready. The bound in
//! completed jobs, per worker, is in `veneer::jobs`. Finding the ready tenants
//! costs a few index probes per tenant that ever queued a job, on every claim.
//!
//! **Caps and holds.** A tenant with `max_running_per_tenant` jobs running on
//! live leases (counted across every worker sharing the database) is passed
//! over until one of them ends, and a suspended tenant (`tenants.status`) is
//! passed over until it is active again (a deleted one, `tenants.deleted_at`,
//! until it is restored, or for good once purged): its queued jobs, retries and expired
//! leases stay as they are, and nothing of it is claimed. Both are checked in
//! the claim itself, so the other tenants' ready jobs take the free slots. A
//! dead worker's jobs count against their tenant's cap until their leases
//! expire.
//!
//! **Claims across hosts.** On PostgreSQL the claim locks the tenants it picks
//! and the job rows it takes with `FOR UPDATE SKIP LOCKED`, so concurrent
//! claimers spread over different tenants and never wait for each other; on
//! SQLite the claim is one `BEGIN IMMEDIATE` transaction (SQLite has one
//! writer anyway). Every later change (complete, fail, release, extend) only
//! applies while the row is still `running` and leased to the same worker id,
//! so a worker that lost its lease to a reclaim cannot overwrite the new
//! owner's outcome. Lease times come from each host's clock: keep clocks in
//! sync (NTP) and leases much longer than the skew.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use super::error::{check_json, tenant_fk};
use super::platform::PlatformDb;
use super::session::Access;
use super::tenant::TenantDb;
use super::time::now_ms;
use super::{Backend, StorageError, rows};
use veneer_core::tenancy_id::TenantId;

/// Error texts are cut to this many bytes (UTF-8 boundary respected).
pub const MAX_JOB_ERROR_BYTES: usize = 4096;

/// Longest job kind, in bytes.
const MAX_KIND_BYTES: usize = 100;

/// Jobs per INSERT statement in a batch enqueue (5 parameters each).
const BATCH_ROWS: usize = 100;

/// Done jobs deleted per statement when pruning, so no statement runs into the
/// statement timeout on a big table.
const PRUNE_CHUNK: i64 = 5_000;

/// Expired leases on a last attempt, dead-lettered per claim.
const SWEEP_CHUNK: i64 = 100;

/// The columns of `jobs`, in the order [`job_from_row`] reads them.
macro_rules! job_columns {
    () => {
        "id, tenant_id, kind, payload, state, attempts, max_attempts, run_at, last_error, \
         locked_by, lease_until, created_at, updated_at, finished_at"
    };
}

/// Dead-letters running jobs whose lease expired on their last attempt: the
/// worker died (or hung) with nothing left to retry. `$1` now, `$2` chunk; the
/// argument is the row-locking clause.
macro_rules! sweep_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE jobs SET state = 'dead', \
                 last_error = 'lease expired on the last attempt (' || attempts || ' of ' \
                              || max_attempts || '): worker ' || locked_by \
                              || ' stopped without finishing it', \
                 locked_by = NULL, lease_until = NULL, finished_at = $1, updated_at = $1 \
              WHERE id IN (SELECT id FROM jobs \
                            WHERE state = 'running' AND lease_until <= $1 \
                              AND attempts >= max_attempts \
                            LIMIT $2",
            $lock,
            ")"
        )
    };
}

/// Tenants with a ready job (queued and due, or running on an expired lease
/// with attempts left), least recently served first, among those that are
/// active and below their cap of running jobs. `$1` now, `$2` limit, `$3` the
/// cap; the argument is the row-locking clause.
macro_rules! ready_tenants_sql {
    ($lock:literal) => {
        concat!(
            "SELECT t.tenant_id FROM job_tenants t JOIN tenants tn ON tn.id = t.tenant_id \
              WHERE tn.status = 'active' AND tn.deleted_at IS NULL \
                AND (SELECT COUNT(*) FROM jobs r \
                      WHERE r.tenant_id = t.tenant_id AND r.state = 'running' \
                        AND r.lease_until > $1) < $3 \
                AND (EXISTS (SELECT 1 FROM jobs j \
                              WHERE j.tenant_id = t.tenant_id AND j.state = 'queued' \
                                AND j.run_at <= $1) \
                     OR EXISTS (SELECT 1 FROM jobs j \
                                 WHERE j.tenant_id = t.tenant_id AND j.state = 'running' \
                                   AND j.lease_until <= $1 AND j.attempts < j.max_attempts)) \
              ORDER BY t.serve_seq, t.tenant_id LIMIT $2",
            $lock
        )
    };
}

/// Takes one tenant's oldest ready job of a kind (`reclaim`: an expired lease;
/// `queued`: due), marking it running for the worker, unless the tenant already
/// has `$5` jobs running on live leases. `$1` tenant, `$2` now, `$3` worker,
/// `$4` lease end, `$5` the cap; the last argument is the row-locking clause.
///
/// The cap is counted again here, not only when picking tenants: on
/// PostgreSQL this statement runs while the claim holds the tenant's
/// `job_tenants` row, which every claimer locks before taking that tenant's
/// jobs, and it reads the jobs as committed now, so concurrent claimers on
/// several hosts never take a tenant past its cap.
macro_rules! take_sql {
    (reclaim, $lock:literal) => {
        take_sql!(@ "state = 'running' AND lease_until <= $2 AND attempts < max_attempts \
                     ORDER BY lease_until, id", $lock)
    };
    (queued, $lock:literal) => {
        take_sql!(@ "state = 'queued' AND run_at <= $2 ORDER BY run_at, id", $lock)
    };
    (@ $which:literal, $lock:literal) => {
        concat!(
            "UPDATE jobs SET state = 'running', locked_by = $3, lease_until = $4, \
                             attempts = attempts + 1, updated_at = $2 \
              WHERE id = (SELECT id FROM jobs WHERE tenant_id = $1 AND ",
            $which,
            " LIMIT 1",
            $lock,
            ") AND (SELECT COUNT(*) FROM jobs r WHERE r.tenant_id = $1 AND r.state = 'running' \
                        AND r.lease_until > $2) < $5 \
              RETURNING ",
            job_columns!()
        )
    };
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its `run_at`, then for a worker.
    Queued,
    /// Claimed by a worker, leased until `lease_until`.
    Running,
    /// Finished successfully.
    Done,
    /// Failed for good or out of attempts: kept until its tenant retries it.
    Dead,
}

impl JobState {
    /// The stored (and serialized) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a job state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a job state: use `queued`, `running`, `done` or `dead`")]
pub struct InvalidJobState(pub String);

impl FromStr for JobState {
    type Err = InvalidJobState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "queued" => Ok(JobState::Queued),
            "running" => Ok(JobState::Running),
            "done" => Ok(JobState::Done),
            "dead" => Ok(JobState::Dead),
            other => Err(InvalidJobState(other.chars().take(40).collect())),
        }
    }
}

/// A job to enqueue for the handle's tenant.
#[derive(Debug, Clone, Copy)]
pub struct NewJob<'a> {
    /// Which handler runs it (`veneer::jobs::Worker::register`).
    pub kind: &'a str,
    /// The handler's input, JSON.
    pub payload: &'a str,
    /// Runs at most this many times (at least 1).
    pub max_attempts: u32,
    /// Not before this time (unix ms); `None` for now.
    pub run_at: Option<i64>,
    /// At most one job per tenant and key, for as long as the job is kept
    /// (done jobs until pruned, dead ones until retried and done).
    pub dedupe_key: Option<&'a str>,
}

/// A job as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobRecord {
    pub id: i64,
    pub tenant_id: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub state: JobState,
    /// Claims so far, the current one included.
    pub attempts: u32,
    pub max_attempts: u32,
    /// Unix ms: when it is (or was) due.
    pub run_at: i64,
    /// The latest failure, at most [`MAX_JOB_ERROR_BYTES`].
    pub last_error: Option<String>,
    /// The worker holding it while `running`.
    pub locked_by: Option<String>,
    /// Unix ms: while `running`, when its lease runs out and it may be reclaimed.
    pub lease_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Unix ms: when it became `done` or `dead`.
    pub finished_at: Option<i64>,
}

impl TenantDb {
    /// Enqueues one job. Returns it and `true`, or, when the tenant already has
    /// a job with the same `dedupe_key`, that job and `false`.
    pub async fn enqueue_job(&self, job: &NewJob<'_>) -> Result<(JobRecord, bool), StorageError> {
        check_new_job(job)?;
        let mut tx = self.begin(Access::Write).await?;
        let (record, created) = insert_job(&mut tx, self.tenant_id(), job).await?;
        tx.commit().await?;
        Ok((record, created))
    }

    /// Enqueues many jobs in one transaction (all or none); returns how many were
    /// created (jobs whose `dedupe_key` is taken, also within the batch, are
    /// skipped).
    pub async fn enqueue_jobs(&self, jobs: &[NewJob<'_>]) -> Result<u64, StorageError> {
        for job in jobs {
            check_new_job(job)?;
        }
        if jobs.is_empty() {
            return Ok(0);
        }
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        join_rotation(&mut tx, self.tenant_id()).await?;
        let mut created = 0;
        let full_sql = batch_insert_sql(BATCH_ROWS);
        for chunk in jobs.chunks(BATCH_ROWS) {
            let sql = if chunk.len() == BATCH_ROWS {
                full_sql.clone()
            } else {
                batch_insert_sql(chunk.len())
            };
            // Built from constants and row numbers only, never from input.
            let mut query = sqlx::query(AssertSqlSafe(sql))
                .bind(self.tenant_id().as_str())
                .bind(now);
            for job in chunk {
                query = query
                    .bind(job.kind)
                    .bind(job.payload)
                    .bind(i64::from(job.max_attempts))
                    .bind(job.run_at.unwrap_or(now))
                    .bind(job.dedupe_key);
            }
            let done = query
                .execute(&mut *tx)
                .await
                .map_err(tenant_fk(self.tenant_id()))?;
            created += done.rows_affected();
        }
        tx.commit().await?;
        Ok(created)
    }

    /// This tenant's newest `limit` jobs, newest first, optionally in one state
    /// (`Some(JobState::Dead)` is the dead-letter list).
    pub async fn jobs(
        &self,
        state: Option<JobState>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = match state {
            Some(state) => {
                sqlx::query(concat!(
                    "SELECT ",
                    job_columns!(),
                    " FROM jobs WHERE tenant_id = $1 AND state = $2 ORDER BY id DESC LIMIT $3"
                ))
                .bind(self.tenant_id().as_str())
                .bind(state.as_str())
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    job_columns!(),
                    " FROM jobs WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2"
                ))
                .bind(self.tenant_id().as_str())
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        rows.iter().map(job_from_row).collect()
    }

    /// One of this tenant's jobs; `None` if it has no job with this id (another
    /// tenant's job included).
    pub async fn job(&self, id: i64) -> Result<Option<JobRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(self.tenant_id().as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Puts a dead job back in the queue, due now, with its attempts reset (its
    /// last error is kept until the next failure). NotFound if this tenant has
    /// no such job, Conflict if the job is not dead.
    pub async fn retry_job(&self, id: i64) -> Result<JobRecord, StorageError> {
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        let row = sqlx::query(concat!(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $3, finished_at = NULL, \
                             updated_at = $3 \
              WHERE tenant_id = $1 AND id = $2 AND state = 'dead' RETURNING ",
            job_columns!()
        ))
        .bind(self.tenant_id().as_str())
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let state: Option<String> =
                sqlx::query_scalar("SELECT state FROM jobs WHERE tenant_id = $1 AND id = $2")
                    .bind(self.tenant_id().as_str())
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            return Err(match state {
                None => StorageError::NotFound(format!("job {id} does not exist")),
                Some(state) => StorageError::Conflict(format!(
                    "job {id} is {state}, not dead: only a dead job can be retried"
                )),
            });
        };
        let record = job_from_row(&row)?;
        tx.commit().await?;
        Ok(record)
    }
}

/// A job whose payload holds a sealed part (a secrets-key rotation reads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedJobPayload {
    pub id: i64,
    pub tenant: TenantId,
    pub kind: String,
    /// The stored payload, as text.
    pub payload: String,
}

impl PlatformDb {
    /// Up to `limit` jobs after id `after` (by id) whose payload has a
    /// `sealed` part, across tenants.
    pub async fn sealed_job_payloads(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<SealedJobPayload>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT id, tenant_id, kind, payload FROM jobs \
              WHERE id > $1 AND payload LIKE '%\"sealed\"%' ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter()
            .map(|(id, tenant, kind, payload)| {
                Ok(SealedJobPayload {
                    id,
                    tenant: TenantId::new(&tenant).map_err(|e| {
                        StorageError::Invalid(format!("stored tenant id `{tenant}`: {e}"))
                    })?,
                    kind,
                    payload,
                })
            })
            .collect()
    }

    /// Replaces job `id`'s payload if it is still `old`; false when it
    /// changed or the job is gone.
    pub async fn replace_job_payload(
        &self,
        id: i64,
        old: &str,
        new: &str,
    ) -> Result<bool, StorageError> {
        check_json("the job payload", new)?;
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query("UPDATE jobs SET payload = $3 WHERE id = $1 AND payload = $2")
            .bind(id)
            .bind(old)
            .bind(new)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Claims up to `limit` ready jobs for `worker`, leasing each for `lease`:
    /// at most one per tenant, tenants least recently served first, each
    /// tenant's oldest ready job (an expired lease is reclaimed before queued
    /// jobs are taken). A tenant that is suspended or deleted, or that already has
    /// `max_running_per_tenant` jobs running on live leases (on any worker), is
    /// passed over: its jobs wait, and the claim serves the next tenants
    /// instead. A cap of 0 counts as 1. Claimed jobs are `running` with
    /// `attempts` counted. Expired leases on a last attempt are dead-lettered
    /// here instead of run again. Returns the jobs in claim order.
    pub async fn claim_jobs(
        &self,
        worker: &str,
        limit: u32,
        lease: Duration,
        max_running_per_tenant: u32,
    ) -> Result<Vec<JobRecord>, StorageError> {
        check_worker(worker)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let cap = i64::from(max_running_per_tenant.max(1));
        let now = now_ms();
        let lease_until = now.saturating_add(duration_ms(lease));
        let postgres = self.backend() == Backend::Postgres;
        let mut tx = self.begin(Access::Write).await?;

        sqlx::query(if postgres {
            sweep_sql!(" FOR UPDATE SKIP LOCKED")
        } else {
            sweep_sql!("")
        })
        .bind(now)
        .bind(SWEEP_CHUNK)
        .execute(&mut *tx)
        .await?;

        let tenants: Vec<String> = sqlx::query_scalar(if postgres {
            ready_tenants_sql!(" FOR UPDATE OF t SKIP LOCKED")
        } else {
            ready_tenants_sql!("")
        })
        .bind(now)
        .bind(i64::from(limit))
        .bind(cap)
        .fetch_all(&mut *tx)
        .await?;
        if tenants.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }

        let (reclaim, take_queued) = if postgres {
            (
                take_sql!(reclaim, " FOR UPDATE SKIP LOCKED"),
                take_sql!(queued, " FOR UPDATE SKIP LOCKED"),
            )
        } else {
            (take_sql!(reclaim, ""), take_sql!(queued, ""))
        };
        // Concurrent PostgreSQL claimers may both read the same maximum: then
        // two tenants share a turn number, and their order falls back to id.
        let mut turn: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(serve_seq), 0) FROM job_tenants")
                .fetch_one(&mut *tx)
                .await?;
        let mut claimed = Vec::with_capacity(tenants.len());
        for tenant in &tenants {
            let mut row = None;
            for sql in [reclaim, take_queued] {
                row = sqlx::query(sql)
                    .bind(tenant.as_str())
                    .bind(now)
                    .bind(worker)
                    .bind(lease_until)
                    .bind(cap)
                    .fetch_optional(&mut *tx)
                    .await?;
                if row.is_some() {
                    break;
                }
            }
            // Its ready jobs were taken meanwhile by another claimer: not served.
            let Some(row) = row else { continue };
            turn += 1;
            sqlx::query(
                "UPDATE job_tenants SET serve_seq = $2, last_served_at = $3 WHERE tenant_id = $1",
            )
            .bind(tenant.as_str())
            .bind(turn)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            claimed.push(job_from_row(&row)?);
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Marks a job done. False (and no change) unless it is still running under
    /// `worker`'s lease: then another worker reclaimed it and owns the outcome.
    pub async fn complete_job(&self, id: i64, worker: &str) -> Result<bool, StorageError> {
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'done', locked_by = NULL, lease_until = NULL, \
                             finished_at = $3, updated_at = $3 \
              WHERE id = $1 AND state = 'running' AND locked_by = $2",
        )
        .bind(id)
        .bind(worker)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a failed attempt. With `retry_at` and attempts left, the job is
    /// queued again for `retry_at`; otherwise it is dead. `error` is kept as
    /// `last_error` (cut to [`MAX_JOB_ERROR_BYTES`]). Returns the new state, or
    /// `None` if the job is not running under `worker`'s lease.
    pub async fn fail_job(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<Option<JobState>, StorageError> {
        let error = cap_error(error);
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        let state: Option<String> = match retry_at {
            Some(retry_at) => {
                sqlx::query_scalar(
                    "UPDATE jobs SET \
                        state = CASE WHEN attempts < max_attempts THEN 'queued' ELSE 'dead' END, \
                        run_at = CASE WHEN attempts < max_attempts THEN $4 ELSE run_at END, \
                        finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE $5 END, \
                        last_error = $3, locked_by = NULL, lease_until = NULL, updated_at = $5 \
                      WHERE id = $1 AND state = 'running' AND locked_by = $2 RETURNING state",
                )
                .bind(id)
                .bind(worker)
                .bind(error.as_str())
                .bind(retry_at)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?
            }
            None => {
                sqlx::query_scalar(
                    "UPDATE jobs SET state = 'dead', finished_at = $4, last_error = $3, \
                                     locked_by = NULL, lease_until = NULL, updated_at = $4 \
                      WHERE id = $1 AND state = 'running' AND locked_by = $2 RETURNING state",
                )
                .bind(id)
                .bind(worker)
                .bind(error.as_str())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        state.map(|s| parse_state(&s)).transpose()
    }

    /// Gives a claimed job back unfinished (a worker shutting down): queued
    /// again, keeping its place (`run_at`), this attempt not counted. False
    /// unless it is running under `worker`'s lease.
    pub async fn release_job(&self, id: i64, worker: &str) -> Result<bool, StorageError> {
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', locked_by = NULL, lease_until = NULL, \
                             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
                             updated_at = $3 \
              WHERE id = $1 AND state = 'running' AND locked_by = $2",
        )
        .bind(id)
        .bind(worker)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Extends `worker`'s lease on a running job to `lease` from now. False
    /// unless it is running under `worker`'s lease (it was reclaimed, or has
    /// finished).
    pub async fn extend_lease(
        &self,
        id: i64,
        worker: &str,
        lease: Duration,
    ) -> Result<bool, StorageError> {
        let now = now_ms();
        let mut tx = self.begin(Access::Write).await?;
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $3, updated_at = $4 \
              WHERE id = $1 AND state = 'running' AND locked_by = $2",
        )
        .bind(id)
        .bind(worker)
        .bind(now.saturating_add(duration_ms(lease)))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes done jobs that finished more than `older_than_ms` milliseconds
    /// ago (which frees their dedupe keys); returns how many went. Dead jobs are
    /// never pruned: they wait for their tenant. Deletes in chunks, each its own
    /// transaction, so a big backlog cannot run into the statement timeout.
    pub async fn prune_done_jobs(&self, older_than_ms: i64) -> Result<u64, StorageError> {
        let cutoff = now_ms().saturating_sub(older_than_ms.max(0));
        let mut total = 0;
        loop {
            let mut tx = self.begin(Access::Write).await?;
            let done = sqlx::query(
                "DELETE FROM jobs WHERE id IN \
                   (SELECT id FROM jobs WHERE state = 'done' AND finished_at <= $1 LIMIT $2)",
            )
            .bind(cutoff)
            .bind(PRUNE_CHUNK)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            total += done.rows_affected();
            if done.rows_affected() < PRUNE_CHUNK.unsigned_abs() {
                return Ok(total);
            }
        }
    }
}

/// The queue of one job kind, all tenants together ([`PlatformDb::job_queue`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobQueue {
    /// The kind.
    pub kind: String,
    /// Queued jobs, due or not.
    pub queued: u64,
    /// Running jobs.
    pub running: u64,
    /// The earliest `run_at` (Unix ms) of a queued job that is due.
    pub oldest_ready_run_at: Option<i64>,
}

impl PlatformDb {
    /// The queue now, per kind, all tenants together: queued and running jobs
    /// and the earliest due `run_at` (for queue depth and age). One grouped
    /// scan of the queued and running jobs; kinds with neither are absent.
    pub async fn job_queue(&self) -> Result<Vec<JobQueue>, StorageError> {
        let now = now_ms();
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(
            "SELECT kind, \
                    SUM(CASE WHEN state = 'queued' THEN 1 ELSE 0 END) AS queued, \
                    SUM(CASE WHEN state = 'running' THEN 1 ELSE 0 END) AS running, \
                    MIN(CASE WHEN state = 'queued' AND run_at <= $1 THEN run_at END) AS oldest \
               FROM jobs WHERE state IN ('queued', 'running') \
              GROUP BY kind ORDER BY kind",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                Ok(JobQueue {
                    kind: row.try_get("kind")?,
                    queued: u64::try_from(row.try_get::<i64, _>("queued")?).unwrap_or(0),
                    running: u64::try_from(row.try_get::<i64, _>("running")?).unwrap_or(0),
                    oldest_ready_run_at: opt_int(row, "oldest")?,
                })
            })
            .collect()
    }
}

/// Inserts one checked job of `tenant` inside `tx` (an existing job with the
/// same dedupe key is returned instead), so callers can write it together with
/// the row it belongs to.
pub(super) async fn insert_job(
    tx: &mut Transaction<'static, Any>,
    tenant_id: &TenantId,
    job: &NewJob<'_>,
) -> Result<(JobRecord, bool), StorageError> {
    let now = now_ms();
    let tenant = tenant_id.as_str();
    join_rotation(tx, tenant_id).await?;
    let row = sqlx::query(concat!(
        "INSERT INTO jobs (tenant_id, kind, payload, state, attempts, max_attempts, run_at, \
                           dedupe_key, created_at, updated_at) \
         VALUES ($1, $2, $3, 'queued', 0, $4, $5, $6, $7, $7) \
         ON CONFLICT (tenant_id, dedupe_key) DO NOTHING RETURNING ",
        job_columns!()
    ))
    .bind(tenant)
    .bind(job.kind)
    .bind(job.payload)
    .bind(i64::from(job.max_attempts))
    .bind(job.run_at.unwrap_or(now))
    .bind(job.dedupe_key)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await
    .map_err(tenant_fk(tenant_id))?;
    let (row, created) = match row {
        Some(row) => (row, true),
        None => {
            let existing = sqlx::query(concat!(
                "SELECT ",
                job_columns!(),
                " FROM jobs WHERE tenant_id = $1 AND dedupe_key = $2"
            ))
            .bind(tenant)
            .bind(job.dedupe_key)
            .fetch_one(&mut **tx)
            .await?;
            (existing, false)
        }
    };
    Ok((job_from_row(&row)?, created))
}

/// Puts the tenant in the scheduler's rotation, at the front if it is new.
async fn join_rotation(
    tx: &mut Transaction<'static, Any>,
    tenant: &TenantId,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO job_tenants (tenant_id, serve_seq, last_served_at) VALUES ($1, 0, 0) \
         ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tenant.as_str())
    .execute(&mut **tx)
    .await
    .map_err(tenant_fk(tenant))?;
    Ok(())
}

/// `INSERT` of `rows` jobs: `$1` tenant, `$2` now, then five per job.
fn batch_insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO jobs (tenant_id, kind, payload, state, attempts, max_attempts, run_at, \
                           dedupe_key, created_at, updated_at) VALUES ",
    );
    for row in 0..rows {
        let p = 3 + row * 5;
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "($1, ${}, ${}, 'queued', 0, ${}, ${}, ${}, $2, $2)",
            p,
            p + 1,
            p + 2,
            p + 3,
            p + 4
        ));
    }
    sql.push_str(" ON CONFLICT (tenant_id, dedupe_key) DO NOTHING");
    sql
}

pub(super) fn check_new_job(job: &NewJob<'_>) -> Result<(), StorageError> {
    let kind = job.kind;
    if kind.trim().is_empty() || kind.len() > MAX_KIND_BYTES || kind.contains('\0') {
        return Err(StorageError::Invalid(format!(
            "job kind `{}` is not valid: use 1 to {MAX_KIND_BYTES} bytes without NUL characters",
            kind.chars().take(40).collect::<String>()
        )));
    }
    check_json("the job payload", job.payload)?;
    if job.max_attempts == 0 {
        return Err(StorageError::Invalid(
            "a job needs max_attempts of at least 1".into(),
        ));
    }
    if let Some(key) = job.dedupe_key
        && (key.is_empty() || key.contains('\0'))
    {
        return Err(StorageError::Invalid(
            "a job's dedupe key must be non-empty and free of NUL characters".into(),
        ));
    }
    Ok(())
}

fn check_worker(worker: &str) -> Result<(), StorageError> {
    if worker.is_empty() || worker.contains('\0') {
        return Err(StorageError::Invalid(
            "a worker id must be non-empty and free of NUL characters".into(),
        ));
    }
    Ok(())
}

/// Error text as stored: NUL characters (which PostgreSQL text refuses)
/// replaced, cut to [`MAX_JOB_ERROR_BYTES`] on a character boundary.
fn cap_error(error: &str) -> String {
    const MARK: &str = "… (cut)";
    let clean = error.replace('\0', "\u{FFFD}");
    if clean.len() <= MAX_JOB_ERROR_BYTES {
        return clean;
    }
    let mut end = MAX_JOB_ERROR_BYTES - MARK.len();
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &clean[..end])
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn parse_state(s: &str) -> Result<JobState, StorageError> {
    s.parse().map_err(|e: InvalidJobState| {
        StorageError::Database(sqlx::Error::ColumnDecode {
            index: "state".into(),
            source: e.to_string().into(),
        })
    })
}

fn opt_int(row: &AnyRow, column: &str) -> Result<Option<i64>, StorageError> {
    Ok(row.try_get(column)?)
}

fn job_from_row(row: &AnyRow) -> Result<JobRecord, StorageError> {
    Ok(JobRecord {
        id: rows::int(row, "id")?,
        tenant_id: rows::text(row, "tenant_id")?,
        kind: rows::text(row, "kind")?,
        payload: rows::json(row, "payload")?,
        state: parse_state(&rows::text(row, "state")?)?,
        attempts: rows::u32(row, "attempts")?,
        max_attempts: rows::u32(row, "max_attempts")?,
        run_at: rows::int(row, "run_at")?,
        last_error: rows::opt_text(row, "last_error")?,
        locked_by: rows::opt_text(row, "locked_by")?,
        lease_until: opt_int(row, "lease_until")?,
        created_at: rows::int(row, "created_at")?,
        updated_at: rows::int(row, "updated_at")?,
        finished_at: opt_int(row, "finished_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for state in [
            JobState::Queued,
            JobState::Running,
            JobState::Done,
            JobState::Dead,
        ] {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{state}\"")
            );
        }
        let err = "paused".parse::<JobState>().unwrap_err();
        assert!(err.to_string().contains("`paused`"), "{err}");
    }

    #[test]
    fn errors_are_capped_on_a_char_boundary() {
        assert_eq!(cap_error("boom"), "boom");
        assert_eq!(cap_error("a\0b"), "a\u{FFFD}b");
        let long = "é".repeat(MAX_JOB_ERROR_BYTES);
        let capped = cap_error(&long);
        assert!(capped.len() <= MAX_JOB_ERROR_BYTES, "{}", capped.len());
        assert!(capped.ends_with("… (cut)"));
        assert!(capped.len() > MAX_JOB_ERROR_BYTES - 16);
    }

    #[test]
    fn batch_sql_numbers_every_parameter_once() {
        let sql = batch_insert_sql(2);
        assert!(sql.contains("($1, $3, $4, 'queued', 0, $5, $6, $7, $2, $2), "));
        assert!(sql.contains("($1, $8, $9, 'queued', 0, $10, $11, $12, $2, $2) ON CONFLICT"));
    }

    #[test]
    fn new_jobs_are_checked() {
        let ok = NewJob {
            kind: "sync",
            payload: "{}",
            max_attempts: 3,
            run_at: None,
            dedupe_key: None,
        };
        assert!(check_new_job(&ok).is_ok());
        for bad in [
            NewJob { kind: " ", ..ok },
            NewJob { kind: "a\0", ..ok },
            NewJob {
                payload: "{nope",
                ..ok
            },
            NewJob {
                max_attempts: 0,
                ..ok
            },
            NewJob {
                dedupe_key: Some(""),
                ..ok
            },
        ] {
            assert!(
                matches!(check_new_job(&bad), Err(StorageError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
