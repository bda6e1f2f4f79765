//! What every store must do, written once and run against each backend (`tests/stores.rs`).
//! A backend passes only if it behaves the same as the others here: the landing and the
//! benchmark code against the trait, not a backend.

use retail_core::Origin;
use retail_core::TopicPartition;
use retail_sink::isolate::write_isolating;
use retail_sink::{BatchOutcome, Error, LandingBatch, RowOrigin, Store, Table};

use crate::common::{dead_letter, ids, order, range, sale, ts, Fixture};

mod retention;
mod schemas;
pub use retention::{
    dead_letters_past_their_retention_are_dropped_by_wall_clock,
    raw_rows_and_late_events_past_their_retention_are_dropped, retention_zero_keeps_everything,
};
pub use schemas::schema_registry_rows_survive_a_reopen;

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

async fn counts(store: &dyn Store) -> (i64, i64, i64) {
    let c = |t| async move { store.count(t).await.expect("count") };
    (
        c(Table::SalesRaw).await,
        c(Table::EventsRaw).await,
        c(Table::DeadLetters).await,
    )
}

/// Rows, events, dead letters and offsets of several partitions land in one call, and
/// `offsets()` returns the offsets of record of that group only.
pub async fn lands_a_whole_batch(f: Fixture) {
    let store = f.open().await;
    let (sales, dls) = (tp("sales", 0), tp("sales", 1));
    let id = ids(4);
    let at = ts("2026-11-21T13:43:53.488Z");
    let batch = LandingBatch {
        group: "landing".into(),
        sales: vec![sale(id[0], at, 1, 2), sale(id[1], at, 2, -1)],
        events: vec![order(id[2], at)],
        dead_letters: vec![dead_letter(
            &dls,
            5,
            "qty: must be a non-zero integer, got \"two\"",
        )],
        offsets: vec![
            range(&sales, 0, 3),
            range(&dls, 5, 6),
            range(&tp("orders", 0), 10, 11),
        ],
        ..Default::default()
    };
    let outcome = store.write_batch(&batch).await.expect("write batch");
    assert_eq!(
        outcome,
        BatchOutcome {
            sales_inserted: 2,
            events_inserted: 1,
            dead_letters: 1,
            ..BatchOutcome::default()
        }
    );
    assert_eq!(counts(&*store).await, (2, 1, 1));
    let offsets = store.offsets("landing").await.expect("offsets");
    assert_eq!(offsets, vec![(tp("orders", 0), 11), (sales.clone(), 3), (dls, 6)]);
    assert!(store.offsets("someone-else").await.expect("offsets").is_empty());

    // A batch with offsets only moves them.
    let only = LandingBatch {
        group: "landing".into(),
        offsets: vec![range(&sales, 3, 9)],
        ..Default::default()
    };
    assert_eq!(
        store.write_batch(&only).await.expect("offsets-only batch"),
        BatchOutcome::default()
    );
    assert!(store
        .offsets("landing")
        .await
        .expect("offsets")
        .contains(&(sales, 9)));
    store.ping().await.expect("ping");
}

/// Duplicates inside a batch and across batches land once, with exact counts; an identical
/// batch replayed with advanced offsets inserts nothing.
pub async fn duplicates_land_once(f: Fixture) {
    let store = f.open().await;
    let p = tp("sales", 0);
    let id = ids(6);
    let at = ts("2026-11-21T10:00:00Z");
    let first = LandingBatch {
        group: "g".into(),
        sales: vec![
            sale(id[0], at, 1, 1),
            sale(id[0], at, 1, 1),
            sale(id[1], at, 1, 1),
        ],
        events: vec![order(id[2], at), order(id[2], at)],
        offsets: vec![range(&p, 0, 5)],
        ..Default::default()
    };
    let o = store.write_batch(&first).await.expect("first batch");
    assert_eq!(
        o,
        BatchOutcome {
            sales_inserted: 2,
            sales_duplicates: 1,
            events_inserted: 1,
            events_duplicates: 1,
            dead_letters: 0,
            ..Default::default()
        }
    );

    // Old and new mixed: the ledger's slow path in PostgreSQL.
    let second = LandingBatch {
        group: "g".into(),
        sales: vec![
            sale(id[1], at, 1, 1),
            sale(id[3], at, 1, 1),
            sale(id[3], at, 1, 1),
        ],
        events: vec![order(id[2], at), order(id[4], at)],
        offsets: vec![range(&p, 5, 10)],
        ..Default::default()
    };
    let o = store.write_batch(&second).await.expect("second batch");
    assert_eq!(
        o,
        BatchOutcome {
            sales_inserted: 1,
            sales_duplicates: 2,
            events_inserted: 1,
            events_duplicates: 1,
            dead_letters: 0,
            ..Default::default()
        }
    );

    // The same batch again (a replay), offsets advanced: nothing new.
    let replay = LandingBatch {
        offsets: vec![range(&p, 10, 15)],
        ..second.clone()
    };
    let o = store.write_batch(&replay).await.expect("replayed batch");
    assert_eq!(
        o,
        BatchOutcome {
            sales_inserted: 0,
            sales_duplicates: 3,
            events_inserted: 0,
            events_duplicates: 2,
            dead_letters: 0,
            ..Default::default()
        }
    );
    assert_eq!(counts(&*store).await, (3, 2, 0));
    assert_eq!(store.offsets("g").await.expect("offsets"), vec![(p, 15)]);

    // An id already used by a sale is a duplicate for any event type: one ledger for all.
    let cross = LandingBatch {
        group: "g2".into(),
        events: vec![order(id[0], at)],
        ..Default::default()
    };
    let o = store.write_batch(&cross).await.expect("cross-type batch");
    assert_eq!(o.events_duplicates, 1);
    assert_eq!(counts(&*store).await, (3, 2, 0));
}

/// A batch that does not start where the stored offset is gets `OffsetConflict` and writes
/// nothing; a partition without a stored offset accepts any start.
pub async fn fencing_refuses_a_moved_offset(f: Fixture) {
    let store = f.open().await;
    let (p0, p1) = (tp("sales", 0), tp("sales", 1));
    let at = ts("2026-11-21T10:00:00Z");
    let id = ids(3);
    let ok = LandingBatch {
        group: "g".into(),
        sales: vec![sale(id[0], at, 1, 1)],
        offsets: vec![range(&p0, 0, 10)],
        ..Default::default()
    };
    store.write_batch(&ok).await.expect("first batch");

    let stale = LandingBatch {
        group: "g".into(),
        sales: vec![sale(id[1], at, 1, 1)],
        events: vec![order(id[2], at)],
        dead_letters: vec![dead_letter(&p1, 100, "bad")],
        offsets: vec![range(&p1, 100, 101), range(&p0, 5, 12)],
        ..Default::default()
    };
    match store.write_batch(&stale).await {
        Err(Error::OffsetConflict {
            tp,
            stored,
            batch_first,
        }) => {
            assert_eq!((tp, stored, batch_first), (p0.clone(), 10, 5));
        }
        other => panic!("expected an offset conflict, got {other:?}"),
    }
    assert!(!Error::OffsetConflict {
        tp: p0.clone(),
        stored: 0,
        batch_first: 0
    }
    .is_retryable());
    assert_eq!(counts(&*store).await, (1, 0, 0));
    assert_eq!(store.offsets("g").await.expect("offsets"), vec![(p0.clone(), 10)]);

    // Starting at the stored offset works, and the refused ids were not burnt in the ledger.
    let resumed = LandingBatch {
        offsets: vec![range(&p1, 100, 101), range(&p0, 10, 12)],
        ..stale
    };
    let o = store.write_batch(&resumed).await.expect("resumed batch");
    assert_eq!((o.sales_inserted, o.events_inserted, o.dead_letters), (1, 1, 1));
}

/// A batch the database refuses after its rows were written (the offsets upsert at the end
/// violates `next_offset >= 0`) leaves no row, no ledger entry and no offset change.
pub async fn a_failed_batch_leaves_nothing(f: Fixture) {
    let store = f.open().await;
    let p = tp("sales", 0);
    let at = ts("2026-11-21T10:00:00Z");
    let start = LandingBatch {
        group: "g".into(),
        offsets: vec![range(&p, 0, 7)],
        ..Default::default()
    };
    store.write_batch(&start).await.expect("offsets batch");

    let id = ids(3);
    let bad = LandingBatch {
        group: "g".into(),
        sales: vec![sale(id[0], at, 1, 1), sale(id[1], at, 2, 1)],
        events: vec![order(id[2], at)],
        dead_letters: vec![dead_letter(&p, 7, "bad")],
        offsets: vec![range(&p, 7, -1)],
        ..Default::default()
    };
    let err = store
        .write_batch(&bad)
        .await
        .expect_err("a negative offset must be refused");
    assert!(!err.is_retryable(), "a refused value is not retryable: {err}");
    assert!(
        err.to_string().contains("consumer_offsets"),
        "error should name the table: {err}"
    );
    assert_eq!(counts(&*store).await, (0, 0, 0));
    assert_eq!(store.offsets("g").await.expect("offsets"), vec![(p.clone(), 7)]);

    // Nothing of it reached the ledger either: the corrected batch lands in full.
    let good = LandingBatch {
        offsets: vec![range(&p, 7, 11)],
        ..bad
    };
    let o = store.write_batch(&good).await.expect("corrected batch");
    assert_eq!((o.sales_inserted, o.events_inserted, o.dead_letters), (2, 1, 1));
}

/// Opening twice at once and again later applies the migrations once and keeps the data.
pub async fn migrations_are_idempotent(f: Fixture) {
    let (a, b) = tokio::join!(f.open(), f.open());
    let p = tp("sales", 0);
    let batch = LandingBatch {
        group: "g".into(),
        sales: vec![sale(ids(1)[0], ts("2026-11-21T10:00:00Z"), 1, 1)],
        offsets: vec![range(&p, 0, 1)],
        ..Default::default()
    };
    a.write_batch(&batch)
        .await
        .expect("write through the first store");
    assert_eq!(
        b.count(Table::SalesRaw).await.expect("count through the second"),
        1
    );
    drop((a, b));
    let again = f.open().await;
    assert_eq!(again.count(Table::SalesRaw).await.expect("count after reopen"), 1);
}

/// Sales days apart land, each day creating what the backend needs on demand (PostgreSQL:
/// a partition), including days years apart and both sides of a UTC midnight.
pub async fn days_far_apart_land(f: Fixture) {
    // Years apart: without a dedup horizon, or the older days would be too old (ADR 0022).
    let store = f.open_with_horizon(0).await;
    let id = ids(5);
    let batch = LandingBatch {
        group: "g".into(),
        sales: vec![
            sale(id[0], ts("2024-08-12T23:59:59.999Z"), 1, 1),
            sale(id[1], ts("2026-11-21T13:43:53.488Z"), 1, 1),
            sale(id[2], ts("2024-08-13T00:00:00Z"), 1, 1),
        ],
        ..Default::default()
    };
    assert_eq!(
        store
            .write_batch(&batch)
            .await
            .expect("batch over three days")
            .sales_inserted,
        3
    );
    // A later batch on a known day and on a new one.
    let later = LandingBatch {
        group: "g".into(),
        sales: vec![
            sale(id[3], ts("2026-11-21T20:00:00Z"), 1, 1),
            sale(id[4], ts("2019-01-01T00:00:00Z"), 1, 1),
        ],
        ..Default::default()
    };
    assert_eq!(
        store
            .write_batch(&later)
            .await
            .expect("later batch")
            .sales_inserted,
        2
    );
    assert_eq!(store.count(Table::SalesRaw).await.expect("count"), 5);
}

/// Dropping the store and opening it again finds everything written.
pub async fn reopen_keeps_data(f: Fixture) {
    let p = tp("sales", 3);
    {
        let store = f.open().await;
        let at = ts("2026-11-21T10:00:00Z");
        let id = ids(2);
        let batch = LandingBatch {
            group: "g".into(),
            sales: vec![sale(id[0], at, 1, 1)],
            events: vec![order(id[1], at)],
            dead_letters: vec![dead_letter(&p, 41, "bad")],
            offsets: vec![range(&p, 40, 42)],
            ..Default::default()
        };
        store.write_batch(&batch).await.expect("write");
    }
    let store = f.open().await;
    assert_eq!(counts(&*store).await, (1, 1, 1));
    assert_eq!(store.offsets("g").await.expect("offsets"), vec![(p, 42)]);
}

/// Two writers (two stores on the same database) landing different batches from the same
/// start of a partition nobody has written yet: exactly one wins, the other gets
/// `OffsetConflict` and lands nothing.
pub async fn concurrent_writers_one_wins(f: Fixture) {
    let (a, b) = tokio::join!(f.open(), f.open());
    let p = tp("sales", 0);
    let at = ts("2026-11-21T10:00:00Z");
    let batch = |n: i64| LandingBatch {
        group: "g".into(),
        sales: ids(3).into_iter().map(|id| sale(id, at, 1, 1)).collect(),
        offsets: vec![range(&p, 0, n)],
        ..Default::default()
    };
    let (ba, bb) = (batch(3), batch(4));
    let (ra, rb) = tokio::join!(a.write_batch(&ba), b.write_batch(&bb));
    let (won, lost, stored) = match (ra, rb) {
        (Ok(w), Err(l)) => (w, l, 3),
        (Err(l), Ok(w)) => (w, l, 4),
        other => panic!("expected exactly one winner, got {other:?}"),
    };
    assert_eq!(won.sales_inserted, 3);
    match lost {
        Error::OffsetConflict {
            stored: s,
            batch_first: 0,
            ..
        } => assert_eq!(s, stored),
        other => panic!("the loser should see an offset conflict, got {other}"),
    }
    assert_eq!(a.count(Table::SalesRaw).await.expect("count"), 3);
    assert_eq!(b.offsets("g").await.expect("offsets"), vec![(p, stored)]);
}

/// Aggregate contributions, late events, watermarks and catalog rows commit with the batch, and
/// only events the ledger accepts as new contribute: a re-sent event changes no aggregate and
/// adds no late event. A changed definition of an existing table is refused, naming it; a reset
/// removes the table, its late events and the group's offsets and watermarks.
pub async fn aggregates_take_each_event_once(f: Fixture) {
    use retail_sink::derived::{
        AggregateTable, CatalogRow, ColumnType, Contribution, Derived, KeyColumn, LateEvent, MeasureColumn,
        Merge, PartitionWatermark, Value,
    };
    use std::sync::Arc;

    let store = f.open().await;
    let measure = |name: &str, merge| MeasureColumn {
        name: name.into(),
        input: ColumnType::Int,
        merge,
    };
    let table = AggregateTable {
        name: "agg_test".into(),
        keys: vec![KeyColumn {
            name: "store_id".into(),
            ty: ColumnType::Int,
        }],
        measures: vec![
            measure("n", Merge::Count),
            measure("units", Merge::Sum),
            measure("lo", Merge::Min),
        ],
        rank: None,
    };
    store
        .prepare_aggregates(std::slice::from_ref(&table))
        .await
        .expect("prepare");
    let p0 = tp("sales", 0);
    let id = ids(4);
    let at = ts("2026-11-21T13:43:53.488Z");
    let c = |id, qty: i64| Contribution {
        event_id: id,
        table: 0,
        window_start: 0,
        window_end: 60_000,
        key: vec![Value::Int(1)],
        values: vec![Value::Int(1), Value::Int(qty), Value::Int(qty)],
    };
    let late = |id| LateEvent {
        event_id: id,
        aggregate: Arc::from("agg_test"),
        window_start: 0,
        window_end: 60_000,
        event_ts: 1_000,
        watermark: 200_000,
        reason: "window closed".into(),
        tp: p0.clone(),
        offset: 2,
    };
    let first = LandingBatch {
        group: "landing".into(),
        sales: vec![
            sale(id[0], at, 1, 2),
            sale(id[1], at, 1, 5),
            sale(id[2], at, 1, 1),
        ],
        offsets: vec![range(&p0, 0, 3)],
        derived: Arc::new(Derived {
            contributions: vec![c(id[0], 2), c(id[1], 5)].into(),
            late: vec![late(id[2])],
            watermarks: vec![PartitionWatermark {
                tp: p0.clone(),
                max_event_ts: 200_000,
            }],
            catalog: vec![CatalogRow::Store {
                store_id: 1,
                name: "Mitte".into(),
                city: "Berlin".into(),
                country: "DE".into(),
            }],
            orders: None,
            stock: None,
            fraud: None,
            notifications: None,
        }),
        ..Default::default()
    };
    let outcome = store.write_batch(&first).await.expect("first batch");
    assert_eq!((outcome.aggregate_rows, outcome.late_events), (1, 1));
    let rows = "SELECT store_id || '|' || n || '|' || units || '|' || lo FROM agg_test";
    assert_eq!(f.texts(rows).await, ["1|2|7|2"]);

    // A re-sent event (id 0) and a re-sent late event (id 2) change nothing; id 3 is new.
    let second = LandingBatch {
        group: "landing".into(),
        sales: vec![
            sale(id[0], at, 1, 2),
            sale(id[2], at, 1, 1),
            sale(id[3], at, 1, 1),
        ],
        offsets: vec![range(&p0, 3, 6)],
        derived: Arc::new(Derived {
            contributions: vec![c(id[0], 2), c(id[3], 1)].into(),
            late: vec![late(id[2])],
            ..Derived::default()
        }),
        ..Default::default()
    };
    store.write_batch(&second).await.expect("second batch");
    assert_eq!(f.texts(rows).await, ["1|3|8|1"]);
    assert_eq!(store.count(Table::LateEvents).await.expect("count"), 1);
    assert_eq!(
        store.watermarks("landing").await.expect("watermarks"),
        vec![PartitionWatermark {
            tp: p0.clone(),
            max_event_ts: 200_000
        }]
    );
    let catalog = store.catalog().await.expect("catalog");
    assert_eq!(catalog.rows.len(), 1, "{catalog:?}");

    // Redefining the table is refused, naming it.
    let mut changed = table.clone();
    changed.measures.push(measure("hi", Merge::Max));
    let err = store
        .prepare_aggregates(&[changed])
        .await
        .expect_err("a changed definition must be refused");
    assert!(err.to_string().contains("aggregate agg_test"), "{err}");

    // A reset leaves a clean slate.
    store.reset_aggregates(&[table], "landing").await.expect("reset");
    assert_eq!(store.count(Table::LateEvents).await.expect("count"), 0);
    assert!(store.watermarks("landing").await.expect("watermarks").is_empty());
    assert!(store.offsets("landing").await.expect("offsets").is_empty());
}

/// A batch the store refuses for some rows' data lands without them: the good rows, the other
/// dead letters and the offsets commit in one transaction, each refused row becomes a dead
/// letter with the store's own message and the row's origin and bytes, and writing the batch
/// again changes nothing (ADR 0008).
pub async fn refused_rows_become_dead_letters_and_the_rest_lands(f: Fixture) {
    let store = f.open().await;
    f.refuse_store(666).await;
    let p = tp("sales", 0);
    let id = ids(6);
    let at = ts("2026-11-21T10:00:00Z");
    let mut batch = LandingBatch {
        group: "landing".into(),
        sales: vec![
            sale(id[0], at, 1, 1),
            sale(id[1], at, 666, 1),
            sale(id[2], at, 2, 1),
            sale(id[3], at, 666, 3),
        ],
        events: vec![order(id[4], at)],
        dead_letters: vec![dead_letter(&p, 7, "qty: must be a non-zero integer")],
        offsets: vec![range(&p, 0, 9)],
        ..Default::default()
    };
    batch.origins = vec![RowOrigin {
        event_id: id[3],
        origin: Origin::log("pos", &p, 5),
        raw: br#"{"store_id":666,"qty":3}"#.to_vec(),
    }];
    let err = store
        .write_batch(&batch)
        .await
        .expect_err("the store refuses store 666");
    assert!(err.is_refused() && !err.is_retryable(), "{err}");
    assert_eq!(counts(&*store).await, (0, 0, 0), "a refused batch leaves nothing");

    let done = write_isolating(&*store, &batch, err).await.expect("isolate");
    assert_eq!(done.refused.len(), 2);
    for dl in &done.refused {
        assert_eq!(dl.kind, "store_refused");
        assert!(dl.reason.contains("store 666 is refused"), "{}", dl.reason);
    }
    assert_eq!(done.refused[1].origin, Origin::log("pos", &p, 5));
    assert_eq!(done.refused[1].raw, br#"{"store_id":666,"qty":3}"#);
    assert_eq!(
        done.outcome,
        BatchOutcome {
            sales_inserted: 2,
            events_inserted: 1,
            dead_letters: 3,
            ..BatchOutcome::default()
        }
    );
    assert_eq!(counts(&*store).await, (2, 1, 3));
    assert_eq!(
        store.offsets("landing").await.expect("offsets"),
        vec![(p.clone(), 9)]
    );

    // A re-read of the same batch is fenced: nothing twice.
    let again = store.write_batch(&batch).await.expect_err("fenced");
    assert!(matches!(again, Error::OffsetConflict { .. }), "{again}");
    assert_eq!(counts(&*store).await, (2, 1, 3));
}

/// A dead letter whose source named its input (a webhook's bad line under an
/// `Idempotency-Key`) is kept once per id: in one batch, across batches, and a retry's copy
/// at a new log position; dead letters without an id are kept once per log record as before.
pub async fn named_dead_letters_are_kept_once(f: Fixture) {
    let store = f.open().await;
    let p = tp("sales", 2);
    let id = ids(2);
    let named = |offset, i: usize| retail_core::DeadLetter {
        id: Some(id[i]),
        ..dead_letter(&p, offset, "qty: must be a non-zero integer, got \"two\"")
    };
    let first = LandingBatch {
        group: "landing".into(),
        dead_letters: vec![named(5, 0), named(6, 0), dead_letter(&p, 7, "bad")],
        offsets: vec![range(&p, 5, 8)],
        ..Default::default()
    };
    let o = store.write_batch(&first).await.expect("first batch");
    assert_eq!(o.dead_letters, 2, "{o:?}");
    let retried = LandingBatch {
        group: "landing".into(),
        dead_letters: vec![named(8, 0), named(9, 1), dead_letter(&p, 10, "bad")],
        offsets: vec![range(&p, 8, 11)],
        ..Default::default()
    };
    let o = store.write_batch(&retried).await.expect("retried batch");
    assert_eq!(o.dead_letters, 2, "{o:?}");
    assert_eq!(counts(&*store).await, (0, 0, 4));
}

/// Money is exact and the same on every store (issue 18, item 4; ADR 0020): the prices land in
/// `sales_raw` as they came, and the sum of `qty * unit_price` over the raw rows equals the
/// aggregate's revenue to the cent, as exact decimals read behind the store's back, as do the
/// minimum, maximum and running average sum of the price. The reader's revenue is the nearest
/// `f64` of that same decimal. Ten batches of 0.10 must make 1.00 (REAL made
/// 0.9999999999999999), and 9,999,999,999.99 x 100,000 next to 0.10 needs 18 digits.
pub async fn money_is_exact_in_raw_rows_and_aggregates(f: Fixture) {
    use retail_sink::derived::{
        AggregateTable, ColumnType, Contribution, Derived, KeyColumn, MeasureColumn, Merge, Value,
    };
    use retail_sink::read::Grain;
    use rust_decimal::Decimal;
    use std::sync::Arc;

    let store = f.open().await;
    let measure = |name: &str, input, merge| MeasureColumn {
        name: name.into(),
        input,
        merge,
    };
    // The built-in hourly table, so that the reader reads it, and the price's statistics.
    let tables = [
        AggregateTable {
            name: "sales_agg_hour".into(),
            keys: vec![KeyColumn {
                name: "store_id".into(),
                ty: ColumnType::Int,
            }],
            measures: vec![
                measure("units", ColumnType::Int, Merge::Sum),
                measure("revenue", ColumnType::Decimal, Merge::Sum),
                measure("sales", ColumnType::Int, Merge::Count),
                measure("returns", ColumnType::Int, Merge::Count),
            ],
            rank: None,
        },
        AggregateTable {
            name: "price_stats".into(),
            keys: vec![KeyColumn {
                name: "store_id".into(),
                ty: ColumnType::Int,
            }],
            measures: vec![
                measure("cheapest", ColumnType::Decimal, Merge::Min),
                measure("dearest", ColumnType::Decimal, Merge::Max),
                measure("avg_price", ColumnType::Decimal, Merge::Avg),
            ],
            rank: None,
        },
    ];
    store.prepare_aggregates(&tables).await.expect("prepare");

    let cents = |c: i64| Decimal::new(c, 2);
    // (price, qty) per batch: ten batches of one 0.10, then one of everything else.
    let mut batches: Vec<Vec<(Decimal, i32)>> = (0..10).map(|_| vec![(cents(10), 1)]).collect();
    batches.push(vec![
        (cents(20), 3),
        (cents(1_999_999_999), 1000),
        (cents(999_999_999_999), 100_000),
        (cents(10), 1),
        (cents(1), -1),
        (cents(7), 7),
        (cents(19_99), -2),
    ]);
    let p = tp("sales", 0);
    let at = ts("2026-11-21T10:15:00Z");
    let hour = at.timestamp_millis() - at.timestamp_millis().rem_euclid(3_600_000);
    let mut offset = 0;
    let (mut revenue, mut prices) = (Decimal::ZERO, Vec::new());
    for lines in &batches {
        let id = ids(lines.len());
        let mut sales = Vec::new();
        let mut contributions = Vec::new();
        for ((price, qty), id) in lines.iter().zip(&id) {
            let mut s = sale(*id, at, 1, *qty);
            s.sale.unit_price = Some(*price);
            sales.push(s);
            let amount = *price * Decimal::from(*qty);
            revenue += amount;
            prices.push(*price);
            let (sold, returned) = if *qty > 0 {
                (Value::Int(1), Value::Null)
            } else {
                (Value::Null, Value::Int(1))
            };
            let c = |table, values| Contribution {
                event_id: *id,
                table,
                window_start: hour,
                window_end: hour + 3_600_000,
                key: vec![Value::Int(1)],
                values,
            };
            contributions.push(c(
                0,
                vec![
                    Value::Int(i64::from(*qty)),
                    Value::Decimal(amount),
                    sold,
                    returned,
                ],
            ));
            contributions.push(c(1, vec![Value::Decimal(*price); 3]));
        }
        let next = offset + lines.len() as i64;
        let batch = LandingBatch {
            group: "landing".into(),
            sales,
            offsets: vec![range(&p, offset, next)],
            derived: Arc::new(Derived {
                contributions: contributions.into(),
                ..Derived::default()
            }),
            ..Default::default()
        };
        store.write_batch(&batch).await.expect("write batch");
        offset = next;
    }
    prices.sort();
    let one = |v: Decimal| vec![v];

    // Raw rows: every price as it came, and their sum with the quantities.
    assert_eq!(f.money("SELECT unit_price FROM sales_raw").await, prices);
    let raw = f.money("SELECT sum(qty * unit_price) FROM sales_raw").await;
    assert_eq!(raw, one(revenue));
    assert_eq!(revenue.to_string(), "1000019999998952.20");
    // Aggregates: the same numbers to the cent.
    assert_eq!(f.money("SELECT revenue FROM sales_agg_hour").await, one(revenue));
    let (lo, hi) = (prices[0], prices[prices.len() - 1]);
    assert_eq!(f.money("SELECT cheapest FROM price_stats").await, one(lo));
    assert_eq!(f.money("SELECT dearest FROM price_stats").await, one(hi));
    let price_sum: Decimal = prices.iter().sum();
    assert_eq!(
        f.money("SELECT avg_price__sum FROM price_stats").await,
        one(price_sum)
    );
    let avg: f64 = f.texts("SELECT CAST(avg_price AS TEXT) FROM price_stats").await[0]
        .parse()
        .expect("avg_price is a number");
    let expected =
        rust_decimal::prelude::ToPrimitive::to_f64(&(price_sum / Decimal::from(prices.len()))).expect("f64");
    assert!(
        (avg - expected).abs() <= expected * 1e-12,
        "avg_price {avg}, expected {expected}"
    );

    // The reader shows the nearest f64 of the exact sum, on every store alike.
    let reader = retail_sink::open_reader(&f.url).await.expect("open reader");
    let from = retail_sink::derived::ms_to_time(hour);
    let to = retail_sink::derived::ms_to_time(hour + 3_600_000);
    // Correctly rounded, as PostgreSQL's numeric::float8: 1000019999998952.25.
    let exact: f64 = revenue.to_string().parse().expect("f64");
    let totals = reader.totals(from, to).await.expect("totals");
    assert_eq!(totals.revenue, exact, "{totals:?}");
    let buckets = reader.sales(Grain::Hour, Some(1), from, to).await.expect("sales");
    assert_eq!(buckets.iter().map(|b| b.revenue).collect::<Vec<_>>(), [exact]);
}

/// The order-lifecycle pipeline in the store (ADR 0023): facts of new events fold into one row
/// per order, whatever their order; a payment timeout and a stuck order alert once each, only
/// when the pipeline time passes deadline + grace; a late payment resolves its alert; a
/// re-sent event and a reopened store change nothing.
pub async fn order_lifecycle_joins_payments_and_alerts_once(f: Fixture) {
    use retail_core::event::OrderStatus;
    use retail_sink::derived::orders::{OrderFact, OrderRules};
    use std::sync::Arc;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    let rules = Arc::new(OrderRules {
        payment_window_ms: 30 * MIN,
        grace_ms: MIN,
        stuck_after_ms: [Some(12 * HOUR), Some(24 * HOUR), Some(96 * HOUR)],
    });
    let t0 = ts("2026-11-21T10:00:00Z");
    let status =
        |id, order: &str, ms: i64, status| order_status(t0.timestamp_millis() + ms, id, order, status);
    let payment = |id, order: &str, ms: i64| order_payment(t0.timestamp_millis() + ms, id, order);
    let store = f.open().await;
    let p = tp("orders", 0);
    let mut next = 0;
    let batch = |facts: Vec<OrderFact>, time: i64, next: &mut i64| {
        order_batch(&p, &rules, None, facts, t0.timestamp_millis() + time, next)
    };
    let id = ids(8);
    // O-2 paid in the window, its payment before its creation in the batch; O-3 only a payment.
    let first = batch(
        vec![
            status(id[0], "O-1", 0, OrderStatus::Created),
            payment(id[1], "O-2", 5 * MIN),
            status(id[2], "O-2", 0, OrderStatus::Created),
            status(id[3], "O-2", 6 * MIN, OrderStatus::Paid),
            payment(id[4], "O-3", MIN),
        ],
        10 * MIN,
        &mut next,
    );
    store.write_batch(&first).await.expect("first batch");
    let rows = "SELECT order_id || ':' || coalesce(state, '-') || ':' || \
                CASE WHEN payment_timeout THEN 'timeout' ELSE 'ok' END || ':' || \
                CASE WHEN payment_late THEN 'late' ELSE 'on-time' END || ':' || coalesce(stuck_state, '-') \
                FROM order_lifecycle";
    let alerts = "SELECT kind || ':' || subject || ':' || CASE WHEN resolved_at IS NULL THEN 'open' ELSE 'resolved' END \
                  FROM alerts";
    assert_eq!(
        f.texts(rows).await,
        [
            "O-1:created:ok:on-time:-",
            "O-2:paid:ok:on-time:-",
            "O-3:-:ok:on-time:-"
        ]
    );
    assert!(f.texts(alerts).await.is_empty());

    // Just before window + grace: nothing; at it: O-1 times out, once.
    store
        .write_batch(&batch(Vec::new(), 31 * MIN - 1, &mut next))
        .await
        .expect("tick");
    assert!(f.texts(alerts).await.is_empty());
    store
        .write_batch(&batch(Vec::new(), 31 * MIN, &mut next))
        .await
        .expect("tick");
    store
        .write_batch(&batch(Vec::new(), 2 * HOUR, &mut next))
        .await
        .expect("tick");
    assert_eq!(f.texts(alerts).await, ["payment_timeout:O-1:open"]);

    // A re-sent event (same id) after a reopen changes nothing.
    drop(store);
    let store = f.open().await;
    let resent = batch(
        vec![status(id[0], "O-1", 0, OrderStatus::Created)],
        2 * HOUR,
        &mut next,
    );
    store.write_batch(&resent).await.expect("re-sent");
    assert_eq!(
        f.texts(rows).await,
        [
            "O-1:created:timeout:on-time:-",
            "O-2:paid:ok:on-time:-",
            "O-3:-:ok:on-time:-"
        ]
    );

    // O-1's payment comes late: resolved, and says so. O-2 sits in `paid` past 12 h: stuck.
    let late = batch(vec![payment(id[5], "O-1", 40 * MIN)], 13 * HOUR, &mut next);
    store.write_batch(&late).await.expect("late payment");
    assert_eq!(
        f.texts(rows).await,
        [
            "O-1:created:timeout:late:-",
            "O-2:paid:ok:on-time:paid",
            "O-3:-:ok:on-time:-"
        ]
    );
    assert_eq!(
        f.texts(alerts).await,
        ["order_stuck:O-2:open", "payment_timeout:O-1:resolved"]
    );
    // O-2 moves on: no longer stuck, its alert resolved at the event time it moved.
    let moved = batch(
        vec![status(id[6], "O-2", 14 * HOUR, OrderStatus::Packed)],
        14 * HOUR,
        &mut next,
    );
    store.write_batch(&moved).await.expect("packed");
    assert_eq!(
        f.texts(rows).await,
        [
            "O-1:created:timeout:late:-",
            "O-2:packed:ok:on-time:-",
            "O-3:-:ok:on-time:-"
        ]
    );
    assert_eq!(
        f.texts(alerts).await,
        ["order_stuck:O-2:resolved", "payment_timeout:O-1:resolved"]
    );
    assert_eq!(store.offsets("landing").await.expect("offsets"), vec![(p, next)]);
}

/// The inventory-at-risk pipeline in the store (ADR 0024): a sale that lands before its
/// series' first snapshot is taken in by the backfill from `sales_raw`; events newer than the
/// pipeline time wait and are applied in event-time order; the level alerts once per level and
/// snapshot; a re-sent sale after a reopen changes nothing.
pub async fn inventory_risks_backfill_order_and_alert_once(f: Fixture) {
    use retail_sink::derived::stock::{StockBatch, StockFact, StockFactKind, StockRules};
    use retail_sink::derived::Derived;
    use std::sync::Arc;

    const HOUR: i64 = 3_600_000;
    let rules = Arc::new(StockRules {
        velocity_days: 7,
        default_lead_time_days: 3,
        safety_days: 3,
    });
    let t0 = ts("2026-11-21T00:00:00Z");
    let base = t0.timestamp_millis();
    let store = f.open().await;
    let (sales_tp, inv_tp) = (tp("sales", 0), tp("inventory", 0));
    let (mut next_sale, mut next_inv) = (0, 0);
    let id = ids(10);
    // One batch: sales (rows of sales_raw, facts) and snapshots (events, facts), with a time.
    let mut batch = |sales: Vec<(usize, i64, i32)>, snaps: Vec<(usize, i64, i64)>, time: i64| {
        let mut facts = Vec::new();
        let mut b = LandingBatch {
            group: "landing".into(),
            ..Default::default()
        };
        for &(i, at, qty) in &sales {
            b.sales
                .push(sale(id[i], t0 + chrono::Duration::milliseconds(at), 1, qty));
            facts.push(StockFact {
                event_id: id[i],
                store_id: 1,
                sku: 42, // common::sale's SKU
                ts: base + at,
                kind: StockFactKind::Sale { qty: i64::from(qty) },
            });
        }
        for &(i, at, on_hand) in &snaps {
            b.events
                .push(order(id[i], t0 + chrono::Duration::milliseconds(at)));
            facts.push(StockFact {
                event_id: id[i],
                store_id: 1,
                sku: 42,
                ts: base + at,
                kind: StockFactKind::Snapshot {
                    on_hand,
                    lead_time_days: Some(2),
                },
            });
        }
        if !sales.is_empty() {
            b.offsets
                .push(range(&sales_tp, next_sale, next_sale + sales.len() as i64));
            next_sale += sales.len() as i64;
        }
        if !snaps.is_empty() {
            b.offsets
                .push(range(&inv_tp, next_inv, next_inv + snaps.len() as i64));
            next_inv += snaps.len() as i64;
        }
        b.derived = Arc::new(Derived {
            stock: Some(StockBatch {
                rules: rules.clone(),
                facts,
                time: Some(base + time),
            }),
            ..Derived::default()
        });
        b
    };
    let row = "SELECT store_id || ':' || sku || ':' || coalesce(snapshot_on_hand, -1) || ':' || units_sold_after \
               || ':' || coalesce(projected_on_hand, -1) || ':' || units_7d || ':' || risk_level FROM inventory_risks";
    let alerts = "SELECT kind || ':' || subject || ':' || severity FROM alerts";

    // A sale lands before any snapshot: no row. Its series' first snapshot (earlier in event
    // time than the sale) comes next: the backfill takes the sale in, after the snapshot.
    store
        .write_batch(&batch(vec![(0, 2 * HOUR, 3)], vec![], 2 * HOUR))
        .await
        .expect("sale");
    assert!(f.texts(row).await.is_empty());
    store
        .write_batch(&batch(vec![], vec![(1, HOUR, 20)], 2 * HOUR))
        .await
        .expect("snapshot");
    assert_eq!(f.texts(row).await, ["1:42:20:3:17:3:ok"]);

    // Sales newer than the pipeline time wait; applied when it passes them, in event-time order.
    let b = batch(vec![(2, 5 * HOUR, 10), (3, 4 * HOUR, 4)], vec![], 3 * HOUR);
    store.write_batch(&b).await.expect("pending sales");
    assert_eq!(f.texts(row).await, ["1:42:20:3:17:3:ok"]);
    store
        .write_batch(&batch(vec![], vec![], 6 * HOUR))
        .await
        .expect("tick");
    // In event-time order: after the sale at 4 h, 13 left at 1 a day (13 days): ok; after the
    // one at 5 h, 3 left at 17/7 a day (1.2 days, within the 2-day lead time): critical.
    assert_eq!(f.texts(row).await, ["1:42:20:17:3:17:critical"]);
    assert_eq!(f.texts(alerts).await, ["stock_risk:1:42:critical"]);

    // Reopened, the same sale again: nothing changes; a sale to zero: stockout, one more alert.
    drop(store);
    let store = f.open().await;
    store
        .write_batch(&batch(vec![(2, 5 * HOUR, 10)], vec![], 6 * HOUR))
        .await
        .expect("re-sent");
    assert_eq!(f.texts(row).await, ["1:42:20:17:3:17:critical"]);
    store
        .write_batch(&batch(vec![(4, 7 * HOUR, 3)], vec![], 8 * HOUR))
        .await
        .expect("last units");
    assert_eq!(f.texts(row).await, ["1:42:20:20:0:20:stockout"]);
    assert_eq!(
        f.texts(alerts).await,
        ["stock_risk:1:42:critical", "stock_risk:1:42:critical"]
    );
}

/// The benchmark's baseline streamed in chunks (`bare_begin`, `bare_chunk`s, `bare_finish`)
/// loads what one `bare_load` of the same rows loads, so streaming it in bounded memory
/// measures the same thing; and its scratch tables are gone afterwards.
pub async fn bare_load_in_chunks_loads_what_one_call_loads(f: Fixture) {
    let store = f.open().await;
    let start = ts("2026-11-21T23:59:00Z");
    let rows: Vec<_> = ids(250)
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            sale(
                id,
                start + chrono::TimeDelta::seconds(i as i64),
                (i % 7) as i64,
                1,
            )
        })
        .collect();
    let one = store.bare_load(&rows, 40).await.expect("one bare_load");
    assert_eq!(one.rows, 250);

    store.bare_begin().await.expect("bare_begin");
    let mut chunked = retail_sink::BareLoad::default();
    for chunk in rows.chunks(80) {
        chunked += store.bare_chunk(chunk, 40).await.expect("bare_chunk");
    }
    store.bare_finish().await.expect("bare_finish");
    assert_eq!(chunked.rows, one.rows);
    // The scratch tables are dropped, and the real ones were never touched.
    assert_eq!(store.count(Table::SalesRaw).await.expect("count"), 0);
    let scratch = match &f.url {
        retail_sink::StoreUrl::Postgres(_) => {
            "SELECT CAST(relname AS text) FROM pg_class WHERE relname LIKE 'bench_bare%'"
        }
        retail_sink::StoreUrl::Sqlite(_) => "SELECT name FROM sqlite_master WHERE name LIKE 'bench_bare%'",
    };
    assert_eq!(f.texts(scratch).await, Vec::<String>::new());
}

/// The dedup horizon (ADR 0022), inside it: an exact re-send, and a re-send of the id at
/// another time of the same UTC day, are duplicates, also days later; a re-send on another day
/// is a different `(event_id, day)` and lands (the ADR's stated limit).
pub async fn a_duplicate_inside_the_horizon_is_skipped(f: Fixture) {
    let store = f.open_with_horizon(7).await;
    let p = tp("sales", 0);
    let id = ids(3);
    let day1 = ts("2026-11-21T10:00:00Z");
    let first = LandingBatch {
        group: "g".into(),
        sales: vec![sale(id[0], day1, 1, 1)],
        events: vec![order(id[1], day1)],
        offsets: vec![range(&p, 0, 2)],
        ..Default::default()
    };
    store.write_batch(&first).await.expect("first batch");
    // Five days later (inside the 7-day horizon) the same events come again.
    let later = LandingBatch {
        group: "g".into(),
        sales: vec![
            sale(id[2], ts("2026-11-26T10:00:00Z"), 1, 1),
            sale(id[0], day1, 1, 1),
            sale(id[0], ts("2026-11-21T23:00:00Z"), 1, 1),
        ],
        events: vec![order(id[1], day1)],
        offsets: vec![range(&p, 2, 6)],
        ..Default::default()
    };
    let o = store.write_batch(&later).await.expect("later batch");
    assert_eq!(
        (
            o.sales_inserted,
            o.sales_duplicates,
            o.events_duplicates,
            o.dead_letters
        ),
        (1, 2, 1, 0),
        "{o:?}"
    );
    // The same id with a time on another day: another ledger day, so it lands again.
    let other_day = LandingBatch {
        group: "g".into(),
        sales: vec![sale(id[0], ts("2026-11-22T10:00:00Z"), 1, 1)],
        offsets: vec![range(&p, 6, 7)],
        ..Default::default()
    };
    let o = store.write_batch(&other_day).await.expect("other day");
    assert_eq!(o.sales_inserted, 1, "{o:?}");
    assert_eq!(counts(&*store).await, (3, 1, 0));
}

/// Ledger days older than the horizon behind the newest event day are dropped whole (counted
/// in the catalog), the days inside it stay, and a reopened store still drops by the same rule.
pub async fn ledger_days_older_than_the_horizon_are_dropped(f: Fixture) {
    let store = f.open_with_horizon(2).await;
    let p = tp("sales", 0);
    let mut offset = 0;
    for (i, day) in ["2026-11-20", "2026-11-21", "2026-11-22"].iter().enumerate() {
        let batch = LandingBatch {
            group: "g".into(),
            sales: vec![sale(ids(1)[0], ts(&format!("{day}T12:00:00Z")), i as i64, 1)],
            offsets: vec![range(&p, offset, offset + 1)],
            ..Default::default()
        };
        store.write_batch(&batch).await.expect("batch of a day");
        offset += 1;
    }
    assert_eq!(
        f.ledger_days().await,
        [
            "landed_event_ids_20261120",
            "landed_event_ids_20261121",
            "landed_event_ids_20261122"
        ]
    );
    // Two days on: the newest is the 24th, so the 22nd is the oldest day kept.
    let batch = LandingBatch {
        group: "g".into(),
        sales: vec![sale(ids(1)[0], ts("2026-11-24T00:00:00Z"), 9, 1)],
        offsets: vec![range(&p, offset, offset + 1)],
        ..Default::default()
    };
    store.write_batch(&batch).await.expect("batch two days on");
    assert_eq!(
        f.ledger_days().await,
        ["landed_event_ids_20261122", "landed_event_ids_20261124"]
    );
    // Raw rows are not the ledger: every sale stays.
    assert_eq!(counts(&*store).await, (4, 0, 0));
    drop(store);
    // Reopened with a shorter horizon: the 22nd goes at open.
    let _store = f.open_with_horizon(1).await;
    assert_eq!(f.ledger_days().await, ["landed_event_ids_20261124"]);
}

/// An event older than the horizon becomes a `too_old` dead letter naming its event time and
/// the horizon, and lands nowhere else (no raw row, no ledger day); the rest of its batch
/// lands. After a restart the newest day is still known, so it is still too old, and a
/// duplicate inside the horizon is still skipped.
pub async fn an_event_older_than_the_horizon_is_a_too_old_dead_letter(f: Fixture) {
    let p = tp("sales", 0);
    let id = ids(4);
    {
        let store = f.open_with_horizon(7).await;
        let batch = LandingBatch {
            group: "g".into(),
            sales: vec![
                sale(id[0], ts("2026-11-21T10:00:00Z"), 1, 1),
                sale(id[1], ts("2026-11-13T23:59:59Z"), 1, 1),
            ],
            events: vec![order(id[2], ts("2026-11-01T08:00:00Z"))],
            offsets: vec![range(&p, 0, 3)],
            ..Default::default()
        };
        let o = store.write_batch(&batch).await.expect("batch");
        assert_eq!(
            (o.sales_inserted, o.events_inserted, o.dead_letters),
            (1, 0, 2),
            "{o:?}"
        );
        assert_eq!(counts(&*store).await, (1, 0, 2));
    }
    let kinds = f.texts("SELECT kind FROM dead_letters").await;
    assert_eq!(kinds, ["too_old", "too_old"]);
    let reasons = f.texts("SELECT reason FROM dead_letters").await;
    assert!(
        reasons.iter().any(|r| r.contains("2026-11-13T23:59:59")
            && r.contains("dedup_horizon_days = 7")
            && r.contains("2026-11-14")),
        "{reasons:?}"
    );
    assert_eq!(f.ledger_days().await, ["landed_event_ids_20261121"]);

    // Restarted: the newest day (the 21st) is remembered.
    let store = f.open_with_horizon(7).await;
    let again = LandingBatch {
        group: "g".into(),
        sales: vec![
            sale(id[1], ts("2026-11-13T23:59:59Z"), 1, 1),
            sale(id[0], ts("2026-11-21T10:00:00Z"), 1, 1),
            sale(id[3], ts("2026-11-14T00:00:00Z"), 1, 1),
        ],
        offsets: vec![range(&p, 3, 6)],
        ..Default::default()
    };
    let o = store.write_batch(&again).await.expect("batch after restart");
    assert_eq!(
        (o.sales_inserted, o.sales_duplicates, o.dead_letters),
        (1, 1, 1),
        "{o:?}"
    );
    assert_eq!(counts(&*store).await, (2, 0, 3));
    assert_eq!(
        f.ledger_days().await,
        ["landed_event_ids_20261114", "landed_event_ids_20261121"]
    );
}

/// A database from before the dedup horizon keeps its ledger as `landed_event_ids_legacy`:
/// its ids are still duplicates, until the horizon has passed the day of the migration, when
/// it is dropped.
pub async fn the_legacy_ledger_dedups_until_the_horizon_passes_it(f: Fixture) {
    let p = tp("sales", 0);
    let old = ids(1)[0];
    drop(f.open_with_horizon(7).await);
    // What migration 0005 (PostgreSQL) / 0006 (SQLite) leaves of a ledger with an id in it,
    // migrated on 2026-11-21.
    match &f.url {
        retail_sink::StoreUrl::Postgres(url) => crate::common::connect(url)
            .await
            .batch_execute(&format!(
                "CREATE TABLE landed_event_ids_legacy (event_id uuid PRIMARY KEY); \
                 INSERT INTO landed_event_ids_legacy VALUES ('{old}'); \
                 UPDATE ledger_horizon SET legacy_until = '2026-11-21'"
            ))
            .await
            .expect("make a legacy ledger"),
        retail_sink::StoreUrl::Sqlite(path) => rusqlite::Connection::open(path)
            .expect("open sqlite")
            .execute_batch(&format!(
                "CREATE TABLE landed_event_ids_legacy (event_id TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID; \
                 INSERT INTO landed_event_ids_legacy VALUES ('{old}'); \
                 UPDATE ledger_horizon SET legacy_until = 20778"
            ))
            .expect("make a legacy ledger"),
    }
    let store = f.open_with_horizon(7).await;
    let resent = LandingBatch {
        group: "g".into(),
        sales: vec![sale(old, ts("2026-11-21T10:00:00Z"), 1, 1)],
        offsets: vec![range(&p, 0, 1)],
        ..Default::default()
    };
    let o = store.write_batch(&resent).await.expect("re-send of a legacy id");
    assert_eq!((o.sales_inserted, o.sales_duplicates), (0, 1), "{o:?}");
    // Eight days on, the horizon has passed the 21st: the legacy ledger goes.
    let later = LandingBatch {
        group: "g".into(),
        sales: vec![sale(ids(1)[0], ts("2026-11-29T10:00:00Z"), 1, 1)],
        offsets: vec![range(&p, 1, 2)],
        ..Default::default()
    };
    store.write_batch(&later).await.expect("eight days on");
    let legacy = match &f.url {
        retail_sink::StoreUrl::Postgres(_) => {
            "SELECT CAST(relname AS text) FROM pg_class WHERE relname = 'landed_event_ids_legacy'"
        }
        retail_sink::StoreUrl::Sqlite(_) => {
            "SELECT name FROM sqlite_master WHERE name = 'landed_event_ids_legacy'"
        }
    };
    assert_eq!(f.texts(legacy).await, Vec::<String>::new());
    assert_eq!(counts(&*store).await, (1, 0, 0));
}

/// The notification outbox (ADR 0026): each new alert gets one delivery per channel whose route
/// takes it (kind, minimum severity), in the alert's transaction; a repeat of the same dedup
/// key within a channel's window (also across batches) is `suppressed` naming the delivery it
/// repeats; a re-sent event after a reopen adds nothing. Claims count attempts and lease rows;
/// only the claimer of the current attempt may finish it; every delivery ends in one state.
pub async fn notification_outbox_routes_dedups_and_finishes_once(f: Fixture) {
    use retail_core::event::OrderStatus;
    use retail_sink::derived::orders::{OrderFact, OrderRules};
    use retail_sink::outbox::{Attempt, Route, Routes};
    use std::sync::Arc;
    use std::time::Duration;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    let rules = Arc::new(OrderRules {
        payment_window_ms: 30 * MIN,
        grace_ms: MIN,
        stuck_after_ms: [Some(12 * HOUR), Some(24 * HOUR), Some(96 * HOUR)],
    });
    let route = |channel: &str, kinds: &[&str], min: &str, window: i64| Route {
        channel: channel.into(),
        kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
        min_severity: min.into(),
        dedup_window_ms: window,
    };
    let routes = Arc::new(Routes {
        routes: vec![
            route("hook", &[], "info", 0),
            route("slow", &[], "info", 48 * HOUR),
            route("pager", &[], "critical", 0),
            route("payments", &["payment_timeout"], "warning", 0),
        ],
    });
    let t0 = ts("2026-11-21T10:00:00Z");
    let status =
        |id, order: &str, ms: i64, status| order_status(t0.timestamp_millis() + ms, id, order, status);
    let payment = |id, order: &str, ms: i64| order_payment(t0.timestamp_millis() + ms, id, order);
    let p = tp("orders", 0);
    let mut next = 0;
    let batch = |facts: Vec<OrderFact>, time: i64, next: &mut i64| {
        order_batch(
            &p,
            &rules,
            Some(routes.clone()),
            facts,
            t0.timestamp_millis() + time,
            next,
        )
    };
    let store = f.open().await;
    let id = ids(6);
    let first = batch(
        vec![
            status(id[0], "O-1", 0, OrderStatus::Created),
            status(id[1], "O-2", 0, OrderStatus::Created),
            payment(id[2], "O-2", MIN),
            status(id[3], "O-2", MIN, OrderStatus::Paid),
        ],
        10 * MIN,
        &mut next,
    );
    store.write_batch(&first).await.expect("orders");
    // O-1 times out; O-2 is stuck in `paid`, moves on, and is stuck again in `packed`.
    for (facts, time) in [
        (Vec::new(), 2 * HOUR),
        (Vec::new(), 13 * HOUR + 2 * MIN),
        (
            vec![status(id[4], "O-2", 14 * HOUR, OrderStatus::Packed)],
            14 * HOUR,
        ),
        (Vec::new(), 40 * HOUR),
    ] {
        store
            .write_batch(&batch(facts, time, &mut next))
            .await
            .expect("batch");
    }
    let deliveries = "SELECT d.channel || ':' || a.kind || ':' || a.subject || ':' || d.state || ':' || \
                      CASE WHEN d.duplicate_of IS NULL THEN '-' ELSE 'repeats ' || (SELECT o.channel || '/' || o.state \
                      FROM notification_deliveries o WHERE o.delivery_id = d.duplicate_of) END \
                      FROM notification_deliveries d JOIN alerts a ON a.alert_id = d.alert_id";
    let planned = [
        "hook:order_stuck:O-2:pending:-",
        "hook:order_stuck:O-2:pending:-",
        "hook:payment_timeout:O-1:pending:-",
        "payments:payment_timeout:O-1:pending:-",
        "slow:order_stuck:O-2:pending:-",
        "slow:order_stuck:O-2:suppressed:repeats slow/pending",
        "slow:payment_timeout:O-1:pending:-",
    ];
    assert_eq!(f.texts(deliveries).await, planned);
    assert_eq!(f.texts("SELECT kind FROM alerts").await.len(), 3);

    // Reopened, an event re-sent and the time run again: no alert and no delivery more.
    drop(store);
    let store = f.open().await;
    store
        .write_batch(&batch(
            vec![status(id[0], "O-1", 0, OrderStatus::Created)],
            40 * HOUR,
            &mut next,
        ))
        .await
        .expect("re-sent");
    assert_eq!(f.texts(deliveries).await, planned);

    // Claims: oldest alert first, the attempt counted, the row leased.
    let lease = Duration::from_secs(60);
    let claimed = store.claim_deliveries("hook", 10, lease).await.expect("claim");
    assert_eq!(claimed.len(), 3);
    assert!(claimed.iter().all(|d| d.attempt == 1 && d.channel == "hook"));
    assert_eq!(
        claimed.iter().map(|d| d.kind.as_str()).collect::<Vec<_>>(),
        ["payment_timeout", "order_stuck", "order_stuck"]
    );
    assert_eq!(claimed[0].subject, "O-1");
    assert!(claimed.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(
        store
            .claim_deliveries("hook", 10, lease)
            .await
            .expect("claim")
            .is_empty(),
        "leased rows are not claimed twice"
    );
    assert!(store
        .claim_deliveries("pager", 10, lease)
        .await
        .expect("claim")
        .is_empty());

    // Sent once; finishing it again changes nothing.
    assert!(store
        .finish_delivery(claimed[0].delivery_id, 1, &Attempt::Sent)
        .await
        .expect("finish"));
    assert!(!store
        .finish_delivery(claimed[0].delivery_id, 1, &Attempt::Sent)
        .await
        .expect("finish"));
    // A failure due again at once is claimed again as attempt 2; the stale attempt 1 can no
    // longer finish it; the last failure with no retry makes it dead with its error.
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    let retry = Attempt::Failed {
        error: "HTTP 503 from http://127.0.0.1:9/".into(),
        retry_at: Some(past),
    };
    assert!(store
        .finish_delivery(claimed[1].delivery_id, 1, &retry)
        .await
        .expect("fail"));
    let again = store.claim_deliveries("hook", 10, lease).await.expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].delivery_id, again[0].attempt),
        (claimed[1].delivery_id, 2)
    );
    assert!(!store
        .finish_delivery(claimed[1].delivery_id, 1, &Attempt::Sent)
        .await
        .expect("stale"));
    let give_up = Attempt::Failed {
        error: "HTTP 400 from http://127.0.0.1:9/".into(),
        retry_at: None,
    };
    assert!(store
        .finish_delivery(claimed[1].delivery_id, 2, &give_up)
        .await
        .expect("dead"));
    // A claim whose lease ran out is due again (the dispatcher died mid-send).
    assert!(store
        .finish_delivery(claimed[2].delivery_id, 1, &retry)
        .await
        .expect("fail"));
    let short = store
        .claim_deliveries("hook", 10, Duration::ZERO)
        .await
        .expect("claim");
    assert_eq!(short.len(), 1);
    let retaken = store.claim_deliveries("hook", 10, lease).await.expect("claim");
    assert_eq!(
        (retaken[0].delivery_id, retaken[0].attempt),
        (claimed[2].delivery_id, 3)
    );
    assert!(!store
        .finish_delivery(claimed[2].delivery_id, 2, &Attempt::Sent)
        .await
        .expect("stale"));
    assert!(store
        .finish_delivery(claimed[2].delivery_id, 3, &Attempt::Sent)
        .await
        .expect("sent"));

    let hook = "SELECT a.kind || ':' || d.state || ':' || d.attempts || ':' || coalesce(d.last_error, '-') || ':' || \
                CASE WHEN d.finished_at IS NULL THEN 'open' ELSE 'final' END || ':' || \
                CASE WHEN d.next_attempt_at IS NULL THEN '-' ELSE 'due' END \
                FROM notification_deliveries d JOIN alerts a ON a.alert_id = d.alert_id WHERE d.channel = 'hook'";
    assert_eq!(
        f.texts(hook).await,
        [
            "order_stuck:dead:2:HTTP 400 from http://127.0.0.1:9/:final:-",
            "order_stuck:sent:3:HTTP 503 from http://127.0.0.1:9/:final:-",
            "payment_timeout:sent:1:-:final:-",
        ]
    );
}

/// An order status fact at `ts` (epoch ms), 42.50 EUR from customer C-1 at store 3.
fn order_status(
    ts: i64,
    event_id: uuid::Uuid,
    order: &str,
    status: retail_core::event::OrderStatus,
) -> retail_sink::derived::orders::OrderFact {
    use retail_sink::derived::orders::{OrderFact, OrderFactKind};
    OrderFact {
        event_id,
        order_id: order.into(),
        ts,
        kind: OrderFactKind::Status {
            status,
            store_id: Some(3),
            amount: Some(rust_decimal::Decimal::new(4250, 2)),
            currency: Some("EUR".into()),
            customer_id: Some("C-1".into()),
        },
    }
}

/// A captured payment `P-<order>` of 42.50 EUR at `ts` (epoch ms).
fn order_payment(ts: i64, event_id: uuid::Uuid, order: &str) -> retail_sink::derived::orders::OrderFact {
    use retail_sink::derived::orders::{OrderFact, OrderFactKind};
    OrderFact {
        event_id,
        order_id: order.into(),
        ts,
        kind: OrderFactKind::Payment {
            payment_id: format!("P-{order}"),
            status: retail_core::event::PaymentStatus::Captured,
            amount: rust_decimal::Decimal::new(4250, 2),
            currency: "EUR".into(),
        },
    }
}

/// A batch of order facts of partition `p` (offsets from `next` on) carrying the order pipeline
/// at pipeline time `time` (epoch ms), with `routes` for the alerts it raises.
fn order_batch(
    p: &TopicPartition,
    rules: &std::sync::Arc<retail_sink::derived::orders::OrderRules>,
    routes: Option<std::sync::Arc<retail_sink::outbox::Routes>>,
    facts: Vec<retail_sink::derived::orders::OrderFact>,
    time: i64,
    next: &mut i64,
) -> LandingBatch {
    let first = *next;
    *next += facts.len() as i64;
    let at = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).expect("time");
    LandingBatch {
        group: "landing".into(),
        events: facts.iter().map(|f| order(f.event_id, at(f.ts))).collect(),
        offsets: if facts.is_empty() {
            Vec::new()
        } else {
            vec![range(p, first, *next)]
        },
        derived: std::sync::Arc::new(retail_sink::derived::Derived {
            orders: Some(retail_sink::derived::orders::OrderBatch {
                rules: rules.clone(),
                facts,
                time: Some(time),
            }),
            notifications: routes,
            ..Default::default()
        }),
        ..Default::default()
    }
}
