-- Background jobs (see host/src/storage/jobs.rs). Keep in step with
-- ../postgres/0003_jobs.sql: same tables, same columns, same meaning.
--
-- A job is `queued` (waiting for `run_at`), `running` (leased by `locked_by`
-- until `lease_until`), `done`, or `dead` (out of attempts or failed for good:
-- kept, visible and retryable). Times are unix milliseconds.

CREATE TABLE jobs (
    id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts     INTEGER NOT NULL CHECK (attempts >= 0),
    max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_at       INTEGER NOT NULL,
    last_error   TEXT,
    locked_by    TEXT,
    lease_until  INTEGER,
    dedupe_key   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    CHECK ((state = 'running') = (locked_by IS NOT NULL AND lease_until IS NOT NULL)),
    CHECK ((state IN ('done', 'dead')) = (finished_at IS NOT NULL)),
    -- NULLs are distinct, so only jobs that name a key are deduplicated.
    UNIQUE (tenant_id, dedupe_key)
) STRICT;
-- A tenant's next ready job, oldest first (the claim).
CREATE INDEX jobs_queued ON jobs (tenant_id, run_at, id) WHERE state = 'queued';
-- Leases that may have expired (reclaim).
CREATE INDEX jobs_running ON jobs (tenant_id, lease_until) WHERE state = 'running';
-- Pruning finished jobs.
CREATE INDEX jobs_done ON jobs (finished_at) WHERE state = 'done';
-- A tenant's listings, newest first: all jobs, or those in one state.
CREATE INDEX jobs_by_tenant ON jobs (tenant_id, id);
CREATE INDEX jobs_by_tenant_state ON jobs (tenant_id, state, id);

-- One row per tenant that has ever queued a job: the fair scheduler's memory.
-- Claims take tenants in `serve_seq` order (least recently served first) and give
-- each at most one job per claim; a newly seen tenant starts at 0, ahead of all.
CREATE TABLE job_tenants (
    tenant_id      TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    serve_seq      INTEGER NOT NULL,
    last_served_at INTEGER NOT NULL
) STRICT;
CREATE INDEX job_tenants_by_turn ON job_tenants (serve_seq, tenant_id);
