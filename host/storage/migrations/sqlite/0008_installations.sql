-- Installations and releases (see host/storage/src/installations.rs). A tenant
-- composes zero or more named installations, run in `position` order; each has
-- an append-only list of immutable releases (plugin + settings + quota) and at
-- most one active release. Keep in step with ../postgres/0009_installations.sql.

CREATE TABLE installations (
    tenant_id      TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name           TEXT    NOT NULL,
    position       INTEGER NOT NULL,
    -- The live release, or NULL (the installation is skipped). Checked by the
    -- application to be one of this installation's releases.
    active_release INTEGER,
    created_by     TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
) STRICT;

CREATE TABLE releases (
    id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    tenant_id    TEXT    NOT NULL,
    installation TEXT    NOT NULL,
    sha256       TEXT    NOT NULL,
    settings     TEXT    NOT NULL,
    quota        TEXT    NOT NULL,
    note         TEXT,
    created_by   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    FOREIGN KEY (tenant_id, installation) REFERENCES installations (tenant_id, name) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, sha256) REFERENCES plugin_versions (tenant_id, sha256)
) STRICT;
CREATE INDEX releases_by_installation ON releases (tenant_id, installation, id);

-- Who made which release live, and when: append-only.
CREATE TABLE release_events (
    id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    tenant_id    TEXT    NOT NULL,
    installation TEXT    NOT NULL,
    release_id   INTEGER,
    action       TEXT    NOT NULL CHECK (action IN ('activate', 'rollback', 'deactivate', 'quota')),
    actor        TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    CHECK ((action = 'deactivate') = (release_id IS NULL)),
    FOREIGN KEY (tenant_id, installation) REFERENCES installations (tenant_id, name) ON DELETE CASCADE
) STRICT;
CREATE INDEX release_events_by_installation ON release_events (tenant_id, installation, id);

-- The platform admin's quota per tenant x installation (the tenant's default is
-- `quotas`, the platform's is the host's configuration).
CREATE TABLE installation_quotas (
    tenant_id    TEXT    NOT NULL,
    installation TEXT    NOT NULL,
    json         TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, installation),
    FOREIGN KEY (tenant_id, installation) REFERENCES installations (tenant_id, name) ON DELETE CASCADE
) STRICT;

-- Runs name the installation and release they belong to (NULL for runs from
-- before installations, and for `veneer plugin run`-style trials).
ALTER TABLE plugin_runs ADD COLUMN installation TEXT;
ALTER TABLE plugin_runs ADD COLUMN release_id INTEGER;

-- Today's single active plugin becomes installation `main` with one release per
-- plugin it has run (in order of first activation; the settings and quota are
-- today's, the only ones known), the active one live. The old tables stay, read
-- by nothing.
INSERT INTO installations (tenant_id, name, position, active_release, created_by, created_at, updated_at)
    SELECT DISTINCT a.tenant_id, 'main', 0, NULL, 'migration', t.created_at, t.updated_at
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
