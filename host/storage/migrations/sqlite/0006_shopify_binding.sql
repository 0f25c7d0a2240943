-- A shop is bound to at most one tenant at a time: the one whose store row is
-- enabled. Disconnecting or uninstalling disables the row and so releases the
-- shop for another tenant, who must prove ownership with a working token
-- (host/src/shopify/ownership.rs). Keep it in step with
-- ../postgres/0007_shopify_binding.sql.
--
-- SQLite cannot drop the column's UNIQUE constraint in place: the table is
-- rebuilt (nothing references it) with the same columns and data.

CREATE TABLE shopify_stores_new (
    tenant_id        TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    -- The `<shop>.myshopify.com` domain, lower case. Unique among enabled
    -- stores (below); released stores keep it for the record.
    shop_domain      TEXT    NOT NULL,
    access_token_enc TEXT,
    app_secret_enc   TEXT,
    api_version      TEXT    NOT NULL,
    enabled          INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    connected_at     INTEGER NOT NULL,
    uninstalled_at   INTEGER,
    updated_at       INTEGER NOT NULL
) STRICT;

INSERT INTO shopify_stores_new (tenant_id, shop_domain, access_token_enc, app_secret_enc,
                                api_version, enabled, connected_at, uninstalled_at, updated_at)
SELECT tenant_id, shop_domain, access_token_enc, app_secret_enc, api_version, enabled,
       connected_at, uninstalled_at, updated_at
  FROM shopify_stores;

DROP TABLE shopify_stores;
ALTER TABLE shopify_stores_new RENAME TO shopify_stores;

CREATE UNIQUE INDEX shopify_stores_bound_shop ON shopify_stores (shop_domain) WHERE enabled = 1;
CREATE INDEX shopify_stores_by_shop ON shopify_stores (shop_domain);
