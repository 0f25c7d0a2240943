-- Clerk organisation webhooks. Keep it in step with ../postgres/0019_clerk.sql.
--
-- Svix message ids of Clerk webhook deliveries already handled, so a retry or
-- a replay of one is acknowledged without acting again. Platform bookkeeping
-- (a delivery names an organisation, not a tenant); pruned after 7 days, past
-- Svix's retry schedule.
CREATE TABLE clerk_webhook_deliveries (
    svix_id     TEXT    NOT NULL PRIMARY KEY,
    event_type  TEXT    NOT NULL,
    received_at INTEGER NOT NULL
) STRICT;
CREATE INDEX clerk_webhook_deliveries_by_age ON clerk_webhook_deliveries (received_at);

-- A member of the tenant's organisation whose membership or role changed:
-- their tokens for the tenant issued before `revoked_before` (Unix ms) are
-- refused, so the change takes effect on the next request.
CREATE TABLE member_revocations (
    tenant_id      TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id        TEXT    NOT NULL,
    revoked_before INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
) STRICT;
CREATE INDEX member_revocations_by_age ON member_revocations (revoked_before);
