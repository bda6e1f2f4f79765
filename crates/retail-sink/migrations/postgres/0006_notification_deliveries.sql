-- The notification outbox (ADR 0026): one row per alert and channel its route takes, written in
-- the transaction that inserts the alert. A dispatcher per channel claims due rows
-- (`FOR UPDATE SKIP LOCKED`), counts the attempt, sends, and records how it went; every row
-- ends in exactly one final state: sent, dead (with last_error) or suppressed (duplicate_of).

CREATE TABLE IF NOT EXISTS notification_deliveries (
    delivery_id      uuid        PRIMARY KEY,   -- UUID v5 of alert id and channel: the idempotency key
    alert_id         uuid        NOT NULL,
    channel          text        NOT NULL,
    dedup_key        text        NOT NULL,      -- kind|severity|subject
    alert_at         timestamptz NOT NULL,      -- the alert's event time (the dedup window's clock)
    state            text        NOT NULL,      -- pending, sent, dead, suppressed
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,               -- wall clock; NULL once final
    last_error       text,
    duplicate_of     uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);

-- The dispatchers' claim: due pending rows of one channel.
CREATE INDEX IF NOT EXISTS notification_deliveries_due_idx
    ON notification_deliveries (channel, next_attempt_at) WHERE state = 'pending';
-- The dedup window: the last delivery of a key on a channel.
CREATE INDEX IF NOT EXISTS notification_deliveries_dedup_idx
    ON notification_deliveries (channel, dedup_key, alert_at) WHERE state <> 'suppressed';
CREATE INDEX IF NOT EXISTS notification_deliveries_alert_idx ON notification_deliveries (alert_id);
