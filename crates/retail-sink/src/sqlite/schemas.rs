//! The schema registry's rows in SQLite (issue 16, `migrations/sqlite/0008`): loaded in one
//! snapshot when a registry starts, saved one registration, deletion or mode change at a time,
//! each save one transaction on the store's thread. A version naming an unknown schema is
//! refused by the migration's trigger (SQLite leaves REFERENCES unchecked by default).

use retail_schema::{Change, Rows};
use rusqlite::{params, Connection, Row, TransactionBehavior};

use super::error::{sqlite_error, worker_error};
use crate::schemas::{config_key, config_row, schema_row, to_sql, version_row};
use crate::Result;

/// Every row of the three tables, read in one (deferred, read-only) transaction: one snapshot
/// even if another process saves meanwhile.
pub(super) fn load(conn: &mut Connection, path: &str) -> Result<Rows> {
    let tx = conn
        .transaction()
        .map_err(|e| sqlite_error(path, "BEGIN (load the schema registry)", &e))?;
    let schemas = select(
        &tx,
        path,
        "SELECT id, schema_type, schema_text FROM schema_registry_schemas ORDER BY id",
        "SELECT FROM schema_registry_schemas",
        |r| Ok(schema_row(r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let versions = select(
        &tx,
        path,
        "SELECT subject, version, schema_id, deleted FROM schema_registry_versions ORDER BY subject, version",
        "SELECT FROM schema_registry_versions",
        |r| Ok(version_row(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let configs = select(
        &tx,
        path,
        "SELECT subject, compatibility FROM schema_registry_config ORDER BY subject",
        "SELECT FROM schema_registry_config",
        |r| Ok(config_row(r.get(0)?, &r.get::<_, String>(1)?)),
    )?;
    tx.commit()
        .map_err(|e| sqlite_error(path, "COMMIT (load the schema registry)", &e))?;
    Ok(Rows {
        schemas,
        versions,
        configs,
    })
}

/// Writes `changes` in one `BEGIN IMMEDIATE` transaction (the write lock taken up front, so a
/// busy file fails before anything is written); dropped, not committed, at the first error.
pub(super) fn save(conn: &mut Connection, path: &str, changes: &[Change]) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let err = |what: &'static str| move |e: rusqlite::Error| sqlite_error(path, what, &e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err("BEGIN IMMEDIATE (save the schema registry)"))?;
    for change in changes {
        match change {
            Change::NewSchema(row) => {
                let id = to_sql("schema id", row.id)?;
                tx.prepare_cached(
                    "INSERT INTO schema_registry_schemas (id, schema_type, schema_text) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| s.execute(params![id, row.schema_type, row.text]))
                .map_err(err("INSERT INTO schema_registry_schemas"))?;
            }
            Change::NewVersion(row) => {
                let version = to_sql("version", row.version)?;
                let schema_id = to_sql("schema id", row.schema_id)?;
                tx.prepare_cached(
                    "INSERT INTO schema_registry_versions (subject, version, schema_id, deleted) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| s.execute(params![row.subject, version, schema_id, row.deleted]))
                .map_err(err("INSERT INTO schema_registry_versions"))?;
            }
            Change::DeleteVersion(row) => {
                let version = to_sql("version", row.version)?;
                let (sql, what) = if row.permanent {
                    (
                        "DELETE FROM schema_registry_versions WHERE subject = ?1 AND version = ?2",
                        "DELETE FROM schema_registry_versions",
                    )
                } else {
                    (
                        "UPDATE schema_registry_versions SET deleted = 1 WHERE subject = ?1 AND version = ?2",
                        "UPDATE schema_registry_versions (soft delete)",
                    )
                };
                tx.prepare_cached(sql)
                    .and_then(|mut s| s.execute(params![row.subject, version]))
                    .map_err(err(what))?;
            }
            Change::Config(row) => {
                let subject = config_key(row.subject.as_deref())?;
                tx.prepare_cached(
                    "INSERT INTO schema_registry_config (subject, compatibility) VALUES (?1, ?2) \
                     ON CONFLICT (subject) DO UPDATE SET compatibility = excluded.compatibility",
                )
                .and_then(|mut s| s.execute(params![subject, row.compatibility.as_str()]))
                .map_err(err("INSERT INTO schema_registry_config"))?;
            }
            Change::ClearConfig { subject } => {
                let subject = config_key(subject.as_deref())?;
                tx.prepare_cached("DELETE FROM schema_registry_config WHERE subject = ?1")
                    .and_then(|mut s| s.execute(params![subject]))
                    .map_err(err("DELETE FROM schema_registry_config"))?;
            }
        }
    }
    tx.commit().map_err(err("COMMIT (save the schema registry)"))
}

/// Runs `sql` and turns each row with `row`: a driver error is SQLite's, a row the registry can
/// not take (`Err` of the inner result) is a broken table, not retryable.
fn select<T>(
    conn: &Connection,
    path: &str,
    sql: &str,
    what: &str,
    row: impl Fn(&Row<'_>) -> rusqlite::Result<Result<T, String>>,
) -> Result<Vec<T>> {
    let err = |e: rusqlite::Error| sqlite_error(path, what, &e);
    let mut stmt = conn.prepare_cached(sql).map_err(err)?;
    let rows = stmt.query_map([], |r| row(r)).map_err(err)?;
    rows.map(|r| {
        r.map_err(err)?
            .map_err(|message| worker_error(path, format!("{what}: {message}")))
    })
    .collect()
}
