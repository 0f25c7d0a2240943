-- Email: per-tenant sending settings, the messages sent, and the suppression list
-- (see host/src/storage/email.rs). Keep in step with ../sqlite/0004_email.sql.
-- Row-level security as in 0002: a tenant reads and writes only its own rows,
-- the platform (bounce attribution) all of them.

CREATE TABLE email_settings (
    tenant_id         TEXT   NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    sending_domain    TEXT   NOT NULL,
    from_name         TEXT   NOT NULL,
    from_address      TEXT   NOT NULL,
    reply_to          TEXT,
    relay             TEXT   NOT NULL CHECK (relay IN ('platform', 'custom')),
    smtp_host         TEXT,
    smtp_port         BIGINT CHECK (smtp_port BETWEEN 1 AND 65535),
    smtp_tls          TEXT   NOT NULL CHECK (smtp_tls IN ('none', 'starttls', 'tls')),
    smtp_username     TEXT,
    -- Opaque ciphertext from the secrets module; never the password itself.
    smtp_password_enc TEXT,
    updated_at        BIGINT NOT NULL
);

CREATE TABLE email_messages (
    tenant_id         TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- 32 lowercase hex digits; also the local part of the Message-ID and of the
    -- VERP bounce address.
    id                TEXT   NOT NULL,
    template_id       TEXT   NOT NULL,
    to_address        TEXT   NOT NULL,
    subject           TEXT   NOT NULL,
    -- The Message-ID header as sent, angle brackets included.
    message_id        TEXT   NOT NULL,
    state             TEXT   NOT NULL DEFAULT 'queued'
                      CHECK (state IN ('queued', 'sent', 'skipped_suppressed', 'failed', 'bounced')),
    smtp_reply        TEXT,
    -- 'hard' or 'soft' once a bounce came back for it.
    bounce_type       TEXT   CHECK (bounce_type IN ('hard', 'soft')),
    bounce_diagnostic TEXT,
    attempts          BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at        BIGINT NOT NULL,
    sent_at           BIGINT,
    bounced_at        BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX email_messages_by_time ON email_messages (tenant_id, created_at, id);
-- Bounce attribution by id alone (from a returned Message-ID), across tenants.
CREATE INDEX email_messages_by_id ON email_messages (id);

CREATE TABLE email_suppressions (
    tenant_id         TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Lowercased.
    address           TEXT   NOT NULL,
    reason            TEXT   NOT NULL,
    source_message_id TEXT,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, address)
);
CREATE INDEX email_suppressions_by_time ON email_suppressions (tenant_id, created_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON email_settings, email_messages, email_suppressions
    TO veneer_app;

ALTER TABLE email_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON email_settings
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

ALTER TABLE email_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON email_messages
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');

ALTER TABLE email_suppressions ENABLE ROW LEVEL SECURITY;
ALTER TABLE email_suppressions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON email_suppressions
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');
