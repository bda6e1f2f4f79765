-- The schema registry's rows (issue 16; retail-schema's `RegistryStore`, saved through
-- `Store::save_schema_registry`): Avro schemas by global id, the versions of each subject, and
-- the compatibility modes. The registry chooses ids and version numbers itself from the rows it
-- loaded at start; these tables keep what they are given, all of one save or none of it.

-- Never deleted: a schema stays readable by id after every version naming it is gone, and its
-- id is never given again.
CREATE TABLE IF NOT EXISTS schema_registry_schemas (
    id           INTEGER PRIMARY KEY,
    schema_type  TEXT    NOT NULL,          -- Confluent's name: AVRO
    schema_text  TEXT    NOT NULL           -- as first registered, byte for byte
);

-- A soft delete sets `deleted` (the number is kept, never given again); a permanent delete
-- removes the row.
CREATE TABLE IF NOT EXISTS schema_registry_versions (
    subject    TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    schema_id  INTEGER NOT NULL REFERENCES schema_registry_schemas (id),
    deleted    INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    PRIMARY KEY (subject, version)
);

-- SQLite checks REFERENCES only on connections that set `PRAGMA foreign_keys = ON`, which the
-- store does not (and a tool opening the file would not either): this trigger makes a version
-- naming an unknown schema a constraint error on every connection, as PostgreSQL's foreign key
-- does, so the store refuses it and the save rolls back whole.
CREATE TRIGGER IF NOT EXISTS schema_registry_versions_schema_exists
BEFORE INSERT ON schema_registry_versions
WHEN NOT EXISTS (SELECT 1 FROM schema_registry_schemas WHERE id = NEW.schema_id)
BEGIN
    SELECT RAISE(ABORT, 'schema_registry_versions.schema_id names no row of schema_registry_schemas');
END;

-- One row per subject with its own mode. The global mode is the row whose subject is '' (the
-- empty text): a subject name is never empty, and it keeps one primary key for both kinds.
CREATE TABLE IF NOT EXISTS schema_registry_config (
    subject        TEXT NOT NULL PRIMARY KEY,
    compatibility  TEXT NOT NULL            -- BACKWARD, FORWARD_TRANSITIVE, NONE, ...
);
