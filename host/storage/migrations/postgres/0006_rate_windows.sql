-- Shared request-rate windows for `--rate-limit-mode global` (see
-- host/src/limits.rs and docs/deployment.md). Keep in step with
-- ../sqlite/0005_rate_windows.sql.
--
-- UNLOGGED: counters of the last seconds are not worth a WAL write each; after a
-- crash PostgreSQL empties the table, which at worst lets one window through
-- twice.

CREATE UNLOGGED TABLE rate_windows (
    tenant_id    TEXT   NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Unix milliseconds at which the window starts.
    window_start BIGINT NOT NULL,
    count        BIGINT NOT NULL CHECK (count >= 0),
    PRIMARY KEY (tenant_id, window_start)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON rate_windows TO veneer_app;

-- Platform bookkeeping: only platform-mode transactions see or change it.
ALTER TABLE rate_windows ENABLE ROW LEVEL SECURITY;
ALTER TABLE rate_windows FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_all ON rate_windows
    USING (current_setting('app.platform', true) = 'on')
    WITH CHECK (current_setting('app.platform', true) = 'on');
