-- Per-tenant key-value usage (see host/src/storage/kv.rs): the number of keys and
-- their bytes (key + value, UTF-8), kept in step with `kv` by every write in the
-- same transaction (which locks this row, so concurrent writes of one tenant queue
-- and cannot overshoot the caps), so the caps are checked without scanning the
-- store. `version` changes with every write: the tenant's snapshot of its
-- key-value data is shared by everyone who loads that version. Keep in step with
-- ../sqlite/0007_kv_usage.sql.

CREATE TABLE kv_usage (
    tenant_id TEXT   NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    keys      BIGINT NOT NULL CHECK (keys >= 0),
    bytes     BIGINT NOT NULL CHECK (bytes >= 0),
    version   BIGINT NOT NULL
);

INSERT INTO kv_usage (tenant_id, keys, bytes, version)
    SELECT tenant_id, count(*), sum(octet_length(key) + octet_length(value)),
           floor(random() * 9e18)::bigint
      FROM kv GROUP BY tenant_id;

GRANT SELECT, INSERT, UPDATE, DELETE ON kv_usage TO veneer_app;

-- Tenant data, like `kv`: the tenant's own row, or the platform's.
ALTER TABLE kv_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE kv_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kv_usage
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');
