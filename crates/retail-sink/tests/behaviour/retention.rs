//! Retention of raw rows, late events and dead letters (ADR 0028): what is past the configured
//! days goes (PostgreSQL: the day partition no longer exists; SQLite: the rows), everything
//! inside stays, to the row.

use std::sync::Arc;

use chrono::{Duration, Utc};
use retail_core::TopicPartition;
use retail_sink::derived::{Derived, LateEvent};
use retail_sink::{LandingBatch, Store, StoreOptions, Table};
use uuid::Uuid;

use crate::common::{dead_letter, ids, order, range, sale, ts, Fixture};

const DAYS: [&str; 3] = ["2026-11-20", "2026-11-21", "2026-11-22"];

fn options(raw: u32, late: u32, dead: u32) -> StoreOptions {
    StoreOptions {
        raw_retention_days: raw,
        late_events_retention_days: late,
        dead_letters_retention_days: dead,
        ..StoreOptions::default()
    }
}

/// A batch of one day: two sales, one other event and a late event (of the first sale).
fn day_batch(day: &str, offset: i64) -> LandingBatch {
    let id = ids(3);
    let at = ts(&format!("{day}T12:00:00Z"));
    let ms = at.timestamp_millis();
    let p = TopicPartition::new("sales", 0);
    LandingBatch {
        group: "g".into(),
        sales: vec![sale(id[0], at, 1, 1), sale(id[1], at, 2, 1)],
        events: vec![order(id[2], at)],
        offsets: vec![range(&p, offset, offset + 3)],
        derived: Arc::new(Derived {
            late: vec![late(id[0], ms, &p)],
            ..Derived::default()
        }),
        ..Default::default()
    }
}

fn late(event_id: Uuid, event_ts: i64, tp: &TopicPartition) -> LateEvent {
    LateEvent {
        event_id,
        aggregate: Arc::from("agg_test"),
        window_start: event_ts - event_ts.rem_euclid(60_000),
        window_end: event_ts - event_ts.rem_euclid(60_000) + 60_000,
        event_ts,
        watermark: event_ts + 3_600_000,
        reason: "window closed".into(),
        tp: tp.clone(),
        offset: 0,
    }
}

/// (sales_raw, events_raw, late_events) rows.
async fn counts(store: &dyn Store) -> (i64, i64, i64) {
    let c = |t| async move { store.count(t).await.expect("count") };
    (
        c(Table::SalesRaw).await,
        c(Table::EventsRaw).await,
        c(Table::LateEvents).await,
    )
}

/// The `YYYYMMDD` of each day partition of the three event-time tables, per table.
async fn days(f: &Fixture) -> [Vec<String>; 3] {
    let of = |names: Vec<String>| {
        names
            .iter()
            .filter_map(|n| n.rsplit('_').next().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    [
        of(f.partitions("sales_raw").await),
        of(f.partitions("events_raw").await),
        of(f.partitions("late_events").await),
    ]
}

/// Raw rows and late events of days past their retention (counted back from the newest event
/// day landed) are gone once a later batch moves the newest day; every row inside is there.
/// A restart with a shorter retention drops at open.
pub async fn raw_rows_and_late_events_past_their_retention_are_dropped(f: Fixture) {
    let pg = f.pg.is_some();
    let store = f.open_with(options(2, 1, 0)).await;
    for (i, day) in DAYS.iter().enumerate() {
        store
            .write_batch(&day_batch(day, i as i64 * 3))
            .await
            .expect("batch of a day");
    }
    // Newest day the 22nd: raw keeps from the 20th, late events from the 21st.
    assert_eq!(counts(&*store).await, (6, 3, 2));
    if pg {
        let d = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            days(&f).await,
            [
                d(&["20261120", "20261121", "20261122"]),
                d(&["20261120", "20261121", "20261122"]),
                d(&["20261121", "20261122"]),
            ]
        );
    }
    // Two days on: raw keeps from the 22nd, late events from the 23rd.
    store
        .write_batch(&day_batch("2026-11-24", 9))
        .await
        .expect("batch two days on");
    assert_eq!(counts(&*store).await, (4, 2, 1));
    if pg {
        let d = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            days(&f).await,
            [
                d(&["20261122", "20261124"]),
                d(&["20261122", "20261124"]),
                d(&["20261124"]),
            ]
        );
    }
    drop(store);
    // Restarted with a shorter raw retention: the 22nd goes at open.
    let store = f.open_with(options(1, 1, 0)).await;
    assert_eq!(counts(&*store).await, (2, 1, 1));
    if pg {
        assert_eq!(f.partitions("sales_raw").await, ["sales_raw_20261124"]);
        assert_eq!(f.partitions("events_raw").await, ["events_raw_20261124"]);
    }
    // A day landed again after it was dropped gets a new partition and lands.
    let o = store
        .write_batch(&day_batch("2026-11-24", 12))
        .await
        .expect("the newest day again");
    assert_eq!(o.sales_inserted, 2, "{o:?}");
    assert_eq!(counts(&*store).await, (4, 2, 2));
}

/// Retention 0 (the default) keeps every row of every day.
pub async fn retention_zero_keeps_everything(f: Fixture) {
    let store = f.open_with(options(0, 0, 0)).await;
    for (i, day) in DAYS.iter().chain(&["2026-11-30"]).enumerate() {
        store
            .write_batch(&day_batch(day, i as i64 * 3))
            .await
            .expect("batch of a day");
    }
    assert_eq!(counts(&*store).await, (8, 4, 4));
    drop(store);
    let store = f.open().await;
    assert_eq!(counts(&*store).await, (8, 4, 4));
}

/// Dead letters age by `rejected_at` against the wall clock: reopened with a retention, the
/// ones rejected before it are gone and the rest are all there.
pub async fn dead_letters_past_their_retention_are_dropped_by_wall_clock(f: Fixture) {
    let p = TopicPartition::new("sales", 0);
    let now = Utc::now();
    let letter = |offset: i64, days_ago: i64| {
        let mut d = dead_letter(&p, offset, "qty: is required");
        d.rejected_at = now - Duration::days(days_ago);
        d
    };
    {
        let store = f.open().await;
        let batch = LandingBatch {
            group: "g".into(),
            dead_letters: vec![letter(0, 40), letter(1, 31), letter(2, 29), letter(3, 0)],
            offsets: vec![range(&p, 0, 4)],
            ..Default::default()
        };
        let o = store.write_batch(&batch).await.expect("dead letters");
        assert_eq!(o.dead_letters, 4, "{o:?}");
    }
    let store = f.open_with(options(0, 0, 30)).await;
    assert_eq!(store.count(Table::DeadLetters).await.expect("count"), 2);
    // New dead letters still land, in a day partition of their own.
    let batch = LandingBatch {
        group: "g".into(),
        dead_letters: vec![letter(4, 0)],
        offsets: vec![range(&p, 4, 5)],
        ..Default::default()
    };
    store.write_batch(&batch).await.expect("a new dead letter");
    assert_eq!(store.count(Table::DeadLetters).await.expect("count"), 3);
    if f.pg.is_some() {
        assert_eq!(
            f.partitions("dead_letters").await.len(),
            2,
            "29 days ago and today"
        );
    }
}
