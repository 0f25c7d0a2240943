-- Shopify: one connected store per tenant, webhook ids seen (for deduplication),
-- commission decisions taken on order lines, and the product types of the
-- tenant's products (see host/src/storage/shopify.rs). Keep it in step with
-- ../sqlite/0003_shopify.sql. Row-level security as in 0002: a transaction sees
-- its tenant's rows (`app.tenant_id`) or, in platform mode, all of them.
--
-- Credentials are never stored in clear: the `*_enc` columns hold
-- `v1:<key_id>:<base64>` values made by host/src/secrets.rs, bound to the tenant.

CREATE TABLE shopify_stores (
    tenant_id        TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    -- The `<shop>.myshopify.com` domain, lower case: webhooks name it, and it
    -- can belong to one tenant only. The unique index is checked across
    -- tenants whatever RLS hides.
    shop_domain      TEXT    NOT NULL CONSTRAINT shopify_stores_shop_domain_key UNIQUE,
    access_token_enc TEXT,
    app_secret_enc   TEXT,
    api_version      TEXT    NOT NULL,
    enabled          BOOLEAN NOT NULL,
    connected_at     BIGINT  NOT NULL,
    uninstalled_at   BIGINT,
    updated_at       BIGINT  NOT NULL
);

-- Webhook ids already accepted: Shopify delivers at least once, and retries.
CREATE TABLE shopify_webhooks (
    tenant_id   TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    webhook_id  TEXT   NOT NULL,
    topic       TEXT   NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, webhook_id)
);
CREATE INDEX shopify_webhooks_by_age ON shopify_webhooks (received_at);

-- One decision per order line, ever: a redelivered order never pays twice.
CREATE TABLE shopify_commissions (
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    order_id     TEXT   NOT NULL,
    line_item_id TEXT   NOT NULL,
    decision     TEXT   NOT NULL,
    source       TEXT   NOT NULL,
    outcome      TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, order_id, line_item_id)
);
CREATE INDEX shopify_commissions_by_time ON shopify_commissions (tenant_id, created_at);

-- `updated_at` is the product's own update time at Shopify: an older
-- (redelivered or late) webhook never overwrites a newer one.
CREATE TABLE shopify_products (
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    product_id   TEXT   NOT NULL,
    product_type TEXT   NOT NULL,
    category_id  TEXT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, product_id)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON shopify_stores, shopify_products TO veneer_app;
-- Seen webhook ids are only added and pruned.
GRANT SELECT, INSERT, DELETE ON shopify_webhooks TO veneer_app;
-- Commission decisions are a ledger: the application only appends.
GRANT SELECT, INSERT ON shopify_commissions TO veneer_app;

ALTER TABLE shopify_stores ENABLE ROW LEVEL SECURITY;
ALTER TABLE shopify_stores FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON shopify_stores
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

ALTER TABLE shopify_webhooks ENABLE ROW LEVEL SECURITY;
ALTER TABLE shopify_webhooks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON shopify_webhooks
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

ALTER TABLE shopify_commissions ENABLE ROW LEVEL SECURITY;
ALTER TABLE shopify_commissions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON shopify_commissions
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

ALTER TABLE shopify_products ENABLE ROW LEVEL SECURITY;
ALTER TABLE shopify_products FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON shopify_products
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');
