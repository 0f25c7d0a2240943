-- Shopify's compliance webhooks. Keep it in step with
-- ../postgres/0020_shopify_privacy.sql.
--
-- What Veneer held about a customer when the shop asked
-- (`customers/data_request`), kept for the tenant admin to hand over.
CREATE TABLE shopify_data_requests (
    tenant_id   TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    request_id  TEXT    NOT NULL,
    customer_id TEXT    NOT NULL,
    export      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, request_id)
) STRICT;
