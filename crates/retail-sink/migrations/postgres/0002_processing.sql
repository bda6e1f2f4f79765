-- Stream processing: late events, the partition watermarks a restart resumes from, and the
-- catalog dimensions sales are enriched with. Aggregate tables are not here: they are created
-- from the configuration at start (see src/derived/sql.rs).

CREATE TABLE IF NOT EXISTS late_events (
    aggregate    text        NOT NULL,
    event_id     uuid        NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    event_ts     timestamptz NOT NULL,
    watermark    timestamptz NOT NULL,
    reason       text        NOT NULL,
    topic        text        NOT NULL,
    "partition"  integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate, event_id, window_start)
);

CREATE INDEX IF NOT EXISTS late_events_recorded_at_idx ON late_events (recorded_at);

CREATE TABLE IF NOT EXISTS partition_watermarks (
    group_id     text        NOT NULL,
    topic        text        NOT NULL,
    "partition"  integer     NOT NULL,
    max_event_ts timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, "partition")
);

CREATE TABLE IF NOT EXISTS store_dim (
    store_id   bigint PRIMARY KEY,
    name       text        NOT NULL,
    city       text        NOT NULL,
    country    text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS seller_dim (
    seller_id  bigint PRIMARY KEY,
    store_id   bigint      NOT NULL,
    name       text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS product_dim (
    sku        bigint PRIMARY KEY,
    name       text        NOT NULL,
    category   text        NOT NULL,
    price      numeric(12, 2),
    updated_at timestamptz NOT NULL DEFAULT now()
);
