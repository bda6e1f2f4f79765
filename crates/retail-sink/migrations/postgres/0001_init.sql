-- The landing schema for PostgreSQL: raw sales partitioned by UTC day, the exactly-once ledger,
-- other events as JSON, dead letters and the consumer offsets of record.
--
-- Why sales_raw has no primary key: PostgreSQL can only enforce a unique index on a partitioned
-- table if it contains the partition key (ts), which would make (event_id, ts) unique rather
-- than event_id. Uniqueness of event_id therefore lives in landed_event_ids, which every event
-- type goes through in the same transaction as its row.

CREATE TABLE IF NOT EXISTS landed_event_ids (
    event_id uuid PRIMARY KEY
);

CREATE TABLE IF NOT EXISTS sales_raw (
    event_id    uuid           NOT NULL,
    kind        text           NOT NULL,
    store_id    bigint         NOT NULL,
    sku         bigint         NOT NULL,
    qty         integer        NOT NULL,
    unit_price  numeric(12, 2),
    seller_id   bigint,
    ts          timestamptz    NOT NULL,
    source      text           NOT NULL,
    ingested_at timestamptz    NOT NULL DEFAULT now()
) PARTITION BY RANGE (ts);

-- Declared on the parent, so every day partition gets its own copy when it is created.
CREATE INDEX IF NOT EXISTS sales_raw_store_id_ts_idx ON sales_raw (store_id, ts);

CREATE TABLE IF NOT EXISTS events_raw (
    event_id      uuid PRIMARY KEY,
    event_type    text        NOT NULL,
    ts            timestamptz NOT NULL,
    source        text        NOT NULL,
    partition_key text        NOT NULL,
    payload       jsonb       NOT NULL,
    ingested_at   timestamptz NOT NULL DEFAULT now()
);

-- The views built on events_raw read one event type over a time range.
CREATE INDEX IF NOT EXISTS events_raw_event_type_ts_idx ON events_raw (event_type, ts);

CREATE TABLE IF NOT EXISTS dead_letters (
    id          bigserial PRIMARY KEY,
    raw         bytea       NOT NULL,
    reason      text        NOT NULL,
    kind        text        NOT NULL,
    source      text        NOT NULL,
    topic       text,
    "partition" integer,
    "offset"    bigint,
    file        text,
    line        bigint,
    rejected_at timestamptz NOT NULL,
    landed_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS dead_letters_rejected_at_idx ON dead_letters (rejected_at);

CREATE TABLE IF NOT EXISTS consumer_offsets (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    "partition" integer     NOT NULL,
    -- A log offset is never negative; a batch claiming one is refused with everything it carried.
    next_offset bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, "partition")
);
