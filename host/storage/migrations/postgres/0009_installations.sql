-- Installations and releases (see host/storage/src/installations.rs). A tenant
-- composes zero or more named installations, run in `position` order; each has
-- an append-only list of immutable releases (plugin + settings + quota) and at
-- most one active release. Keep in step with ../sqlite/0008_installations.sql.

CREATE TABLE installations (
    tenant_id      TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name           TEXT   NOT NULL,
    position       BIGINT NOT NULL,
    -- The live release, or NULL (the installation is skipped). Checked by the
    -- application to be one of this installation's releases.
    active_release BIGINT,
    created_by     TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE releases (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    TEXT   NOT NULL,
    installation TEXT   NOT NULL,
    sha256       TEXT   NOT NULL,
    settings     TEXT   NOT NULL,
    quota        TEXT   NOT NULL,
    note         TEXT,
    created_by   TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    FOREIGN KEY (tenant_id, installation) REFERENCES installations (tenant_id, name) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, sha256) REFERENCES plugin_versions (tenant_id, sha256)
);
CREATE INDEX releases_by_installation ON releases (tenant_id, installation, id);

CREATE TABLE release_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    TEXT   NOT NULL,
    installation TEXT   NOT NULL,
    release_id   BIGINT,
    action       TEXT   NOT NULL CHECK (action IN ('activate', 'rollback', 'deactivate', 'quota')),
    actor        TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    CHECK ((action = 'deactivate') = (release_id IS NULL)),
    FOREIGN KEY (tenant_id, installation) REFERENCES installations (tenant_id, name) ON DELETE CASCADE
);
CREATE INDEX release_events_by_installation ON release_events (tenant_id, installation, id);

CREATE TABLE installation_quotas (
    tenant_id    TEXT   NOT NULL,
    installation TEXT   NOT NULL,
    json         TEXT   NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, installation),
    FOREIGN KEY (tenant_id, installation) REFERENCES installations (tenant_id, name) ON DELETE CASCADE
);

ALTER TABLE plugin_runs ADD COLUMN installation TEXT;
ALTER TABLE plugin_runs ADD COLUMN release_id BIGINT;

-- Today's single active plugin becomes installation `main` (see the SQLite file).
INSERT INTO installations (tenant_id, name, position, active_release, created_by, created_at, updated_at)
    SELECT DISTINCT a.tenant_id, 'main', 0, NULL::bigint, 'migration', t.created_at, t.updated_at
      FROM activations a JOIN tenants t ON t.id = a.tenant_id;

INSERT INTO releases (tenant_id, installation, sha256, settings, quota, note, created_by, created_at)
    SELECT f.tenant_id, 'main', f.sha256,
           COALESCE((SELECT s.json FROM plugin_settings s WHERE s.tenant_id = f.tenant_id), '{}'),
           COALESCE((SELECT q.json FROM quotas q WHERE q.tenant_id = f.tenant_id), '{}'),
           'migrated from the single active plugin', 'migration', f.first_at
      FROM (SELECT tenant_id, sha256, min(id) AS first_id, min(created_at) AS first_at
              FROM activations WHERE sha256 IS NOT NULL
             GROUP BY tenant_id, sha256) f
     ORDER BY f.tenant_id, f.first_id;

INSERT INTO release_events (tenant_id, installation, release_id, action, actor, created_at)
    SELECT a.tenant_id, 'main',
           (SELECT r.id FROM releases r WHERE r.tenant_id = a.tenant_id AND r.installation = 'main' AND r.sha256 = a.sha256),
           a.action, a.actor, a.created_at
      FROM activations a ORDER BY a.id;

UPDATE installations SET active_release = (
    SELECT e.release_id FROM release_events e
     WHERE e.tenant_id = installations.tenant_id AND e.installation = 'main'
     ORDER BY e.id DESC LIMIT 1)
 WHERE name = 'main';

GRANT SELECT, INSERT, UPDATE, DELETE ON installations, releases TO veneer_app;
-- History is append-only for the application.
GRANT SELECT, INSERT ON release_events TO veneer_app;
GRANT USAGE ON SEQUENCE releases_id_seq, release_events_id_seq TO veneer_app;
-- The platform sets quotas; a tenant reads its own.
GRANT SELECT, INSERT, UPDATE, DELETE ON installation_quotas TO veneer_app;

ALTER TABLE installations ENABLE ROW LEVEL SECURITY;
ALTER TABLE installations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON installations
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

ALTER TABLE releases ENABLE ROW LEVEL SECURITY;
ALTER TABLE releases FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON releases
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

ALTER TABLE release_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE release_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON release_events
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

ALTER TABLE installation_quotas ENABLE ROW LEVEL SECURITY;
ALTER TABLE installation_quotas FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_reads_own ON installation_quotas FOR SELECT
    USING (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY platform_all ON installation_quotas
    USING (current_setting('app.platform', true) = 'on')
    WITH CHECK (current_setting('app.platform', true) = 'on');
