//! The generator against the real embedded log: what the source reports is what a consumer
//! reads back.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use retail_core::{decode, Metrics, Shutdown};
use retail_log::embedded::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};
use retail_log::{ConsumerEvent, Log};
use retail_source::generator::GeneratorConfig;

fn chaos(events: u64) -> GeneratorConfig {
    GeneratorConfig {
        rate: f64::INFINITY,
        events: Some(events),
        duplicate_fraction: 0.05,
        out_of_order_fraction: 0.05,
        late_fraction: 0.01,
        malformed_fraction: 0.01,
        ..GeneratorConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_stats_report_is_what_a_consumer_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn Log> = Arc::new(
        EmbeddedLog::open(dir.path(), EmbeddedConfig::default())
            .await
            .expect("opens"),
    );
    let source = chaos(20_000).build().expect("valid");
    let stats = source
        .run(log.clone(), Shutdown::new(), Metrics::new())
        .await
        .expect("runs");
    assert_eq!(log.partitions("sales").await.expect("created"), 4);

    let mut consumer = log
        .consumer("check", &["sales", "catalog"])
        .await
        .expect("consumer");
    let (mut catalog, mut sales, mut malformed) = (0u64, 0u64, 0u64);
    let mut ids = HashSet::new();
    while catalog + sales < stats.appended {
        match consumer
            .poll(10_000, Duration::from_secs(5))
            .await
            .expect("polls")
        {
            ConsumerEvent::Records(records) => {
                assert!(
                    !records.is_empty(),
                    "timed out with {} of {} read",
                    catalog + sales,
                    stats.appended
                );
                for r in records {
                    if r.topic == "catalog" {
                        catalog += 1;
                        continue;
                    }
                    sales += 1;
                    match decode(&r.value) {
                        Ok(e) => {
                            ids.insert(e.event_id);
                        }
                        Err(_) => malformed += 1,
                    }
                }
            }
            ConsumerEvent::Assigned(_) | ConsumerEvent::Revoked(_) => {}
        }
    }
    assert_eq!((catalog, sales), (stats.catalog, 20_000));
    assert_eq!(malformed, stats.malformed);
    assert_eq!(ids.len() as u64, stats.distinct);
}

/// Events per second from the generator into the embedded log: run with
/// `cargo test -p retail-source --release --test generator_embedded -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run in release with --nocapture"]
async fn throughput_into_the_embedded_log() {
    for fsync in [FsyncPolicy::EveryBatch, FsyncPolicy::Interval] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = EmbeddedConfig {
            fsync,
            ..EmbeddedConfig::default()
        };
        let log: Arc<dyn Log> = Arc::new(EmbeddedLog::open(dir.path(), config).await.expect("opens"));
        let n = 1_000_000;
        let source = GeneratorConfig {
            rate: f64::INFINITY,
            events: Some(n),
            ..GeneratorConfig::default()
        }
        .build()
        .expect("valid");
        let start = std::time::Instant::now();
        source
            .run(log, Shutdown::new(), Metrics::new())
            .await
            .expect("runs");
        let secs = start.elapsed().as_secs_f64();
        println!(
            "generator -> embedded log ({fsync:?}): {n} events in {secs:.2} s = {:.0} events/s",
            n as f64 / secs
        );
    }
}
