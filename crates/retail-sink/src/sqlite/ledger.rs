//! The ledger's dedup horizon on SQLite (ADR 0022). SQLite has no partitions, so each event-time
//! day has its own ledger table, `landed_event_ids_YYYYMMDD (event_id TEXT PRIMARY KEY) WITHOUT
//! ROWID`, created inside the batch transaction that first lands an event of that day, and
//! dropped whole (`DROP TABLE`: its pages go to the free list, no row-by-row index work) once the
//! day is older than the horizon. The ledger from before migration 0006 is kept as
//! `landed_event_ids_legacy` and consulted until the horizon passes the day of the migration.

use rusqlite::{CachedStatement, Connection, OptionalExtension};

use super::error::sqlite_error;
use crate::horizon::{self, suffix};
use crate::{Error, Result, StoreOptions};

const LEDGER: &str = "landed_event_ids";
const LEGACY: &str = "landed_event_ids_legacy";

/// What the worker remembers of the horizon.
#[derive(Debug)]
pub(super) struct Ledger {
    pub options: StoreOptions,
    /// The newest event day landed, as last committed.
    pub newest: Option<i64>,
    /// Whether the legacy ledger exists.
    pub legacy: bool,
    /// The last day the legacy ledger's events can have.
    pub legacy_until: Option<i64>,
}

impl Ledger {
    /// Reads the horizon's state, drops an empty legacy ledger and what the horizon has passed.
    pub(super) fn load(conn: &Connection, path: &str, options: StoreOptions) -> Result<Self> {
        let err = |what: &'static str| move |e: rusqlite::Error| sqlite_error(path, what, &e);
        let (newest, legacy_until): (Option<i64>, Option<i64>) = conn
            .query_row("SELECT newest_day, legacy_until FROM ledger_horizon", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(err("SELECT FROM ledger_horizon"))?;
        let exists: bool = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [LEGACY],
                |_| Ok(()),
            )
            .optional()
            .map_err(err("SELECT FROM sqlite_master"))?
            .is_some();
        let mut ledger = Self {
            options,
            newest,
            legacy: exists,
            legacy_until,
        };
        if exists {
            let empty = conn
                .query_row(&format!("SELECT 1 FROM {LEGACY} LIMIT 1"), [], |_| Ok(()))
                .optional()
                .map_err(err("SELECT FROM landed_event_ids_legacy"))?
                .is_none();
            if empty {
                ledger.drop_legacy(conn, path)?;
            }
        }
        ledger.drop_passed(conn, path)?;
        Ok(ledger)
    }

    /// Drops the day tables older than the horizon, and the legacy ledger once the horizon has
    /// passed it, in one transaction. Outside any batch transaction.
    pub(super) fn drop_passed(&mut self, conn: &Connection, path: &str) -> Result<()> {
        let Some(oldest) = horizon::oldest_kept(self.options, self.newest) else {
            return Ok(());
        };
        let err = |what: &'static str| move |e: rusqlite::Error| sqlite_error(path, what, &e);
        let old: Vec<String> = {
            let mut stmt = conn
                .prepare(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'landed_event_ids_%'",
                )
                .map_err(err("SELECT FROM sqlite_master"))?;
            let names = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(err("SELECT FROM sqlite_master"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(err("SELECT FROM sqlite_master"))?;
            names
                .into_iter()
                .filter(|n| horizon::day_of_table(LEDGER, n).is_some_and(|d| d < oldest))
                .collect()
        };
        if !old.is_empty() {
            let sql: String = old.iter().map(|n| format!("DROP TABLE IF EXISTS {n};")).collect();
            conn.execute_batch(&format!("BEGIN IMMEDIATE; {sql} COMMIT;"))
                .map_err(|e| {
                    let _ = conn.execute_batch("ROLLBACK");
                    sqlite_error(
                        path,
                        "DROP TABLE landed_event_ids_* (older than the dedup horizon)",
                        &e,
                    )
                })?;
            tracing::info!(
                message = "dropped ledger days older than the dedup horizon",
                tables = old.len(),
                path
            );
        }
        if self.legacy && self.legacy_until.is_some_and(|until| until < oldest) {
            self.drop_legacy(conn, path)?;
        }
        Ok(())
    }

    fn drop_legacy(&mut self, conn: &Connection, path: &str) -> Result<()> {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; DROP TABLE IF EXISTS {LEGACY}; UPDATE ledger_horizon SET legacy_until = NULL; COMMIT;"
        ))
        .map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            sqlite_error(path, "DROP TABLE landed_event_ids_legacy", &e)
        })?;
        self.legacy = false;
        self.legacy_until = None;
        Ok(())
    }
}

/// Inside a batch transaction: records `newest` as the newest event day landed.
pub(super) fn record_newest(conn: &Connection, path: &str, newest: i64) -> Result<()> {
    conn.execute(
        "UPDATE ledger_horizon SET newest_day = max(coalesce(newest_day, ?1), ?1)",
        [newest],
    )
    .map(drop)
    .map_err(|e| sqlite_error(path, "UPDATE ledger_horizon SET newest_day", &e))
}

/// The ledger as one batch transaction writes it: an `INSERT OR IGNORE` per day table (created
/// on first use), and the legacy ledger's lookup while it exists.
pub(super) struct DayLedger<'c> {
    conn: &'c Connection,
    path: &'c str,
    days: Vec<(i64, CachedStatement<'c>)>,
    legacy: Option<CachedStatement<'c>>,
}

impl<'c> DayLedger<'c> {
    pub(super) fn new(conn: &'c Connection, path: &'c str, legacy: bool) -> Result<Self> {
        let legacy = if legacy {
            Some(
                conn.prepare_cached(&format!("SELECT 1 FROM {LEGACY} WHERE event_id = ?1"))
                    .map_err(|e| sqlite_error(path, "prepare SELECT FROM landed_event_ids_legacy", &e))?,
            )
        } else {
            None
        };
        Ok(Self {
            conn,
            path,
            days: Vec::new(),
            legacy,
        })
    }

    /// Records `id` (hyphenated lower-case) under `day`; whether it is new (neither in that
    /// day's table nor in the legacy ledger).
    pub(super) fn insert(&mut self, id: &str, day: i64) -> Result<bool> {
        let i = match self.days.iter().position(|(d, _)| *d == day) {
            Some(i) => i,
            None => {
                let table = suffix(day)
                    .map(|s| format!("{LEDGER}_{s}"))
                    .ok_or_else(|| Error::Refused {
                        message: format!(
                        "sqlite {}: event {id}: its day ({day} days from 1970-01-01) is outside the years \
                         0001-9999 the ledger's day tables are named by",
                        self.path
                    ),
                    })?;
                self.conn
                    .execute_batch(&format!(
                        "CREATE TABLE IF NOT EXISTS {table} (event_id TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID"
                    ))
                    .map_err(|e| sqlite_error(self.path, "CREATE TABLE landed_event_ids_<day>", &e))?;
                let stmt = self
                    .conn
                    .prepare_cached(&format!("INSERT OR IGNORE INTO {table} (event_id) VALUES (?1)"))
                    .map_err(|e| sqlite_error(self.path, "prepare INSERT INTO landed_event_ids_<day>", &e))?;
                self.days.push((day, stmt));
                self.days.len() - 1
            }
        };
        let Some((_, stmt)) = self.days.get_mut(i) else {
            return Ok(false);
        };
        let inserted = stmt
            .execute([id])
            .map_err(|e| sqlite_error(self.path, "INSERT INTO landed_event_ids_<day>", &e))?;
        if inserted == 0 {
            return Ok(false);
        }
        match self.legacy.as_mut() {
            Some(legacy) => Ok(!legacy
                .exists([id])
                .map_err(|e| sqlite_error(self.path, "SELECT FROM landed_event_ids_legacy", &e))?),
            None => Ok(true),
        }
    }
}
