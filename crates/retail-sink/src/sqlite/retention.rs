//! Retention on SQLite (ADR 0028). SQLite has no partitions, and a table per day would change
//! every reader of `sales_raw`, `events_raw`, `late_events` and `dead_letters`; so rows past
//! their retention are deleted in bounded passes between batches, each pass at most
//! [`CHUNK`] rows per table through an index on the time column, in its own short transaction:
//! the landing waits for one pass at most, never for a whole day's worth of deletes.
//!
//! A pass runs at open (repeated until nothing is left) and after a committed batch when a
//! retention's oldest kept day moved or the previous pass left rows behind. The index on the
//! time column of `sales_raw` and `events_raw` (and of `late_events`) exists only while their
//! retention is on: with the default (`0`, keep forever) the write path maintains exactly the
//! indexes it did before.

use rusqlite::Connection;

use super::error::sqlite_error;
use crate::horizon::date_of;
use crate::retention::{self, Kept};
use crate::{Result, StoreOptions};

/// Most rows one pass deletes from one table.
pub(super) const CHUNK: usize = 10_000;

/// A table with a retention: its time column and the index a pass reads it by.
struct Target {
    table: &'static str,
    column: &'static str,
    /// `(name, created only while the retention is on)`.
    index: (&'static str, bool),
}

const SALES: Target = Target {
    table: "sales_raw",
    column: "ts",
    index: ("sales_raw_ts_idx", true),
};
const EVENTS: Target = Target {
    table: "events_raw",
    column: "ts",
    index: ("events_raw_ts_idx", true),
};
const LATE: Target = Target {
    table: "late_events",
    column: "event_ts",
    index: ("late_events_event_ts_idx", true),
};
const DEAD: Target = Target {
    table: "dead_letters",
    column: "rejected_at",
    // From migration 0001, always there.
    index: ("dead_letters_rejected_at_idx", false),
};

/// What the worker remembers between passes.
#[derive(Debug)]
pub(super) struct Retention {
    options: StoreOptions,
    /// Per target (sales, events, late, dead): the oldest day kept at the last pass, and
    /// whether it left rows behind.
    done: [(Option<i64>, bool); 4],
}

impl Retention {
    /// Creates (or, with the retention off, drops) the indexes passes read by, then deletes
    /// everything past retention.
    pub(super) fn open(
        conn: &Connection,
        path: &str,
        options: StoreOptions,
        newest: Option<i64>,
    ) -> Result<Self> {
        let on = [
            options.raw_retention_days > 0,
            options.raw_retention_days > 0,
            options.late_events_retention_days > 0,
        ];
        for (t, on) in [SALES, EVENTS, LATE].iter().zip(on) {
            let (name, _) = t.index;
            let sql = if on {
                format!("CREATE INDEX IF NOT EXISTS {name} ON {} ({})", t.table, t.column)
            } else {
                format!("DROP INDEX IF EXISTS {name}")
            };
            conn.execute_batch(&sql)
                .map_err(|e| sqlite_error(path, &sql, &e))?;
        }
        let mut r = Self {
            options,
            done: [(None, false); 4],
        };
        while r.pass(conn, path, newest)? {}
        Ok(r)
    }

    /// One bounded pass over the tables whose oldest kept day moved or that have rows left;
    /// returns whether rows are left for a next pass. Outside any batch transaction.
    pub(super) fn pass(&mut self, conn: &Connection, path: &str, newest: Option<i64>) -> Result<bool> {
        let kept = [
            retention::raw(self.options, newest),
            retention::raw(self.options, newest),
            retention::late_events(self.options, newest),
            retention::dead_letters(self.options, retention::today()),
        ];
        let mut left = false;
        for ((t, kept), done) in [SALES, EVENTS, LATE, DEAD].iter().zip(kept).zip(&mut self.done) {
            let Some(kept) = kept else { continue };
            if done.0 == Some(kept.oldest) && !done.1 {
                continue;
            }
            let deleted = delete_older(conn, path, t, &kept)?;
            *done = (Some(kept.oldest), deleted == CHUNK);
            left |= deleted == CHUNK;
        }
        Ok(left)
    }
}

/// Deletes at most [`CHUNK`] rows of `t` older than `kept.oldest`; returns how many.
fn delete_older(conn: &Connection, path: &str, t: &Target, kept: &Kept) -> Result<usize> {
    // Times are fixed-width RFC 3339 text (rows.rs `ts_text`), so `< 'YYYY-MM-DD'` is "on an
    // earlier day". A day outside four-digit years has no such text: nothing is deleted.
    let Some(date) = date_of(kept.oldest) else {
        return Ok(0);
    };
    let (table, column) = (t.table, t.column);
    let sql = format!(
        "DELETE FROM {table} WHERE rowid IN \
         (SELECT rowid FROM {table} WHERE {column} < ?1 LIMIT {CHUNK})"
    );
    let deleted = conn
        .execute(&sql, [date.to_string()])
        .map_err(|e| sqlite_error(path, &format!("DELETE FROM {table} (past its retention)"), &e))?;
    if deleted > 0 {
        tracing::info!(
            message = "deleted rows past their retention",
            table,
            rows = deleted,
            why = %kept.why(),
            path
        );
    }
    Ok(deleted)
}
