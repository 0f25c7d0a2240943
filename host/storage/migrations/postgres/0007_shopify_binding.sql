-- A shop is bound to at most one tenant at a time: the one whose store row is
-- enabled. Disconnecting or uninstalling disables the row and so releases the
-- shop for another tenant, who must prove ownership with a working token
-- (host/src/shopify/ownership.rs). Keep it in step with
-- ../sqlite/0006_shopify_binding.sql.
--
-- Like the constraint it replaces, the index is checked across tenants
-- whatever row-level security hides.

ALTER TABLE shopify_stores DROP CONSTRAINT shopify_stores_shop_domain_key;
CREATE UNIQUE INDEX shopify_stores_bound_shop ON shopify_stores (shop_domain) WHERE enabled;
CREATE INDEX shopify_stores_by_shop ON shopify_stores (shop_domain);
