-- The notification outbox (ADR 0026): one row per alert and channel its route takes, written in
-- the transaction that inserts the alert. A dispatcher per channel claims due rows, counts the
-- attempt, sends, and records how it went; every row ends in exactly one final state: sent,
-- dead (with last_error) or suppressed (duplicate_of). Times are RFC 3339 text (UTC, ms).

CREATE TABLE IF NOT EXISTS notification_deliveries (
    delivery_id      TEXT    PRIMARY KEY,   -- UUID v5 of alert id and channel: the idempotency key
    alert_id         TEXT    NOT NULL,
    channel          TEXT    NOT NULL,
    dedup_key        TEXT    NOT NULL,      -- kind|severity|subject
    alert_at         TEXT    NOT NULL,      -- the alert's event time (the dedup window's clock)
    state            TEXT    NOT NULL,      -- pending, sent, dead, suppressed
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,                  -- wall clock; NULL once final
    last_error       TEXT,
    duplicate_of     TEXT,
    created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at      TEXT
);

CREATE INDEX IF NOT EXISTS notification_deliveries_due_idx
    ON notification_deliveries (channel, next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS notification_deliveries_dedup_idx
    ON notification_deliveries (channel, dedup_key, alert_at) WHERE state <> 'suppressed';
CREATE INDEX IF NOT EXISTS notification_deliveries_alert_idx ON notification_deliveries (alert_id);
