-- The landing schema for SQLite: the same tables and columns as PostgreSQL, without
-- partitioning. Ids are hyphenated lower-case UUID text; timestamps are RFC 3339 text in UTC
-- with milliseconds and `Z` (e.g. 2026-11-21T13:43:53.488Z), so they sort as text.

-- WITHOUT ROWID: the ledger is only its key, so the key's b-tree is the whole table.
CREATE TABLE IF NOT EXISTS landed_event_ids (
    event_id TEXT PRIMARY KEY NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS sales_raw (
    event_id    TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    store_id    INTEGER NOT NULL,
    sku         INTEGER NOT NULL,
    qty         INTEGER NOT NULL,
    unit_price  NUMERIC,
    seller_id   INTEGER,
    ts          TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    ingested_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX IF NOT EXISTS sales_raw_store_id_ts_idx ON sales_raw (store_id, ts);

CREATE TABLE IF NOT EXISTS events_raw (
    event_id      TEXT PRIMARY KEY NOT NULL,
    event_type    TEXT NOT NULL,
    ts            TEXT NOT NULL,
    source        TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    payload       TEXT NOT NULL,
    ingested_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX IF NOT EXISTS events_raw_event_type_ts_idx ON events_raw (event_type, ts);

CREATE TABLE IF NOT EXISTS dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    raw         BLOB    NOT NULL,
    reason      TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    topic       TEXT,
    "partition" INTEGER,
    "offset"    INTEGER,
    file        TEXT,
    line        INTEGER,
    rejected_at TEXT    NOT NULL,
    landed_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX IF NOT EXISTS dead_letters_rejected_at_idx ON dead_letters (rejected_at);

CREATE TABLE IF NOT EXISTS consumer_offsets (
    group_id    TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    "partition" INTEGER NOT NULL,
    -- A log offset is never negative; a batch claiming one is refused with everything it carried.
    next_offset INTEGER NOT NULL CHECK (next_offset >= 0),
    updated_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (group_id, topic, "partition")
);
