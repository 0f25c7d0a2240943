-- Recorded hook calls for replay (see host/storage/src/hook_records.rs): the
-- input (personal data redacted before it gets here), the answer served and
-- the chain that served it. Kept until `expires_at`. Keep in step with
-- ../postgres/0013_records.sql.

CREATE TABLE hook_records (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    hook       TEXT    NOT NULL,
    input      TEXT    NOT NULL,
    output     TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    chain      TEXT    NOT NULL,
    fuel       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX hook_records_by_tenant ON hook_records (tenant_id, id);
CREATE INDEX hook_records_by_expiry ON hook_records (tenant_id, expires_at);
