-- Per-tenant key-value usage (see host/src/storage/kv.rs): the number of keys and
-- their bytes (key + value, UTF-8), kept in step with `kv` by every write in the
-- same transaction, so the caps are checked without scanning the store. `version`
-- changes with every write: the tenant's snapshot of its key-value data is shared
-- by everyone who loads that version. Keep in step with
-- ../postgres/0008_kv_usage.sql.

CREATE TABLE kv_usage (
    tenant_id TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    keys      INTEGER NOT NULL CHECK (keys >= 0),
    bytes     INTEGER NOT NULL CHECK (bytes >= 0),
    version   INTEGER NOT NULL
) STRICT;

INSERT INTO kv_usage (tenant_id, keys, bytes, version)
    SELECT tenant_id, count(*), sum(octet_length(key) + octet_length(value)), random()
      FROM kv GROUP BY tenant_id;
