-- Sending domains are authenticated before mail goes out as them (see
-- host/storage/src/sending_domains.rs): each tenant's sending domain has a
-- status and DKIM keys, one row per selector. A key is `pending` until its
-- public key is found in DNS at `<selector>._domainkey.<domain>`, then
-- `active` (mail is signed with it); the key it replaces becomes `retired`.
-- The private key is ciphertext from the secrets module, never the key itself.
-- Keep in step with ../postgres/0015_sending_domains.sql.

CREATE TABLE sending_domains (
    tenant_id       TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    domain          TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'verified', 'failed')),
    created_at      INTEGER NOT NULL,
    verified_at     INTEGER,
    last_checked_at INTEGER,
    last_result     TEXT,
    -- What the last check found of SPF and DMARC, in words (advice only).
    spf_result      TEXT,
    dmarc_result    TEXT,
    PRIMARY KEY (tenant_id, domain)
) STRICT;

CREATE TABLE dkim_keys (
    tenant_id       TEXT    NOT NULL,
    domain          TEXT    NOT NULL,
    selector        TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'active', 'retired')),
    private_key_enc TEXT    NOT NULL,
    -- The public key as published: base64 of its SubjectPublicKeyInfo.
    public_key      TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    activated_at    INTEGER,
    retired_at      INTEGER,
    PRIMARY KEY (tenant_id, domain, selector),
    FOREIGN KEY (tenant_id, domain) REFERENCES sending_domains (tenant_id, domain) ON DELETE CASCADE
) STRICT;
-- At most one signing key per tenant and domain.
CREATE UNIQUE INDEX dkim_keys_active ON dkim_keys (tenant_id, domain) WHERE state = 'active';
