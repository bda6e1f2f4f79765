//! Day partitions of `sales_raw` (and of the benchmark's copy of it), `events_raw`,
//! `late_events`, `dead_letters` and the `landed_event_ids` ledger, created on demand before a
//! transaction writes rows of a day not seen yet, and dropped whole: the ledger's once older
//! than the dedup horizon (ADR 0022), the others once past their retention (ADR 0028,
//! `retention.rs`).
//!
//! Each partition is created in its own short transaction, outside the batch's: creating a
//! partition locks the parent exclusively, and holding that for a whole batch would stall every
//! other writer. Known days are cached in memory, so the steady state costs one integer
//! division and a set lookup per new day seen in a batch, not a catalog round trip. Two
//! sessions creating the same day serialise on an advisory lock, and a loser that still sees
//! `duplicate_table` (or the catalog's unique violation) takes it as done.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::error::pg_error;
use crate::{Error, Result};

const SECS_PER_DAY: i64 = 86_400;

/// Key of the advisory lock taken while creating partitions.
const PARTITION_LOCK: i64 = 0x7265_7461_696c_0002;

/// The type of a parent's partition key, which decides how its bounds are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    /// `timestamptz` (`sales_raw.ts`): bounds at UTC midnight.
    Timestamp,
    /// `date` (`landed_event_ids.day`).
    Date,
}

/// Day number (days since 1970-01-01, UTC) of a timestamp.
pub(super) fn day_of(ts: &DateTime<Utc>) -> i64 {
    ts.timestamp().div_euclid(SECS_PER_DAY)
}

/// Makes sure a partition of `parent` (keyed by a timestamp) exists for every day in
/// `timestamps`. `known` caches days already created (or found) for this parent.
pub(super) async fn ensure_days<'a>(
    client: &Client,
    parent: &str,
    known: &mut HashSet<i64>,
    timestamps: impl Iterator<Item = &'a DateTime<Utc>>,
) -> Result<()> {
    ensure_day_numbers(client, parent, Key::Timestamp, known, timestamps.map(day_of)).await
}

/// Makes sure a partition of `parent` exists for every day number in `days`.
pub(super) async fn ensure_day_numbers(
    client: &Client,
    parent: &str,
    key: Key,
    known: &mut HashSet<i64>,
    days: impl Iterator<Item = i64>,
) -> Result<()> {
    let mut missing: Vec<i64> = Vec::new();
    let mut last = None;
    for day in days {
        // Batches are mostly in time order: skip the set lookup while the day repeats.
        if last == Some(day) {
            continue;
        }
        last = Some(day);
        if !known.contains(&day) && !missing.contains(&day) {
            missing.push(day);
        }
    }
    missing.sort_unstable();
    for day in missing {
        create(client, parent, key, day).await?;
        known.insert(day);
    }
    Ok(())
}

/// `CREATE TABLE IF NOT EXISTS <parent>_YYYYMMDD PARTITION OF <parent>` in its own transaction.
async fn create(client: &Client, parent: &str, key: Key, day: i64) -> Result<()> {
    let (from, to) = bounds(day).ok_or_else(|| Error::Postgres {
        message: format!("create partition of {parent}: day {day} is outside the supported date range"),
        retryable: false,
    })?;
    let name = format!("{parent}_{:04}{:02}{:02}", from.year(), from.month(), from.day());
    let (from, to) = match key {
        Key::Timestamp => (format!("{from}T00:00:00Z"), format!("{to}T00:00:00Z")),
        Key::Date => (from.to_string(), to.to_string()),
    };
    let sql = format!(
        "BEGIN; SELECT pg_advisory_xact_lock({PARTITION_LOCK}); \
         CREATE TABLE IF NOT EXISTS {name} PARTITION OF {parent} \
         FOR VALUES FROM ('{from}') TO ('{to}'); COMMIT"
    );
    match client.batch_execute(&sql).await {
        Ok(()) => {
            tracing::debug!(message = "day partition ready", partition = %name);
            Ok(())
        }
        Err(e) => {
            // The failed statement left the transaction open and aborted.
            let _ = client.batch_execute("ROLLBACK").await;
            let raced =
                e.code() == Some(&SqlState::DUPLICATE_TABLE) || e.code() == Some(&SqlState::UNIQUE_VIOLATION);
            if raced {
                Ok(())
            } else {
                Err(pg_error(
                    &format!("CREATE TABLE {name} PARTITION OF {parent}"),
                    &e,
                ))
            }
        }
    }
}

/// The day partitions of `parent` that exist, as (name, day number).
pub(super) async fn list(client: &Client, parent: &str) -> Result<Vec<(String, i64)>> {
    let rows = client
        .query(
            "SELECT CAST(c.relname AS text) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = to_regclass($1)",
            &[&parent],
        )
        .await
        .map_err(|e| pg_error(&format!("list the partitions of {parent} (pg_inherits)"), &e))?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get::<_, String>(0).ok())
        .filter_map(|name| crate::horizon::day_of_table(parent, &name).map(|day| (name, day)))
        .collect())
}

/// Drops every day partition of `parent` older than `oldest_kept` (whole tables, no `DELETE`),
/// each in its own statement; returns how many. `known` forgets them. `why` (the setting that
/// keeps the days) goes into the log line of each drop and into an error.
pub(super) async fn drop_older(
    client: &Client,
    parent: &str,
    known: &mut HashSet<i64>,
    oldest_kept: i64,
    why: &str,
) -> Result<usize> {
    let mut dropped = 0;
    for (name, day) in list(client, parent).await? {
        if day >= oldest_kept {
            continue;
        }
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
            .await
            .map_err(|e| pg_error(&format!("DROP TABLE {name} ({why})"), &e))?;
        known.remove(&day);
        dropped += 1;
        tracing::info!(message = "dropped a day partition", partition = %name, why = %why);
    }
    Ok(dropped)
}

/// First day and the day after, as dates.
fn bounds(day: i64) -> Option<(NaiveDate, NaiveDate)> {
    let from = DateTime::from_timestamp(day.checked_mul(SECS_PER_DAY)?, 0)?.date_naive();
    let to = from.checked_add_days(Days::new(1))?;
    // Four-digit years only: the partition name and the bound literals assume them.
    (from.year() >= 1 && to.year() <= 9999).then_some((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_split_at_utc_midnight() {
        let a = DateTime::parse_from_rfc3339("2024-08-12T23:59:59.999Z").map(|t| t.to_utc());
        let b = DateTime::parse_from_rfc3339("2024-08-13T00:00:00Z").map(|t| t.to_utc());
        let (Ok(a), Ok(b)) = (a, b) else {
            panic!("bad literal")
        };
        assert_eq!(day_of(&a) + 1, day_of(&b));
        let (from, to) = bounds(day_of(&b)).expect("in range");
        assert_eq!(
            (from.to_string(), to.to_string()),
            ("2024-08-13".into(), "2024-08-14".into())
        );
    }

    #[test]
    fn before_epoch_rounds_down() {
        let t = DateTime::from_timestamp(-1, 0).expect("valid");
        assert_eq!(day_of(&t), -1);
        assert_eq!(bounds(-1).map(|(f, _)| f.to_string()), Some("1969-12-31".into()));
    }
}
