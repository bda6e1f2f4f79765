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

use crate::health::State;

/// Label set: a few `(name, value)` pairs.
pub type Labels = Vec<(&'static str, String)>;

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Latency buckets, in seconds: fine below the 5 s objective, coarse above it.
const LATENCY_BUCKETS: [f64; 20] = [
    0.005, 0.01, 0.02, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.75, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0,
    30.0, 60.0,
];
/// HTTP answer times, in seconds: API reads and scrapes take milliseconds.
const HTTP_BUCKETS: [f64; 10] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];

/// At most this many distinct `source` values per table in the latency histogram: the value
/// comes from the event, so an unbounded set of sources must not grow the exposition without
/// limit. Later ones are counted under `other`.
pub const MAX_LATENCY_SOURCES: usize = 32;

const BUILD_PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

const TXN_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
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
    http_requests: Family<Labels, Counter>,
    http_request_seconds: HistogramFamily,
    component_state: Family<Labels, Gauge>,
    resident_memory_bytes: Gauge,
    uptime_seconds: Gauge<f64, AtomicU64>,
    lineage_events: Family<Labels, Counter>,
    lineage_failures: Family<Labels, Counter>,
    notifications: Family<Labels, Counter>,
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
        let http_requests = Family::default();
        let http_request_seconds = HistogramFamily::new_with_constructor(http_histogram);
        let component_state = Family::default();
        let resident_memory_bytes = Gauge::default();
        let lineage_events = Family::default();
        let lineage_failures = Family::default();
        let notifications = Family::default();
        let start_time_seconds = Gauge::<f64, AtomicU64>::default();
        // Set once here: a metrics registry lives as long as the process that exports it.
        start_time_seconds.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );

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
            "Next offset to be written, per partition (a position counted in records)",
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
            "From event time to committed in the store, per table and producing source (objective: p95 under 5 s)",
            Unit::Seconds,
            event_to_store_seconds.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests answered, by method, matched route and status code",
            http_requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request (until the response head), by method and matched route",
            Unit::Seconds,
            http_request_seconds.clone(),
        );
        r.register(
            "component_state",
            "1 for the state each component is in now, 0 for the others; kind is source, landing or other",
            component_state.clone(),
        );
        r.register_with_unit(
            "process_resident_memory",
            "Resident memory of the process (VmRSS)",
            Unit::Bytes,
            resident_memory_bytes.clone(),
        );
        r.register_with_unit(
            "process_start_time",
            "Start time of the process, as a Unix time",
            Unit::Seconds,
            start_time_seconds,
        );
        r.register_with_unit(
            "uptime",
            "Seconds since the process started",
            Unit::Seconds,
            uptime_seconds.clone(),
        );
        r.register(
            "lineage_events",
            "OpenLineage run events delivered to the configured endpoint or file, by event type",
            lineage_events.clone(),
        );
        r.register(
            "lineage_failures",
            "OpenLineage run events lost: the endpoint or file refused them (transport) or the queue was full (dropped)",
            lineage_failures.clone(),
        );
        r.register(
            "notifications",
            "Notification delivery attempts, by channel and outcome (sent, retried, dead)",
            notifications.clone(),
        );
        let build_info: Family<Labels, Gauge> = Family::default();
        build_info
            .get_or_create(&vec![
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ("profile", BUILD_PROFILE.to_owned()),
            ])
            .set(1);
        r.register(
            "build_info",
            "Always 1; the labels say which version and build profile runs",
            build_info,
        );

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
                http_requests,
                http_request_seconds,
                component_state,
                resident_memory_bytes,
                uptime_seconds,
                lineage_events,
                lineage_failures,
                notifications,
            }),
        }
    }

    /// The OpenMetrics 1.0 text exposition of every metric (what Prometheus asks for).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.inner.registry);
        out
    }

    /// The Prometheus text format 0.0.4 exposition of every metric, for clients that do not
    /// ask for OpenMetrics (curl, promtool). See [`openmetrics_to_text`].
    pub fn render_text(&self) -> String {
        openmetrics_to_text(&self.render())
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

    /// Per table and producing source: event time to store commit. Prefer
    /// [`Self::event_to_store`] on hot paths.
    pub fn event_to_store_seconds(&self, table: &str, source: &str) -> Histogram {
        self.inner
            .event_to_store_seconds
            .get_or_create(&vec![("table", table.to_owned()), ("source", source.to_owned())])
            .clone()
    }

    /// A per-table latency recorder that keeps its per-source histograms, for one writer.
    pub fn event_to_store(&self, table: &str) -> EventToStore {
        EventToStore {
            metrics: self.clone(),
            table: table.to_owned(),
            by_source: Vec::new(),
        }
    }

    /// Per method, matched route and status: HTTP requests answered.
    pub fn http_requests(&self, method: &str, route: &str, status: u16) -> Counter {
        self.inner
            .http_requests
            .get_or_create(&vec![
                ("method", method.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ])
            .clone()
    }

    /// Per method and matched route: time to answer.
    pub fn http_request_seconds(&self, method: &str, route: &str) -> Histogram {
        self.inner
            .http_request_seconds
            .get_or_create(&vec![("method", method.to_owned()), ("route", route.to_owned())])
            .clone()
    }

    /// Sets `retail_component_state` from a health snapshot: 1 for each component's current
    /// state, 0 for its other states (so a rule can read a state that is absent as 0).
    /// `kind_of` names the component's kind (`source`, `landing`, `other`).
    pub fn set_component_states<'a>(
        &self,
        components: impl IntoIterator<Item = (&'a str, State)>,
        kind_of: impl Fn(&str) -> &'static str,
    ) {
        for (component, now) in components {
            let kind = kind_of(component);
            for state in State::ALL {
                let labels = vec![
                    ("component", component.to_owned()),
                    ("kind", kind.to_owned()),
                    ("state", state.as_str().to_owned()),
                ];
                self.inner
                    .component_state
                    .get_or_create(&labels)
                    .set(i64::from(state == now));
            }
        }
    }

    /// Resident memory gauge, set by the server before each scrape.
    pub fn resident_memory_bytes(&self) -> Gauge {
        self.inner.resident_memory_bytes.clone()
    }

    /// OpenLineage events delivered, by event type (`START`, `RUNNING`, `COMPLETE`, `FAIL`).
    pub fn lineage_events(&self, event_type: &str) -> Counter {
        self.inner
            .lineage_events
            .get_or_create(&vec![("event_type", event_type.to_owned())])
            .clone()
    }

    /// OpenLineage events lost, by reason (`transport`, `dropped`).
    pub fn lineage_failures(&self, reason: &str) -> Counter {
        self.inner
            .lineage_failures
            .get_or_create(&vec![("reason", reason.to_owned())])
            .clone()
    }

    /// Notification delivery attempts, by channel and outcome (`sent`, `retried`, `dead`).
    pub fn notifications(&self, channel: &str, outcome: &str) -> Counter {
        self.inner
            .notifications
            .get_or_create(&vec![
                ("channel", channel.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .clone()
    }

    /// Process uptime gauge, set by the server before each scrape.
    pub fn uptime_seconds(&self) -> Gauge<f64, AtomicU64> {
        self.inner.uptime_seconds.clone()
    }
}

/// Records event-to-store latency for one table, keeping a handle per source so the hot path
/// takes the family's lock only the first time it sees a source.
#[derive(Debug)]
pub struct EventToStore {
    metrics: Metrics,
    table: String,
    by_source: Vec<(String, Histogram)>,
}

impl EventToStore {
    /// Observes one event's latency in seconds.
    pub fn observe(&mut self, source: &str, seconds: f64) {
        if let Some((_, h)) = self.by_source.iter().find(|(s, _)| s == source) {
            h.observe(seconds);
            return;
        }
        let label = if self.by_source.len() < MAX_LATENCY_SOURCES {
            source
        } else {
            "other"
        };
        let h = self.metrics.event_to_store_seconds(&self.table, label);
        h.observe(seconds);
        if label == source {
            self.by_source.push((source.to_owned(), h));
        }
    }
}

/// Rewrites an OpenMetrics 1.0 exposition as Prometheus text format 0.0.4.
///
/// prometheus-client only encodes OpenMetrics, whose counter families are named without
/// `_total` (`# TYPE retail_dead_letters counter`, samples `retail_dead_letters_total`).
/// Prometheus reads that fine when it asks for OpenMetrics, but in the 0.0.4 format the
/// family must carry the sample's name, and promtool `check metrics` (2.42, Debian 12) reads
/// only 0.0.4 and rejects such families ("no help text"). So: counter families get `_total`
/// in their HELP and TYPE lines, `# UNIT` and `# EOF` are dropped; samples are unchanged.
pub fn openmetrics_to_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // The HELP line waits until its TYPE line says whether the family is a counter.
    let mut pending_help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some(help) = pending_help.replace(rest) {
                push_line(&mut out, &["# HELP ", help]);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let suffix = if kind == "counter" && !name.ends_with("_total") {
                "_total"
            } else {
                ""
            };
            if let Some(help) = pending_help.take() {
                let (help_name, text) = help.split_once(' ').unwrap_or((help, ""));
                if help_name == name {
                    push_line(&mut out, &["# HELP ", name, suffix, " ", text]);
                } else {
                    push_line(&mut out, &["# HELP ", help]);
                }
            }
            push_line(&mut out, &["# TYPE ", name, suffix, " ", kind]);
            continue;
        }
        if let Some(help) = pending_help.take() {
            push_line(&mut out, &["# HELP ", help]);
        }
        push_line(&mut out, &[line]);
    }
    if let Some(help) = pending_help {
        push_line(&mut out, &["# HELP ", help]);
    }
    out
}

fn push_line(out: &mut String, parts: &[&str]) {
    for p in parts {
        out.push_str(p);
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_prefix_unit_and_total() {
        let m = Metrics::new();
        m.source_received("generator").inc_by(3);
        m.event_to_store("sales_raw").observe("pos", 0.2);
        let text = m.render();
        assert!(
            text.contains("retail_source_received_events_total{source=\"generator\"} 3"),
            "{text}"
        );
        assert!(
            text.contains(
                "retail_event_to_store_latency_seconds_count{table=\"sales_raw\",source=\"pos\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("retail_build_info{version="), "{text}");
    }

    #[test]
    fn text_format_names_counter_families_with_total_and_drops_openmetrics_only_lines() {
        let m = Metrics::new();
        m.dead_letters("landing", "malformed_json").inc();
        m.log_appended_bytes("sales").inc_by(10);
        let text = m.render_text();
        assert!(text.contains("# HELP retail_dead_letters_total Inputs"), "{text}");
        assert!(
            text.contains("# TYPE retail_dead_letters_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE retail_log_appended_bytes_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE retail_consumer_lag_records gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE retail_event_to_store_latency_seconds histogram\n"),
            "{text}"
        );
        assert!(!text.contains("# UNIT"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
        // Every family still has exactly one HELP and one TYPE line, in that order.
        let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(helps, types, "{text}");
    }

    #[test]
    fn text_conversion_keeps_a_help_line_whose_type_line_never_comes() {
        let text =
            openmetrics_to_text("# HELP a_x A.\n# HELP b_y B.\n# TYPE b_y counter\nb_y_total 1\n# EOF\n");
        assert_eq!(
            text,
            "# HELP a_x A.\n# HELP b_y_total B.\n# TYPE b_y_total counter\nb_y_total 1\n"
        );
    }

    #[test]
    fn latency_sources_beyond_the_cap_count_as_other() {
        let m = Metrics::new();
        let mut rec = m.event_to_store("sales_raw");
        for i in 0..MAX_LATENCY_SOURCES + 5 {
            rec.observe(&format!("s{i}"), 0.1);
        }
        rec.observe("s0", 0.1);
        let text = m.render();
        let series = text
            .lines()
            .filter(|l| l.starts_with("retail_event_to_store_latency_seconds_count"))
            .count();
        assert_eq!(series, MAX_LATENCY_SOURCES + 1, "{text}");
        assert!(
            text.contains(
                "retail_event_to_store_latency_seconds_count{table=\"sales_raw\",source=\"other\"} 5"
            ),
            "{text}"
        );
        assert!(
            text.contains("retail_event_to_store_latency_seconds_count{table=\"sales_raw\",source=\"s0\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn component_states_mark_the_current_one() {
        let m = Metrics::new();
        m.set_component_states([("generator", State::Running)], |_| "source");
        m.set_component_states([("generator", State::Paused)], |_| "source");
        let text = m.render();
        assert!(
            text.contains(
                "retail_component_state{component=\"generator\",kind=\"source\",state=\"paused\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "retail_component_state{component=\"generator\",kind=\"source\",state=\"running\"} 0"
            ),
            "{text}"
        );
    }
}
