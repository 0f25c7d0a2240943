-- Row-level security: the database enforces the tenant boundary again, underneath
-- the application's own `WHERE tenant_id = ...`.
--
-- The user in the database URL owns the tables and runs migrations; every pooled
-- connection then does `SET ROLE veneer_app`, a role that owns nothing and cannot
-- bypass RLS. FORCE makes the policies apply to the owner too (superusers still
-- bypass them, which is why the pool never stays the URL's user).
--
-- A transaction sees a tenant's rows only after
--     SELECT set_config('app.tenant_id', '<tenant>', true)
-- or every tenant's rows after set_config('app.platform', 'on', true) (admin
-- operations and host lookups). With neither set it sees no row at all.
-- `current_setting(.., true)` yields NULL or '' when unset, which matches nothing.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'veneer_app') THEN
        BEGIN
            CREATE ROLE veneer_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            -- Roles are cluster-wide: a migration of another database created it
            -- between our check and our CREATE.
            NULL;
        END;
    END IF;
    -- A non-superuser owner needs membership to `SET ROLE veneer_app`.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, 'veneer_app', 'MEMBER') THEN
        EXECUTE format('GRANT veneer_app TO %I', current_user);
    END IF;
END
$$;

GRANT SELECT, INSERT, UPDATE, DELETE
    ON tenants, domains, plugin_versions, activations, plugin_settings, quotas, kv,
       plugin_runs, usage
    TO veneer_app;
-- The audit trail is append-only for the application.
GRANT SELECT, INSERT ON audit_log TO veneer_app;
GRANT USAGE ON SEQUENCE activations_id_seq, plugin_runs_id_seq, audit_log_id_seq TO veneer_app;

-- Platform-managed tables: a tenant may read its own row, only the platform writes.

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_reads_own ON tenants FOR SELECT
    USING (id = current_setting('app.tenant_id', true));
CREATE POLICY platform_all ON tenants
    USING (current_setting('app.platform', true) = 'on')
    WITH CHECK (current_setting('app.platform', true) = 'on');

ALTER TABLE domains ENABLE ROW LEVEL SECURITY;
ALTER TABLE domains FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_reads_own ON domains FOR SELECT
    USING (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY platform_all ON domains
    USING (current_setting('app.platform', true) = 'on')
    WITH CHECK (current_setting('app.platform', true) = 'on');

ALTER TABLE quotas ENABLE ROW LEVEL SECURITY;
ALTER TABLE quotas FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_reads_own ON quotas FOR SELECT
    USING (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY platform_all ON quotas
    USING (current_setting('app.platform', true) = 'on')
    WITH CHECK (current_setting('app.platform', true) = 'on');

-- Tenant data: the tenant's own rows, or the platform's.

ALTER TABLE plugin_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE plugin_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON plugin_versions
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

ALTER TABLE activations ENABLE ROW LEVEL SECURITY;
ALTER TABLE activations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON activations
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

ALTER TABLE plugin_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE plugin_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON plugin_settings
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

ALTER TABLE kv ENABLE ROW LEVEL SECURITY;
ALTER TABLE kv FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kv
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

ALTER TABLE plugin_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE plugin_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON plugin_runs
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

ALTER TABLE usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

-- UPDATE and DELETE are not granted, so these policies only ever filter reads and
-- check inserts.
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');
