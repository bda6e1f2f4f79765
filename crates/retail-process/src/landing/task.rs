//! The landing's two loops: a reader that polls the log and decodes records into batches, and
//! a writer that commits each batch with its offsets in one store transaction.
//!
//! They are joined by a channel of capacity one, so decoding the next batch overlaps the store
//! committing the current one, and a slow store stops the reader (backpressure) instead of
//! filling memory. On start and on every assignment the reader seeks each partition to the
//! offset kept in the store, never to the log's own committed offset: the store is the record.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use retail_core::health::State;
use retail_core::{Health, Metrics, Shutdown, TopicPartition};
use retail_log::{Consumer, ConsumerEvent, Header, Log, ProducerRecord, OFFSET_BEGINNING};
use retail_sink::{BatchOutcome, Derived, LandingBatch, OffsetRange, Store};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::config::LandingConfig;
use super::convert::{add_decoded, decode, Decoded};
use super::progress::LandingHandle;
use crate::aggregate::{Engine, ProcessingConfig};
use crate::{Error, Result};
use retail_schema::SchemaRegistry;

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
    /// Stream processing run on each batch, if any.
    engine: Option<Engine>,
    processing: ProcessingConfig,
    /// Whether raw rows (sales_raw, events_raw, dead_letters) are written; a replay writes
    /// only what processing derives.
    raw_rows: bool,
    /// Where partitions without stored offsets start; `None`: the beginning.
    start: Option<StartAt>,
    /// Stop once the end of the log as of the first assignment is landed (a replay).
    stop_at_end: bool,
    /// Writers' schemas of Avro records, by id (issue 16); without it an Avro record is a
    /// dead letter saying so.
    schemas: Option<Arc<SchemaRegistry>>,
}

/// Where a landing starts reading partitions it has no offsets for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// This offset in every partition (or the partition's first available one, if later).
    Offset(i64),
    /// The first record at or after this time, epoch milliseconds.
    Timestamp(i64),
}

impl StartAt {
    /// The offset a group with no stored offset for `tp` starts at, given the partition's first
    /// offset `low`: `low` without a start, an offset never below `low`, or the first record at
    /// or after a time (the end when there is none). The landing's assignment and the operator's
    /// `log skip` both go by it, so they agree on where a group stands.
    pub async fn first_offset(
        start: Option<Self>,
        log: &dyn Log,
        tp: &TopicPartition,
        low: i64,
    ) -> Result<i64> {
        Ok(match start {
            None => low,
            Some(Self::Offset(n)) => n.max(low),
            Some(Self::Timestamp(ms)) => match log.offset_for_timestamp(tp, ms).await? {
                Some(offset) => offset,
                None => log.watermarks(tp).await?.1,
            },
        })
    }
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
            engine: None,
            processing: ProcessingConfig::default(),
            raw_rows: true,
            start: None,
            stop_at_end: false,
            schemas: None,
        }
    }

    /// Decodes Avro records (Confluent wire format) with the writers' schemas in `schemas`.
    #[must_use]
    pub fn with_schemas(mut self, schemas: Arc<SchemaRegistry>) -> Self {
        self.schemas = Some(schemas);
        self
    }

    /// A replay: writes no raw rows (they landed already), starts partitions without stored
    /// offsets at `start`, and stops at the end of the log as it was when partitions were
    /// assigned.
    #[must_use]
    pub fn as_replay(mut self, start: Option<StartAt>) -> Self {
        self.raw_rows = false;
        self.start = start;
        self.stop_at_end = true;
        self
    }

    /// Reports into `handle` instead of its own, so several landings (the data and the catalog
    /// groups) show as one: summed counters, one committed-offset map, one pause switch.
    #[must_use]
    pub fn with_handle(mut self, handle: LandingHandle) -> Self {
        self.handle = handle;
        self
    }

    /// Runs `engine` on every batch: its contributions, late events, watermarks and catalog
    /// rows commit in the batch's transaction.
    #[must_use]
    pub fn with_engine(mut self, engine: Engine, processing: ProcessingConfig) -> Self {
        self.engine = Some(engine);
        self.processing = processing;
        self
    }

    /// A handle for progress, waiting and pause/resume.
    pub fn handle(&self) -> LandingHandle {
        self.handle.clone()
    }

    /// Runs until `shutdown`, then lands every record already in the log before returning.
    /// Returns an error only for failures that retrying cannot fix.
    pub async fn run(mut self, shutdown: Shutdown) -> Result<()> {
        let mut engine = self.engine.take();
        if let Some(engine) = engine.as_mut().filter(|e| !e.is_idle()) {
            self.health
                .set(&self.component(), State::Starting, "preparing aggregate tables");
            let tables = engine.tables();
            retry(&self, "prepare aggregate tables", || {
                self.store.prepare_aggregates(&tables)
            })
            .await?;
            let catalog = retry(&self, "read the catalog", || self.store.catalog()).await?;
            engine.catalog_mut().load(&catalog);
        }
        self.health
            .set(&self.component(), State::Starting, "opening consumer");
        let topics: Vec<&str> = self.config.topics.iter().map(String::as_str).collect();
        let consumer = self.log.consumer(&self.config.group, &topics).await?;
        let (tx, rx) = mpsc::channel::<ToWriter>(1);
        let abandoned = Arc::new(AtomicBool::new(false));
        let reader = Reader {
            landing: &self,
            consumer,
            positions: HashMap::new(),
            tx,
            engine,
            last_give_up: None,
            abandoned: abandoned.clone(),
        };
        let writer = Writer {
            landing: &self,
            last_log_commit: Instant::now(),
            abandoned,
            dropping: false,
            unmirrored: false,
        };
        let (read, write) = tokio::join!(reader.run(&shutdown), writer.run(rx, &shutdown));
        let result = read.and(write);
        match &result {
            Ok(()) => self.health.set(&self.component(), State::Done, "stopped"),
            Err(e) => {
                error!(message = "landing stopped", component = %self.component(), error = %e);
                self.health
                    .set(&self.component(), State::Failed, e.public_message());
            }
        }
        result
    }

    /// The name on `/health`: `landing` for the default group, else `landing:<group>`.
    pub fn component(&self) -> String {
        if self.config.group == "landing" {
            COMPONENT.to_owned()
        } else {
            format!("{COMPONENT}:{}", self.config.group)
        }
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

/// What the reader hands the writer.
enum ToWriter {
    /// Commit this batch.
    Batch(LandingBatch),
    /// Answer once every batch sent before is committed (or abandoned) and the offsets are
    /// mirrored to the log: before partitions are given up, and before a resync.
    Flush(oneshot::Sender<()>),
}

struct Reader<'a> {
    landing: &'a Landing,
    consumer: Box<dyn Consumer>,
    /// Next offset to read per assigned partition.
    positions: HashMap<TopicPartition, i64>,
    tx: mpsc::Sender<ToWriter>,
    /// Set by the writer when the store's offsets fenced a batch off (another member of the
    /// group landed those records): the reader then resyncs from the store.
    abandoned: Arc<AtomicBool>,
    engine: Option<Engine>,
    /// When a join wait last timed out: misses right after that do not wait again, so a sale
    /// of a store the catalog never names costs one wait, not one per batch.
    last_give_up: Option<Instant>,
}

/// How long a landing told to stop before its first assignment waits for one.
const UNASSIGNED_DRAIN_WAIT: Duration = Duration::from_secs(10);
/// How long after a join wait timed out later misses skip waiting.
const JOIN_GIVE_UP_MEMORY: Duration = Duration::from_secs(60);

impl Reader<'_> {
    async fn run(mut self, shutdown: &Shutdown) -> Result<()> {
        let l = self.landing;
        let mut paused = l.handle.paused_rx();
        let timeout = Duration::from_millis(l.config.poll_timeout_ms);
        // Set when shutdown starts: the end of each partition at that moment, to drain up to.
        let mut drain_to: Option<HashMap<TopicPartition, i64>> = None;
        let mut last_lag = Instant::now();
        let mut failures = 0;
        // A shutdown before the first assignment must not drain "every assigned partition"
        // of none: it waits for the assignment (the embedded log gives it on the first poll),
        // for at most `UNASSIGNED_DRAIN_WAIT`, so a member the group never assigns still stops.
        let mut assigned = false;
        let mut unassigned_since: Option<Instant> = None;
        loop {
            if drain_to.is_none() && shutdown.is_triggered() {
                let waited = unassigned_since.get_or_insert_with(Instant::now).elapsed();
                if assigned || waited >= UNASSIGNED_DRAIN_WAIT {
                    drain_to = Some(ends(l, &self.positions).await?);
                }
            }
            if let Some(ends) = &drain_to {
                if ends
                    .iter()
                    .all(|(tp, end)| self.positions.get(tp).is_some_and(|p| p >= end))
                {
                    info!(message = "landing drained the log, stopping");
                    // Committed and mirrored while this member still holds its partitions.
                    self.flush().await;
                    return Ok(());
                }
            } else if *paused.borrow() {
                l.health.set(&l.component(), State::Paused, "paused by operator");
                tokio::select! {
                    _ = paused.wait_for(|p| !*p) => {}
                    () = shutdown.wait() => {}
                }
                continue;
            }
            if self.abandoned.load(Ordering::Acquire) {
                self.resync().await?;
                continue;
            }
            let limit = retail_log::PollLimit {
                records: l.config.max_batch_records,
                bytes: l.config.max_batch_bytes,
            };
            let event = match self.consumer.poll_limited(limit, timeout).await {
                Ok(e) => {
                    failures = 0;
                    e
                }
                Err(e) if e.is_retryable() => {
                    warn!(message = "log poll failed, retrying", error = %e);
                    l.health.set(&l.component(), State::Retrying, format!("log: {e}"));
                    l.backoff(failures).await;
                    failures += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match event {
                ConsumerEvent::Assigned(tps) => {
                    self.assign(tps).await?;
                    assigned = true;
                    if l.stop_at_end && drain_to.is_none() {
                        drain_to = Some(ends(l, &self.positions).await?);
                    }
                }
                ConsumerEvent::Revoked(tps) => {
                    // Finish the in-flight batches before the partitions go to another member:
                    // it then starts where this one ended, never inside a batch.
                    if !self.flush().await {
                        return Ok(());
                    }
                    for tp in tps {
                        if let Some(engine) = self.engine.as_mut() {
                            engine.forget(&tp);
                        }
                        self.positions.remove(&tp);
                    }
                }
                ConsumerEvent::Records(records) if records.is_empty() => {
                    // Nothing arrived: the order pipeline's time may still move (idle
                    // partitions advance with the wall clock), and verdicts fall due with it.
                    if let Some(derived) = self.engine.as_mut().and_then(|e| e.tick(Instant::now())) {
                        let batch = LandingBatch {
                            group: l.config.group.clone(),
                            derived: std::sync::Arc::new(derived),
                            ..LandingBatch::default()
                        };
                        if self.tx.send(ToWriter::Batch(batch)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                ConsumerEvent::Records(records) => {
                    let batch = self.batch(records).await;
                    if self.tx.send(ToWriter::Batch(batch)).await.is_err() {
                        return Ok(()); // the writer stopped; its result says why
                    }
                    l.health.set(&l.component(), State::Running, "");
                }
            }
            if last_lag.elapsed() >= Duration::from_secs(1) {
                last_lag = Instant::now();
                report_lag(l, &self.positions).await;
                self.report_watermark();
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
                    let start = StartAt::first_offset(l.start, l.log.as_ref(), &tp, low).await?;
                    // Without a start, from the beginning as the log sees it when reading.
                    let seek = if l.start.is_none() {
                        OFFSET_BEGINNING
                    } else {
                        start
                    };
                    self.consumer.seek(&tp, seek)?;
                    start
                }
            };
            self.positions.insert(tp, start);
        }
        l.handle.set_committed(&known);
        if let Some(engine) = self.engine.as_mut().filter(|e| e.keeps_watermarks()) {
            let marks = retry(l, "read partition watermarks", || {
                l.store.watermarks(&l.config.group)
            })
            .await?;
            let mine: Vec<_> = marks
                .into_iter()
                .filter(|m| self.positions.contains_key(&m.tp))
                .collect();
            engine.restore(&mine, Instant::now());
        }
        info!(
            message = "landing assigned partitions",
            partitions = self.positions.len()
        );
        l.health.set(&l.component(), State::Running, "");
        Ok(())
    }

    /// Waits until the writer committed everything sent so far. `false` if the writer stopped.
    async fn flush(&mut self) -> bool {
        let (done, answer) = oneshot::channel();
        self.tx.send(ToWriter::Flush(done)).await.is_ok() && answer.await.is_ok()
    }

    /// After the store fenced a batch off: drops what was read past the store's offsets and
    /// starts every assigned partition again from them, with the engine state the store holds.
    async fn resync(&mut self) -> Result<()> {
        if !self.flush().await {
            return Ok(());
        }
        self.abandoned.store(false, Ordering::Release);
        let tps: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        warn!(
            message = "another member landed part of this batch; resuming from the store's offsets",
            partitions = tps.len()
        );
        for tp in &tps {
            if let Some(engine) = self.engine.as_mut() {
                engine.forget(tp);
            }
        }
        self.positions.clear();
        self.assign(tps).await
    }

    async fn batch(&mut self, records: Vec<retail_log::ConsumedRecord>) -> LandingBatch {
        let l = self.landing;
        let mut batch = LandingBatch {
            group: l.config.group.clone(),
            ..LandingBatch::default()
        };
        let schemas = l.schemas.as_deref();
        let decoded: Vec<Decoded> = records.into_iter().map(|r| decode(r, schemas)).collect();
        // Most batches miss nothing: then no event is checked a second time for the metric.
        let misses = self.await_joins(&decoded).await;
        let mut derived = Derived::default();
        let now = Instant::now();
        let mut ranges: HashMap<TopicPartition, OffsetRange> = HashMap::new();
        for d in decoded {
            let first = self.positions.get(&d.tp).copied().unwrap_or(d.offset);
            let range = ranges.entry(d.tp.clone()).or_insert(OffsetRange {
                tp: d.tp.clone(),
                first,
                next: first,
            });
            range.next = d.offset + 1;
            if let (Some(engine), Ok(event)) = (self.engine.as_mut(), &d.result) {
                if misses && engine.misses_join(&d.tp.topic, event) {
                    l.metrics.join_misses(&d.tp.topic).inc();
                }
                engine.process(&d.tp, d.offset, event, now, &mut derived);
            }
            if !l.raw_rows {
                continue;
            }
            if let Some(kind) = add_decoded(&mut batch, d) {
                l.metrics.dead_letters("landing", kind).inc();
            }
        }
        if let Some(engine) = self.engine.as_mut() {
            engine.end_batch(&mut derived);
            for ((aggregate, reason), n) in engine.take_late_counts() {
                l.metrics.late_events(&aggregate, reason).inc_by(n);
            }
        }
        for r in ranges.values() {
            self.positions.insert(r.tp.clone(), r.next);
        }
        batch.offsets = ranges.into_values().collect();
        batch.derived = std::sync::Arc::new(derived);
        self.report_watermark();
        batch
    }

    /// Publishes the combined watermark (ADR 0004) as a metric and on the handle.
    fn report_watermark(&self) {
        let l = self.landing;
        let Some(engine) = self.engine.as_ref().filter(|e| !e.is_idle()) else {
            return;
        };
        let idle = Duration::from_millis(l.processing.idle_timeout_ms);
        if let Some(ms) = engine.combined_watermark(Instant::now(), idle) {
            l.metrics
                .event_time_watermark(&l.config.group)
                .set(ms as f64 / 1000.0);
            l.handle.set_watermark(ms);
        }
    }

    /// The bounded wait of the catalog join (ADR 0004): while an event of the batch needs a
    /// catalog row the engine does not know, reload the catalog from the store (another
    /// consumer group lands it) every 100 ms, for at most `processing.join_wait_ms`. What is
    /// still unknown then is aggregated under `unknown` and counted in `retail_join_misses_total`.
    /// Returns whether some event still misses a catalog row.
    async fn await_joins(&mut self, decoded: &[Decoded]) -> bool {
        let l = self.landing;
        let Some(engine) = self.engine.as_mut() else {
            return false;
        };
        let missing = |e: &Engine| {
            decoded
                .iter()
                .any(|d| d.result.as_ref().is_ok_and(|ev| e.misses_join(&d.tp.topic, ev)))
        };
        if !missing(engine) {
            return false;
        }
        let recently_gave_up = self
            .last_give_up
            .is_some_and(|t| t.elapsed() < JOIN_GIVE_UP_MEMORY);
        let wait = if recently_gave_up {
            Duration::ZERO
        } else {
            Duration::from_millis(l.processing.join_wait_ms)
        };
        let deadline = Instant::now() + wait;
        loop {
            match l.store.catalog().await {
                Ok(snapshot) => engine.catalog_mut().load(&snapshot),
                Err(e) => warn!(message = "could not refresh the catalog", error = %e),
            }
            if !missing(engine) {
                return false;
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !recently_gave_up {
            warn!(
                message = "catalog rows still missing after the join wait; aggregating under 'unknown'",
                waited_ms = l.processing.join_wait_ms
            );
            self.last_give_up = Some(Instant::now());
        }
        true
    }
}

struct Writer<'a> {
    landing: &'a Landing,
    last_log_commit: Instant,
    /// Shared with the reader: set when a batch was fenced off.
    abandoned: Arc<AtomicBool>,
    /// After a fenced batch, the batches the reader sent before it noticed are dropped, up to
    /// its flush.
    dropping: bool,
    /// Batches committed to the store since the offsets were last mirrored to the log.
    unmirrored: bool,
}

/// What became of a batch.
enum Written {
    Committed(BatchOutcome),
    /// The store's offsets no longer start where the batch does: another member of the group
    /// landed these records (a rebalance moved the partition). Nothing was written.
    Fenced,
    /// Shutting down while the store stayed down past the budget: the batch stays in the log.
    GaveUp,
}

impl Writer<'_> {
    async fn run(mut self, mut rx: mpsc::Receiver<ToWriter>, shutdown: &Shutdown) -> Result<()> {
        let l = self.landing;
        let txn_seconds = l.metrics.landing_txn_seconds();
        let (mut latency, mut events_latency) = (
            l.metrics.event_to_store("sales_raw"),
            l.metrics.event_to_store("events_raw"),
        );
        let (sales_rows, event_rows, dead_rows) = (
            l.metrics.landing_rows("sales_raw"),
            l.metrics.landing_rows("events_raw"),
            l.metrics.landing_rows("dead_letters"),
        );
        let (aggregate_rows, late_rows) = (
            l.metrics.landing_rows("aggregates"),
            l.metrics.landing_rows("late_events"),
        );
        let (sales_dups, event_dups) = (
            l.metrics.landing_duplicates("sales_raw"),
            l.metrics.landing_duplicates("events_raw"),
        );
        loop {
            // Idle, the last offsets still reach the log within a second or so (lag tools and
            // the embedded log's retention floor read them there).
            let message = tokio::select! {
                m = rx.recv() => m,
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    self.commit_to_log(false).await;
                    continue;
                }
            };
            let Some(message) = message else { break };
            let batch = match message {
                ToWriter::Batch(batch) if self.dropping => {
                    drop(batch);
                    continue;
                }
                ToWriter::Batch(batch) => batch,
                ToWriter::Flush(done) => {
                    self.dropping = false;
                    self.commit_to_log(true).await;
                    let _ = done.send(());
                    continue;
                }
            };
            let started = Instant::now();
            self.publish_dead_letters(&batch).await;
            let outcome = match self.write(&batch, shutdown).await? {
                Written::Committed(outcome) => outcome,
                Written::Fenced => {
                    self.dropping = true;
                    self.abandoned.store(true, Ordering::Release);
                    continue;
                }
                Written::GaveUp => {
                    // The batch stays in the log for next time.
                    rx.close();
                    return Ok(());
                }
            };
            if batch.offsets.is_empty() && batch.is_empty() {
                continue; // a tick of the order pipeline's time: no records, nothing to count
            }
            txn_seconds.observe(started.elapsed().as_secs_f64());
            let now_ms = Utc::now().timestamp_millis();
            let lat = || {
                batch
                    .sales
                    .iter()
                    .map(|s| (now_ms - s.ts.timestamp_millis()).max(0) as u64)
            };
            for s in &batch.sales {
                latency.observe(
                    &s.source,
                    (now_ms - s.ts.timestamp_millis()).max(0) as f64 / 1000.0,
                );
            }
            for e in &batch.events {
                events_latency.observe(
                    &e.source,
                    (now_ms - e.ts.timestamp_millis()).max(0) as f64 / 1000.0,
                );
            }
            l.handle.record_latencies(lat());
            l.metrics.landing_batches().inc();
            sales_rows.inc_by(outcome.sales_inserted);
            event_rows.inc_by(outcome.events_inserted);
            dead_rows.inc_by(outcome.dead_letters);
            if outcome.too_old > 0 {
                // Dead-lettered by the store, not here: its dedup horizon (ADR 0022).
                l.metrics
                    .dead_letters("landing", retail_sink::horizon::TOO_OLD)
                    .inc_by(outcome.too_old);
            }
            aggregate_rows.inc_by(outcome.aggregate_rows);
            late_rows.inc_by(outcome.late_events);
            sales_dups.inc_by(outcome.sales_duplicates);
            event_dups.inc_by(outcome.events_duplicates);
            let offsets: Vec<(TopicPartition, i64)> =
                batch.offsets.iter().map(|r| (r.tp.clone(), r.next)).collect();
            let records: i64 = batch.offsets.iter().map(|r| r.next - r.first).sum();
            l.handle
                .record_commit(usize::try_from(records).unwrap_or(0), &outcome, &offsets);
            l.handle.record_lineage(&batch.offsets, &batch.derived);
            self.unmirrored = true;
            self.commit_to_log(false).await;
        }
        self.commit_to_log(true).await;
        Ok(())
    }

    /// Commits the batch, retrying retryable failures with backoff and never skipping it.
    async fn write(&self, batch: &LandingBatch, shutdown: &Shutdown) -> Result<Written> {
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
                        l.health.set(&l.component(), State::Running, "");
                    }
                    return Ok(Written::Committed(outcome));
                }
                Err(retail_sink::Error::OffsetConflict { .. })
                    if attempt > 0 && self.committed_before(batch).await? =>
                {
                    // The previous attempt committed but its reply was lost with the connection.
                    warn!(message = "batch had committed before the connection dropped; counts of this batch are unknown");
                    return Ok(Written::Committed(BatchOutcome::default()));
                }
                Err(e @ retail_sink::Error::OffsetConflict { .. }) => {
                    // Fenced: the store's offsets moved under this batch, so another member of
                    // the group owns (or owned) one of its partitions. Applying it would apply
                    // records twice; the reader resumes from the store's offsets instead.
                    warn!(message = "batch fenced off by the store's offsets; abandoning it", error = %e);
                    return Ok(Written::Fenced);
                }
                Err(e) if e.is_refused() => {
                    // The store refuses some rows' data: set them aside as dead letters and land
                    // the rest, offsets included, in one transaction (ADR 0008).
                    warn!(message = "store refused the batch for its data; isolating the rows at fault", error = %e);
                    match retail_sink::isolate::write_isolating(&*l.store, batch, e).await {
                        Ok(done) => {
                            for dl in &done.refused {
                                warn!(message = "row refused by the store, dead-lettered", origin = %dl.origin, reason = %dl.reason);
                                l.metrics.dead_letters("landing", dl.kind).inc();
                            }
                            return Ok(Written::Committed(done.outcome));
                        }
                        Err(e) if e.is_retryable() => {
                            l.metrics.landing_retries().inc();
                            warn!(message = "store failed while isolating refused rows, retrying the batch", error = %e, attempt);
                            l.backoff(attempt).await;
                            attempt += 1;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) if e.is_retryable() => {
                    l.metrics.landing_retries().inc();
                    l.health.set(&l.component(), State::Retrying, e.public_message());
                    warn!(message = "store write failed, retrying the same batch", error = %e, attempt);
                    if shutdown.is_triggered() {
                        let since = *shutdown_started.get_or_insert_with(Instant::now);
                        if since.elapsed() > SHUTDOWN_RETRY_BUDGET {
                            warn!(
                                message = "store still failing at shutdown; unlanded records stay in the log"
                            );
                            return Ok(Written::GaveUp);
                        }
                    }
                    l.backoff(attempt).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Appends the batch's rejected records to the dead-letter topic, for other applications
    /// sharing the log, with `reject_reason`, `reject_kind` and `origin` headers. Before the
    /// store commit, so a crash in between repeats them (at least once; the store's
    /// `dead_letters` rows are the exactly-once record). A replay publishes nothing.
    async fn publish_dead_letters(&self, batch: &LandingBatch) {
        let l = self.landing;
        if !l.raw_rows || batch.dead_letters.is_empty() {
            return;
        }
        let records: Vec<ProducerRecord> = batch
            .dead_letters
            .iter()
            .map(|d| ProducerRecord {
                topic: retail_core::event::topics::DEAD_LETTERS.to_owned(),
                partition: None,
                key: None,
                value: d.raw.clone(),
                headers: vec![
                    Header {
                        key: "reject_reason".into(),
                        value: d.reason.clone().into_bytes(),
                    },
                    Header {
                        key: "reject_kind".into(),
                        value: d.kind.as_bytes().to_vec(),
                    },
                    Header {
                        key: "origin".into(),
                        value: d.origin.to_string().into_bytes(),
                    },
                ],
                timestamp_ms: Some(d.rejected_at.timestamp_millis()),
            })
            .collect();
        for attempt in 0..5 {
            match l.log.append(records.clone()).await {
                Ok(_) => return,
                Err(e) if e.is_retryable() && attempt < 4 => {
                    warn!(message = "could not publish dead letters to the log, retrying", error = %e);
                    l.backoff(attempt).await;
                }
                Err(e) => {
                    warn!(message = "dead letters not published to the log (they are in the store)", error = %e);
                    return;
                }
            }
        }
    }

    /// Whether the store's offsets already sit at the end of `batch`. The read is retried
    /// like the batch itself: the connection that lost the commit's reply may still be down,
    /// and a transient error here must not stop the landing (issue 18, item 9).
    async fn committed_before(&self, batch: &LandingBatch) -> Result<bool> {
        let l = self.landing;
        let mut attempt = 0;
        let stored: HashMap<TopicPartition, i64> = loop {
            match l.store.offsets(&l.config.group).await {
                Ok(offsets) => break offsets.into_iter().collect(),
                Err(e) if e.is_retryable() => {
                    warn!(message = "could not read the store's offsets to check a lost commit reply, retrying", error = %e, attempt);
                    l.backoff(attempt).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(batch.offsets.iter().all(|r| stored.get(&r.tp) == Some(&r.next)))
    }

    /// Mirrors the committed offsets into the log's group offsets for lag tools, retention and
    /// the disk budget, at most once a second (it costs an fsync). The store stays the record.
    async fn commit_to_log(&mut self, force: bool) {
        if !force && (!self.unmirrored || self.last_log_commit.elapsed() < Duration::from_secs(1)) {
            return;
        }
        self.unmirrored = false;
        self.last_log_commit = Instant::now();
        let l = self.landing;
        let offsets: Vec<(TopicPartition, i64)> = l
            .handle
            .committed()
            .into_iter()
            .filter(|(tp, _)| l.config.topics.contains(&tp.topic))
            .collect();
        if let Err(e) = l.log.commit_offsets(&l.config.group, &offsets).await {
            // Tried again within a second (the idle tick calls this too): the embedded log's
            // retention and disk budget go by these offsets, so a mirror lost while the disk is
            // tight would hold the sources back until the next commit, which a held-back
            // pipeline never makes.
            self.unmirrored = true;
            warn!(message = "could not mirror offsets to the log; retrying", error = %e);
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
                l.health.set(&l.component(), State::Retrying, e.public_message());
                l.backoff(attempt).await;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
