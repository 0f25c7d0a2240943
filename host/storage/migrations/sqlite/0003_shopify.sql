-- Shopify: one connected store per tenant, webhook ids seen (for deduplication),
-- commission decisions taken on order lines, and the product types of the
-- tenant's products (see host/src/storage/shopify.rs). Keep it in step with
-- ../postgres/0004_shopify.sql.
--
-- Credentials are never stored in clear: the `*_enc` columns hold
-- `v1:<key_id>:<base64>` values made by host/src/secrets.rs, bound to the
-- tenant. Booleans are INTEGER 0/1 here and BOOLEAN on PostgreSQL; the
-- application reads them through `CASE WHEN .. THEN 1 ELSE 0 END`.

CREATE TABLE shopify_stores (
    tenant_id        TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    -- The `<shop>.myshopify.com` domain, lower case: webhooks name it, and it
    -- can belong to one tenant only.
    shop_domain      TEXT    NOT NULL UNIQUE,
    access_token_enc TEXT,
    app_secret_enc   TEXT,
    api_version      TEXT    NOT NULL,
    enabled          INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    connected_at     INTEGER NOT NULL,
    uninstalled_at   INTEGER,
    updated_at       INTEGER NOT NULL
) STRICT;

-- Webhook ids already accepted: Shopify delivers at least once, and retries.
CREATE TABLE shopify_webhooks (
    tenant_id   TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    webhook_id  TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, webhook_id)
) STRICT;
CREATE INDEX shopify_webhooks_by_age ON shopify_webhooks (received_at);

-- One decision per order line, ever: a redelivered order never pays twice.
CREATE TABLE shopify_commissions (
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    order_id     TEXT    NOT NULL,
    line_item_id TEXT    NOT NULL,
    decision     TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    outcome      TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, order_id, line_item_id)
) STRICT;
CREATE INDEX shopify_commissions_by_time ON shopify_commissions (tenant_id, created_at);

-- `updated_at` is the product's own update time at Shopify: an older
-- (redelivered or late) webhook never overwrites a newer one.
CREATE TABLE shopify_products (
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    product_id   TEXT    NOT NULL,
    product_type TEXT    NOT NULL,
    category_id  TEXT,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, product_id)
) STRICT;
