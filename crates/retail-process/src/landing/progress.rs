//! What the landing has done so far, shared with the binary (summary, `--events` wait),
//! `/health` and, later, the control API (pause/resume).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use retail_core::TopicPartition;
use retail_sink::{BatchOutcome, Derived, OffsetRange};
use tokio::sync::watch;

/// Counters of committed work. Only committed batches count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LandingProgress {
    /// Store transactions committed.
    pub batches: u64,
    /// New rows in `sales_raw`.
    pub sales_landed: u64,
    /// New rows in `events_raw`.
    pub events_landed: u64,
    /// Events skipped because their event_id had already landed.
    pub duplicates_skipped: u64,
    /// Records sent to `dead_letters`.
    pub dead_letters: u64,
    /// Records consumed from the log and committed (every record counts once).
    pub records: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    sales_landed: AtomicU64,
    events_landed: AtomicU64,
    duplicates_skipped: AtomicU64,
    dead_letters: AtomicU64,
    records: AtomicU64,
}

/// What committed batches did for one aggregate, by its table index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AggregateProgress {
    /// Contributions of events to the aggregate's windows (one per event and window).
    pub contributions: u64,
    /// Rows of its table inserted or updated, counted once per batch that touched them.
    pub rows: u64,
}

/// Event-to-store latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

#[derive(Debug)]
struct Shared {
    counters: Counters,
    /// Exact per-event latencies (1 ms resolution up to an hour), for the benchmark's
    /// percentiles; Prometheus gets the bucketed histogram.
    latency: Mutex<hdrhistogram::Histogram<u64>>,
    committed: watch::Sender<HashMap<TopicPartition, i64>>,
    paused: watch::Sender<bool>,
    /// Combined event-time watermark, epoch ms; `i64::MIN` until there is one.
    watermark_ms: std::sync::atomic::AtomicI64,
    /// Records committed per topic, in the order topics were first committed (for lineage).
    topics: Mutex<Vec<(String, u64)>>,
    /// Per aggregate, by table index (for lineage).
    aggregates: Mutex<Vec<AggregateProgress>>,
}

/// A cloneable handle on a running landing.
#[derive(Debug, Clone)]
pub struct LandingHandle {
    shared: Arc<Shared>,
}

impl Default for LandingHandle {
    fn default() -> Self {
        Self {
            shared: Arc::new(Shared {
                counters: Counters::default(),
                latency: Mutex::new(new_latency_histogram()),
                committed: watch::channel(HashMap::new()).0,
                paused: watch::channel(false).0,
                watermark_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
                topics: Mutex::new(Vec::new()),
                aggregates: Mutex::new(Vec::new()),
            }),
        }
    }
}

impl LandingHandle {
    /// Counters so far.
    pub fn progress(&self) -> LandingProgress {
        let c = &self.shared.counters;
        LandingProgress {
            batches: c.batches.load(Ordering::Relaxed),
            sales_landed: c.sales_landed.load(Ordering::Relaxed),
            events_landed: c.events_landed.load(Ordering::Relaxed),
            duplicates_skipped: c.duplicates_skipped.load(Ordering::Relaxed),
            dead_letters: c.dead_letters.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
        }
    }

    /// Latency percentiles recorded since start or the last [`Self::reset_latency`].
    pub fn latency(&self) -> LatencySummary {
        let Ok(h) = self.shared.latency.lock() else {
            return LatencySummary::default();
        };
        LatencySummary {
            count: h.len(),
            p50_ms: h.value_at_quantile(0.50) as f64,
            p95_ms: h.value_at_quantile(0.95) as f64,
            p99_ms: h.value_at_quantile(0.99) as f64,
            max_ms: h.max() as f64,
        }
    }

    /// Forgets recorded latencies (e.g. after a warm-up).
    pub fn reset_latency(&self) {
        if let Ok(mut h) = self.shared.latency.lock() {
            h.reset();
        }
    }

    pub(super) fn record_latencies(&self, latencies_ms: impl Iterator<Item = u64>) {
        if let Ok(mut h) = self.shared.latency.lock() {
            for ms in latencies_ms {
                h.saturating_record(ms);
            }
        }
    }

    /// Committed next offsets per partition.
    pub fn committed(&self) -> HashMap<TopicPartition, i64> {
        self.shared.committed.borrow().clone()
    }

    /// Waits until every partition in `targets` has committed at least its target offset.
    pub async fn wait_for(&self, targets: &HashMap<TopicPartition, i64>) {
        let mut rx = self.shared.committed.subscribe();
        let reached = |c: &HashMap<TopicPartition, i64>| {
            targets
                .iter()
                .all(|(tp, want)| *want <= 0 || c.get(tp).is_some_and(|got| got >= want))
        };
        // An error means the landing is gone; the caller then sees its result.
        let _ = rx.wait_for(reached).await;
    }

    /// Stops taking new batches (the one in flight still commits).
    pub fn pause(&self) {
        self.shared.paused.send_replace(true);
    }

    /// Resumes after [`Self::pause`].
    pub fn resume(&self) {
        self.shared.paused.send_replace(false);
    }

    /// Whether paused.
    pub fn is_paused(&self) -> bool {
        *self.shared.paused.borrow()
    }

    pub(super) fn paused_rx(&self) -> watch::Receiver<bool> {
        self.shared.paused.subscribe()
    }

    pub(super) fn record_commit(
        &self,
        records: usize,
        outcome: &BatchOutcome,
        offsets: &[(TopicPartition, i64)],
    ) {
        let c = &self.shared.counters;
        c.batches.fetch_add(1, Ordering::Relaxed);
        c.records.fetch_add(records as u64, Ordering::Relaxed);
        c.sales_landed
            .fetch_add(outcome.sales_inserted, Ordering::Relaxed);
        c.events_landed
            .fetch_add(outcome.events_inserted, Ordering::Relaxed);
        c.duplicates_skipped.fetch_add(
            outcome.sales_duplicates + outcome.events_duplicates,
            Ordering::Relaxed,
        );
        c.dead_letters.fetch_add(outcome.dead_letters, Ordering::Relaxed);
        self.shared.committed.send_modify(|map| {
            for (tp, next) in offsets {
                map.insert(tp.clone(), *next);
            }
        });
    }

    /// Records committed per topic since start.
    pub fn topic_records(&self) -> Vec<(String, u64)> {
        self.shared.topics.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Per aggregate, by table index (the order of `Engine::tables`), since start.
    pub fn aggregate_progress(&self) -> Vec<AggregateProgress> {
        self.shared
            .aggregates
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// Adds a committed batch's records per topic and its work per aggregate. Groups are a
    /// few hundred per batch; entries one per event and window, a plain pass over an array.
    pub(super) fn record_lineage(&self, ranges: &[OffsetRange], derived: &Derived) {
        if let Ok(mut topics) = self.shared.topics.lock() {
            for r in ranges {
                let n = u64::try_from(r.next - r.first).unwrap_or(0);
                match topics.iter_mut().find(|(t, _)| *t == r.tp.topic) {
                    Some((_, total)) => *total += n,
                    None => topics.push((r.tp.topic.clone(), n)),
                }
            }
        }
        let c = &derived.contributions;
        if c.is_empty() {
            return;
        }
        let Ok(mut aggregates) = self.shared.aggregates.lock() else {
            return;
        };
        let groups = c.groups();
        for g in groups {
            let at = usize::from(g.table);
            if aggregates.len() <= at {
                aggregates.resize(at + 1, AggregateProgress::default());
            }
            aggregates[at].rows += 1;
        }
        for e in c.entries() {
            if let Some(g) = groups.get(e.group as usize) {
                if let Some(a) = aggregates.get_mut(usize::from(g.table)) {
                    a.contributions += 1;
                }
            }
        }
    }

    /// The combined event-time watermark of the aggregates (epoch ms): windows ending, plus
    /// their grace, at or before it are final. `None` before the first event.
    pub fn watermark(&self) -> Option<i64> {
        Some(self.shared.watermark_ms.load(Ordering::Relaxed)).filter(|w| *w != i64::MIN)
    }

    pub(super) fn set_watermark(&self, ms: i64) {
        self.shared.watermark_ms.store(ms, Ordering::Relaxed);
    }

    pub(super) fn set_committed(&self, offsets: &[(TopicPartition, i64)]) {
        self.shared.committed.send_modify(|map| {
            for (tp, next) in offsets {
                map.insert(tp.clone(), *next);
            }
        });
    }
}

fn new_latency_histogram() -> hdrhistogram::Histogram<u64> {
    // 1 ms .. 1 hour at 3 significant digits; the bounds are valid constants.
    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000, 3).expect("constant bounds are valid")
}
