//! The read side ([`retail_sink::Reader`]) against every backend: data goes in through the real
//! write path (`write_batch` with aggregate contributions, catalog rows, late events and dead
//! letters), and every query must read back the same answers on PostgreSQL and SQLite.

// Shared with the other suites; this one uses part of it.
#[allow(dead_code)]
mod common;

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use retail_core::TopicPartition;
use retail_sink::derived::{
    AggregateTable, CatalogRow, ColumnType, Contribution, Derived, KeyColumn, LateEvent, MeasureColumn,
    Merge, Rank, Value,
};
use retail_sink::read::{Claim, Grain, PageRequest};
use retail_sink::{open_reader, LandingBatch, Reader, Store};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::common::{dead_letter, ids, range, sale, ts, Fixture};

fn key(name: &str, ty: ColumnType) -> KeyColumn {
    KeyColumn {
        name: name.into(),
        ty,
    }
}

fn measure(name: &str, input: ColumnType, merge: Merge) -> MeasureColumn {
    MeasureColumn {
        name: name.into(),
        input,
        merge,
    }
}

/// The four built-in aggregate tables, shaped as the processor's built-in definitions.
fn tables() -> Vec<AggregateTable> {
    let sales_measures = || {
        vec![
            measure("units", ColumnType::Int, Merge::Sum),
            measure("revenue", ColumnType::Decimal, Merge::Sum),
            measure("sales", ColumnType::Int, Merge::Count),
            measure("returns", ColumnType::Int, Merge::Count),
        ]
    };
    let rank_measures = || {
        vec![
            measure("revenue", ColumnType::Decimal, Merge::Sum),
            measure("units", ColumnType::Int, Merge::Sum),
            measure("sales", ColumnType::Int, Merge::Count),
        ]
    };
    vec![
        AggregateTable {
            name: "sales_agg_minute".into(),
            keys: vec![key("store_id", ColumnType::Int)],
            measures: sales_measures(),
            rank: None,
        },
        AggregateTable {
            name: "sales_agg_hour".into(),
            keys: vec![key("store_id", ColumnType::Int)],
            measures: sales_measures(),
            rank: None,
        },
        AggregateTable {
            name: "top_sales_by_city".into(),
            keys: vec![key("country", ColumnType::Text), key("city", ColumnType::Text)],
            measures: rank_measures(),
            rank: Some(Rank {
                by: "revenue".into(),
                within: Vec::new(),
            }),
        },
        AggregateTable {
            name: "top_salesman_by_country".into(),
            keys: vec![
                key("country", ColumnType::Text),
                key("seller_id", ColumnType::Int),
                key("seller_name", ColumnType::Text),
            ],
            measures: rank_measures(),
            rank: Some(Rank {
                by: "revenue".into(),
                within: vec!["country".into()],
            }),
        },
    ]
}

/// One sale or return as the engine would fold it into the four tables.
struct Sold {
    id: Uuid,
    at: &'static str,
    store: i64,
    qty: i64,
    cents: i64,
    seller: (i64, &'static str),
    place: (&'static str, &'static str),
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const THIRTY_DAYS: i64 = 30 * DAY;

fn window(ms: i64, size: i64) -> (i64, i64) {
    let start = ms - ms.rem_euclid(size);
    (start, start + size)
}

fn contributions(s: &Sold) -> Vec<Contribution> {
    let ms = ts(s.at).timestamp_millis();
    let amount = Value::Decimal(Decimal::new(s.cents, 2));
    let (sale, ret) = if s.qty > 0 {
        (Value::Int(1), Value::Null)
    } else {
        (Value::Null, Value::Int(1))
    };
    let text = |t: &str| Value::Text(Arc::from(t));
    let c = |table, size, key: Vec<Value>, values| {
        let (window_start, window_end) = window(ms, size);
        Contribution {
            event_id: s.id,
            table,
            window_start,
            window_end,
            key,
            values,
        }
    };
    let sales_values = vec![Value::Int(s.qty), amount.clone(), sale.clone(), ret];
    let rank_values = vec![amount, Value::Int(s.qty), sale];
    vec![
        c(0, MINUTE, vec![Value::Int(s.store)], sales_values.clone()),
        c(1, HOUR, vec![Value::Int(s.store)], sales_values),
        c(
            2,
            DAY,
            vec![text(s.place.0), text(s.place.1)],
            rank_values.clone(),
        ),
        c(
            3,
            THIRTY_DAYS,
            vec![text(s.place.0), Value::Int(s.seller.0), text(s.seller.1)],
            rank_values,
        ),
    ]
}

/// Lands the fixture data and returns the store (kept open) and a reader on it.
async fn landed(f: &Fixture) -> (Arc<dyn Store>, Arc<dyn Reader>) {
    let store = f.open().await;
    store.prepare_aggregates(&tables()).await.expect("prepare");
    let id = ids(6);
    let sold = [
        Sold {
            id: id[0],
            at: "2026-11-21T10:00:30Z",
            store: 1,
            qty: 2,
            cents: 1010,
            seller: (10, "Ann"),
            place: ("DE", "Berlin"),
        },
        Sold {
            id: id[1],
            at: "2026-11-21T10:01:10Z",
            store: 1,
            qty: 1,
            cents: 520,
            seller: (11, "Ben"),
            place: ("DE", "Berlin"),
        },
        Sold {
            id: id[2],
            at: "2026-11-21T10:00:40Z",
            store: 2,
            qty: 3,
            cents: 3000,
            seller: (20, "Cleo"),
            place: ("FR", "Paris"),
        },
        Sold {
            id: id[3],
            at: "2026-11-21T11:30:00Z",
            store: 2,
            qty: -1,
            cents: -1000,
            seller: (20, "Cleo"),
            place: ("FR", "Paris"),
        },
        Sold {
            id: id[4],
            at: "2026-11-20T09:00:00Z",
            store: 1,
            qty: 1,
            cents: 100,
            seller: (10, "Ann"),
            place: ("DE", "Berlin"),
        },
    ];
    let sales_tp = TopicPartition::new("sales", 0);
    let late = LateEvent {
        event_id: id[5],
        aggregate: Arc::from("sales_agg_minute"),
        window_start: ts("2026-11-21T09:00:00Z").timestamp_millis(),
        window_end: ts("2026-11-21T09:01:00Z").timestamp_millis(),
        event_ts: ts("2026-11-21T09:00:10Z").timestamp_millis(),
        watermark: ts("2026-11-21T10:05:00Z").timestamp_millis(),
        reason: "window closed".into(),
        tp: sales_tp.clone(),
        offset: 7,
    };
    let store_row = |store_id, city: &str, country: &str| CatalogRow::Store {
        store_id,
        name: format!("{city} {store_id}"),
        city: city.into(),
        country: country.into(),
    };
    let batch = LandingBatch {
        group: "landing".into(),
        sales: sold
            .iter()
            .map(|s| sale(s.id, ts(s.at), s.store, i32::try_from(s.qty).expect("qty")))
            .collect(),
        dead_letters: vec![
            dead_letter(&sales_tp, 8, "qty: must be a non-zero integer, got \"two\""),
            dead_letter(&sales_tp, 9, "store_id: is required"),
        ],
        offsets: vec![range(&sales_tp, 0, 10)],
        derived: Arc::new(Derived {
            contributions: sold.iter().flat_map(contributions).collect(),
            late: vec![late],
            watermarks: Vec::new(),
            catalog: vec![
                store_row(1, "Berlin", "DE"),
                store_row(2, "Paris", "FR"),
                store_row(3, "Lyon", "FR"),
            ],
            orders: None,
            stock: None,
            fraud: None,
        }),
        ..Default::default()
    };
    store.write_batch(&batch).await.expect("write batch");
    let reader = open_reader(&f.url).await.expect("open reader");
    (store, reader)
}

fn t(s: &str) -> DateTime<Utc> {
    ts(s)
}

/// Sales series per minute and per hour, for one store and summed, in order.
async fn sales_series(f: Fixture) {
    let (_store, r) = landed(&f).await;
    let all = r
        .sales(
            Grain::Minute,
            None,
            t("2026-11-21T10:00:00Z"),
            t("2026-11-21T12:00:00Z"),
        )
        .await
        .expect("sales");
    let got: Vec<(String, Option<i64>, i64, f64, i64, i64)> = all
        .iter()
        .map(|b| {
            (
                b.window_start.to_rfc3339(),
                b.store_id,
                b.units,
                b.revenue,
                b.sales,
                b.returns,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("2026-11-21T10:00:00+00:00".to_owned(), None, 5, 40.1, 2, 0),
            ("2026-11-21T10:01:00+00:00".to_owned(), None, 1, 5.2, 1, 0),
            ("2026-11-21T11:30:00+00:00".to_owned(), None, -1, -10.0, 0, 1),
        ]
    );
    let one = r
        .sales(
            Grain::Hour,
            Some(1),
            t("2026-11-20T00:00:00Z"),
            t("2026-11-22T00:00:00Z"),
        )
        .await
        .expect("sales");
    let got: Vec<(String, Option<i64>, i64)> = one
        .iter()
        .map(|b| (b.window_start.to_rfc3339(), b.store_id, b.units))
        .collect();
    assert_eq!(
        got,
        [
            ("2026-11-20T09:00:00+00:00".to_owned(), Some(1), 1),
            ("2026-11-21T10:00:00+00:00".to_owned(), Some(1), 3),
        ]
    );
    // `to` is exclusive.
    let none = r
        .sales(
            Grain::Minute,
            None,
            t("2026-11-21T09:59:00Z"),
            t("2026-11-21T10:00:00Z"),
        )
        .await
        .expect("sales");
    assert!(none.is_empty(), "{none:?}");
}

/// Totals take whole hours from the hour table and the ends from the minute table.
async fn totals_over_ragged_ranges(f: Fixture) {
    let (_store, r) = landed(&f).await;
    let day = r
        .totals(t("2026-11-21T00:00:00Z"), t("2026-11-22T00:00:00Z"))
        .await
        .expect("totals");
    assert_eq!((day.units, day.sales, day.returns), (5, 3, 1));
    assert!((day.revenue - 35.3).abs() < 1e-9, "{day:?}");
    let ragged = r
        .totals(t("2026-11-21T10:00:45Z"), t("2026-11-21T11:45:00Z"))
        .await
        .expect("totals");
    // From 10:00:45 the 10:00 minute is out (windows start before), 10:01 and 11:30 are in.
    assert_eq!(
        (ragged.units, ragged.sales, ragged.returns),
        (0, 1, 1),
        "{ragged:?}"
    );
    // 10:00-11:00 from the hour table, 11:00-11:45 from the minute table.
    let both = r
        .totals(t("2026-11-21T09:30:00Z"), t("2026-11-21T11:45:00Z"))
        .await
        .expect("totals");
    assert_eq!((both.units, both.sales, both.returns), (5, 3, 1), "{both:?}");
}

/// The city ranking of a day and the seller ranking within each country.
async fn rankings(f: Fixture) {
    let (_store, r) = landed(&f).await;
    let day = NaiveDate::from_ymd_opt(2026, 11, 21).expect("day");
    let cities = r.top_sales_by_city(day, 10).await.expect("cities");
    let got: Vec<(i64, &str, f64, i64)> = cities
        .iter()
        .map(|c| (c.rank, c.city.as_str(), c.revenue, c.sales))
        .collect();
    assert_eq!(got, [(1, "Paris", 20.0, 1), (2, "Berlin", 15.3, 2)]);
    assert_eq!(r.top_sales_by_city(day, 1).await.expect("cities").len(), 1);
    let empty = NaiveDate::from_ymd_opt(2026, 1, 1).expect("day");
    assert!(r.top_sales_by_city(empty, 10).await.expect("cities").is_empty());

    let sellers = r.top_salesmen_by_country(None, None, 10).await.expect("sellers");
    let got: Vec<(&str, i64, i64, f64)> = sellers
        .iter()
        .map(|s| (s.country.as_str(), s.rank, s.seller_id, s.revenue))
        .collect();
    // Ann's sales of both days fall in the same 30-day window.
    assert_eq!(
        got,
        [("DE", 1, 10, 11.1), ("DE", 2, 11, 5.2), ("FR", 1, 20, 20.0)]
    );
    let window = sellers[0].window_start;
    let de = r
        .top_salesmen_by_country(Some("DE"), Some(window), 1)
        .await
        .expect("sellers");
    assert_eq!(de.len(), 1);
    assert_eq!((de[0].seller_name.as_str(), de[0].rank), ("Ann", 1));
    let other = r
        .top_salesmen_by_country(Some("DE"), Some(t("2020-01-01T00:00:00Z")), 5)
        .await
        .expect("sellers");
    assert!(other.is_empty());
    assert!(r
        .top_salesmen_by_country(Some("JP"), None, 5)
        .await
        .expect("sellers")
        .is_empty());
}

/// Store summaries, paged; one store; an unknown store.
async fn stores(f: Fixture) {
    let (_store, r) = landed(&f).await;
    let (from, to) = (t("2026-11-21T00:00:00Z"), t("2026-11-22T00:00:00Z"));
    let page = r
        .stores(from, to, PageRequest { limit: 2, offset: 0 })
        .await
        .expect("stores");
    let got: Vec<(i64, i64, i64)> = page
        .items
        .iter()
        .map(|s| (s.store.store_id, s.totals.units, s.totals.returns))
        .collect();
    assert_eq!(got, [(1, 3, 0), (2, 2, 1)]);
    assert_eq!(page.next_offset, Some(2));
    let last = r
        .stores(from, to, PageRequest { limit: 2, offset: 2 })
        .await
        .expect("stores");
    assert_eq!(last.items.len(), 1);
    assert_eq!(
        (last.items[0].store.city.as_str(), last.items[0].totals.sales),
        ("Lyon", 0)
    );
    assert_eq!(last.next_offset, None);
    let one = r.store_summary(2, from, to).await.expect("store").expect("known");
    assert_eq!((one.store.country.as_str(), one.totals.sales), ("FR", 1));
    assert!(r.store_summary(99, from, to).await.expect("store").is_none());
    assert_eq!(
        r.store(1).await.expect("store").map(|s| s.city),
        Some("Berlin".into())
    );
    assert!(r.store(99).await.expect("store").is_none());
}

/// Late events filtered by aggregate; dead letters listed, inspected, claimed once.
async fn late_events_and_dead_letters(f: Fixture) {
    let (_store, r) = landed(&f).await;
    let page = PageRequest { limit: 10, offset: 0 };
    let late = r.late_events(Some("sales_agg_minute"), page).await.expect("late");
    assert_eq!(late.items.len(), 1);
    assert_eq!(late.items[0].window_start, t("2026-11-21T09:00:00Z"));
    assert_eq!((late.items[0].topic.as_str(), late.items[0].offset), ("sales", 7));
    assert!(r
        .late_events(Some("sales_agg_hour"), page)
        .await
        .expect("late")
        .items
        .is_empty());
    assert_eq!(r.late_events(None, page).await.expect("late").items.len(), 1);

    let dls = r
        .dead_letters(PageRequest { limit: 1, offset: 0 })
        .await
        .expect("dead letters");
    assert_eq!(dls.items.len(), 1);
    assert_eq!(dls.next_offset, Some(1));
    let newest = &dls.items[0];
    assert_eq!(newest.reason, "store_id: is required", "newest first");
    assert_eq!(newest.resubmitted_at, None);
    let detail = r.dead_letter(newest.id).await.expect("get").expect("exists");
    // The fixture's payload ends in a byte that is not UTF-8: shown replaced, and said so.
    assert!(!detail.raw_is_utf8);
    assert!(
        detail.raw.starts_with("{\"type\":\"sale\"") && detail.raw.ends_with('\u{FFFD}'),
        "{}",
        detail.raw
    );
    assert_eq!(detail.summary.raw_bytes, 28);
    assert_eq!(
        (detail.summary.file.as_deref(), detail.summary.line),
        (Some("erp/2026-11-21.csv"), Some(17))
    );
    assert!(r.dead_letter(newest.id + 100).await.expect("get").is_none());

    let Claim::Claimed(claimed_at) = r.claim_dead_letter(newest.id).await.expect("claim") else {
        panic!("the first claim must succeed");
    };
    let Claim::AlreadyResubmitted(at) = r.claim_dead_letter(newest.id).await.expect("claim") else {
        panic!("a second claim must see the first");
    };
    assert_eq!(at, claimed_at, "the claim reports the stored time");
    let shown = r.dead_letter(newest.id).await.expect("get").expect("exists");
    assert_eq!(shown.summary.resubmitted_at, Some(at));
    assert_eq!(
        r.claim_dead_letter(newest.id + 100).await.expect("claim"),
        Claim::NotFound
    );
    r.unclaim_dead_letter(newest.id).await.expect("unclaim");
    assert!(matches!(
        r.claim_dead_letter(newest.id).await.expect("claim"),
        Claim::Claimed(_)
    ));
    let counts = r.counts().await.expect("counts");
    assert_eq!(
        (
            counts.dead_letters,
            counts.dead_letters_resubmitted,
            counts.late_events
        ),
        (2, 1, 1)
    );
}

/// Before the landing created the aggregate tables, queries read as empty, not as errors; the
/// reader reads while the store's writer holds a transaction's worth of work.
async fn missing_tables_read_empty(f: Fixture) {
    let _store = f.open().await;
    let r = open_reader(&f.url).await.expect("open reader");
    let (from, to) = (t("2026-11-21T00:00:00Z"), t("2026-11-22T00:00:00Z"));
    assert!(r
        .sales(Grain::Minute, None, from, to)
        .await
        .expect("sales")
        .is_empty());
    assert_eq!(r.totals(from, to).await.expect("totals").units, 0);
    let day = NaiveDate::from_ymd_opt(2026, 11, 21).expect("day");
    assert!(r.top_sales_by_city(day, 5).await.expect("cities").is_empty());
    assert!(r
        .top_salesmen_by_country(None, None, 5)
        .await
        .expect("sellers")
        .is_empty());
    let page = PageRequest { limit: 5, offset: 0 };
    assert!(r.stores(from, to, page).await.expect("stores").items.is_empty());
    assert!(r.dead_letters(page).await.expect("dead letters").items.is_empty());
}

macro_rules! suite {
    ($fixture:expr) => {
        #[tokio::test]
        async fn sales_series() {
            crate::sales_series($fixture).await
        }
        #[tokio::test]
        async fn totals_over_ragged_ranges() {
            crate::totals_over_ragged_ranges($fixture).await
        }
        #[tokio::test]
        async fn rankings() {
            crate::rankings($fixture).await
        }
        #[tokio::test]
        async fn stores() {
            crate::stores($fixture).await
        }
        #[tokio::test]
        async fn late_events_and_dead_letters() {
            crate::late_events_and_dead_letters($fixture).await
        }
        #[tokio::test]
        async fn missing_tables_read_empty() {
            crate::missing_tables_read_empty($fixture).await
        }
    };
}

mod pg {
    use crate::common;

    suite!(common::pg().await);
}

mod lite {
    use crate::common;

    suite!(common::sqlite());
}
