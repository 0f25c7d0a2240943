-- Recorded hook calls for replay (see host/storage/src/hook_records.rs). Keep
-- in step with ../sqlite/0012_records.sql.

CREATE TABLE hook_records (
    id         BIGSERIAL PRIMARY KEY,
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    hook       TEXT   NOT NULL,
    input      TEXT   NOT NULL,
    output     TEXT   NOT NULL,
    outcome    TEXT   NOT NULL,
    chain      TEXT   NOT NULL,
    fuel       BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX hook_records_by_tenant ON hook_records (tenant_id, id);
CREATE INDEX hook_records_by_expiry ON hook_records (tenant_id, expires_at);

GRANT SELECT, INSERT, DELETE ON hook_records TO veneer_app;
GRANT USAGE ON SEQUENCE hook_records_id_seq TO veneer_app;

ALTER TABLE hook_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE hook_records FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON hook_records
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');
