-- The schema registry's rows (issue 16; retail-schema's `RegistryStore`, saved through
-- `Store::save_schema_registry`): Avro schemas by global id, the versions of each subject, and
-- the compatibility modes. The registry chooses ids and version numbers itself from the rows it
-- loaded at start; these tables keep what they are given, all of one save or none of it.

-- Never deleted: a schema stays readable by id after every version naming it is gone, and its
-- id is never given again.
CREATE TABLE IF NOT EXISTS schema_registry_schemas (
    id           integer PRIMARY KEY,
    schema_type  text    NOT NULL,          -- Confluent's name: AVRO
    schema_text  text    NOT NULL           -- as first registered, byte for byte
);

-- A soft delete sets `deleted` (the number is kept, never given again); a permanent delete
-- removes the row.
CREATE TABLE IF NOT EXISTS schema_registry_versions (
    subject    text    NOT NULL,
    version    integer NOT NULL,
    schema_id  integer NOT NULL REFERENCES schema_registry_schemas (id),
    deleted    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (subject, version)
);

-- One row per subject with its own mode. The global mode is the row whose subject is '' (the
-- empty text): a subject name is never empty, and a primary key column can not be NULL.
CREATE TABLE IF NOT EXISTS schema_registry_config (
    subject        text PRIMARY KEY,
    compatibility  text NOT NULL            -- BACKWARD, FORWARD_TRANSITIVE, NONE, ...
);
