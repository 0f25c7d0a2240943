-- The platform's catalogue of stock plugins (see host/storage/src/catalogue.rs).
-- Keep in step with ../sqlite/0009_catalogue.sql.

CREATE TABLE catalogue_plugins (
    name             TEXT   NOT NULL,
    version          TEXT   NOT NULL,
    sha256           TEXT   NOT NULL,
    description      TEXT   NOT NULL,
    settings_example TEXT   NOT NULL,
    hooks            TEXT   NOT NULL,
    size_bytes       BIGINT NOT NULL CHECK (size_bytes >= 0),
    wasm_binary      BYTEA  NOT NULL,
    published_by     TEXT   NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON catalogue_plugins TO veneer_app;

-- Shared with every tenant: any tenant reads it, only the platform writes.
ALTER TABLE catalogue_plugins ENABLE ROW LEVEL SECURITY;
ALTER TABLE catalogue_plugins FORCE ROW LEVEL SECURITY;
CREATE POLICY tenants_read ON catalogue_plugins FOR SELECT
    USING (coalesce(current_setting('app.tenant_id', true), '') <> '');
CREATE POLICY platform_all ON catalogue_plugins
    USING (current_setting('app.platform', true) = 'on')
    WITH CHECK (current_setting('app.platform', true) = 'on');
