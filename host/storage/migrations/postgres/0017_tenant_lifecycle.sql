-- Tenant deletion (see host/storage/src/lifecycle.rs): a deleted tenant keeps
-- its rows until `purge_after`, is not served and runs no jobs; it can be
-- restored until then, and is purged (every row of it, in every table) after.
-- Both NULL for a live tenant. Keep in step with ../sqlite/0016_tenant_lifecycle.sql.

ALTER TABLE tenants ADD COLUMN deleted_at BIGINT;
ALTER TABLE tenants ADD COLUMN purge_after BIGINT;
CREATE INDEX tenants_purge_due ON tenants (purge_after) WHERE purge_after IS NOT NULL;

-- The purge, one bounded batch of one table at a time. Append-only tables
-- (audit_log, release_events, shopify_commissions) grant the application no
-- DELETE, and must not: this function, owned by the schema's owner, is the one
-- way their rows go, and it only deletes rows of a tenant marked deleted, in the
-- platform scope, from a table that has a `tenant_id` column. New tables are
-- covered without a change here.
CREATE FUNCTION veneer_purge_batch(tbl text, tenant text, batch integer) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    IF current_setting('app.platform', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'veneer_purge_batch runs in the platform scope only'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM tenants WHERE id = tenant AND deleted_at IS NOT NULL) THEN
        RAISE EXCEPTION 'tenant % is not deleted: only a deleted tenant is purged', tenant
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute a
                     JOIN pg_class c ON c.oid = a.attrelid
                     JOIN pg_namespace s ON s.oid = c.relnamespace
                    WHERE s.nspname = current_schema() AND c.relname = tbl
                      AND c.relkind IN ('r', 'p') AND a.attname = 'tenant_id'
                      AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'table % has no tenant_id column', tbl
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format('DELETE FROM %I WHERE ctid IN (SELECT ctid FROM %I WHERE tenant_id = $1 LIMIT $2)',
                   tbl, tbl)
        USING tenant, batch;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION veneer_purge_batch(text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION veneer_purge_batch(text, text, integer) TO veneer_app;
