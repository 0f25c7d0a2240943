-- Safe rollout (see host/storage/src/shadows.rs and rollout.rs): a draft
-- release in shadow per installation, what its shadow runs did, and the
-- tenant's own rollout settings. Keep in step with
-- ../postgres/0012_rollout.sql.

-- At most one release in shadow per installation; live calls of the
-- installation also run it, sampled at `rate` (0 to 1).
CREATE TABLE shadows (
    tenant_id    TEXT    NOT NULL,
    installation TEXT    NOT NULL,
    release_id   INTEGER NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    rate         REAL    NOT NULL CHECK (rate >= 0 AND rate <= 1),
    started_by   TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, installation),
    FOREIGN KEY (tenant_id, installation) REFERENCES installations (tenant_id, name) ON DELETE CASCADE
) STRICT;

-- One row per shadow run: how the shadow release did against the live answer.
-- `sample` (the input and both outputs) is kept for runs that differ or fail.
CREATE TABLE shadow_runs (
    id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    tenant_id    TEXT    NOT NULL,
    installation TEXT    NOT NULL,
    release_id   INTEGER NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    hook         TEXT    NOT NULL,
    outcome      TEXT    NOT NULL,
    differs      INTEGER NOT NULL CHECK (differs IN (0, 1)),
    live_fee     INTEGER,
    shadow_fee   INTEGER,
    currency     TEXT,
    fuel         INTEGER NOT NULL,
    memory       INTEGER NOT NULL,
    wall_us      INTEGER NOT NULL,
    message      TEXT,
    sample       TEXT,
    created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX shadow_runs_by_release ON shadow_runs (tenant_id, release_id, id);

-- A tenant's own rollout settings (JSON: the shadow gate, automatic rollback
-- thresholds within the platform's bounds, recording).
CREATE TABLE rollout_settings (
    tenant_id  TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    json       TEXT    NOT NULL,
    updated_by TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
