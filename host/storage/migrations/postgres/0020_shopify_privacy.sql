-- Shopify's compliance webhooks. Keep it in step with
-- ../sqlite/0019_shopify_privacy.sql.

CREATE TABLE shopify_data_requests (
    tenant_id   TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    request_id  TEXT   NOT NULL,
    customer_id TEXT   NOT NULL,
    export      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, request_id)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON shopify_data_requests TO veneer_app;

ALTER TABLE shopify_data_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE shopify_data_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON shopify_data_requests
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

-- `shop/redact`: the commission ledger is append-only for the application
-- role; this function, owned by the schema owner, empties it for one tenant,
-- and only in that tenant's own scope once its store is uninstalled (Shopify
-- sends shop/redact 48 hours after the uninstall).
CREATE FUNCTION veneer_redact_shop_commissions(tenant text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    IF current_setting('app.tenant_id', true) IS DISTINCT FROM tenant THEN
        RAISE EXCEPTION 'veneer_redact_shop_commissions runs in the tenant''s own scope only'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (SELECT 1 FROM shopify_stores WHERE tenant_id = tenant AND enabled) THEN
        RAISE EXCEPTION 'tenant %''s store is still installed: shop/redact follows an uninstall', tenant
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    DELETE FROM shopify_commissions WHERE tenant_id = tenant;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION veneer_redact_shop_commissions(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION veneer_redact_shop_commissions(text) TO veneer_app;
