-- HTTPS certificates ordered with ACME (see host/storage/src/tls.rs and
-- ../sqlite/0015_tls.sql, which says what each table holds). Keep in step with
-- it. Platform bookkeeping: only platform-mode transactions see or change these
-- tables (a tenant's certificate state reaches it through the platform's
-- domain views).

CREATE TABLE certificates (
    domain          TEXT   NOT NULL PRIMARY KEY,
    tenant_id       TEXT   REFERENCES tenants (id) ON DELETE CASCADE,
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'issued')),
    chain_pem       TEXT,
    key_sealed      TEXT,
    not_before      BIGINT,
    not_after       BIGINT,
    issued_at       BIGINT,
    last_error      TEXT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    ordering_node   TEXT,
    ordering_until  BIGINT,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX certificates_by_tenant ON certificates (tenant_id);
CREATE INDEX certificates_due ON certificates (next_attempt_at);

CREATE TABLE acme_accounts (
    directory          TEXT   NOT NULL PRIMARY KEY,
    credentials_sealed TEXT   NOT NULL,
    created_at         BIGINT NOT NULL
);

CREATE TABLE acme_challenges (
    token             TEXT   NOT NULL PRIMARY KEY,
    key_authorization TEXT   NOT NULL,
    domain            TEXT   NOT NULL,
    expires_at        BIGINT NOT NULL
);

GRANT SELECT, INSERT, UPDATE, DELETE ON certificates, acme_accounts, acme_challenges TO veneer_app;

ALTER TABLE certificates ENABLE ROW LEVEL SECURITY;
ALTER TABLE certificates FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_all ON certificates
    USING (current_setting('app.platform', true) = 'on')
    WITH CHECK (current_setting('app.platform', true) = 'on');

ALTER TABLE acme_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE acme_accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_all ON acme_accounts
    USING (current_setting('app.platform', true) = 'on')
    WITH CHECK (current_setting('app.platform', true) = 'on');

ALTER TABLE acme_challenges ENABLE ROW LEVEL SECURITY;
ALTER TABLE acme_challenges FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_all ON acme_challenges
    USING (current_setting('app.platform', true) = 'on')
    WITH CHECK (current_setting('app.platform', true) = 'on');
