//! The schema registry's rows in PostgreSQL (issue 16, `migrations/postgres/0007`): loaded in
//! one snapshot when a registry starts, saved one registration, deletion or mode change at a
//! time, each save one transaction on the store's session.

use retail_schema::{Change, Rows};
use tokio_postgres::{Client, Row};

use super::conn::Conn;
use super::error::pg_error;
use crate::schemas::{config_key, config_row, schema_row, to_sql, version_row};
use crate::{Error, Result};

/// Every row of the three tables. Repeatable read: another process saving between the three
/// SELECTs can not hand the registry a version whose schema it did not see.
pub(super) async fn load(c: &mut Conn) -> Result<Rows> {
    c.begin().await?;
    let read = match c
        .simple(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            "SET TRANSACTION (load the schema registry)",
        )
        .await
    {
        Ok(()) => read(&c.client).await,
        Err(e) => Err(e),
    };
    match read {
        Ok(rows) => {
            c.commit().await?;
            Ok(rows)
        }
        Err(e) => {
            c.rollback().await;
            Err(e)
        }
    }
}

/// Writes `changes` in one transaction, rolled back whole at the first error.
pub(super) async fn save(c: &mut Conn, changes: &[Change]) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    c.begin().await?;
    match write(&c.client, changes).await {
        Ok(()) => c.commit().await,
        Err(e) => {
            c.rollback().await;
            Err(e)
        }
    }
}

async fn read(client: &Client) -> Result<Rows> {
    let schemas = select(
        client,
        "SELECT id, schema_type, schema_text FROM schema_registry_schemas ORDER BY id",
        "SELECT FROM schema_registry_schemas",
        |r| {
            let id: i32 = r.try_get(0)?;
            Ok(schema_row(i64::from(id), r.try_get(1)?, r.try_get(2)?))
        },
    )
    .await?;
    let versions = select(
        client,
        "SELECT subject, version, schema_id, deleted FROM schema_registry_versions ORDER BY subject, version",
        "SELECT FROM schema_registry_versions",
        |r| {
            let (version, schema_id): (i32, i32) = (r.try_get(1)?, r.try_get(2)?);
            Ok(version_row(
                r.try_get(0)?,
                i64::from(version),
                i64::from(schema_id),
                r.try_get(3)?,
            ))
        },
    )
    .await?;
    let configs = select(
        client,
        "SELECT subject, compatibility FROM schema_registry_config ORDER BY subject",
        "SELECT FROM schema_registry_config",
        |r| Ok(config_row(r.try_get(0)?, r.try_get::<_, &str>(1)?)),
    )
    .await?;
    Ok(Rows {
        schemas,
        versions,
        configs,
    })
}

/// Runs `sql` and turns each row with `row`: a driver error is the driver's, a row the registry
/// can not take (`Err` of the inner result) is a broken table, not retryable.
async fn select<T>(
    client: &Client,
    sql: &str,
    what: &str,
    row: impl Fn(&Row) -> Result<Result<T, String>, tokio_postgres::Error>,
) -> Result<Vec<T>> {
    let rows = client.query(sql, &[]).await.map_err(|e| pg_error(what, &e))?;
    rows.iter()
        .map(|r| {
            row(r)
                .map_err(|e| pg_error(what, &e))?
                .map_err(|message| Error::Postgres {
                    message: format!("{what}: {message}"),
                    retryable: false,
                })
        })
        .collect()
}

async fn write(client: &Client, changes: &[Change]) -> Result<()> {
    for change in changes {
        match change {
            Change::NewSchema(row) => {
                let id = to_sql("schema id", row.id)?;
                client
                    .execute(
                        "INSERT INTO schema_registry_schemas (id, schema_type, schema_text) VALUES ($1, $2, $3)",
                        &[&id, &row.schema_type, &row.text],
                    )
                    .await
                    .map_err(|e| pg_error("INSERT INTO schema_registry_schemas", &e))?;
            }
            Change::NewVersion(row) => {
                let version = to_sql("version", row.version)?;
                let schema_id = to_sql("schema id", row.schema_id)?;
                client
                    .execute(
                        "INSERT INTO schema_registry_versions (subject, version, schema_id, deleted) \
                         VALUES ($1, $2, $3, $4)",
                        &[&row.subject, &version, &schema_id, &row.deleted],
                    )
                    .await
                    .map_err(|e| pg_error("INSERT INTO schema_registry_versions", &e))?;
            }
            Change::DeleteVersion(row) => {
                let version = to_sql("version", row.version)?;
                let (sql, what) = if row.permanent {
                    (
                        "DELETE FROM schema_registry_versions WHERE subject = $1 AND version = $2",
                        "DELETE FROM schema_registry_versions",
                    )
                } else {
                    (
                        "UPDATE schema_registry_versions SET deleted = true WHERE subject = $1 AND version = $2",
                        "UPDATE schema_registry_versions (soft delete)",
                    )
                };
                client
                    .execute(sql, &[&row.subject, &version])
                    .await
                    .map_err(|e| pg_error(what, &e))?;
            }
            Change::Config(row) => {
                let subject = config_key(row.subject.as_deref())?;
                client
                    .execute(
                        "INSERT INTO schema_registry_config (subject, compatibility) VALUES ($1, $2) \
                         ON CONFLICT (subject) DO UPDATE SET compatibility = excluded.compatibility",
                        &[&subject, &row.compatibility.as_str()],
                    )
                    .await
                    .map_err(|e| pg_error("INSERT INTO schema_registry_config", &e))?;
            }
            Change::ClearConfig { subject } => {
                let subject = config_key(subject.as_deref())?;
                client
                    .execute(
                        "DELETE FROM schema_registry_config WHERE subject = $1",
                        &[&subject],
                    )
                    .await
                    .map_err(|e| pg_error("DELETE FROM schema_registry_config", &e))?;
            }
        }
    }
    Ok(())
}
