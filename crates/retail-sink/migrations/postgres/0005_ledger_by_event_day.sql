-- The dedup ledger kept by event-time day (ADR 0022): landed_event_ids becomes partitioned by
-- range on `day` (the UTC day of the event's ts), one partition per day
-- (landed_event_ids_YYYYMMDD, created on demand), so that days older than the dedup horizon are
-- dropped whole with DROP TABLE instead of deleted row by row. Uniqueness is (event_id, day).
--
-- The old ledger has no day: it is kept as landed_event_ids_legacy, still consulted by the
-- write path, until the newest event day has moved a whole horizon past `legacy_until` (the
-- date of this migration); an empty one is dropped here at once.

ALTER TABLE landed_event_ids RENAME TO landed_event_ids_legacy;
ALTER TABLE landed_event_ids_legacy RENAME CONSTRAINT landed_event_ids_pkey TO landed_event_ids_legacy_pkey;

CREATE TABLE landed_event_ids (
    event_id uuid NOT NULL,
    day      date NOT NULL,
    PRIMARY KEY (event_id, day)
) PARTITION BY RANGE (day);

-- One row: the newest event day landed (moved in the batch transaction that lands it) and, while
-- the legacy ledger exists, the last day its events can have.
CREATE TABLE ledger_horizon (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    newest_day   date,
    legacy_until date
);

INSERT INTO ledger_horizon (singleton, newest_day, legacy_until)
SELECT true, NULL, CASE WHEN EXISTS (SELECT 1 FROM landed_event_ids_legacy) THEN current_date END;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM landed_event_ids_legacy) THEN
        DROP TABLE landed_event_ids_legacy;
    END IF;
END $$;
