//! Every metric the pipeline exports, in one registry.
//!
//! Names follow `retail_<name>_<unit>[_total]` (the `retail_` prefix comes from the registry,
//! `_total` is added to counters by the encoder). Each component counts what it received,
//! passed on and rejected. Hot paths clone a labelled handle once (handles are `Arc`s) and then
//! increment without a lock.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Label set: a few `(name, value)` pairs.
pub type Labels = Vec<(&'static str, String)>;

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Latency buckets, in seconds: fine below the 5 s objective, coarse above it.
const LATENCY_BUCKETS: [f64; 20] = [
    0.005, 0.01, 0.02, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.75, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0,
    30.0, 60.0,
];
const TXN_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn txn_histogram() -> Histogram {
    Histogram::new(TXN_BUCKETS)
}

/// The pipeline's metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    source_received: Family<Labels, Counter>,
    source_accepted: Family<Labels, Counter>,
    source_rejected: Family<Labels, Counter>,
    log_appended_records: Family<Labels, Counter>,
    log_appended_bytes: Family<Labels, Counter>,
    log_end_offset: Family<Labels, Gauge>,
    log_size_bytes: Family<Labels, Gauge>,
    consumer_lag: Family<Labels, Gauge>,
    landing_batches: Counter,
    landing_retries: Counter,
    landing_rows: Family<Labels, Counter>,
    landing_duplicates: Family<Labels, Counter>,
    landing_txn_seconds: Histogram,
    dead_letters: Family<Labels, Counter>,
    late_events: Family<Labels, Counter>,
    join_misses: Family<Labels, Counter>,
    watermark: Family<Labels, Gauge<f64, AtomicU64>>,
    event_to_store_seconds: HistogramFamily,
    uptime_seconds: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Builds and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("retail");
        let source_received = Family::default();
        let source_accepted = Family::default();
        let source_rejected = Family::default();
        let log_appended_records = Family::default();
        let log_appended_bytes = Family::default();
        let log_end_offset = Family::default();
        let log_size_bytes = Family::default();
        let consumer_lag = Family::default();
        let landing_batches = Counter::default();
        let landing_retries = Counter::default();
        let landing_rows = Family::default();
        let landing_duplicates = Family::default();
        let landing_txn_seconds = txn_histogram();
        let dead_letters = Family::default();
        let late_events = Family::default();
        let join_misses = Family::default();
        let watermark = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let event_to_store_seconds = HistogramFamily::new_with_constructor(latency_histogram);
        let uptime_seconds = Gauge::default();

        let r = &mut registry;
        r.register(
            "source_received_events",
            "Events a source received, good or bad",
            source_received.clone(),
        );
        r.register(
            "source_accepted_events",
            "Events a source appended to the log",
            source_accepted.clone(),
        );
        r.register(
            "source_rejected_events",
            "Events a source rejected",
            source_rejected.clone(),
        );
        r.register(
            "log_appended_records",
            "Records durably appended to the log",
            log_appended_records.clone(),
        );
        r.register_with_unit(
            "log_appended",
            "Bytes durably appended to the log",
            Unit::Bytes,
            log_appended_bytes.clone(),
        );
        r.register(
            "log_end_offset",
            "Next offset to be written, per partition",
            log_end_offset.clone(),
        );
        r.register_with_unit(
            "log_size",
            "Bytes on disk, per topic",
            Unit::Bytes,
            log_size_bytes.clone(),
        );
        r.register(
            "consumer_lag_records",
            "Records not yet landed, per partition",
            consumer_lag.clone(),
        );
        r.register(
            "landing_batches",
            "Store transactions committed by the landing",
            landing_batches.clone(),
        );
        r.register(
            "landing_retries",
            "Store transactions retried after a failure",
            landing_retries.clone(),
        );
        r.register(
            "landing_rows",
            "Rows landed in the store, per table",
            landing_rows.clone(),
        );
        r.register(
            "landing_duplicates",
            "Events skipped because their event_id had already landed",
            landing_duplicates.clone(),
        );
        r.register_with_unit(
            "landing_transaction",
            "Duration of one landing store transaction",
            Unit::Seconds,
            landing_txn_seconds.clone(),
        );
        r.register(
            "dead_letters",
            "Inputs sent to the dead-letter path, by stage and kind",
            dead_letters.clone(),
        );
        r.register(
            "late_events",
            "Events that arrived after their window closed, by aggregate and reason (recorded in late_events, or applied as a correction)",
            late_events.clone(),
        );
        r.register(
            "join_misses",
            "Events aggregated with an unknown catalog row (city, seller...), by topic",
            join_misses.clone(),
        );
        r.register_with_unit(
            "event_time_watermark_timestamp",
            "Combined event-time watermark of a consumer group (windows ending before it, plus grace, are final), as a Unix time",
            Unit::Seconds,
            watermark.clone(),
        );
        r.register_with_unit(
            "event_to_store_latency",
            "From event time to committed in the store",
            Unit::Seconds,
            event_to_store_seconds.clone(),
        );
        r.register_with_unit(
            "uptime",
            "Seconds since the process started",
            Unit::Seconds,
            uptime_seconds.clone(),
        );
        let build_info: Family<Labels, Gauge> = Family::default();
        build_info
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_owned())])
            .set(1);
        r.register("build_info", "Build information", build_info);

        Self {
            inner: Arc::new(Inner {
                registry,
                source_received,
                source_accepted,
                source_rejected,
                log_appended_records,
                log_appended_bytes,
                log_end_offset,
                log_size_bytes,
                consumer_lag,
                landing_batches,
                landing_retries,
                landing_rows,
                landing_duplicates,
                landing_txn_seconds,
                dead_letters,
                late_events,
                join_misses,
                watermark,
                event_to_store_seconds,
                uptime_seconds,
            }),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }

    /// Per source: events received (before validation).
    pub fn source_received(&self, source: &str) -> Counter {
        self.inner
            .source_received
            .get_or_create(&vec![("source", source.to_owned())])
            .clone()
    }

    /// Per source: events appended to the log.
    pub fn source_accepted(&self, source: &str) -> Counter {
        self.inner
            .source_accepted
            .get_or_create(&vec![("source", source.to_owned())])
            .clone()
    }

    /// Per source: events rejected at the source.
    pub fn source_rejected(&self, source: &str) -> Counter {
        self.inner
            .source_rejected
            .get_or_create(&vec![("source", source.to_owned())])
            .clone()
    }

    /// Per topic: records appended.
    pub fn log_appended_records(&self, topic: &str) -> Counter {
        self.inner
            .log_appended_records
            .get_or_create(&vec![("topic", topic.to_owned())])
            .clone()
    }

    /// Per topic: bytes appended.
    pub fn log_appended_bytes(&self, topic: &str) -> Counter {
        self.inner
            .log_appended_bytes
            .get_or_create(&vec![("topic", topic.to_owned())])
            .clone()
    }

    /// Per partition: next offset to be written.
    pub fn log_end_offset(&self, topic: &str, partition: i32) -> Gauge {
        let labels = vec![("topic", topic.to_owned()), ("partition", partition.to_string())];
        self.inner.log_end_offset.get_or_create(&labels).clone()
    }

    /// Per topic: bytes on disk.
    pub fn log_size_bytes(&self, topic: &str) -> Gauge {
        self.inner
            .log_size_bytes
            .get_or_create(&vec![("topic", topic.to_owned())])
            .clone()
    }

    /// Per consumer group and partition: records behind the end of the log.
    pub fn consumer_lag(&self, group: &str, topic: &str, partition: i32) -> Gauge {
        let labels = vec![
            ("group", group.to_owned()),
            ("topic", topic.to_owned()),
            ("partition", partition.to_string()),
        ];
        self.inner.consumer_lag.get_or_create(&labels).clone()
    }

    /// Landing transactions committed.
    pub fn landing_batches(&self) -> Counter {
        self.inner.landing_batches.clone()
    }

    /// Landing transactions retried.
    pub fn landing_retries(&self) -> Counter {
        self.inner.landing_retries.clone()
    }

    /// Per table: rows landed.
    pub fn landing_rows(&self, table: &str) -> Counter {
        self.inner
            .landing_rows
            .get_or_create(&vec![("table", table.to_owned())])
            .clone()
    }

    /// Per table: duplicates skipped.
    pub fn landing_duplicates(&self, table: &str) -> Counter {
        self.inner
            .landing_duplicates
            .get_or_create(&vec![("table", table.to_owned())])
            .clone()
    }

    /// Landing transaction durations.
    pub fn landing_txn_seconds(&self) -> Histogram {
        self.inner.landing_txn_seconds.clone()
    }

    /// Dead letters by stage (`source`, `landing`) and kind (`malformed_json`, ...).
    pub fn dead_letters(&self, stage: &str, kind: &str) -> Counter {
        self.inner
            .dead_letters
            .get_or_create(&vec![("stage", stage.to_owned()), ("kind", kind.to_owned())])
            .clone()
    }

    /// Late events by aggregate and reason (`recorded`, `applied`).
    pub fn late_events(&self, aggregate: &str, reason: &str) -> Counter {
        self.inner
            .late_events
            .get_or_create(&vec![
                ("aggregate", aggregate.to_owned()),
                ("reason", reason.to_owned()),
            ])
            .clone()
    }

    /// Events aggregated although a catalog row they join was missing, by topic.
    pub fn join_misses(&self, topic: &str) -> Counter {
        self.inner
            .join_misses
            .get_or_create(&vec![("topic", topic.to_owned())])
            .clone()
    }

    /// The combined event-time watermark of a consumer group, Unix seconds.
    pub fn event_time_watermark(&self, group: &str) -> Gauge<f64, AtomicU64> {
        self.inner
            .watermark
            .get_or_create(&vec![("group", group.to_owned())])
            .clone()
    }

    /// Per table: event time to store commit.
    pub fn event_to_store_seconds(&self, table: &str) -> Histogram {
        self.inner
            .event_to_store_seconds
            .get_or_create(&vec![("table", table.to_owned())])
            .clone()
    }

    /// Process uptime gauge, set by the server before each scrape.
    pub fn uptime_seconds(&self) -> Gauge<f64, AtomicU64> {
        self.inner.uptime_seconds.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_prefix_unit_and_total() {
        let m = Metrics::new();
        m.source_received("generator").inc_by(3);
        m.event_to_store_seconds("sales_raw").observe(0.2);
        let text = m.render();
        assert!(
            text.contains("retail_source_received_events_total{source=\"generator\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("retail_event_to_store_latency_seconds_count{table=\"sales_raw\"} 1"),
            "{text}"
        );
        assert!(text.contains("retail_build_info{version="), "{text}");
    }
}
