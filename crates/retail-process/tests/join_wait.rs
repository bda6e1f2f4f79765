//! The catalog join's bounded wait (ADR 0004), on a real embedded log and SQLite store: a sale
//! whose store the catalog does not know yet waits while the catalog group lands the store, and
//! is then aggregated under the right city; a sale of a store that never appears is aggregated
//! under `unknown` after the wait and counted in `retail_join_misses_total`.

use std::sync::Arc;
use std::time::Duration;

use retail_core::{Health, Metrics, Shutdown, TopicPartition};
use retail_log::embedded::EmbeddedLog;
use retail_log::{Log, ProducerRecord};
use retail_process::aggregate::{self, DedupScope, Engine, ProcessingConfig};
use retail_process::{Landing, LandingConfig};
use retail_sink::StoreUrl;

fn record(topic: &str, json: &str) -> ProducerRecord {
    ProducerRecord {
        topic: topic.to_owned(),
        partition: Some(0),
        key: None,
        value: json.as_bytes().to_vec(),
        headers: Vec::new(),
        timestamp_ms: None,
    }
}

fn city_rows(db: &std::path::Path) -> Vec<(String, String, i64)> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut stmt = conn
        .prepare("SELECT country, city, units FROM top_sales_by_city ORDER BY city")
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_waits_for_its_store_then_unknown_after_the_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn Log> = Arc::new(
        EmbeddedLog::open(&dir.path().join("log"), Default::default())
            .await
            .expect("log"),
    );
    log.ensure_topic("sales", 1).await.expect("topic");
    log.ensure_topic("catalog", 1).await.expect("topic");
    let db = dir.path().join("retail.db");
    let store = retail_sink::open(&StoreUrl::Sqlite(db.clone()))
        .await
        .expect("store");
    let metrics = Metrics::new();
    let processing = ProcessingConfig {
        join_wait_ms: 1_500,
        ..ProcessingConfig::default()
    };

    // The data landing only; the catalog landing starts later.
    let engine = Engine::new(
        aggregate::compile(&aggregate::spec::builtin()).expect("builtins"),
        &processing,
        DedupScope::Batch,
    );
    let config = LandingConfig {
        topics: vec!["sales".into()],
        ..LandingConfig::default()
    };
    let data = Landing::new(log.clone(), store.clone(), config, metrics.clone(), Health::new())
        .with_engine(engine, processing.clone());
    let handle = data.handle();
    let stop = Shutdown::new();
    let data_task = tokio::spawn(data.run(stop.clone()));

    log.append(vec![record(
        "sales",
        r#"{"type":"sale","ts":"2026-01-05T10:00:00Z","store_id":77,"sku":1,"qty":3,"unit_price":"2.00","seller_id":7}"#,
    )])
    .await
    .expect("append");
    // The store arrives 500 ms later, landed by the catalog group.
    tokio::time::sleep(Duration::from_millis(500)).await;
    log.append(vec![
        record(
            "catalog",
            r#"{"type":"store","ts":"2026-01-05T08:00:00Z","store_id":77,"name":"Alster","city":"Hamburg","country":"DE"}"#,
        ),
        record(
            "catalog",
            r#"{"type":"seller","ts":"2026-01-05T08:00:00Z","seller_id":7,"store_id":77,"name":"Ida"}"#,
        ),
    ])
    .await
    .expect("append");
    let catalog = Landing::new(
        log.clone(),
        store.clone(),
        LandingConfig {
            group: "landing.catalog".into(),
            topics: vec!["catalog".into()],
            ..LandingConfig::default()
        },
        metrics.clone(),
        Health::new(),
    )
    .with_engine(
        Engine::new(Vec::new(), &processing, DedupScope::Batch),
        processing.clone(),
    );
    let catalog_task = tokio::spawn(catalog.run(stop.clone()));

    let first = [(TopicPartition::new("sales", 0), 1)].into_iter().collect();
    tokio::time::timeout(Duration::from_secs(10), handle.wait_for(&first))
        .await
        .expect("the sale lands within the wait");
    assert_eq!(city_rows(&db), [("DE".to_owned(), "Hamburg".to_owned(), 3)]);

    // A store that never appears: landed after the bounded wait, under "unknown", and counted.
    log.append(vec![record(
        "sales",
        r#"{"type":"sale","ts":"2026-01-05T10:00:01Z","store_id":88,"sku":1,"qty":2,"unit_price":"2.00","seller_id":8}"#,
    )])
    .await
    .expect("append");
    let second = [(TopicPartition::new("sales", 0), 2)].into_iter().collect();
    tokio::time::timeout(Duration::from_secs(10), handle.wait_for(&second))
        .await
        .expect("the sale lands after the wait");
    assert_eq!(
        city_rows(&db),
        [
            ("DE".to_owned(), "Hamburg".to_owned(), 3),
            ("unknown".to_owned(), "unknown".to_owned(), 2)
        ]
    );
    assert!(
        metrics
            .render()
            .contains("retail_join_misses_total{topic=\"sales\"} 1"),
        "{}",
        metrics.render()
    );

    stop.trigger();
    data_task.await.expect("join").expect("data landing");
    catalog_task.await.expect("join").expect("catalog landing");
}
