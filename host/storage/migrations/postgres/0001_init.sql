-- Veneer schema, PostgreSQL flavour. Keep it in step with ../sqlite/0001_init.sql:
-- same tables, same columns, same meaning. Applied migrations are checksummed:
-- never edit this file once released, add a new one.
--
-- Times are unix milliseconds (BIGINT), JSON is TEXT (the application owns its
-- shape; the database only stores it), binaries are BYTEA. Integers are BIGINT
-- throughout so a u32 limit always fits.
-- Row-level security, the application role and its grants: 0002.

CREATE TABLE tenants (
    id                 TEXT   NOT NULL PRIMARY KEY,
    -- The Clerk organisation that owns this tenant: the JWT's org claim maps here.
    org_id             TEXT   NOT NULL CONSTRAINT tenants_org_id_key UNIQUE,
    name               TEXT   NOT NULL,
    status             TEXT   NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    rate_limit_per_sec BIGINT NOT NULL CHECK (rate_limit_per_sec >= 0),
    rate_limit_burst   BIGINT NOT NULL CHECK (rate_limit_burst >= 0),
    max_concurrency    BIGINT NOT NULL CHECK (max_concurrency >= 0),
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

CREATE TABLE domains (
    domain     TEXT   NOT NULL PRIMARY KEY,
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
CREATE INDEX domains_by_tenant ON domains (tenant_id);

CREATE TABLE plugin_versions (
    tenant_id   TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    sha256      TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    version     TEXT   NOT NULL,
    hooks       TEXT   NOT NULL,
    size_bytes  BIGINT NOT NULL CHECK (size_bytes >= 0),
    -- Not called `binary`: that is a keyword here.
    wasm_binary BYTEA  NOT NULL,
    uploaded_by TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, sha256)
);

-- Append-only history; the active plugin is the sha256 of a tenant's latest row.
CREATE TABLE activations (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    sha256     TEXT,
    action     TEXT   NOT NULL CHECK (action IN ('activate', 'rollback', 'deactivate')),
    actor      TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    CHECK ((action = 'deactivate') = (sha256 IS NULL)),
    FOREIGN KEY (tenant_id, sha256) REFERENCES plugin_versions (tenant_id, sha256)
);
CREATE INDEX activations_by_tenant ON activations (tenant_id, id);

CREATE TABLE plugin_settings (
    tenant_id  TEXT   NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    json       TEXT   NOT NULL,
    version    BIGINT NOT NULL CHECK (version >= 1),
    updated_at BIGINT NOT NULL
);

CREATE TABLE quotas (
    tenant_id  TEXT   NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    json       TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

-- "C" collation: bytewise order, as SQLite's BINARY, so prefix ranges and
-- ordering agree on both backends whatever the database's locale.
CREATE TABLE kv (
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key        TEXT   COLLATE "C" NOT NULL,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- Telemetry: not tied to plugin_versions, so a run is recorded even for a plugin
-- being tried before it is stored.
CREATE TABLE plugin_runs (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id         TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    sha256            TEXT   NOT NULL,
    hook              TEXT   NOT NULL,
    outcome           TEXT   NOT NULL,
    message           TEXT,
    fuel_used         BIGINT NOT NULL,
    peak_memory_bytes BIGINT NOT NULL,
    wall_time_us      BIGINT NOT NULL,
    logs              TEXT   NOT NULL,
    created_at        BIGINT NOT NULL
);
CREATE INDEX plugin_runs_by_tenant ON plugin_runs (tenant_id, id);

CREATE TABLE usage (
    tenant_id   TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day         TEXT   COLLATE "C" NOT NULL,
    requests    BIGINT NOT NULL DEFAULT 0,
    plugin_runs BIGINT NOT NULL DEFAULT 0,
    fuel_used   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);

-- No foreign key to tenants: the audit trail must outlive what it describes and
-- must never be the reason an action fails.
CREATE TABLE audit_log (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     TEXT   NOT NULL,
    actor         TEXT   NOT NULL,
    action        TEXT   NOT NULL,
    plugin_sha256 TEXT,
    before        TEXT,
    after         TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, id);
