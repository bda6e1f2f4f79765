-- The dedup ledger kept by event-time day (ADR 0022). SQLite has no partitions, so each day
-- gets its own table, landed_event_ids_YYYYMMDD (event_id TEXT PRIMARY KEY) WITHOUT ROWID,
-- created by the batch transaction that first lands an event of that day and dropped whole
-- (DROP TABLE) once the day is older than the dedup horizon. A single table with a `day`
-- column would have to be pruned with DELETE, row by row through the index and the WAL.
--
-- The old ledger has no day: it is kept as landed_event_ids_legacy, still consulted by the
-- write path, until the newest event day has moved a whole horizon past `legacy_until` (the
-- date of this migration); the store drops an empty one when it opens.

ALTER TABLE landed_event_ids RENAME TO landed_event_ids_legacy;

-- One row: the newest event day landed (days since 1970-01-01, moved in the batch transaction
-- that lands it) and, while the legacy ledger exists, the last day its events can have.
CREATE TABLE ledger_horizon (
    singleton    INTEGER PRIMARY KEY CHECK (singleton = 1),
    newest_day   INTEGER,
    legacy_until INTEGER
);

INSERT INTO ledger_horizon (singleton, newest_day, legacy_until)
VALUES (1, NULL, CAST(julianday('now') - 2440587.5 AS INTEGER));
