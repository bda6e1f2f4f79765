-- Retention by day (ADR 0028): events_raw, late_events and dead_letters become partitioned by
-- range on a time column, one partition per UTC day (<table>_YYYYMMDD, created on demand like
-- sales_raw's), so that days past their retention are dropped whole with DROP TABLE instead of
-- deleted row by row. events_raw by ts and late_events by event_ts (event time, the clock of
-- landing.raw_retention_days and landing.late_events_retention_days), dead_letters by
-- rejected_at (wall clock, landing.dead_letters_retention_days).
--
-- A partitioned table's unique keys must contain its partition key:
-- - events_raw loses its primary key on event_id, like sales_raw never had one: every event
--   goes through the landed_event_ids ledger in the same transaction, which is what keeps an
--   event_id once (ADR 0001, 0022).
-- - late_events' key becomes (aggregate, event_id, window_start, event_ts): an event's ts is part
--   of what the ledger keeps it once by, so this is the same key for every row written.
-- - dead_letters' key becomes (id, rejected_at); id still comes from the same sequence, so it
--   stays unique, and the API still finds a dead letter by id alone.
--
-- Existing rows are neither copied nor rewritten: each old table is renamed <table>_legacy and
-- attached as ONE partition holding every day before `retention_legacy.below` (the day after the
-- later of today and its newest row); later days get day partitions. The legacy partition is
-- dropped whole once its whole range is past the retention. An empty old table is dropped here.
-- Attaching checks the rows against the bound once (a scan), and builds the one index the new
-- keys need (late_events', dead_letters' primary keys, in place of their old ones).

CREATE TABLE retention_legacy (
    parent text PRIMARY KEY,
    below  date NOT NULL
);

ALTER TABLE events_raw RENAME TO events_raw_legacy;
ALTER TABLE events_raw_legacy RENAME CONSTRAINT events_raw_pkey TO events_raw_legacy_pkey;
ALTER INDEX IF EXISTS events_raw_event_type_ts_idx RENAME TO events_raw_legacy_event_type_ts_idx;
CREATE TABLE events_raw (LIKE events_raw_legacy INCLUDING DEFAULTS) PARTITION BY RANGE (ts);
-- The views built on events_raw read one event type over a time range.
CREATE INDEX events_raw_event_type_ts_idx ON events_raw (event_type, ts);

ALTER TABLE late_events RENAME TO late_events_legacy;
-- A partition cannot keep a primary key of its own under the parent's: attaching builds the new one.
ALTER TABLE late_events_legacy DROP CONSTRAINT late_events_pkey;
ALTER INDEX IF EXISTS late_events_recorded_at_idx RENAME TO late_events_legacy_recorded_at_idx;
CREATE TABLE late_events (LIKE late_events_legacy INCLUDING DEFAULTS) PARTITION BY RANGE (event_ts);
ALTER TABLE late_events ADD PRIMARY KEY (aggregate, event_id, window_start, event_ts);
CREATE INDEX late_events_recorded_at_idx ON late_events (recorded_at);

ALTER TABLE dead_letters RENAME TO dead_letters_legacy;
ALTER TABLE dead_letters_legacy DROP CONSTRAINT dead_letters_pkey;
ALTER INDEX IF EXISTS dead_letters_rejected_at_idx RENAME TO dead_letters_legacy_rejected_at_idx;
-- INCLUDING DEFAULTS keeps id's nextval('dead_letters_id_seq'); the sequence moves to the new
-- table, so that dropping the legacy partition does not drop it.
CREATE TABLE dead_letters (LIKE dead_letters_legacy INCLUDING DEFAULTS) PARTITION BY RANGE (rejected_at);
ALTER SEQUENCE dead_letters_id_seq OWNED BY dead_letters.id;
ALTER TABLE dead_letters ADD PRIMARY KEY (id, rejected_at);
CREATE INDEX dead_letters_rejected_at_idx ON dead_letters (rejected_at);

DO $$
DECLARE
    t record;
    newest date;
    below date;
BEGIN
    FOR t IN SELECT * FROM (VALUES ('events_raw', 'ts'), ('late_events', 'event_ts'),
                                   ('dead_letters', 'rejected_at')) AS v (parent, key)
    LOOP
        EXECUTE format('SELECT (max(%I) AT TIME ZONE ''UTC'')::date FROM %I', t.key, t.parent || '_legacy')
            INTO newest;
        IF newest IS NULL THEN
            EXECUTE format('DROP TABLE %I', t.parent || '_legacy');
        ELSE
            below := greatest((now() AT TIME ZONE 'UTC')::date, newest) + 1;
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%L)',
                           t.parent, t.parent || '_legacy', to_char(below, 'YYYY-MM-DD') || 'T00:00:00Z');
            INSERT INTO retention_legacy (parent, below) VALUES (t.parent, below);
        END IF;
    END LOOP;
END $$;
