//! Tests of the paced source task, on tokio's paused clock (virtual time, never wall-clock
//! timings) and against an in-memory `Log`.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use retail_core::decode;
use retail_core::event::topics;
use retail_log::{Consumer, ProducerRecord, RecordMetadata, TopicPartition};
use uuid::Uuid;

use super::*;
use crate::generator::ManualClock;

/// A clock that moves on by a millisecond every time it is read.
#[derive(Debug)]
struct TickingClock(std::sync::atomic::AtomicI64);

impl Clock for TickingClock {
    fn now_ms(&self) -> i64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// A test double of the log: appended records are kept in memory, and appends can be made
/// to fail. It exists because the embedded backend is being written in parallel with this
/// source; the source only needs `ensure_topic` and `append`, whose contract it mimics
/// (all-or-nothing appends, partition-count checks).
#[derive(Debug, Default)]
struct MemoryLog {
    topics: Mutex<BTreeMap<String, i32>>,
    records: Mutex<Vec<ProducerRecord>>,
    /// Sizes of the successful appends, in order.
    appends: Mutex<Vec<usize>>,
    /// This many appends fail with a retryable I/O error before appends succeed again.
    failures: AtomicUsize,
}

impl MemoryLog {
    fn failing(failures: usize) -> Self {
        Self {
            failures: AtomicUsize::new(failures),
            ..Self::default()
        }
    }

    fn records(&self, topic: &str) -> Vec<ProducerRecord> {
        let records = self.records.lock().expect("lock");
        records.iter().filter(|r| r.topic == topic).cloned().collect()
    }

    fn appends(&self) -> Vec<usize> {
        self.appends.lock().expect("lock").clone()
    }

    fn unsupported<T>() -> retail_log::Result<T> {
        Err(retail_log::Error::Config(
            "not supported by the in-memory test log".to_owned(),
        ))
    }
}

#[async_trait]
impl Log for MemoryLog {
    async fn ensure_topic(&self, topic: &str, partitions: i32) -> retail_log::Result<()> {
        let mut topics = self.topics.lock().expect("lock");
        match topics.get(topic) {
            Some(&actual) if actual != partitions => Err(retail_log::Error::PartitionMismatch {
                topic: topic.to_owned(),
                expected: partitions,
                actual,
            }),
            _ => {
                topics.insert(topic.to_owned(), partitions);
                Ok(())
            }
        }
    }

    async fn partitions(&self, topic: &str) -> retail_log::Result<i32> {
        let topics = self.topics.lock().expect("lock");
        topics
            .get(topic)
            .copied()
            .ok_or_else(|| retail_log::Error::UnknownTopic(topic.to_owned()))
    }

    async fn append(&self, records: Vec<ProducerRecord>) -> retail_log::Result<Vec<RecordMetadata>> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
            .is_ok()
        {
            return Err(retail_log::Error::io(
                "memory",
                std::io::Error::other("injected failure"),
            ));
        }
        let topics = self.topics.lock().expect("lock");
        if let Some(r) = records.iter().find(|r| !topics.contains_key(&r.topic)) {
            return Err(retail_log::Error::UnknownTopic(r.topic.clone()));
        }
        let mut all = self.records.lock().expect("lock");
        let meta = records
            .iter()
            .enumerate()
            .map(|(i, r)| RecordMetadata {
                partition: 0,
                offset: (all.len() + i) as i64,
                timestamp_ms: r.timestamp_ms.unwrap_or(0),
            })
            .collect();
        self.appends.lock().expect("lock").push(records.len());
        all.extend(records);
        Ok(meta)
    }

    async fn watermarks(&self, _: &TopicPartition) -> retail_log::Result<(i64, i64)> {
        Self::unsupported()
    }

    async fn offset_for_timestamp(&self, _: &TopicPartition, _: i64) -> retail_log::Result<Option<i64>> {
        Self::unsupported()
    }

    async fn commit_offsets(&self, _: &str, _: &[(TopicPartition, i64)]) -> retail_log::Result<()> {
        Self::unsupported()
    }

    async fn committed_offsets(&self, _: &str, _: &[TopicPartition]) -> retail_log::Result<Vec<Option<i64>>> {
        Self::unsupported()
    }

    async fn consumer(&self, _: &str, _: &[&str]) -> retail_log::Result<Box<dyn Consumer>> {
        Self::unsupported()
    }
}

/// A small world so tests spend their time on the stream, not the catalog.
fn config(rate: f64, events: Option<u64>) -> GeneratorConfig {
    GeneratorConfig {
        rate,
        events,
        stores: 5,
        sellers_per_store: 2,
        skus: 100,
        ..GeneratorConfig::default()
    }
}

const CATALOG: usize = 5 + 5 * 2 + 100;

async fn run(source: GeneratorSource, log: &Arc<MemoryLog>) -> Result<GeneratorStats> {
    let log: Arc<dyn Log> = log.clone();
    source.run(log, Shutdown::new(), Metrics::new()).await
}

#[tokio::test(start_paused = true)]
async fn n_events_at_rate_r_take_n_over_r_of_virtual_time() {
    let log = Arc::new(MemoryLog::default());
    let source = GeneratorSource::new(&config(200.0, Some(1000))).expect("valid");
    let start = Instant::now();
    let stats = run(source, &log).await.expect("runs");
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        (4.95..=5.05).contains(&elapsed),
        "1000 events at 200/s took {elapsed} s of virtual time"
    );
    assert_eq!(log.records("sales").len(), 1000);
    assert_eq!(stats.generated, 1000);
    // Batched by tick: about two events per 10 ms append, not one append per event.
    let data_appends = log.appends().len() - 1;
    assert!((400..=600).contains(&data_appends), "{data_appends} appends");
}

#[tokio::test(start_paused = true)]
async fn pacing_holds_for_rates_that_do_not_divide_the_tick() {
    for (rate, n) in [
        (7.0, 70),
        (100.0, 1000),
        (333.3, 2000),
        (1234.5, 5000),
        (250_000.0, 100_000),
    ] {
        let log = Arc::new(MemoryLog::default());
        let source = GeneratorSource::new(&config(rate, Some(n))).expect("valid");
        let start = Instant::now();
        run(source, &log).await.expect("runs");
        let (elapsed, expected) = (start.elapsed().as_secs_f64(), n as f64 / rate);
        assert!(
            (elapsed - expected).abs() <= 0.011,
            "{n} events at {rate}/s took {elapsed} s, not {expected} s"
        );
        assert_eq!(log.records("sales").len() as u64, n);
    }
}

#[tokio::test(start_paused = true)]
async fn unlimited_rate_appends_full_group_commit_batches_without_waiting() {
    let log = Arc::new(MemoryLog::default());
    let source = GeneratorSource::new(&config(f64::INFINITY, Some(10_000))).expect("valid");
    let start = Instant::now();
    run(source, &log).await.expect("runs");
    assert!(start.elapsed() < TICK, "no pacing at an unlimited rate");
    assert_eq!(log.appends(), vec![CATALOG, 2000, 2000, 2000, 2000, 2000]);
}

#[tokio::test(start_paused = true)]
async fn appends_the_catalog_first_then_exactly_n_events_and_reports_exact_stats() {
    let log = Arc::new(MemoryLog::default());
    let c = GeneratorConfig {
        duplicate_fraction: 0.05,
        malformed_fraction: 0.02,
        late_fraction: 0.01,
        out_of_order_fraction: 0.05,
        ..config(f64::INFINITY, Some(5000))
    };
    let source = GeneratorSource::new(&c).expect("valid");
    let handle = source.handle();
    let metrics = Metrics::new();
    let dyn_log: Arc<dyn Log> = log.clone();
    let stats = source
        .run(dyn_log, Shutdown::new(), metrics.clone())
        .await
        .expect("runs");

    let all = log.records.lock().expect("lock").clone();
    assert!(
        all[..CATALOG].iter().all(|r| r.topic == "catalog"),
        "catalog first"
    );
    assert_eq!(log.records("catalog").len(), CATALOG);
    let sales = log.records("sales");
    assert_eq!(sales.len(), 5000);
    assert_eq!(
        log.topics.lock().expect("lock").clone(),
        BTreeMap::from([("catalog".into(), 4), ("sales".into(), 4)])
    );

    let ids: HashSet<Uuid> = sales
        .iter()
        .filter_map(|r| decode(&r.value).ok())
        .map(|e| e.event_id)
        .collect();
    let invalid = sales.iter().filter(|r| decode(&r.value).is_err()).count() as u64;
    assert_eq!(stats.distinct, ids.len() as u64);
    assert_eq!(stats.malformed, invalid);
    assert_eq!(stats.appended, (CATALOG + 5000) as u64);
    assert_eq!((stats.catalog, stats.generated), (CATALOG as u64, 5000));
    assert_eq!(handle.stats(), stats, "the handle shows the final stats");

    let text = metrics.render();
    let total = CATALOG + 5000;
    // Received counts the data events generated (what `demo` reports as `generated=`);
    // accepted counts every record on the log, catalog included.
    assert!(
        text.contains("retail_source_received_events_total{source=\"generator\"} 5000"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "retail_source_accepted_events_total{{source=\"generator\"}} {total}"
        )),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn rate_changes_and_pause_take_effect_at_runtime() {
    let log = Arc::new(MemoryLog::default());
    let source = GeneratorSource::new(&config(100.0, None)).expect("valid");
    let handle = source.handle();
    let health = Health::new();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(source.with_health(health.clone()).run(
        log.clone(),
        shutdown.clone(),
        Metrics::new(),
    ));
    let generated = || handle.stats().generated;
    let second = Duration::from_secs(1);

    tokio::time::sleep(second).await;
    let at_100 = generated();
    assert!(
        (98..=101).contains(&at_100),
        "{at_100} in the first second at 100/s"
    );
    assert_eq!(health.snapshot()["generator"].state, State::Running);

    handle.set_rate(1000.0).expect("valid rate");
    assert_eq!(handle.rate(), 1000.0);
    tokio::time::sleep(second).await;
    let at_1000 = generated() - at_100;
    assert!((990..=1010).contains(&at_1000), "{at_1000} in a second at 1000/s");

    handle.pause();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let paused_at = generated();
    assert!(handle.is_paused());
    tokio::time::sleep(10 * second).await;
    assert_eq!(generated(), paused_at, "nothing while paused");
    assert_eq!(health.snapshot()["generator"].state, State::Paused);

    handle.resume();
    tokio::time::sleep(second).await;
    let resumed = generated() - paused_at;
    assert!(
        (990..=1010).contains(&resumed),
        "{resumed} in a second after resuming, no catch-up burst"
    );

    shutdown.trigger();
    let stats = task.await.expect("joins").expect("runs");
    assert_eq!(stats.appended as usize, log.records.lock().expect("lock").len());
    assert_eq!(stats, handle.stats());
}

#[test]
fn live_stats_read_back_what_was_published() {
    let stats = GeneratorStats {
        catalog: 1,
        generated: 2,
        appended: 3,
        sales: 4,
        returns: 5,
        duplicates: 6,
        malformed: 7,
        out_of_order: 8,
        late: 9,
        distinct: 10,
        orders: 11,
        fraud_hourly_total: 12,
        restocks: 13,
        ..GeneratorStats::default()
    };
    let live = LiveStats::default();
    live.publish(&stats);
    assert_eq!(live.snapshot(), stats);
}

#[tokio::test(start_paused = true)]
async fn invalid_rates_are_refused() {
    let source = GeneratorSource::new(&config(10.0, None)).expect("valid");
    let handle = source.handle();
    for bad in [-1.0, f64::NAN, f64::NEG_INFINITY] {
        assert!(handle.set_rate(bad).is_err(), "{bad}");
    }
    assert_eq!(handle.rate(), 10.0);
}

#[tokio::test(start_paused = true)]
async fn rate_zero_produces_nothing_until_a_rate_is_set() {
    let log = Arc::new(MemoryLog::default());
    let source = GeneratorSource::new(&config(0.0, Some(100))).expect("valid");
    let handle = source.handle();
    let dyn_log: Arc<dyn Log> = log.clone();
    let task = tokio::spawn(source.run(dyn_log, Shutdown::new(), Metrics::new()));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        handle.stats().generated,
        0,
        "rate 0 means no events, not unlimited"
    );
    assert_eq!(log.records(topics::SALES).len(), 0);
    handle.set_rate(f64::INFINITY).expect("unlimited is a valid rate");
    let stats = task.await.expect("task").expect("runs");
    assert_eq!(stats.generated, 100);
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_between_batches() {
    let log = Arc::new(MemoryLog::default());
    let source = GeneratorSource::new(&config(100.0, None)).expect("valid");
    let shutdown = Shutdown::new();
    let task = tokio::spawn(source.run(log.clone(), shutdown.clone(), Metrics::new()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.trigger();
    let stats = task.await.expect("joins").expect("runs");
    assert!((48..=51).contains(&stats.generated), "{}", stats.generated);
    assert_eq!(
        log.records("sales").len() as u64,
        stats.generated,
        "everything generated was appended"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_append_is_retried_whole_and_nothing_is_skipped() {
    let c = GeneratorConfig {
        duplicate_fraction: 0.05,
        malformed_fraction: 0.01,
        ..config(f64::INFINITY, Some(6000))
    };
    let clock = Arc::new(ManualClock::new(1_740_830_400_000));
    // The first append (the catalog) fails twice.
    let log = Arc::new(MemoryLog::failing(2));
    let source = GeneratorSource::with_clock(&c, clock.clone()).expect("valid");
    let health = Health::new();
    let source = source.with_health(health.clone());
    let start = Instant::now();
    let stats = run(source, &log).await.expect("runs");
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "backed off 50 + 100 ms"
    );

    let expected: Vec<ProducerRecord> = EventGenerator::with_clock(&c, clock)
        .expect("valid")
        .map(|g| g.record)
        .collect();
    assert!(
        *log.records.lock().expect("lock") == expected,
        "the same records, in order, none lost or doubled"
    );
    assert_eq!(stats.appended as usize, expected.len());
    assert_eq!(health.snapshot()["generator"].state, State::Done);
}

#[tokio::test(start_paused = true)]
async fn a_retried_batch_is_byte_identical_even_on_a_moving_clock() {
    // A log that fails every other append and keeps every batch it was offered.
    #[derive(Debug, Default)]
    struct Flaky {
        inner: MemoryLog,
        offered: Mutex<Vec<Vec<ProducerRecord>>>,
    }
    #[async_trait]
    impl Log for Flaky {
        async fn ensure_topic(&self, topic: &str, partitions: i32) -> retail_log::Result<()> {
            self.inner.ensure_topic(topic, partitions).await
        }
        async fn partitions(&self, topic: &str) -> retail_log::Result<i32> {
            self.inner.partitions(topic).await
        }
        async fn append(&self, records: Vec<ProducerRecord>) -> retail_log::Result<Vec<RecordMetadata>> {
            let call = {
                let mut offered = self.offered.lock().expect("lock");
                offered.push(records.clone());
                offered.len() - 1
            };
            if call % 2 == 1 {
                return Err(retail_log::Error::io(
                    "flaky",
                    std::io::Error::other("every other call"),
                ));
            }
            self.inner.append(records).await
        }
        async fn watermarks(&self, tp: &TopicPartition) -> retail_log::Result<(i64, i64)> {
            self.inner.watermarks(tp).await
        }
        async fn offset_for_timestamp(
            &self,
            tp: &TopicPartition,
            ts: i64,
        ) -> retail_log::Result<Option<i64>> {
            self.inner.offset_for_timestamp(tp, ts).await
        }
        async fn commit_offsets(&self, g: &str, o: &[(TopicPartition, i64)]) -> retail_log::Result<()> {
            self.inner.commit_offsets(g, o).await
        }
        async fn committed_offsets(
            &self,
            g: &str,
            t: &[TopicPartition],
        ) -> retail_log::Result<Vec<Option<i64>>> {
            self.inner.committed_offsets(g, t).await
        }
        async fn consumer(&self, g: &str, t: &[&str]) -> retail_log::Result<Box<dyn Consumer>> {
            self.inner.consumer(g, t).await
        }
    }

    let plain = GeneratorConfig {
        duplicate_fraction: 0.1,
        malformed_fraction: 0.05,
        ..config(1000.0, Some(3000))
    };
    // With orders and stock the batch is kept and resent, not regenerated from a rewind.
    let shop = GeneratorConfig {
        commerce: crate::generator::CommerceConfig {
            order_fraction: 0.3,
            fraud_fraction: 0.05,
            ..Default::default()
        },
        stock: crate::generator::StockConfig {
            series_per_store: 5,
            ..Default::default()
        },
        simulated_span_hours: Some(72.0),
        ..plain.clone()
    };
    for c in [plain, shop] {
        let flaky = Arc::new(Flaky::default());
        let clock = Arc::new(TickingClock(1_740_830_400_000.into()));
        let source = GeneratorSource::with_clock(&c, clock).expect("valid");
        let stats = source
            .run(flaky.clone(), Shutdown::new(), Metrics::new())
            .await
            .expect("runs");
        let offered = flaky.offered.lock().expect("lock").clone();
        assert!(offered.len() > 100);
        for (i, pair) in offered.windows(2).enumerate().filter(|(i, _)| i % 2 == 1) {
            assert!(pair[0] == pair[1], "attempt {i} and its retry differ");
        }
        let data: Vec<ProducerRecord> = [topics::SALES, topics::ORDERS, topics::PAYMENTS, topics::INVENTORY]
            .into_iter()
            .flat_map(|t| flaky.inner.records(t))
            .collect();
        assert_eq!(data.len(), 3000);
        assert_eq!(stats.generated, 3000);
        if c.commerce_on() {
            assert!(
                stats.orders > 0 && stats.payments > 0 && stats.inventory > 0,
                "{stats:?}"
            );
            let orders = flaky.inner.records(topics::ORDERS).len() as u64;
            assert!(orders >= stats.orders, "duplicates come on top");
        }
        let ids: Vec<Uuid> = data
            .iter()
            .filter_map(|r| decode(&r.value).ok())
            .map(|e| e.event_id)
            .collect();
        assert_eq!(
            ids.iter().collect::<HashSet<_>>().len() as u64,
            stats.distinct,
            "nothing doubled by the retries"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_non_retryable_log_error_ends_the_task() {
    let log = Arc::new(MemoryLog::default());
    log.ensure_topic("sales", 2).await.expect("pre-existing topic");
    let source = GeneratorSource::new(&config(f64::INFINITY, Some(10))).expect("valid");
    let health = Health::new();
    let error = run(source.with_health(health.clone()), &log)
        .await
        .expect_err("partition mismatch");
    assert!(
        matches!(error, Error::Log(retail_log::Error::PartitionMismatch { .. })),
        "{error}"
    );
    assert!(!error.is_retryable());
    assert_eq!(health.snapshot()["generator"].state, State::Failed);
    assert!(log.records("sales").is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_while_the_log_is_down_returns_without_losing_count() {
    let log = Arc::new(MemoryLog::failing(usize::MAX));
    let source = GeneratorSource::new(&config(f64::INFINITY, Some(10))).expect("valid");
    let shutdown = Shutdown::new();
    let task = tokio::spawn(source.run(log.clone(), shutdown.clone(), Metrics::new()));
    tokio::time::sleep(Duration::from_secs(30)).await;
    shutdown.trigger();
    let stats = task.await.expect("joins").expect("stops cleanly");
    assert_eq!(stats.appended, 0, "nothing reached the log, and the stats say so");
}

/// Throughput of the whole source task against a log that keeps nothing: run with
/// `cargo test -p retail-source --release -- --ignored --nocapture source_throughput`.
#[tokio::test]
#[ignore = "benchmark; run in release with --nocapture"]
async fn source_throughput() {
    #[derive(Debug)]
    struct Discard(MemoryLog);
    #[async_trait]
    impl Log for Discard {
        async fn ensure_topic(&self, topic: &str, partitions: i32) -> retail_log::Result<()> {
            self.0.ensure_topic(topic, partitions).await
        }
        async fn partitions(&self, topic: &str) -> retail_log::Result<i32> {
            self.0.partitions(topic).await
        }
        async fn append(&self, records: Vec<ProducerRecord>) -> retail_log::Result<Vec<RecordMetadata>> {
            Ok(vec![
                RecordMetadata {
                    partition: 0,
                    offset: 0,
                    timestamp_ms: 0
                };
                records.len()
            ])
        }
        async fn watermarks(&self, tp: &TopicPartition) -> retail_log::Result<(i64, i64)> {
            self.0.watermarks(tp).await
        }
        async fn offset_for_timestamp(
            &self,
            tp: &TopicPartition,
            ts: i64,
        ) -> retail_log::Result<Option<i64>> {
            self.0.offset_for_timestamp(tp, ts).await
        }
        async fn commit_offsets(&self, g: &str, o: &[(TopicPartition, i64)]) -> retail_log::Result<()> {
            self.0.commit_offsets(g, o).await
        }
        async fn committed_offsets(
            &self,
            g: &str,
            t: &[TopicPartition],
        ) -> retail_log::Result<Vec<Option<i64>>> {
            self.0.committed_offsets(g, t).await
        }
        async fn consumer(&self, g: &str, t: &[&str]) -> retail_log::Result<Box<dyn Consumer>> {
            self.0.consumer(g, t).await
        }
    }
    let n = 1_000_000;
    let source = GeneratorSource::new(&GeneratorConfig {
        rate: f64::INFINITY,
        events: Some(n),
        ..Default::default()
    })
    .expect("valid");
    let start = std::time::Instant::now();
    let log = Arc::new(Discard(MemoryLog::default()));
    source
        .run(log, Shutdown::new(), Metrics::new())
        .await
        .expect("runs");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "source task, unlimited rate, discarding log: {n} events in {secs:.3} s = {:.0} events/s",
        n as f64 / secs
    );
}
