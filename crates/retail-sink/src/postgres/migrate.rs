//! Applies `migrations/postgres/*.sql` at open, in order, each once. Every open takes the same
//! transaction-scoped advisory lock first, so stores starting together queue up instead of
//! racing on `CREATE TABLE` (which can fail with a catalog unique violation when two sessions
//! create the same table at once).

use tokio_postgres::Client;

use super::error::{is_retryable, pg_error};
use crate::{Error, Result};

/// One schema step.
struct Migration {
    version: u32,
    sql: &'static str,
}

/// Every migration, oldest first. Append only: an applied step is never edited.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../../migrations/postgres/0002_processing.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../../migrations/postgres/0003_dead_letter_resubmitted.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../../migrations/postgres/0004_retail_pipelines.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../../migrations/postgres/0005_ledger_by_event_day.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../../migrations/postgres/0006_notification_deliveries.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("../../migrations/postgres/0007_schema_registry.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("../../migrations/postgres/0008_retention_by_day.sql"),
    },
];

/// Key of the advisory lock that serialises migrations (any constant no one else uses).
const MIGRATION_LOCK: i64 = 0x7265_7461_696c_0001; // "retail" + 1

/// Brings the schema up to date.
pub(super) async fn run(client: &mut Client) -> Result<()> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| pg_error("BEGIN (migrations)", &e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| pg_error("pg_advisory_xact_lock (migrations)", &e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (\
           version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(|e| pg_error("CREATE TABLE schema_migrations", &e))?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .map_err(|e| pg_error("SELECT FROM schema_migrations", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for m in MIGRATIONS {
        let version = i32::try_from(m.version).unwrap_or(i32::MAX);
        if applied.contains(&version) {
            continue;
        }
        tx.batch_execute(m.sql)
            .await
            .map_err(|e| migration_error(m.version, &e))?;
        tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&version])
            .await
            .map_err(|e| migration_error(m.version, &e))?;
        tracing::info!(message = "applied PostgreSQL migration", version = m.version);
    }
    tx.commit().await.map_err(|e| pg_error("COMMIT (migrations)", &e))
}

/// A lost connection stays a retryable [`Error::Postgres`]; a refused statement is a
/// [`Error::Migration`].
fn migration_error(version: u32, e: &tokio_postgres::Error) -> Error {
    let what = format!("migration {version:04}");
    if is_retryable(e) {
        return pg_error(&what, e);
    }
    match pg_error(&what, e) {
        Error::Postgres { message, .. } | Error::Refused { message } => Error::Migration { version, message },
        other => other,
    }
}
