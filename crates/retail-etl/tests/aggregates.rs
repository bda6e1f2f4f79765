//! The aggregates against their oracle: a generated stream of a million events with
//! duplicates, out-of-order, late and malformed events runs through the real binary into each
//! store; then every built-in aggregate table must equal its plain-SQL recomputation over
//! `sales_raw` (without the events recorded late for it), and `late_events` must hold exactly
//! the events an independent reading of the log finds late.

mod common;

use std::process::Command;

use common::oracle::{assert_aggregates_match_sql, expected_late_from_log, late_events};
use common::{summary, TestStore, BIN};

const EVENTS: u64 = 1_000_000;

async fn aggregates_equal_sql_over_a_million_events(store: TestStore) {
    let args: Vec<String> = [
        "demo",
        "--events",
        &EVENTS.to_string(),
        "--seed",
        "5",
        "--duplicate-fraction",
        "0.01",
        "--out-of-order-fraction",
        "0.05",
        "--late-fraction",
        "0.002",
        "--malformed-fraction",
        "0.001",
        "--store",
        &store.url(),
        "--data-dir",
        &store.data_dir().display().to_string(),
        "--listen",
        "127.0.0.1:0",
        "--sales-only",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let out = Command::new(BIN)
        .args(&args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run retail-etl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&out);
    assert_eq!(s["generated"], EVENTS.to_string(), "{s:?}");

    let checked = assert_aggregates_match_sql(&store).await;
    assert!(checked > 0);

    let late = late_events(&store).await;
    let expected = expected_late_from_log(store.data_dir(), 4).await;
    assert!(
        expected.iter().any(|(a, _)| a == "sales_agg_minute"),
        "the stream must hold events late for the minute aggregate"
    );
    let missing: Vec<_> = expected.difference(&late).take(5).collect();
    let extra: Vec<_> = late.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "late_events differs from the log: {} expected, {} recorded; missing {missing:?}; unexpected {extra:?}",
        expected.len(),
        late.len()
    );
    eprintln!(
        "{checked} aggregate rows equal SQL over sales_raw; {} late (aggregate, event) pairs match the log",
        late.len()
    );
    store.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_aggregates_equal_sql_over_a_million_events() {
    aggregates_equal_sql_over_a_million_events(TestStore::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_aggregates_equal_sql_over_a_million_events() {
    aggregates_equal_sql_over_a_million_events(TestStore::postgres().await).await;
}
