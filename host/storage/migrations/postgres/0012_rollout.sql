-- Safe rollout (see host/storage/src/shadows.rs and rollout.rs). Keep in step
-- with ../sqlite/0011_rollout.sql.

CREATE TABLE shadows (
    tenant_id    TEXT             NOT NULL,
    installation TEXT             NOT NULL,
    release_id   BIGINT           NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    rate         DOUBLE PRECISION NOT NULL CHECK (rate >= 0 AND rate <= 1),
    started_by   TEXT             NOT NULL,
    started_at   BIGINT           NOT NULL,
    PRIMARY KEY (tenant_id, installation),
    FOREIGN KEY (tenant_id, installation) REFERENCES installations (tenant_id, name) ON DELETE CASCADE
);

CREATE TABLE shadow_runs (
    id           BIGSERIAL PRIMARY KEY,
    tenant_id    TEXT    NOT NULL,
    installation TEXT    NOT NULL,
    release_id   BIGINT  NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    hook         TEXT    NOT NULL,
    outcome      TEXT    NOT NULL,
    differs      BIGINT  NOT NULL CHECK (differs IN (0, 1)),
    live_fee     BIGINT,
    shadow_fee   BIGINT,
    currency     TEXT,
    fuel         BIGINT  NOT NULL,
    memory       BIGINT  NOT NULL,
    wall_us      BIGINT  NOT NULL,
    message      TEXT,
    sample       TEXT,
    created_at   BIGINT  NOT NULL
);
CREATE INDEX shadow_runs_by_release ON shadow_runs (tenant_id, release_id, id);

CREATE TABLE rollout_settings (
    tenant_id  TEXT   NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    json       TEXT   NOT NULL,
    updated_by TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

GRANT SELECT, INSERT, UPDATE, DELETE ON shadows, shadow_runs, rollout_settings TO veneer_app;
GRANT USAGE ON SEQUENCE shadow_runs_id_seq TO veneer_app;

ALTER TABLE shadows ENABLE ROW LEVEL SECURITY;
ALTER TABLE shadows FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON shadows
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

ALTER TABLE shadow_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE shadow_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON shadow_runs
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

ALTER TABLE rollout_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE rollout_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rollout_settings
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');
