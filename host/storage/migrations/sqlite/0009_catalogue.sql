-- The platform's catalogue of stock plugins (see host/storage/src/catalogue.rs):
-- published by platform admins, read by every tenant, installed into a tenant by
-- copying the component into its own plugin versions. Keep in step with
-- ../postgres/0010_catalogue.sql.

CREATE TABLE catalogue_plugins (
    name             TEXT    NOT NULL,
    version          TEXT    NOT NULL,
    sha256           TEXT    NOT NULL,
    description      TEXT    NOT NULL,
    settings_example TEXT    NOT NULL,
    hooks            TEXT    NOT NULL,
    size_bytes       INTEGER NOT NULL CHECK (size_bytes >= 0),
    wasm_binary      BLOB    NOT NULL,
    published_by     TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;
