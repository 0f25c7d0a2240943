-- The platform's output policies (see host/storage/src/policies.rs). Keep in
-- step with ../sqlite/0010_output_policies.sql.

CREATE TABLE output_policies (
    scope      TEXT   NOT NULL PRIMARY KEY,
    json       TEXT   NOT NULL,
    updated_by TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

GRANT SELECT, INSERT, UPDATE, DELETE ON output_policies TO veneer_app;

-- A tenant reads the policy for all tenants and its own; only the platform writes.
ALTER TABLE output_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE output_policies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_reads_own ON output_policies FOR SELECT
    USING (coalesce(current_setting('app.tenant_id', true), '') <> ''
           AND (scope = '*' OR scope = current_setting('app.tenant_id', true)));
CREATE POLICY platform_all ON output_policies
    USING (current_setting('app.platform', true) = 'on')
    WITH CHECK (current_setting('app.platform', true) = 'on');
