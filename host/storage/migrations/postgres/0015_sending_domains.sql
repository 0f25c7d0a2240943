-- Sending domains and their DKIM keys (see host/storage/src/sending_domains.rs).
-- Keep in step with ../sqlite/0014_sending_domains.sql. Row-level security as
-- in 0002: a tenant reads and writes only its own rows.

CREATE TABLE sending_domains (
    tenant_id       TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    domain          TEXT   NOT NULL,
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'verified', 'failed')),
    created_at      BIGINT NOT NULL,
    verified_at     BIGINT,
    last_checked_at BIGINT,
    last_result     TEXT,
    spf_result      TEXT,
    dmarc_result    TEXT,
    PRIMARY KEY (tenant_id, domain)
);

CREATE TABLE dkim_keys (
    tenant_id       TEXT   NOT NULL,
    domain          TEXT   NOT NULL,
    selector        TEXT   NOT NULL,
    state           TEXT   NOT NULL CHECK (state IN ('pending', 'active', 'retired')),
    private_key_enc TEXT   NOT NULL,
    public_key      TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    activated_at    BIGINT,
    retired_at      BIGINT,
    PRIMARY KEY (tenant_id, domain, selector),
    FOREIGN KEY (tenant_id, domain) REFERENCES sending_domains (tenant_id, domain) ON DELETE CASCADE
);
CREATE UNIQUE INDEX dkim_keys_active ON dkim_keys (tenant_id, domain) WHERE state = 'active';

GRANT SELECT, INSERT, UPDATE, DELETE ON sending_domains, dkim_keys TO veneer_app;

ALTER TABLE sending_domains ENABLE ROW LEVEL SECURITY;
ALTER TABLE sending_domains FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sending_domains
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

ALTER TABLE dkim_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE dkim_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dkim_keys
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');
