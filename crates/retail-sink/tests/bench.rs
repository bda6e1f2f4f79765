//! Throughput of `write_batch` against the backend's bare bulk load of the same rows into a
//! table of the same shape (`Store::bare_load`): the price of exactly-once. Ignored by
//! default (it writes 500k rows); run it in release mode:
//!
//! ```text
//! cargo test -p retail-sink --release --test bench -- --ignored --nocapture --test-threads 1
//! ```
//! `RETAIL_BENCH_ROWS` (default 500000), `RETAIL_BENCH_BATCH` (default 5000) and
//! `RETAIL_BENCH_ROUNDS` (default 3) change the size. Each round opens a fresh database, loads
//! fresh rows with `bare_load`, then the same rows through `write_batch`, so both start from
//! empty tables; the ratio is of the medians, as a shared 2-core VM varies by 20% between
//! identical runs.

#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use retail_core::{Sale, SaleKind, TopicPartition};
use retail_sink::{LandedSale, LandingBatch, OffsetRange, Store, Table};
use rust_decimal::Decimal;
use uuid::Uuid;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Time-ordered sales as a generator would make them: UUIDv7 ids, one ms apart, 500 stores.
fn rows(n: usize) -> Vec<LandedSale> {
    let start = common::ts("2026-11-21T12:00:00Z");
    (0..n)
        .map(|i| {
            let i64i = i as i64;
            LandedSale {
                event_id: Uuid::now_v7(),
                ts: start + TimeDelta::milliseconds(i64i),
                source: "generator".to_owned(),
                sale: Sale {
                    kind: SaleKind::Sale,
                    store_id: i64i % 500,
                    sku: (i64i * 7919) % 100_000,
                    qty: (i % 5) as i32 + 1,
                    unit_price: Some(Decimal::new(199 + (i64i % 10_000), 2)),
                    seller_id: Some(i64i % 5_000),
                },
            }
        })
        .collect()
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// One round: bare load of fresh rows, then the same rows through `write_batch`.
async fn round(store: &dyn Store, n: usize, batch_rows: usize, first_offset: i64) -> (Duration, Duration) {
    let data = rows(n);
    let bare = store
        .bare_load(&data, batch_rows)
        .await
        .expect("bare load")
        .elapsed;
    let tp = TopicPartition::new("sales", 0);
    let mut through_store = Duration::ZERO;
    let mut offset = first_offset;
    for chunk in data.chunks(batch_rows) {
        let next = offset + chunk.len() as i64;
        let batch = LandingBatch {
            group: "bench".into(),
            sales: chunk.to_vec(),
            offsets: vec![OffsetRange {
                tp: tp.clone(),
                first: offset,
                next,
            }],
            ..Default::default()
        };
        // Building the batch is the caller's cost, not the store's: only the call is timed.
        let t = Instant::now();
        let o = store.write_batch(&batch).await.expect("write batch");
        through_store += t.elapsed();
        assert_eq!(o.sales_inserted as usize, chunk.len());
        offset = next;
    }
    (bare, through_store)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

async fn run(
    name: &str,
    fixture: fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = common::Fixture>>>,
) {
    let n = env_usize("RETAIL_BENCH_ROWS", 500_000);
    let batch_rows = env_usize("RETAIL_BENCH_BATCH", 5_000);
    let rounds = env_usize("RETAIL_BENCH_ROUNDS", 3).max(1);
    let (mut bares, mut writes) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        // A fresh database per round: bare_load's scratch tables and sales_raw both start empty.
        let f = fixture().await;
        let store = f.open().await;
        let (bare, write) = round(&*store, n, batch_rows, 0).await;
        assert_eq!(store.count(Table::SalesRaw).await.expect("count"), n as i64);
        println!(
            "{name} round {r}: write_batch {:.0} rows/s ({:.2}s), bare_load {:.0} rows/s ({:.2}s)",
            rate(n, write),
            write.as_secs_f64(),
            rate(n, bare),
            bare.as_secs_f64()
        );
        bares.push(bare);
        writes.push(write);
    }
    let (bare, write) = (median(bares), median(writes));
    println!(
        "{name}: {n} rows x {rounds} rounds, {batch_rows}/batch, medians: write_batch {:.0} rows/s, \
         bare_load {:.0} rows/s, ratio {:.2}",
        rate(n, write),
        rate(n, bare),
        bare.as_secs_f64() / write.as_secs_f64(),
    );
}

#[tokio::test]
#[ignore = "benchmark: 500k rows, run in release mode"]
async fn postgres_write_batch_vs_bare_load() {
    run("postgres", || Box::pin(common::pg())).await;
}

#[tokio::test]
#[ignore = "benchmark: 500k rows, run in release mode"]
async fn sqlite_write_batch_vs_bare_load() {
    run("sqlite", || Box::pin(async { common::sqlite() })).await;
}
