//! The read side ([`retail_sink::Reader`]) against every backend: data goes in through the real
//! write path (`write_batch` with aggregate contributions, catalog rows, late events and dead
//! letters), and every query must read back the same answers on PostgreSQL and SQLite.

// Shared with the other suites; this one uses part of it.
#[allow(dead_code)]
mod common;

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use retail_core::event::{OrderStatus, PaymentStatus};
use retail_core::TopicPartition;
use retail_sink::derived::orders::{OrderBatch, OrderFact, OrderFactKind, OrderRules};
use retail_sink::derived::{
    AggregateTable, CatalogRow, ColumnType, Contribution, Derived, KeyColumn, LateEvent, MeasureColumn,
    Merge, Rank, Value,
};
use retail_sink::read::notifications::DeliveryFilter;
use retail_sink::read::orders::{AlertFilter, OrderFilter, OrderRow, ORDERS_PIPELINE};
use retail_sink::read::{Claim, Grain, Page, PageRequest};
use retail_sink::{open_reader, LandedEvent, LandingBatch, Reader, Store, StoreUrl};
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
            notifications: None,
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
    assert!(r
        .orders(&OrderFilter::default(), page)
        .await
        .expect("orders")
        .items
        .is_empty());
    assert!(r.order("O-1").await.expect("order").is_none());
    assert!(r.orders_by_state().await.expect("by state").is_empty());
    assert!(r
        .alerts(&AlertFilter::default(), page)
        .await
        .expect("alerts")
        .items
        .is_empty());
    assert!(r
        .deliveries(&DeliveryFilter::default(), page)
        .await
        .expect("deliveries")
        .items
        .is_empty());
    assert_eq!(
        r.pipeline_time("landing", ORDERS_PIPELINE).await.expect("clock"),
        None
    );
}

const T0: &str = "2026-11-21T10:00:00Z";

/// `ms` after [`T0`].
fn at(ms: i64) -> DateTime<Utc> {
    t(T0) + chrono::TimeDelta::milliseconds(ms)
}

/// One order or payment event: its `events_raw` row (keyed by the order id, as the sources
/// key them) and the pipeline's fact about it.
fn order_event(order_id: &str, ms: i64, kind: OrderFactKind) -> (LandedEvent, OrderFact) {
    let event_id = Uuid::now_v7();
    let (event_type, payload) = match &kind {
        OrderFactKind::Status { status, .. } => (
            "order",
            format!(
                r#"{{"type":"order","order_id":"{order_id}","status":"{}","amount":19.99}}"#,
                format!("{status:?}").to_lowercase()
            ),
        ),
        OrderFactKind::Payment { status, .. } => (
            "payment",
            format!(
                r#"{{"type":"payment","order_id":"{order_id}","status":"{}","amount":19.99}}"#,
                format!("{status:?}").to_lowercase()
            ),
        ),
    };
    let event = LandedEvent {
        event_id,
        ts: at(ms),
        source: "web".into(),
        event_type,
        key: order_id.into(),
        payload,
    };
    let fact = OrderFact {
        event_id,
        order_id: order_id.into(),
        ts: at(ms).timestamp_millis(),
        kind,
    };
    (event, fact)
}

fn status(
    order_id: &str,
    ms: i64,
    status: OrderStatus,
    store: i64,
    customer: &str,
) -> (LandedEvent, OrderFact) {
    order_event(
        order_id,
        ms,
        OrderFactKind::Status {
            status,
            store_id: Some(store),
            amount: Some(Decimal::new(1999, 2)),
            currency: Some("EUR".into()),
            customer_id: Some(customer.into()),
        },
    )
}

fn paid(order_id: &str, ms: i64) -> (LandedEvent, OrderFact) {
    order_event(
        order_id,
        ms,
        OrderFactKind::Payment {
            payment_id: format!("P-{order_id}"),
            status: PaymentStatus::Captured,
            amount: Decimal::new(1999, 2),
            currency: "EUR".into(),
        },
    )
}

/// Lands five orders through the store's order pipeline, in three batches at pipeline times
/// 10 min, 13 h and 14 h after [`T0`] (window 30 min, grace 1 min, stuck in `paid` after 12 h):
/// - O-1 created at 0, never paid: times out (alert at 30 min, open).
/// - O-2 created at 0, paid at 5/6 min, stuck in `paid` (alert at 12 h 06), packed at 13 h 30
///   (resolved then).
/// - O-3 only a payment (no state, no `created_at`).
/// - O-4 created at 2 min, cancelled at 3 min.
/// - O-5 created and paid at 1 min, still stuck in `paid` (alert at 12 h 01, open).
async fn landed_orders(f: &Fixture) -> (Arc<dyn Store>, Arc<dyn Reader>) {
    const MIN: i64 = MINUTE;
    let store = f.open().await;
    let rules = Arc::new(OrderRules {
        payment_window_ms: 30 * MIN,
        grace_ms: MIN,
        stuck_after_ms: [Some(12 * HOUR), Some(24 * HOUR), Some(96 * HOUR)],
    });
    let p = TopicPartition::new("orders", 0);
    let mut next = 0;
    let mut land = |events: Vec<(LandedEvent, OrderFact)>, time: i64| {
        let first = next;
        next += events.len() as i64 + 1;
        let (mut events, facts): (Vec<_>, Vec<_>) = events.into_iter().unzip();
        // Not an order or a payment, though keyed by an order id: never in its history.
        events.push(LandedEvent {
            event_id: Uuid::now_v7(),
            ts: at(time),
            source: "wms".into(),
            event_type: "inventory",
            key: "O-2".into(),
            payload: r#"{"type":"inventory"}"#.into(),
        });
        LandingBatch {
            group: "landing".into(),
            events,
            offsets: vec![range(&p, first, next)],
            derived: Arc::new(Derived {
                orders: Some(OrderBatch {
                    rules: rules.clone(),
                    facts,
                    time: Some(at(time).timestamp_millis()),
                }),
                ..Derived::default()
            }),
            ..Default::default()
        }
    };
    let first = land(
        vec![
            status("O-1", 0, OrderStatus::Created, 3, "C-1"),
            paid("O-2", 5 * MIN),
            status("O-2", 0, OrderStatus::Created, 4, "C-2"),
            status("O-2", 6 * MIN, OrderStatus::Paid, 4, "C-2"),
            paid("O-3", MIN),
            status("O-4", 2 * MIN, OrderStatus::Created, 3, "C-1"),
            status("O-4", 3 * MIN, OrderStatus::Cancelled, 3, "C-1"),
            status("O-5", MIN, OrderStatus::Created, 3, "C-2"),
            paid("O-5", MIN),
            status("O-5", MIN, OrderStatus::Paid, 3, "C-2"),
        ],
        10 * MIN,
    );
    store.write_batch(&first).await.expect("first batch");
    let verdicts = land(Vec::new(), 13 * HOUR);
    store.write_batch(&verdicts).await.expect("verdicts");
    let packed = land(
        vec![status("O-2", 13 * HOUR + 30 * MIN, OrderStatus::Packed, 4, "C-2")],
        14 * HOUR,
    );
    store.write_batch(&packed).await.expect("packed");
    let reader = open_reader(&f.url).await.expect("open reader");
    (store, reader)
}

fn order_ids(page: &Page<OrderRow>) -> Vec<&str> {
    page.items.iter().map(|o| o.order_id.as_str()).collect()
}

/// Orders filtered, newest first and paged; one order with its history; counts by state; the
/// pipeline time; an unknown order is `None`.
async fn orders(f: Fixture) {
    let (_store, r) = landed_orders(&f).await;
    let all = PageRequest { limit: 10, offset: 0 };
    let list = |filter: OrderFilter| {
        let r = r.clone();
        async move { r.orders(&filter, all).await.expect("orders") }
    };
    let page = list(OrderFilter::default()).await;
    assert_eq!(
        order_ids(&page),
        ["O-4", "O-5", "O-1", "O-2", "O-3"],
        "newest created first, ties by id, none last"
    );
    assert_eq!(page.next_offset, None);
    let first = r
        .orders(&OrderFilter::default(), PageRequest { limit: 2, offset: 0 })
        .await
        .expect("page");
    assert_eq!(
        (order_ids(&first), first.next_offset),
        (vec!["O-4", "O-5"], Some(2))
    );
    let last = r
        .orders(&OrderFilter::default(), PageRequest { limit: 2, offset: 4 })
        .await
        .expect("page");
    assert_eq!((order_ids(&last), last.next_offset), (vec!["O-3"], None));

    let by = |f: fn(&mut OrderFilter)| {
        let mut filter = OrderFilter::default();
        f(&mut filter);
        filter
    };
    assert_eq!(
        order_ids(&list(by(|f| f.state = Some("paid".into()))).await),
        ["O-5"]
    );
    assert_eq!(
        order_ids(&list(by(|f| f.state = Some("created".into()))).await),
        ["O-1"]
    );
    assert_eq!(
        order_ids(&list(by(|f| f.customer_id = Some("C-1".into()))).await),
        ["O-4", "O-1"]
    );
    assert_eq!(order_ids(&list(by(|f| f.store_id = Some(4))).await), ["O-2"]);
    assert_eq!(order_ids(&list(by(|f| f.stuck = Some(true))).await), ["O-5"]);
    assert_eq!(
        order_ids(&list(by(|f| f.stuck = Some(false))).await),
        ["O-4", "O-1", "O-2", "O-3"]
    );
    assert_eq!(
        order_ids(&list(by(|f| f.payment_timeout = Some(true))).await),
        ["O-1"]
    );
    assert_eq!(
        order_ids(&list(by(|f| f.payment_timeout = Some(false))).await),
        ["O-4", "O-5", "O-2", "O-3"]
    );
    assert_eq!(
        order_ids(&list(by(|f| f.from = Some(at(MINUTE)))).await),
        ["O-4", "O-5"]
    );
    assert_eq!(
        order_ids(&list(by(|f| f.to = Some(at(MINUTE)))).await),
        ["O-1", "O-2"]
    );
    let both = by(|f| {
        f.customer_id = Some("C-2".into());
        f.stuck = Some(true);
    });
    assert_eq!(order_ids(&list(both).await), ["O-5"]);

    let o2 = r.order("O-2").await.expect("order").expect("O-2 exists");
    assert_eq!(o2.order.state.as_deref(), Some("packed"));
    assert_eq!(o2.order.state_since, Some(at(13 * HOUR + 30 * MINUTE)));
    assert_eq!(
        (o2.order.amount, o2.order.payment_amount),
        (Some(19.99), Some(19.99))
    );
    assert_eq!(o2.order.milestones[0], Some(at(0)));
    assert_eq!(o2.order.milestones[1], Some(at(6 * MINUTE)));
    assert_eq!(o2.order.payment_at, Some(at(5 * MINUTE)));
    assert_eq!(o2.order.payment_id.as_deref(), Some("P-O-2"));
    assert_eq!(o2.order.last_event_at, at(13 * HOUR + 30 * MINUTE));
    let history: Vec<(&str, DateTime<Utc>)> =
        o2.events.iter().map(|e| (e.event_type.as_str(), e.ts)).collect();
    assert_eq!(
        history,
        [
            ("order", at(0)),
            ("payment", at(5 * MINUTE)),
            ("order", at(6 * MINUTE)),
            ("order", at(13 * HOUR + 30 * MINUTE)),
        ],
        "its order and payment events by event time, nothing else with its key"
    );
    let payload: serde_json::Value = serde_json::from_str(&o2.events[1].payload).expect("payload is JSON");
    assert_eq!(
        (payload["order_id"].as_str(), payload["status"].as_str()),
        (Some("O-2"), Some("captured"))
    );
    let o1 = r.order("O-1").await.expect("order").expect("O-1 exists");
    assert!(o1.order.payment_timeout && o1.order.stuck_state.is_none());
    assert_eq!(o1.order.payment_due_at, Some(at(30 * MINUTE)));
    let o5 = r.order("O-5").await.expect("order").expect("O-5 exists");
    assert_eq!(o5.order.stuck_state.as_deref(), Some("paid"));
    let o3 = r.order("O-3").await.expect("order").expect("O-3 exists");
    assert_eq!((o3.order.state.as_deref(), o3.order.amount), (None, None));
    assert_eq!(o3.order.payment_status.as_deref(), Some("captured"));
    assert!(r.order("O-9").await.expect("order").is_none(), "unknown order");

    let by_state = r.orders_by_state().await.expect("by state");
    let got: Vec<(Option<&str>, i64, i64)> = by_state
        .iter()
        .map(|c| (c.state.as_deref(), c.orders, c.stuck))
        .collect();
    assert_eq!(
        got,
        [
            (Some("created"), 1, 0),
            (Some("paid"), 1, 1),
            (Some("packed"), 1, 0),
            (Some("cancelled"), 1, 0),
            (None, 1, 0),
        ]
    );

    assert_eq!(
        r.pipeline_time("landing", ORDERS_PIPELINE).await.expect("clock"),
        Some(at(14 * HOUR))
    );
    assert_eq!(
        r.pipeline_time("other", ORDERS_PIPELINE).await.expect("clock"),
        None
    );
}

/// Alerts filtered by kind, severity, subject, open and time, newest first and paged.
async fn alerts(f: Fixture) {
    let (_store, r) = landed_orders(&f).await;
    let all = PageRequest { limit: 10, offset: 0 };
    let list = |filter: AlertFilter| {
        let r = r.clone();
        async move {
            r.alerts(&filter, all)
                .await
                .expect("alerts")
                .items
                .into_iter()
                .map(|a| format!("{}:{}", a.kind, a.subject))
                .collect::<Vec<_>>()
        }
    };
    let by = |f: fn(&mut AlertFilter)| {
        let mut filter = AlertFilter::default();
        f(&mut filter);
        filter
    };
    assert_eq!(
        list(AlertFilter::default()).await,
        ["order_stuck:O-2", "order_stuck:O-5", "payment_timeout:O-1"],
        "newest first"
    );
    let page = r.alerts(&AlertFilter::default(), all).await.expect("alerts");
    let stuck = &page.items[0];
    assert_eq!(
        (stuck.at, stuck.resolved_at),
        (at(12 * HOUR + 6 * MINUTE), Some(at(13 * HOUR + 30 * MINUTE)))
    );
    assert_eq!(stuck.severity, "warning");
    assert!(stuck.message.contains("O-2"), "{}", stuck.message);
    assert_eq!(stuck.alert_id.len(), 36, "{}", stuck.alert_id);
    assert_eq!(page.items[2].resolved_at, None);
    assert_eq!(
        list(by(|f| f.kind = Some("order_stuck".into()))).await,
        ["order_stuck:O-2", "order_stuck:O-5"]
    );
    assert_eq!(list(by(|f| f.severity = Some("warning".into()))).await.len(), 3);
    assert!(list(by(|f| f.severity = Some("critical".into())))
        .await
        .is_empty());
    assert_eq!(
        list(by(|f| f.subject = Some("O-1".into()))).await,
        ["payment_timeout:O-1"]
    );
    assert_eq!(
        list(by(|f| f.open = Some(true))).await,
        ["order_stuck:O-5", "payment_timeout:O-1"]
    );
    assert_eq!(list(by(|f| f.open = Some(false))).await, ["order_stuck:O-2"]);
    assert_eq!(
        list(by(|f| f.from = Some(at(12 * HOUR)))).await,
        ["order_stuck:O-2", "order_stuck:O-5"]
    );
    assert_eq!(
        list(by(|f| f.to = Some(at(12 * HOUR)))).await,
        ["payment_timeout:O-1"]
    );
    let second = r
        .alerts(&AlertFilter::default(), PageRequest { limit: 1, offset: 1 })
        .await
        .expect("page");
    assert_eq!(second.items[0].subject, "O-5");
    assert_eq!(second.next_offset, Some(2));
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
        #[tokio::test]
        async fn orders() {
            crate::orders($fixture).await
        }
        #[tokio::test]
        async fn alerts() {
            crate::alerts($fixture).await
        }
        #[tokio::test]
        async fn inventory_risks() {
            crate::inventory_risks($fixture).await
        }
        #[tokio::test]
        async fn fraud_alerts() {
            crate::fraud_alerts($fixture).await
        }
        #[tokio::test]
        async fn notification_deliveries() {
            crate::notification_deliveries($fixture).await
        }
    };
}

/// `inventory_risks` rows landed through the store (four series: a stock-out, one low on
/// cover, one ok, one that sells nothing), read back worst first with every filter and paged.
async fn inventory_risks(f: Fixture) {
    use retail_sink::derived::stock::{StockBatch, StockFact, StockFactKind, StockRules};
    use retail_sink::read::orders::RiskFilter;

    let store = f.open().await;
    let t0 = ts("2026-11-21T00:00:00Z").timestamp_millis();
    let id = ids(8);
    let snap = |i: usize, sku: i64, on_hand: i64| StockFact {
        event_id: id[i],
        store_id: 1,
        sku,
        ts: t0,
        kind: StockFactKind::Snapshot {
            on_hand,
            lead_time_days: Some(2),
        },
    };
    let sold = |i: usize, sku: i64, qty: i64| StockFact {
        event_id: id[i],
        store_id: 1,
        sku,
        ts: t0 + HOUR,
        kind: StockFactKind::Sale { qty },
    };
    let batch = LandingBatch {
        group: "landing".into(),
        offsets: vec![range(&TopicPartition::new("inventory", 0), 0, 6)],
        derived: Arc::new(Derived {
            stock: Some(StockBatch {
                rules: Arc::new(StockRules {
                    velocity_days: 7,
                    default_lead_time_days: 3,
                    safety_days: 3,
                }),
                // SKU 10 sells out; SKU 11 has 12 left at 1 a day (12 days: ok); SKU 12 sells
                // nothing (cover unknown: ok); 13 sells 7 of 10: 3 days left, lead time 2 + 3: low.
                facts: vec![
                    snap(0, 10, 5),
                    snap(1, 11, 19),
                    snap(2, 12, 50),
                    snap(3, 13, 10),
                    sold(4, 10, 5),
                    sold(5, 11, 7),
                    sold(6, 13, 7),
                ],
                time: Some(t0 + 2 * HOUR),
            }),
            ..Derived::default()
        }),
        ..Default::default()
    };
    store.write_batch(&batch).await.expect("stock batch");
    let r = open_reader(&f.url).await.expect("open reader");
    let all = PageRequest { limit: 10, offset: 0 };
    let list = |filter: RiskFilter, page: PageRequest| {
        let r = r.clone();
        async move {
            r.inventory_risks(&filter, page)
                .await
                .expect("inventory_risks")
                .items
                .into_iter()
                .map(|x| format!("{}:{}", x.sku, x.risk_level))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(RiskFilter::default(), all).await,
        ["10:stockout", "13:low", "11:ok", "12:ok"],
        "worst first, then fewest days of cover, unknown cover last"
    );
    let page = r
        .inventory_risks(&RiskFilter::default(), all)
        .await
        .expect("risks");
    let out = &page.items[0];
    assert_eq!(
        (out.projected_on_hand, out.units_sold_after, out.units_7d),
        (Some(0), 5, 5)
    );
    assert_eq!(out.days_of_cover, Some(0.0));
    assert_eq!(out.lead_time_days, 2);
    assert!(out.first_flagged_at.is_some());
    assert_eq!(
        page.items[3].days_of_cover, None,
        "nothing sold: unknown, not zero"
    );
    let at_risk = RiskFilter {
        at_risk: Some(true),
        ..RiskFilter::default()
    };
    assert_eq!(list(at_risk, all).await, ["10:stockout", "13:low"]);
    let ok = RiskFilter {
        risk_level: Some("ok".into()),
        ..RiskFilter::default()
    };
    assert_eq!(list(ok, all).await, ["11:ok", "12:ok"]);
    let other_store = RiskFilter {
        store_id: Some(2),
        ..RiskFilter::default()
    };
    assert!(list(other_store, all).await.is_empty());
    let second = PageRequest { limit: 2, offset: 2 };
    assert_eq!(list(RiskFilter::default(), second).await, ["11:ok", "12:ok"]);
}

/// `fraud_alerts` rows raised through the store by a velocity rule on two cards, read back
/// newest first with their payment ids, filtered by rule, key and time, and paged.
async fn fraud_alerts(f: Fixture) {
    use retail_sink::derived::fraud::{FraudBatch, FraudRule, KeyField, Measure, PaymentFact};
    use retail_sink::read::orders::FraudAlertFilter;

    let store = f.open().await;
    let t0 = ts("2026-11-21T10:00:00Z").timestamp_millis();
    let id = ids(6);
    let pay = |i: usize, card: &str, at: i64| PaymentFact {
        event_id: id[i],
        ts: t0 + at,
        payment_id: format!("P-{i}"),
        amount: Decimal::TEN,
        card_id: Some(card.into()),
        customer_id: None,
        ip_country: None,
        billing_country: None,
    };
    let rule = FraudRule {
        name: "card_velocity".into(),
        key: KeyField::Card,
        window_ms: 10 * MINUTE,
        measure: Measure::Count,
        inclusive: false,
        threshold: Decimal::ONE,
        tiny_below: Decimal::ONE,
        min_history: 5,
        severity: "critical",
    };
    let batch = LandingBatch {
        group: "landing".into(),
        offsets: vec![range(&TopicPartition::new("payments", 0), 0, 5)],
        derived: Arc::new(Derived {
            fraud: Some(FraudBatch {
                rules: Arc::new(vec![rule]),
                // card-1: the second payment trips it, the third is inside the same window;
                // card-2: its second payment, later.
                facts: vec![
                    pay(0, "card-1", 0),
                    pay(1, "card-1", MINUTE),
                    pay(2, "card-1", 2 * MINUTE),
                    pay(3, "card-2", 3 * MINUTE),
                    pay(4, "card-2", 4 * MINUTE),
                ],
                time: Some(t0 + HOUR),
            }),
            ..Derived::default()
        }),
        ..Default::default()
    };
    store.write_batch(&batch).await.expect("fraud batch");
    let r = open_reader(&f.url).await.expect("open reader");
    let all = PageRequest { limit: 10, offset: 0 };
    let list = |filter: FraudAlertFilter, page: PageRequest| {
        let r = r.clone();
        async move {
            r.fraud_alerts(&filter, page)
                .await
                .expect("fraud_alerts")
                .items
                .into_iter()
                .map(|a| {
                    let ids: Vec<String> = serde_json::from_str(&a.payment_ids).expect("payment_ids JSON");
                    format!("{}:{}:{}", a.rule, a.key, ids.join(","))
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(FraudAlertFilter::default(), all).await,
        ["card_velocity:card-2:P-3,P-4", "card_velocity:card-1:P-0,P-1"],
        "newest first, each with the payments that tripped it"
    );
    let one = r
        .fraud_alerts(&FraudAlertFilter::default(), all)
        .await
        .expect("fraud");
    assert_eq!(one.items[1].at, ts("2026-11-21T10:01:00Z"));
    assert_eq!(one.items[1].severity, "critical");
    assert_eq!(one.items[1].alert_id.len(), 36);
    let card1 = FraudAlertFilter {
        key: Some("card-1".into()),
        ..FraudAlertFilter::default()
    };
    assert_eq!(list(card1, all).await, ["card_velocity:card-1:P-0,P-1"]);
    let other_rule = FraudAlertFilter {
        rule: Some("tiny_then_large".into()),
        ..FraudAlertFilter::default()
    };
    assert!(list(other_rule, all).await.is_empty());
    let late = FraudAlertFilter {
        from: Some(ts("2026-11-21T10:02:00Z")),
        ..FraudAlertFilter::default()
    };
    assert_eq!(list(late, all).await, ["card_velocity:card-2:P-3,P-4"]);
    let second = PageRequest { limit: 1, offset: 1 };
    assert_eq!(
        list(FraudAlertFilter::default(), second).await,
        ["card_velocity:card-1:P-0,P-1"]
    );
}

/// Runs statements behind the store's back. The same SQL serves both stores: ids are UUID
/// text (PostgreSQL casts it to `uuid`) and times RFC 3339 text with milliseconds (PostgreSQL
/// casts it to `timestamptz`, SQLite stores it as is).
async fn execute(f: &Fixture, sql: &str) {
    match &f.url {
        StoreUrl::Postgres(url) => common::connect(url)
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}")),
        StoreUrl::Sqlite(path) => rusqlite::Connection::open(path)
            .expect("open sqlite")
            .execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}")),
    }
}

/// `notification_deliveries` rows of three alerts on two channels, one in each state, written
/// with plain SQL (the outbox's own write path is the behaviour suite's), read back newest
/// `alert_at` first (ties by delivery id) with the alert's kind and subject, filtered by
/// channel, state and alert, and paged.
async fn notification_deliveries(f: Fixture) {
    let _store = f.open().await;
    // a1 at 10:00, a2 and a3 at 11:00. Delivery ids are chosen so that the three deliveries
    // at 11:00 sort d1, d2, d5 by id whatever order they were inserted in.
    let a1 = "a1000000-0000-4000-8000-000000000001";
    let a2 = "a2000000-0000-4000-8000-000000000002";
    let a3 = "a3000000-0000-4000-8000-000000000003";
    let d = |n: u8| format!("d{n}000000-0000-4000-8000-00000000000{n}");
    execute(
        &f,
        &format!(
            "INSERT INTO alerts (alert_id, kind, severity, subject, at, message, raised_at) VALUES                ('{a1}', 'payment_timeout', 'warning', 'O-1', '2026-11-21T10:00:00.000Z', 'm1', '2026-11-21T10:00:01.000Z'),                ('{a2}', 'order_stuck', 'warning', 'O-2', '2026-11-21T11:00:00.000Z', 'm2', '2026-11-21T11:00:01.000Z'),                ('{a3}', 'fraud', 'critical', 'card_velocity:card-1', '2026-11-21T11:00:00.000Z', 'm3', '2026-11-21T11:00:01.000Z');              INSERT INTO notification_deliveries (delivery_id, alert_id, channel, dedup_key, alert_at, state,                attempts, next_attempt_at, last_error, duplicate_of, created_at, finished_at) VALUES                ('{d5}', '{a3}', 'pager', 'k3', '2026-11-21T11:00:00.000Z', 'pending', 2, '2026-11-21T11:05:00.000Z',                 'connection refused', NULL, '2026-11-21T11:00:01.000Z', NULL),                ('{d3}', '{a1}', 'hook', 'k1', '2026-11-21T10:00:00.000Z', 'sent', 1, NULL, NULL, NULL,                 '2026-11-21T10:00:01.000Z', '2026-11-21T10:00:02.000Z'),                ('{d2}', '{a2}', 'hook', 'k2', '2026-11-21T11:00:00.000Z', 'pending', 0, '2026-11-21T11:00:01.000Z',                 NULL, NULL, '2026-11-21T11:00:01.000Z', NULL),                ('{d4}', '{a1}', 'pager', 'k1', '2026-11-21T10:00:00.000Z', 'dead', 3, NULL, 'HTTP 503', NULL,                 '2026-11-21T10:00:01.000Z', '2026-11-21T10:09:00.000Z'),                ('{d1}', '{a3}', 'hook', 'k3', '2026-11-21T11:00:00.000Z', 'suppressed', 0, NULL, NULL, '{d3}',                 '2026-11-21T11:00:01.000Z', '2026-11-21T11:00:01.000Z');",
            d1 = d(1),
            d2 = d(2),
            d3 = d(3),
            d4 = d(4),
            d5 = d(5),
        ),
    )
    .await;
    let r = open_reader(&f.url).await.expect("open reader");
    let all = PageRequest { limit: 10, offset: 0 };
    // Each delivery as the first two characters of its id.
    let list = |filter: DeliveryFilter, page: PageRequest| {
        let r = r.clone();
        async move {
            r.deliveries(&filter, page)
                .await
                .expect("deliveries")
                .items
                .into_iter()
                .map(|x| x.delivery_id[..2].to_owned())
                .collect::<Vec<_>>()
        }
    };
    let by = |set: fn(&mut DeliveryFilter)| {
        let mut filter = DeliveryFilter::default();
        set(&mut filter);
        filter
    };
    assert_eq!(
        list(DeliveryFilter::default(), all).await,
        ["d1", "d2", "d5", "d3", "d4"],
        "newest alert_at first, ties by delivery id"
    );

    let page = r
        .deliveries(&DeliveryFilter::default(), all)
        .await
        .expect("deliveries");
    let dead = &page.items[4];
    assert_eq!(dead.delivery_id, d(4));
    assert_eq!(dead.alert_id, a1);
    assert_eq!(
        (dead.kind.as_str(), dead.subject.as_str()),
        ("payment_timeout", "O-1"),
        "the alert's kind and subject, joined"
    );
    assert_eq!(
        (dead.channel.as_str(), dead.state.as_str(), dead.attempts),
        ("pager", "dead", 3)
    );
    assert_eq!(dead.alert_at, ts("2026-11-21T10:00:00Z"));
    assert_eq!(dead.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(dead.next_attempt_at, None);
    assert_eq!(dead.duplicate_of, None);
    assert_eq!(dead.created_at, ts("2026-11-21T10:00:01Z"));
    assert_eq!(dead.finished_at, Some(ts("2026-11-21T10:09:00Z")));
    let suppressed = &page.items[0];
    assert_eq!(suppressed.duplicate_of, Some(d(3)));
    assert_eq!(
        (suppressed.kind.as_str(), suppressed.subject.as_str()),
        ("fraud", "card_velocity:card-1")
    );
    let retrying = &page.items[2];
    assert_eq!(retrying.next_attempt_at, Some(ts("2026-11-21T11:05:00Z")));
    assert_eq!(retrying.last_error.as_deref(), Some("connection refused"));
    assert_eq!(retrying.finished_at, None);

    assert_eq!(
        list(by(|f| f.channel = Some("hook".into())), all).await,
        ["d1", "d2", "d3"]
    );
    assert!(list(by(|f| f.channel = Some("sms".into())), all).await.is_empty());
    assert_eq!(
        list(by(|f| f.state = Some("pending".into())), all).await,
        ["d2", "d5"]
    );
    for (state, only) in [("sent", "d3"), ("dead", "d4"), ("suppressed", "d1")] {
        let filter = DeliveryFilter {
            state: Some(state.into()),
            ..DeliveryFilter::default()
        };
        assert_eq!(list(filter, all).await, [only], "{state}");
    }
    let of_a3 = DeliveryFilter {
        alert_id: Some(a3.into()),
        ..DeliveryFilter::default()
    };
    assert_eq!(list(of_a3, all).await, ["d1", "d5"]);
    let upper_a1 = DeliveryFilter {
        alert_id: Some(a1.to_uppercase()),
        ..DeliveryFilter::default()
    };
    assert_eq!(
        list(upper_a1, all).await,
        ["d3", "d4"],
        "an alert id is compared as a UUID, not as text"
    );
    assert!(
        list(by(|f| f.alert_id = Some("not-a-uuid".into())), all)
            .await
            .is_empty(),
        "an id that is no UUID matches nothing (and is no error)"
    );
    let dead_on_pager = DeliveryFilter {
        channel: Some("pager".into()),
        state: Some("dead".into()),
        alert_id: Some(a1.into()),
    };
    assert_eq!(list(dead_on_pager, all).await, ["d4"]);

    let first = PageRequest { limit: 2, offset: 0 };
    let second = PageRequest { limit: 2, offset: 2 };
    let last = PageRequest { limit: 2, offset: 4 };
    assert_eq!(list(DeliveryFilter::default(), first).await, ["d1", "d2"]);
    assert_eq!(list(DeliveryFilter::default(), second).await, ["d5", "d3"]);
    let tail = r
        .deliveries(&DeliveryFilter::default(), last)
        .await
        .expect("last page");
    assert_eq!(
        (tail.items.len(), tail.next_offset),
        (1, None),
        "the last page has no next"
    );
    let middle = r
        .deliveries(&DeliveryFilter::default(), second)
        .await
        .expect("page");
    assert_eq!(middle.next_offset, Some(4));
}

mod pg {
    use crate::common;

    suite!(common::pg().await);
}

mod lite {
    use crate::common;

    suite!(common::sqlite());
}
