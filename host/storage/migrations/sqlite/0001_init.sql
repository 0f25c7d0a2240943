-- Veneer schema, SQLite flavour. Keep it in step with ../postgres/0001_init.sql:
-- same tables, same columns, same meaning. Applied migrations are checksummed:
-- never edit this file once released, add a new one.
--
-- Times are unix milliseconds (INTEGER), JSON is TEXT, binaries are BLOB.
-- STRICT tables make SQLite refuse a value of the wrong type instead of storing it.

CREATE TABLE tenants (
    id                 TEXT    NOT NULL PRIMARY KEY,
    -- The Clerk organisation that owns this tenant: the JWT's org claim maps here.
    org_id             TEXT    NOT NULL UNIQUE,
    name               TEXT    NOT NULL,
    status             TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    rate_limit_per_sec INTEGER NOT NULL CHECK (rate_limit_per_sec >= 0),
    rate_limit_burst   INTEGER NOT NULL CHECK (rate_limit_burst >= 0),
    max_concurrency    INTEGER NOT NULL CHECK (max_concurrency >= 0),
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;

CREATE TABLE domains (
    domain     TEXT    NOT NULL PRIMARY KEY,
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX domains_by_tenant ON domains (tenant_id);

CREATE TABLE plugin_versions (
    tenant_id   TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    sha256      TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    hooks       TEXT    NOT NULL,
    size_bytes  INTEGER NOT NULL CHECK (size_bytes >= 0),
    -- Not called `binary`: that is a keyword in PostgreSQL, and both schemas match.
    wasm_binary BLOB    NOT NULL,
    uploaded_by TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, sha256)
) STRICT;

-- Append-only history; the active plugin is the sha256 of a tenant's latest row.
-- AUTOINCREMENT so ids only ever grow: "latest" is the highest id.
CREATE TABLE activations (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    sha256     TEXT,
    action     TEXT    NOT NULL CHECK (action IN ('activate', 'rollback', 'deactivate')),
    actor      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    CHECK ((action = 'deactivate') = (sha256 IS NULL)),
    FOREIGN KEY (tenant_id, sha256) REFERENCES plugin_versions (tenant_id, sha256)
) STRICT;
CREATE INDEX activations_by_tenant ON activations (tenant_id, id);

CREATE TABLE plugin_settings (
    tenant_id  TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    json       TEXT    NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE quotas (
    tenant_id  TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    json       TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- SQLite compares TEXT bytewise (BINARY), like the "C" collation used on PostgreSQL,
-- so prefix ranges and ordering agree on both backends.
CREATE TABLE kv (
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
) STRICT;

-- Telemetry: not tied to plugin_versions, so a run is recorded even for a plugin
-- being tried before it is stored.
CREATE TABLE plugin_runs (
    id                INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    tenant_id         TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    sha256            TEXT    NOT NULL,
    hook              TEXT    NOT NULL,
    outcome           TEXT    NOT NULL,
    message           TEXT,
    fuel_used         INTEGER NOT NULL,
    peak_memory_bytes INTEGER NOT NULL,
    wall_time_us      INTEGER NOT NULL,
    logs              TEXT    NOT NULL,
    created_at        INTEGER NOT NULL
) STRICT;
CREATE INDEX plugin_runs_by_tenant ON plugin_runs (tenant_id, id);

CREATE TABLE usage (
    tenant_id   TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day         TEXT    NOT NULL,
    requests    INTEGER NOT NULL DEFAULT 0,
    plugin_runs INTEGER NOT NULL DEFAULT 0,
    fuel_used   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
) STRICT;

-- No foreign key to tenants: the audit trail must outlive what it describes and
-- must never be the reason an action fails.
CREATE TABLE audit_log (
    id            INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    tenant_id     TEXT    NOT NULL,
    actor         TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    plugin_sha256 TEXT,
    before        TEXT,
    after         TEXT,
    created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, id);
