//! Day partitions of `sales_raw` (and of the benchmark's copy of it), created on demand before
//! a transaction writes rows of a day not seen yet.
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

/// Day number (days since 1970-01-01, UTC) of a timestamp.
pub(super) fn day_of(ts: &DateTime<Utc>) -> i64 {
    ts.timestamp().div_euclid(SECS_PER_DAY)
}

/// Makes sure a partition of `parent` exists for every day in `timestamps`. `known` caches
/// days already created (or found) for this parent.
pub(super) async fn ensure_days<'a>(
    client: &Client,
    parent: &str,
    known: &mut HashSet<i64>,
    timestamps: impl Iterator<Item = &'a DateTime<Utc>>,
) -> Result<()> {
    let mut missing: Vec<i64> = Vec::new();
    let mut last = None;
    for ts in timestamps {
        let day = day_of(ts);
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
        create(client, parent, day).await?;
        known.insert(day);
    }
    Ok(())
}

/// `CREATE TABLE IF NOT EXISTS <parent>_YYYYMMDD PARTITION OF <parent>` in its own transaction.
async fn create(client: &Client, parent: &str, day: i64) -> Result<()> {
    let (from, to) = bounds(day).ok_or_else(|| Error::Postgres {
        message: format!("create partition of {parent}: day {day} is outside the supported date range"),
        retryable: false,
    })?;
    let name = format!("{parent}_{:04}{:02}{:02}", from.year(), from.month(), from.day());
    let sql = format!(
        "BEGIN; SELECT pg_advisory_xact_lock({PARTITION_LOCK}); \
         CREATE TABLE IF NOT EXISTS {name} PARTITION OF {parent} \
         FOR VALUES FROM ('{from}T00:00:00Z') TO ('{to}T00:00:00Z'); COMMIT"
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
