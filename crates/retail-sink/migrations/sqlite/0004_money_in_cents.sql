-- Money as integer cents (ADR 0020). SQLite has no exact decimal type: NUMERIC affinity stored
-- prices as REAL, so raw rows and aggregate sums could disagree in the last cent. From here on
-- every money column holds whole cents in an INTEGER, and a CHECK keeps out anything else (a REAL
-- that an overflowing integer sum turns into, a text value): such a row is refused, never
-- rounded.
--
-- 0001 and 0002 declared these columns NUMERIC. A file that applied them under an older binary
-- is refused before this step runs (src/sqlite/migrate.rs), so the tables rebuilt here are the
-- empty ones 0001 and 0002 just created in the same transaction.

DROP TABLE sales_raw;

CREATE TABLE sales_raw (
    event_id    TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    store_id    INTEGER NOT NULL,
    sku         INTEGER NOT NULL,
    qty         INTEGER NOT NULL,
    -- Cents: 19.99 is stored as 1999.
    unit_price  INTEGER CONSTRAINT unit_price_in_cents CHECK (typeof(unit_price) IN ('integer', 'null')),
    seller_id   INTEGER,
    ts          TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    ingested_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX sales_raw_store_id_ts_idx ON sales_raw (store_id, ts);

DROP TABLE product_dim;

CREATE TABLE product_dim (
    sku        INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    category   TEXT    NOT NULL,
    -- Cents, like sales_raw.unit_price.
    price      INTEGER CONSTRAINT price_in_cents CHECK (typeof(price) IN ('integer', 'null')),
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
