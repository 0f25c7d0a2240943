-- Clerk organisation webhooks. Keep it in step with ../sqlite/0018_clerk.sql,
-- which says what each table holds.

CREATE TABLE clerk_webhook_deliveries (
    svix_id     TEXT   NOT NULL PRIMARY KEY,
    event_type  TEXT   NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX clerk_webhook_deliveries_by_age ON clerk_webhook_deliveries (received_at);

CREATE TABLE member_revocations (
    tenant_id      TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id        TEXT   NOT NULL,
    revoked_before BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX member_revocations_by_age ON member_revocations (revoked_before);

GRANT SELECT, INSERT, UPDATE, DELETE ON clerk_webhook_deliveries, member_revocations TO veneer_app;

-- Platform bookkeeping: only platform-mode transactions see it.
ALTER TABLE clerk_webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE clerk_webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_all ON clerk_webhook_deliveries
    USING (current_setting('app.platform', true) = 'on')
    WITH CHECK (current_setting('app.platform', true) = 'on');

ALTER TABLE member_revocations ENABLE ROW LEVEL SECURITY;
ALTER TABLE member_revocations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON member_revocations
    USING (tenant_id = current_setting('app.tenant_id', true)
           OR current_setting('app.platform', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)
                OR current_setting('app.platform', true) = 'on');
