-- Shared request-rate windows for `--rate-limit-mode global` (see
-- host/src/limits.rs). Keep in step with ../postgres/0006_rate_windows.sql.
-- With SQLite there is one node, so the global mode only costs a write; it
-- exists so both backends have the same schema.

CREATE TABLE rate_windows (
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Unix milliseconds at which the window starts.
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (tenant_id, window_start)
) STRICT;
