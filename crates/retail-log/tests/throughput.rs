//! Throughput check, ignored by default (it writes ~500 MB). Run it in release:
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-log cargo test -p retail-log --release --test throughput -- --ignored --nocapture
//! ```
//!
//! Set `RETAIL_LOG_BENCH_DIR` to measure another filesystem than the temp dir's.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use retail_log::embedded::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};
use retail_log::{ConsumerEvent, Log, ProducerRecord};

const RECORDS: usize = 1_000_000;
const BATCH: usize = 1000;

fn batch(topic: &str, start: usize, keyed: bool) -> Vec<ProducerRecord> {
    (start..start + BATCH)
        .map(|i| ProducerRecord {
            topic: topic.to_owned(),
            partition: None,
            key: keyed.then(|| format!("store-{}", i % 500).into_bytes()),
            value: {
                let mut v =
                    format!("{{\"event_id\":\"{i:012}\",\"amount\":\"12.50\",\"pad\":\"").into_bytes();
                v.resize(198, b'x');
                v.extend_from_slice(b"\"}");
                v
            },
            headers: Vec::new(),
            timestamp_ms: None,
        })
        .collect()
}

async fn run(label: &str, fsync: FsyncPolicy, partitions: i32, appenders: usize) {
    let base = std::env::var("RETAIL_LOG_BENCH_DIR").map_or_else(|_| std::env::temp_dir(), Into::into);
    let dir = tempfile::tempdir_in(base).unwrap();
    let config = EmbeddedConfig {
        fsync,
        retention_ms: 0,
        ..EmbeddedConfig::default()
    };
    let log = Arc::new(EmbeddedLog::open(dir.path(), config).await.unwrap());
    log.ensure_topic("bench", partitions).await.unwrap();

    let started = Instant::now();
    let per_task = RECORDS / appenders;
    let tasks: Vec<_> = (0..appenders)
        .map(|t| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                for b in (0..per_task).step_by(BATCH) {
                    log.append(batch("bench", t * per_task + b, partitions > 1))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let append_s = started.elapsed().as_secs_f64();

    let mut consumer = log.consumer("bench", &["bench"]).await.unwrap();
    let started = Instant::now();
    let mut read = 0;
    while read < RECORDS {
        if let ConsumerEvent::Records(r) = consumer.poll(5000, Duration::from_secs(1)).await.unwrap() {
            assert!(!r.is_empty() || read == RECORDS, "ran dry at {read}");
            read += r.len();
        }
    }
    let read_s = started.elapsed().as_secs_f64();
    println!(
        "{label}: append {:.0} records/s ({:.1} MB/s payload), read {:.0} records/s",
        RECORDS as f64 / append_s,
        (RECORDS * 200) as f64 / append_s / 1e6,
        RECORDS as f64 / read_s,
    );
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput measurement; run in release with --ignored --nocapture"]
async fn append_and_read_throughput() {
    run(
        "every_batch, 1 partition, 1 appender",
        FsyncPolicy::EveryBatch,
        1,
        1,
    )
    .await;
    run(
        "every_batch, 8 partitions keyed, 1 appender",
        FsyncPolicy::EveryBatch,
        8,
        1,
    )
    .await;
    run(
        "every_batch, 8 partitions keyed, 4 appenders",
        FsyncPolicy::EveryBatch,
        8,
        4,
    )
    .await;
    run(
        "interval, 8 partitions keyed, 4 appenders",
        FsyncPolicy::Interval,
        8,
        4,
    )
    .await;
}
