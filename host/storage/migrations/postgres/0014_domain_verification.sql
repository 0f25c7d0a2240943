-- Domains are proven before they route (see host/storage/src/domains.rs).
-- Keep in step with ../sqlite/0013_domain_verification.sql.

ALTER TABLE domains DROP CONSTRAINT domains_pkey;
ALTER TABLE domains
    ADD COLUMN status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'verified', 'grace', 'failed', 'disabled')),
    ADD COLUMN token TEXT NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text),
    ADD COLUMN verified_at BIGINT,
    ADD COLUMN last_checked_at BIGINT,
    ADD COLUMN last_result TEXT;
ALTER TABLE domains ADD COLUMN missing_since BIGINT;
UPDATE domains SET last_result = 'mapped before domains were verified: publish the verification record';
ALTER TABLE domains ALTER COLUMN status DROP DEFAULT, ALTER COLUMN token DROP DEFAULT;
ALTER TABLE domains ADD PRIMARY KEY (domain, tenant_id);
CREATE UNIQUE INDEX domains_routed ON domains (domain) WHERE status IN ('verified', 'grace');
