-- The platform's output policies (see host/storage/src/policies.rs): one for
-- every tenant (scope '*') and one per tenant (scope = the tenant id). Keep in
-- step with ../postgres/0011_output_policies.sql.

CREATE TABLE output_policies (
    scope      TEXT    NOT NULL PRIMARY KEY,
    json       TEXT    NOT NULL,
    updated_by TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
