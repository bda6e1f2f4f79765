//! Retention of raw rows, late events and dead letters (ADR 0028), shared by both backends:
//! which day is the oldest each table still keeps. The backends drop whole day partitions
//! (PostgreSQL) or delete in bounded passes (SQLite); this module only decides.
//!
//! Raw rows and late events age by event time, counted back from the newest event day landed
//! (`ledger_horizon.newest_day`, the dedup horizon's clock, ADR 0022): replaying history or
//! stopping the pipeline for a month drops nothing that a live run would have kept. Dead
//! letters have no trustworthy event time (they are rejected input), so they age by
//! `rejected_at` against the wall clock.

use chrono::Utc;

use crate::horizon::{date_of, day_of};
use crate::StoreOptions;

/// One table's retention: which setting keeps it, and the oldest day it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kept {
    /// The configuration key, for logs.
    pub setting: &'static str,
    /// Its value in days.
    pub days: u32,
    /// The clock it counts back from: `newest event day` or `today (wall clock)`.
    pub clock: &'static str,
    /// Days before this one are dropped.
    pub oldest: i64,
}

impl Kept {
    /// Why a day is dropped, for the info log of each drop.
    pub(crate) fn why(&self) -> String {
        format!(
            "{} = {} keeps days from {} on ({} counted back)",
            self.setting,
            self.days,
            date_of(self.oldest).map_or_else(|| self.oldest.to_string(), |d| d.to_string()),
            self.clock,
        )
    }
}

fn by_event_time(setting: &'static str, days: u32, newest: Option<i64>) -> Option<Kept> {
    (days > 0).then_some(())?;
    newest.map(|n| Kept {
        setting,
        days,
        clock: "from the newest event day landed",
        oldest: n - i64::from(days),
    })
}

/// `sales_raw` and `events_raw`, with `newest` the newest event day landed.
pub(crate) fn raw(options: StoreOptions, newest: Option<i64>) -> Option<Kept> {
    by_event_time("landing.raw_retention_days", options.raw_retention_days, newest)
}

/// `late_events`, by `event_ts`.
pub(crate) fn late_events(options: StoreOptions, newest: Option<i64>) -> Option<Kept> {
    by_event_time(
        "landing.late_events_retention_days",
        options.late_events_retention_days,
        newest,
    )
}

/// `dead_letters`, by `rejected_at`, with `today` the wall clock's UTC day.
pub(crate) fn dead_letters(options: StoreOptions, today: i64) -> Option<Kept> {
    let days = options.dead_letters_retention_days;
    (days > 0).then_some(Kept {
        setting: "landing.dead_letters_retention_days",
        days,
        clock: "from today (wall clock)",
        oldest: today - i64::from(days),
    })
}

/// Today's UTC day number.
pub(crate) fn today() -> i64 {
    day_of(&Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_keeps_everything_and_days_count_back_from_their_clock() {
        let options = StoreOptions {
            raw_retention_days: 3,
            dead_letters_retention_days: 30,
            ..StoreOptions::default()
        };
        assert_eq!(raw(options, Some(100)).map(|k| k.oldest), Some(97));
        assert_eq!(
            raw(options, None),
            None,
            "nothing landed: nothing to count back from"
        );
        assert_eq!(
            late_events(options, Some(100)),
            None,
            "0 keeps late events forever"
        );
        assert_eq!(dead_letters(options, 200).map(|k| k.oldest), Some(170));
        assert_eq!(dead_letters(StoreOptions::default(), 200), None);
        let why = raw(options, Some(100)).map(|k| k.why()).unwrap_or_default();
        assert!(
            why.contains("landing.raw_retention_days = 3") && why.contains("1970-04-08"),
            "{why}"
        );
    }
}
