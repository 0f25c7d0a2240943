-- Email: per-tenant sending settings, the messages sent, and the suppression list
-- (see host/src/storage/email.rs). Keep in step with ../postgres/0005_email.sql.

CREATE TABLE email_settings (
    tenant_id         TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    sending_domain    TEXT    NOT NULL,
    from_name         TEXT    NOT NULL,
    from_address      TEXT    NOT NULL,
    reply_to          TEXT,
    relay             TEXT    NOT NULL CHECK (relay IN ('platform', 'custom')),
    smtp_host         TEXT,
    smtp_port         INTEGER CHECK (smtp_port BETWEEN 1 AND 65535),
    smtp_tls          TEXT    NOT NULL CHECK (smtp_tls IN ('none', 'starttls', 'tls')),
    smtp_username     TEXT,
    -- Opaque ciphertext from the secrets module; never the password itself.
    smtp_password_enc TEXT,
    updated_at        INTEGER NOT NULL
) STRICT;

CREATE TABLE email_messages (
    tenant_id         TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- 32 lowercase hex digits; also the local part of the Message-ID and of the
    -- VERP bounce address.
    id                TEXT    NOT NULL,
    template_id       TEXT    NOT NULL,
    to_address        TEXT    NOT NULL,
    subject           TEXT    NOT NULL,
    -- The Message-ID header as sent, angle brackets included.
    message_id        TEXT    NOT NULL,
    state             TEXT    NOT NULL DEFAULT 'queued'
                      CHECK (state IN ('queued', 'sent', 'skipped_suppressed', 'failed', 'bounced')),
    smtp_reply        TEXT,
    -- 'hard' or 'soft' once a bounce came back for it.
    bounce_type       TEXT    CHECK (bounce_type IN ('hard', 'soft')),
    bounce_diagnostic TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at        INTEGER NOT NULL,
    sent_at           INTEGER,
    bounced_at        INTEGER,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX email_messages_by_time ON email_messages (tenant_id, created_at, id);
-- Bounce attribution by id alone (from a returned Message-ID), across tenants.
CREATE INDEX email_messages_by_id ON email_messages (id);

CREATE TABLE email_suppressions (
    tenant_id         TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Lowercased.
    address           TEXT    NOT NULL,
    reason            TEXT    NOT NULL,
    source_message_id TEXT,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, address)
) STRICT;
CREATE INDEX email_suppressions_by_time ON email_suppressions (tenant_id, created_at);
