-- Background jobs (see host/src/storage/jobs.rs). Keep in step with
-- ../sqlite/0002_jobs.sql: same tables, same columns, same meaning.
--
-- A job is `queued` (waiting for `run_at`), `running` (leased by `locked_by`
-- until `lease_until`), `done`, or `dead` (out of attempts or failed for good:
-- kept, visible and retryable). Times are unix milliseconds.
--
-- Workers claim in platform mode with FOR UPDATE SKIP LOCKED, so several hosts
-- share the queue; a tenant sees and retries only its own jobs.

CREATE TABLE jobs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind         TEXT   NOT NULL,
    payload      TEXT   NOT NULL,
    state        TEXT   NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts     BIGINT NOT NULL CHECK (attempts >= 0),
    max_attempts BIGINT NOT NULL CHECK (max_attempts >= 1),
    run_at       BIGINT NOT NULL,
    last_error   TEXT,
    locked_by    TEXT,
    lease_until  BIGINT,
    dedupe_key   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    CHECK ((state = 'running') = (locked_by IS NOT NULL AND lease_until IS NOT NULL)),
    CHECK ((state IN ('done', 'dead')) = (finished_at IS NOT NULL)),
    -- NULLs are distinct, so only jobs that name a key are deduplicated.
    CONSTRAINT jobs_dedupe_key UNIQUE (tenant_id, dedupe_key)
);
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
    tenant_id      TEXT   NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    serve_seq      BIGINT NOT NULL,
    last_served_at BIGINT NOT NULL
);
CREATE INDEX job_tenants_by_turn ON job_tenants (serve_seq, tenant_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON jobs, job_tenants TO veneer_app;
GRANT USAGE ON SEQUENCE jobs_id_seq TO veneer_app;

-- A tenant enqueues, lists and retries its own jobs; workers claim, finish and
-- prune them in platform mode.
ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON jobs
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

-- The scheduler's turn order is the platform's: a tenant may read its own row
-- and join the rotation (at the start, as every new tenant does) but not move
-- itself ahead of others, nor touch another tenant's turn.
ALTER TABLE job_tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_reads_own ON job_tenants FOR SELECT
    USING (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY tenant_joins ON job_tenants FOR INSERT
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                AND serve_seq = 0 AND last_served_at = 0);
CREATE POLICY platform_all ON job_tenants
    USING (current_setting('app.platform', true) = 'on')
    WITH CHECK (current_setting('app.platform', true) = 'on');
