-- Stream processing (SQLite): late events, the partition watermarks a restart resumes from, and the
-- catalog dimensions sales are enriched with. Aggregate tables are not here: they are created
-- from the configuration at start (see src/derived/sql.rs).

CREATE TABLE IF NOT EXISTS late_events (
    aggregate    TEXT        NOT NULL,
    event_id     TEXT        NOT NULL,
    window_start TEXT    NOT NULL,
    window_end   TEXT    NOT NULL,
    event_ts     TEXT    NOT NULL,
    watermark    TEXT    NOT NULL,
    reason       TEXT        NOT NULL,
    topic        TEXT        NOT NULL,
    "partition"  INTEGER     NOT NULL,
    "offset"     INTEGER      NOT NULL,
    recorded_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (aggregate, event_id, window_start)
);

CREATE INDEX IF NOT EXISTS late_events_recorded_at_idx ON late_events (recorded_at);

CREATE TABLE IF NOT EXISTS partition_watermarks (
    group_id     TEXT        NOT NULL,
    topic        TEXT        NOT NULL,
    "partition"  INTEGER     NOT NULL,
    max_event_ts TEXT    NOT NULL,
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (group_id, topic, "partition")
);

CREATE TABLE IF NOT EXISTS store_dim (
    store_id   INTEGER PRIMARY KEY,
    name       TEXT        NOT NULL,
    city       TEXT        NOT NULL,
    country    TEXT        NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE IF NOT EXISTS seller_dim (
    seller_id  INTEGER PRIMARY KEY,
    store_id   INTEGER      NOT NULL,
    name       TEXT        NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE IF NOT EXISTS product_dim (
    sku        INTEGER PRIMARY KEY,
    name       TEXT        NOT NULL,
    category   TEXT        NOT NULL,
    price      NUMERIC,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
