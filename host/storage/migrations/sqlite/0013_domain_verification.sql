-- Domains are proven before they route (see host/storage/src/domains.rs): each
-- tenant's claim of a domain has a status and a token to publish; several
-- tenants may claim a domain, one at a time may have it verified (it routes
-- while `verified` or in its `grace` period after its record went missing).
-- Domains mapped before this had never been proven: they start `pending`.
-- Keep in step with ../postgres/0014_domain_verification.sql.

CREATE TABLE domain_claims (
    domain          TEXT    NOT NULL,
    tenant_id       TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'verified', 'grace', 'failed', 'disabled')),
    token           TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    verified_at     INTEGER,
    last_checked_at INTEGER,
    last_result     TEXT,
    missing_since   INTEGER,
    PRIMARY KEY (domain, tenant_id)
) STRICT;
INSERT INTO domain_claims (domain, tenant_id, status, token, created_at, last_result)
    SELECT domain, tenant_id, 'pending', lower(hex(randomblob(16))), created_at,
           'mapped before domains were verified: publish the verification record'
      FROM domains;
DROP TABLE domains;
ALTER TABLE domain_claims RENAME TO domains;
CREATE INDEX domains_by_tenant ON domains (tenant_id);
-- One tenant at a time is served at a domain.
CREATE UNIQUE INDEX domains_routed ON domains (domain) WHERE status IN ('verified', 'grace');
