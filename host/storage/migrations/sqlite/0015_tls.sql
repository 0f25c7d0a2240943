-- HTTPS certificates ordered with ACME (see host/storage/src/tls.rs): one row
-- per name Veneer orders a certificate for (the base domain, tenant NULL, or a
-- tenant's routed custom domain), its current certificate (the private key
-- sealed by the application with the secrets key), the schedule of the next
-- order (renewal, or a retry after a failure) and the lease of the node ordering
-- it; the ACME account per directory (sealed); and the HTTP-01 challenges being
-- answered, so that any node can answer them.
-- Keep in step with ../postgres/0016_tls.sql.

CREATE TABLE certificates (
    domain          TEXT    NOT NULL PRIMARY KEY,
    tenant_id       TEXT    REFERENCES tenants (id) ON DELETE CASCADE,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'issued')),
    chain_pem       TEXT,
    key_sealed      TEXT,
    not_before      INTEGER,
    not_after       INTEGER,
    issued_at       INTEGER,
    last_error      TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    ordering_node   TEXT,
    ordering_until  INTEGER,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX certificates_by_tenant ON certificates (tenant_id);
CREATE INDEX certificates_due ON certificates (next_attempt_at);

CREATE TABLE acme_accounts (
    directory          TEXT    NOT NULL PRIMARY KEY,
    credentials_sealed TEXT    NOT NULL,
    created_at         INTEGER NOT NULL
) STRICT;

CREATE TABLE acme_challenges (
    token             TEXT    NOT NULL PRIMARY KEY,
    key_authorization TEXT    NOT NULL,
    domain            TEXT    NOT NULL,
    expires_at        INTEGER NOT NULL
) STRICT;
