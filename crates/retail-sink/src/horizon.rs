//! The dedup horizon shared by both backends (ADR 0022): which event-time day a ledger entry
//! belongs to, which days are still kept, and what becomes of an event older than that (a
//! `too_old` dead letter). The backends keep one ledger partition (PostgreSQL) or table
//! (SQLite) per day and drop whole days; this module only decides.
//!
//! Why it is safe: the oldest kept day only moves forward, a day is dropped only once it is
//! older than that, and an event of a day older than that is never landed. So an event that
//! landed is either still in the ledger when it is sent again, or its re-send is rejected.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use retail_core::{DeadLetter, Origin};
use uuid::Uuid;

use crate::dedup::FirstSeen;
use crate::{LandingBatch, StoreOptions};

const SECS_PER_DAY: i64 = 86_400;

/// The `kind` of the dead letter an event older than the horizon becomes.
pub const TOO_OLD: &str = "too_old";

/// Day number (days since 1970-01-01, UTC) of a timestamp.
pub(crate) fn day_of(ts: &DateTime<Utc>) -> i64 {
    ts.timestamp().div_euclid(SECS_PER_DAY)
}

/// The date of a day number, if it has four digits of year (partition names assume them).
pub(crate) fn date_of(day: i64) -> Option<NaiveDate> {
    let date = DateTime::from_timestamp(day.checked_mul(SECS_PER_DAY)?, 0)?.date_naive();
    let next = date.checked_add_days(Days::new(1))?;
    (date.year() >= 1 && next.year() <= 9999).then_some(date)
}

/// `YYYYMMDD` of a day number: the suffix of its ledger partition or table.
pub(crate) fn suffix(day: i64) -> Option<String> {
    date_of(day).map(|d| format!("{:04}{:02}{:02}", d.year(), d.month(), d.day()))
}

/// The day number of a `<parent>_YYYYMMDD` table name, if it is one.
pub(crate) fn day_of_table(parent: &str, name: &str) -> Option<i64> {
    let digits = name.strip_prefix(parent)?.strip_prefix('_')?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let date = NaiveDate::parse_from_str(digits, "%Y%m%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((date - epoch).num_days())
}

/// The oldest day still inside the horizon when `newest` is the newest event day landed;
/// `None`: nothing is too old (no horizon, or nothing landed yet).
pub(crate) fn oldest_kept(options: StoreOptions, newest: Option<i64>) -> Option<i64> {
    (options.dedup_horizon_days > 0).then_some(())?;
    newest.map(|n| n - i64::from(options.dedup_horizon_days))
}

/// What the horizon decided for one batch.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// The newest event day once this batch lands.
    pub newest: Option<i64>,
    /// Whether the batch moves the newest day (the store then records it in the transaction).
    pub advances: bool,
    /// The oldest day still kept once this batch lands.
    pub oldest_kept: Option<i64>,
    /// Ids of the events that were too old: they contribute nothing.
    pub too_old: HashSet<Uuid>,
    /// Their dead letters.
    pub dead_letters: Vec<DeadLetter>,
}

impl Verdict {
    /// The ledger day of a dead letter that carries a source id: the day it was rejected,
    /// raised to the oldest kept day (it has no valid event time, and must not go to a day
    /// about to be dropped).
    pub(crate) fn dead_letter_day(&self, rejected_at: &DateTime<Utc>) -> i64 {
        let day = day_of(rejected_at);
        self.oldest_kept.map_or(day, |oldest| day.max(oldest))
    }
}

/// Judges the first-seen rows of `batch` against the horizon, with `newest` the newest event
/// day the store has landed: removes the too-old ones from `fresh` and returns their dead
/// letters.
pub(crate) fn judge(
    options: StoreOptions,
    newest: Option<i64>,
    fresh: &mut FirstSeen<'_>,
    batch: &LandingBatch,
) -> Verdict {
    let batch_newest = fresh
        .sales
        .iter()
        .map(|s| day_of(&s.ts))
        .chain(fresh.events.iter().map(|e| day_of(&e.ts)))
        .max();
    let after = newest.max(batch_newest);
    let mut verdict = Verdict {
        newest: after,
        advances: after > newest,
        oldest_kept: oldest_kept(options, after),
        ..Verdict::default()
    };
    let Some(oldest) = verdict.oldest_kept else {
        return verdict;
    };
    let is_old = |ts: &DateTime<Utc>| day_of(ts) < oldest;
    if !fresh.sales.iter().any(|s| is_old(&s.ts)) && !fresh.events.iter().any(|e| is_old(&e.ts)) {
        return verdict;
    }
    let origins: HashMap<Uuid, &crate::RowOrigin> = batch.origins.iter().map(|o| (o.event_id, o)).collect();
    let letter = |id: Uuid, ts: &DateTime<Utc>, source: &str, raw: Option<&str>| {
        let (origin, raw) = match origins.get(&id) {
            Some(o) => (o.origin.clone(), o.raw.clone()),
            None => (
                Origin {
                    source: source.to_owned(),
                    topic: None,
                    partition: None,
                    offset: None,
                    file: None,
                    line: None,
                },
                raw.map_or_else(
                    || format!(r#"{{"event_id":"{id}","ts":"{}"}}"#, ts.to_rfc3339()),
                    str::to_owned,
                )
                .into_bytes(),
            ),
        };
        DeadLetter {
            raw,
            reason: format!(
                "event {id} at {} is older than the dedup horizon: landing.dedup_horizon_days = {} \
                 keeps event days from {} on (the newest event day landed is {}); the ledger may no \
                 longer know it, so it is not landed (ADR 0022)",
                ts.to_rfc3339(),
                options.dedup_horizon_days,
                date_of(oldest).map_or_else(|| oldest.to_string(), |d| d.to_string()),
                after
                    .and_then(date_of)
                    .map_or_else(String::new, |d| d.to_string()),
            ),
            kind: TOO_OLD,
            origin,
            rejected_at: Utc::now(),
            id: None,
        }
    };
    let mut dead = Vec::new();
    fresh.sales.retain(|s| {
        let keep = !is_old(&s.ts);
        if !keep {
            dead.push((s.event_id, letter(s.event_id, &s.ts, &s.source, None)));
        }
        keep
    });
    fresh.events.retain(|e| {
        let keep = !is_old(&e.ts);
        if !keep {
            dead.push((e.event_id, letter(e.event_id, &e.ts, &e.source, Some(&e.payload))));
        }
        keep
    });
    for (id, d) in dead {
        verdict.too_old.insert(id);
        verdict.dead_letters.push(d);
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_their_table_names_round_trip() {
        let t = DateTime::parse_from_rfc3339("2026-11-21T23:59:59.999Z")
            .map(|t| t.to_utc())
            .unwrap_or_default();
        let day = day_of(&t);
        assert_eq!(suffix(day).as_deref(), Some("20261121"));
        assert_eq!(
            day_of_table("landed_event_ids", "landed_event_ids_20261121"),
            Some(day)
        );
        assert_eq!(day_of_table("landed_event_ids", "landed_event_ids_legacy"), None);
        assert_eq!(day_of(&DateTime::from_timestamp(-1, 0).unwrap_or_default()), -1);
    }

    #[test]
    fn the_horizon_counts_back_from_the_newest_day() {
        let seven = StoreOptions {
            dedup_horizon_days: 7,
            ..StoreOptions::default()
        };
        assert_eq!(oldest_kept(seven, Some(100)), Some(93));
        assert_eq!(oldest_kept(seven, None), None);
        assert_eq!(
            oldest_kept(
                StoreOptions {
                    dedup_horizon_days: 0,
                    ..StoreOptions::default()
                },
                Some(100)
            ),
            None
        );
    }
}
