//! Applies `migrations/sqlite/*.sql` at open, in order, each once, inside one `BEGIN
//! IMMEDIATE` transaction: a second process opening the same file waits for the first (busy
//! timeout) and then finds the versions already recorded.
//!
//! A file an older binary made, with money stored as REAL (before [`MONEY_IN_CENTS`]), is
//! refused rather than converted: its aggregate sums already carry floating-point error that no
//! conversion can take out exactly (ADR 0020).

use rusqlite::{Connection, TransactionBehavior};

use super::error::sqlite_error;
use crate::{Error, Result};

struct Migration {
    version: u32,
    sql: &'static str,
}

/// Every migration, oldest first. Append only: an applied step is never edited.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../../migrations/sqlite/0002_processing.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../../migrations/sqlite/0003_dead_letter_resubmitted.sql"),
    },
    Migration {
        version: MONEY_IN_CENTS,
        sql: include_str!("../../migrations/sqlite/0004_money_in_cents.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../../migrations/sqlite/0005_retail_pipelines.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../../migrations/sqlite/0006_ledger_by_event_day.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("../../migrations/sqlite/0007_notification_deliveries.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("../../migrations/sqlite/0008_schema_registry.sql"),
    },
];

/// The migration from which money columns hold integer cents.
const MONEY_IN_CENTS: u32 = 4;

/// Brings the schema up to date.
pub(super) fn run(conn: &mut Connection, path: &str) -> Result<()> {
    let err = |what: &'static str| move |e: rusqlite::Error| sqlite_error(path, what, &e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err("BEGIN IMMEDIATE (migrations)"))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, \
         applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
    )
    .map_err(err("CREATE TABLE schema_migrations"))?;
    let applied: Vec<u32> = {
        let mut stmt = tx
            .prepare("SELECT version FROM schema_migrations")
            .map_err(err("SELECT FROM schema_migrations"))?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(err("SELECT FROM schema_migrations"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(err("SELECT FROM schema_migrations"))?
    };
    if !applied.is_empty() && !applied.contains(&MONEY_IN_CENTS) {
        return Err(Error::Migration {
            version: MONEY_IN_CENTS,
            message: format!(
                "{path} was written by an older retail-etl that stored money as floating point (REAL); \
                 this version keeps exact integer cents and cannot convert the old sums exactly. Move the \
                 file away and start with a fresh one: the landing then reads the log again from its \
                 start and lands every event it still holds once more, exactly once (ADR 0020)"
            ),
        });
    }
    for m in MIGRATIONS {
        if applied.contains(&m.version) {
            continue;
        }
        let fail = |e: rusqlite::Error| Error::Migration {
            version: m.version,
            message: format!("{path}: {e}"),
        };
        tx.execute_batch(m.sql).map_err(fail)?;
        tx.execute("INSERT INTO schema_migrations (version) VALUES (?1)", [m.version])
            .map_err(fail)?;
        tracing::info!(message = "applied SQLite migration", version = m.version, path);
    }
    tx.commit().map_err(err("COMMIT (migrations)"))
}
