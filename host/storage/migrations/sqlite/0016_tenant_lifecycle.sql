-- Tenant deletion (see host/storage/src/lifecycle.rs): a deleted tenant keeps
-- its rows until `purge_after`, is not served and runs no jobs; it can be
-- restored until then, and is purged (every row of it, in every table) after.
-- Both NULL for a live tenant. Keep in step with ../postgres/0017_tenant_lifecycle.sql.

ALTER TABLE tenants ADD COLUMN deleted_at INTEGER;
ALTER TABLE tenants ADD COLUMN purge_after INTEGER;
CREATE INDEX tenants_purge_due ON tenants (purge_after) WHERE purge_after IS NOT NULL;
