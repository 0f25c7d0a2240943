-- The Shopify install flow (OAuth authorization code grant). Keep it in step
-- with ../postgres/0018_shopify_oauth.sql.
--
-- A tenant's own Shopify app: its client id, its client secret (sealed with
-- the secrets key, bound to the tenant) and the scopes it asks for.
CREATE TABLE shopify_apps (
    tenant_id         TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    client_id         TEXT    NOT NULL,
    client_secret_enc TEXT    NOT NULL,
    scopes            TEXT    NOT NULL,
    updated_at        INTEGER NOT NULL
) STRICT;

-- Installs started and not finished: the `state` nonce, single use, bound to
-- its tenant and shop, until it expires.
CREATE TABLE shopify_oauth_states (
    nonce      TEXT    NOT NULL PRIMARY KEY,
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    shop       TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX shopify_oauth_states_by_tenant ON shopify_oauth_states (tenant_id, expires_at);

-- The scopes Shopify granted at install (comma-separated); null for a store
-- connected with a pasted token.
ALTER TABLE shopify_stores ADD COLUMN scopes TEXT;
