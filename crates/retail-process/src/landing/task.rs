//! The landing's two loops: a reader that polls the log and decodes records into batches, and
//! a writer that commits each batch with its offsets in one store transaction.
//!
//! They are joined by a channel of capacity one, so decoding the next batch overlaps the store
//! committing the current one, and a slow store stops the reader (backpressure) instead of
//! filling memory. On start and on every assignment the reader seeks each partition to the
//! offset kept in the store, never to the log's own committed offset: the store is the record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use retail_core::health::State;
use retail_core::{Health, Metrics, Shutdown, TopicPartition};
use retail_log::{Consumer, ConsumerEvent, Log, OFFSET_BEGINNING};
use retail_sink::{BatchOutcome, LandingBatch, OffsetRange, Store};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::config::LandingConfig;
use super::convert::add_record;
use super::progress::LandingHandle;
use crate::{Error, Result};

const COMPONENT: &str = "landing";
/// How long a shutdown waits for a failing store before leaving the rest in the log.
const SHUTDOWN_RETRY_BUDGET: Duration = Duration::from_secs(10);

/// The raw landing: log -> store, exactly once.
#[derive(Debug)]
pub struct Landing {
    log: Arc<dyn Log>,
    store: Arc<dyn Store>,
    config: LandingConfig,
    metrics: Metrics,
    health: Health,
    handle: LandingHandle,
}

impl Landing {
    /// A landing reading `config.topics` from `log` into `store`.
    pub fn new(
        log: Arc<dyn Log>,
        store: Arc<dyn Store>,
        config: LandingConfig,
        metrics: Metrics,
        health: Health,
    ) -> Self {
        Self {
            log,
            store,
            config,
            metrics,
            health,
            handle: LandingHandle::default(),
        }
    }

    /// A handle for progress, waiting and pause/resume.
    pub fn handle(&self) -> LandingHandle {
        self.handle.clone()
    }

    /// Runs until `shutdown`, then lands every record already in the log before returning.
    /// Returns an error only for failures that retrying cannot fix.
    pub async fn run(self, shutdown: Shutdown) -> Result<()> {
        self.health.set(COMPONENT, State::Starting, "opening consumer");
        let topics: Vec<&str> = self.config.topics.iter().map(String::as_str).collect();
        let consumer = self.log.consumer(&self.config.group, &topics).await?;
        let (tx, rx) = mpsc::channel::<LandingBatch>(1);
        let reader = Reader {
            landing: &self,
            consumer,
            positions: HashMap::new(),
            tx,
        };
        let writer = Writer {
            landing: &self,
            last_log_commit: Instant::now(),
        };
        let (read, write) = tokio::join!(reader.run(&shutdown), writer.run(rx, &shutdown));
        let result = read.and(write);
        match &result {
            Ok(()) => self.health.set(COMPONENT, State::Done, "stopped"),
            Err(e) => self.health.set(COMPONENT, State::Failed, e.to_string()),
        }
        result
    }

    async fn backoff(&self, attempt: u32) {
        let ms = self
            .config
            .min_backoff_ms
            .saturating_mul(1 << attempt.min(16))
            .min(self.config.max_backoff_ms);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

struct Reader<'a> {
    landing: &'a Landing,
    consumer: Box<dyn Consumer>,
    /// Next offset to read per assigned partition.
    positions: HashMap<TopicPartition, i64>,
    tx: mpsc::Sender<LandingBatch>,
}

impl Reader<'_> {
    async fn run(mut self, shutdown: &Shutdown) -> Result<()> {
        let l = self.landing;
        let mut paused = l.handle.paused_rx();
        let timeout = Duration::from_millis(l.config.poll_timeout_ms);
        // Set when shutdown starts: the end of each partition at that moment, to drain up to.
        let mut drain_to: Option<HashMap<TopicPartition, i64>> = None;
        let mut last_lag = Instant::now();
        let mut failures = 0;
        loop {
            if drain_to.is_none() && shutdown.is_triggered() {
                drain_to = Some(ends(l, &self.positions).await?);
            }
            if let Some(ends) = &drain_to {
                if ends
                    .iter()
                    .all(|(tp, end)| self.positions.get(tp).is_some_and(|p| p >= end))
                {
                    info!(message = "landing drained the log, stopping");
                    return Ok(());
                }
            } else if *paused.borrow() {
                l.health.set(COMPONENT, State::Paused, "paused by operator");
                tokio::select! {
                    _ = paused.wait_for(|p| !*p) => {}
                    () = shutdown.wait() => {}
                }
                continue;
            }
            let event = match self.consumer.poll(l.config.max_batch_records, timeout).await {
                Ok(e) => {
                    failures = 0;
                    e
                }
                Err(e) if e.is_retryable() => {
                    warn!(message = "log poll failed, retrying", error = %e);
                    l.health.set(COMPONENT, State::Retrying, format!("log: {e}"));
                    l.backoff(failures).await;
                    failures += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match event {
                ConsumerEvent::Assigned(tps) => self.assign(tps).await?,
                ConsumerEvent::Revoked(tps) => {
                    for tp in tps {
                        self.positions.remove(&tp);
                    }
                }
                ConsumerEvent::Records(records) if records.is_empty() => {}
                ConsumerEvent::Records(records) => {
                    let batch = self.batch(records);
                    if self.tx.send(batch).await.is_err() {
                        return Ok(()); // the writer stopped; its result says why
                    }
                    l.health.set(COMPONENT, State::Running, "");
                }
            }
            if last_lag.elapsed() >= Duration::from_secs(1) {
                last_lag = Instant::now();
                report_lag(l, &self.positions).await;
            }
        }
    }

    /// Seeks each newly assigned partition to the offset kept in the store.
    async fn assign(&mut self, tps: Vec<TopicPartition>) -> Result<()> {
        let l = self.landing;
        let stored: HashMap<TopicPartition, i64> =
            retry(l, "read offsets", || l.store.offsets(&l.config.group))
                .await?
                .into_iter()
                .collect();
        let mut known = Vec::new();
        for tp in tps {
            let (low, _) = l.log.watermarks(&tp).await?;
            let start = match stored.get(&tp) {
                Some(&next) if next < low => {
                    return Err(Error::OffsetsLost {
                        tp,
                        stored: next,
                        low,
                    })
                }
                Some(&next) => {
                    self.consumer.seek(&tp, next)?;
                    known.push((tp.clone(), next));
                    next
                }
                None => {
                    self.consumer.seek(&tp, OFFSET_BEGINNING)?;
                    low
                }
            };
            self.positions.insert(tp, start);
        }
        l.handle.set_committed(&known);
        info!(
            message = "landing assigned partitions",
            partitions = self.positions.len()
        );
        l.health.set(COMPONENT, State::Running, "");
        Ok(())
    }

    fn batch(&mut self, records: Vec<retail_log::ConsumedRecord>) -> LandingBatch {
        let l = self.landing;
        let mut batch = LandingBatch {
            group: l.config.group.clone(),
            ..LandingBatch::default()
        };
        let mut ranges: HashMap<TopicPartition, OffsetRange> = HashMap::new();
        for rec in records {
            let tp = TopicPartition::new(rec.topic.clone(), rec.partition);
            let first = self.positions.get(&tp).copied().unwrap_or(rec.offset);
            let range = ranges.entry(tp.clone()).or_insert(OffsetRange {
                tp,
                first,
                next: first,
            });
            range.next = rec.offset + 1;
            if let Some(kind) = add_record(&mut batch, rec) {
                l.metrics.dead_letters("landing", kind).inc();
            }
        }
        for r in ranges.values() {
            self.positions.insert(r.tp.clone(), r.next);
        }
        batch.offsets = ranges.into_values().collect();
        batch
    }
}

struct Writer<'a> {
    landing: &'a Landing,
    last_log_commit: Instant,
}

impl Writer<'_> {
    async fn run(mut self, mut rx: mpsc::Receiver<LandingBatch>, shutdown: &Shutdown) -> Result<()> {
        let l = self.landing;
        let txn_seconds = l.metrics.landing_txn_seconds();
        let latency = l.metrics.event_to_store_seconds("sales_raw");
        let (sales_rows, event_rows, dead_rows) = (
            l.metrics.landing_rows("sales_raw"),
            l.metrics.landing_rows("events_raw"),
            l.metrics.landing_rows("dead_letters"),
        );
        let (sales_dups, event_dups) = (
            l.metrics.landing_duplicates("sales_raw"),
            l.metrics.landing_duplicates("events_raw"),
        );
        while let Some(batch) = rx.recv().await {
            let started = Instant::now();
            let Some(outcome) = self.write(&batch, shutdown).await? else {
                // Shutdown gave up on a failing store: the batch stays in the log for next time.
                rx.close();
                return Ok(());
            };
            txn_seconds.observe(started.elapsed().as_secs_f64());
            let now_ms = Utc::now().timestamp_millis();
            let lat = || {
                batch
                    .sales
                    .iter()
                    .map(|s| (now_ms - s.ts.timestamp_millis()).max(0) as u64)
            };
            for ms in lat() {
                latency.observe(ms as f64 / 1000.0);
            }
            l.handle.record_latencies(lat());
            l.metrics.landing_batches().inc();
            sales_rows.inc_by(outcome.sales_inserted);
            event_rows.inc_by(outcome.events_inserted);
            dead_rows.inc_by(outcome.dead_letters);
            sales_dups.inc_by(outcome.sales_duplicates);
            event_dups.inc_by(outcome.events_duplicates);
            let offsets: Vec<(TopicPartition, i64)> =
                batch.offsets.iter().map(|r| (r.tp.clone(), r.next)).collect();
            l.handle.record_commit(batch.len(), &outcome, &offsets);
            self.commit_to_log(false).await;
        }
        self.commit_to_log(true).await;
        Ok(())
    }

    /// Commits the batch, retrying retryable failures with backoff and never skipping it.
    /// `Ok(None)` only when shutting down and the store stayed down past the budget.
    async fn write(&self, batch: &LandingBatch, shutdown: &Shutdown) -> Result<Option<BatchOutcome>> {
        let l = self.landing;
        let mut attempt = 0u32;
        let mut shutdown_started: Option<Instant> = None;
        loop {
            match l.store.write_batch(batch).await {
                Ok(outcome) => {
                    if attempt > 0 {
                        info!(
                            message = "store recovered, batch committed",
                            attempts = attempt + 1
                        );
                        l.health.set(COMPONENT, State::Running, "");
                    }
                    return Ok(Some(outcome));
                }
                Err(retail_sink::Error::OffsetConflict { .. })
                    if attempt > 0 && self.committed_before(batch).await? =>
                {
                    // The previous attempt committed but its reply was lost with the connection.
                    warn!(message = "batch had committed before the connection dropped; counts of this batch are unknown");
                    return Ok(Some(BatchOutcome::default()));
                }
                Err(e) if e.is_retryable() => {
                    l.metrics.landing_retries().inc();
                    l.health.set(COMPONENT, State::Retrying, format!("store: {e}"));
                    warn!(message = "store write failed, retrying the same batch", error = %e, attempt);
                    if shutdown.is_triggered() {
                        let since = *shutdown_started.get_or_insert_with(Instant::now);
                        if since.elapsed() > SHUTDOWN_RETRY_BUDGET {
                            warn!(
                                message = "store still failing at shutdown; unlanded records stay in the log"
                            );
                            return Ok(None);
                        }
                    }
                    l.backoff(attempt).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Whether the store's offsets already sit at the end of `batch`.
    async fn committed_before(&self, batch: &LandingBatch) -> Result<bool> {
        let l = self.landing;
        let stored: HashMap<TopicPartition, i64> =
            l.store.offsets(&l.config.group).await?.into_iter().collect();
        Ok(batch.offsets.iter().all(|r| stored.get(&r.tp) == Some(&r.next)))
    }

    /// Mirrors the committed offsets into the log's group offsets for lag tools, at most once a
    /// second (it costs an fsync). Advisory: the store stays the record.
    async fn commit_to_log(&mut self, force: bool) {
        if !force && self.last_log_commit.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_log_commit = Instant::now();
        let l = self.landing;
        let offsets: Vec<(TopicPartition, i64)> = l.handle.committed().into_iter().collect();
        if let Err(e) = l.log.commit_offsets(&l.config.group, &offsets).await {
            warn!(message = "could not mirror offsets to the log", error = %e);
        }
    }
}

/// The end of each partition now: what a draining landing reads up to.
async fn ends(l: &Landing, positions: &HashMap<TopicPartition, i64>) -> Result<HashMap<TopicPartition, i64>> {
    let mut ends = HashMap::new();
    for tp in positions.keys() {
        ends.insert(tp.clone(), l.log.watermarks(tp).await?.1);
    }
    Ok(ends)
}

/// Publishes per-partition lag (end of log minus committed) and end offsets as metrics.
async fn report_lag(l: &Landing, positions: &HashMap<TopicPartition, i64>) {
    let committed = l.handle.committed();
    for tp in positions.keys() {
        if let Ok((low, high)) = l.log.watermarks(tp).await {
            let done = committed.get(tp).copied().unwrap_or(low);
            l.metrics
                .consumer_lag(&l.config.group, &tp.topic, tp.partition)
                .set((high - done).max(0));
            l.metrics.log_end_offset(&tp.topic, tp.partition).set(high);
        }
    }
}

/// Retries a store call while its error is retryable.
async fn retry<T, F, Fut>(l: &Landing, what: &str, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = retail_sink::Result<T>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() => {
                warn!(message = "store call failed, retrying", what, error = %e);
                l.health.set(COMPONENT, State::Retrying, format!("store: {e}"));
                l.backoff(attempt).await;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
