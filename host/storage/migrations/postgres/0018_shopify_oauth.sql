-- The Shopify install flow (OAuth authorization code grant). Keep it in step
-- with ../sqlite/0017_shopify_oauth.sql.

CREATE TABLE shopify_apps (
    tenant_id         TEXT   NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    client_id         TEXT   NOT NULL,
    client_secret_enc TEXT   NOT NULL,
    scopes            TEXT   NOT NULL,
    updated_at        BIGINT NOT NULL
);

CREATE TABLE shopify_oauth_states (
    nonce      TEXT   NOT NULL PRIMARY KEY,
    tenant_id  TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    shop       TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX shopify_oauth_states_by_tenant ON shopify_oauth_states (tenant_id, expires_at);

ALTER TABLE shopify_stores ADD COLUMN scopes TEXT;

GRANT SELECT, INSERT, UPDATE, DELETE ON shopify_apps, shopify_oauth_states TO veneer_app;

ALTER TABLE shopify_apps ENABLE ROW LEVEL SECURITY;
ALTER TABLE shopify_apps FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON shopify_apps
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

ALTER TABLE shopify_oauth_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE shopify_oauth_states FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON shopify_oauth_states
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');
