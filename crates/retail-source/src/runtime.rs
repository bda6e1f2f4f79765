//! What every source shares at run time: its counters, its state on `/health`, its pause
//! switch, its rate where it has one, and the one durable path onto the log.
//!
//! A source holds a [`SourceRuntime`] (the writing side); the binary, the control API, the
//! dashboard and `/health` hold a [`SourceHandle`] on the same state (the reading and
//! controlling side) and never need to know the source's type.
//!
//! The durable path ([`SourceRuntime::append_with`]) is the sources' one promise: a batch is
//! appended, retryable log errors are retried with backoff (the same batch again, never
//! skipped), and the call returns only once the log acknowledged it. A source acknowledges its
//! own input (an HTTP 202, an MQTT PUBACK, a CSV ledger entry) only after that, so nothing it
//! acknowledged can be lost. `None` means shutdown came first and nothing was acknowledged.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use retail_core::health::State;
use retail_core::{Health, Metrics, Shutdown};
use retail_log::{Log, ProducerRecord, RecordMetadata};
use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{Error, Result};

/// Backoff between retries of a failed log call, doubling from the first to the last.
pub const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(5));

/// A source's rate, for sources that pace themselves (the generator). Registered on the
/// runtime so the control API can change it without knowing the source's type.
pub trait RateControl: Send + Sync + fmt::Debug + 'static {
    /// Events per second; 0 produces nothing, infinity means as fast as the log goes.
    fn rate(&self) -> f64;
    /// Changes the rate; the error says why a value is refused.
    fn set_rate(&self, rate: f64) -> Result<()>;
}

/// A source's counters, as `/health`, the control API and the demo summary show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SourceCounts {
    /// Inputs the source took in (events, rows, messages), before validation.
    pub received: u64,
    /// Records appended to the log (acknowledged).
    pub accepted: u64,
    /// Inputs refused at the source (and answered or dead-lettered as such).
    pub rejected: u64,
}

#[derive(Debug)]
struct Inner {
    name: String,
    kind: &'static str,
    log: Arc<dyn Log>,
    health: Health,
    shutdown: Shutdown,
    received: Counter,
    accepted: Counter,
    rejected: Counter,
    paused: watch::Sender<bool>,
    /// The state last set while running, restored on resume.
    state: Mutex<(State, String)>,
    rate: OnceLock<Arc<dyn RateControl>>,
    /// Whether the source ends by itself (a generator with a fixed count).
    bounded: OnceLock<bool>,
    /// One line for people: where it listens or what it reads.
    description: OnceLock<String>,
    /// Records acknowledged by the log, per topic (a few topics per source), for lineage.
    per_topic: Mutex<Vec<(String, u64)>>,
    /// The last [`SourceRuntime::append_once`] failed and `/health` shows it retrying.
    append_failing: AtomicBool,
}

impl Inner {
    /// The state last set while running (shown again after a pause or a retry).
    fn remembered(&self) -> (State, String) {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or((State::Running, String::new()))
    }
}

/// The writing side of a source's shared state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SourceRuntime {
    inner: Arc<Inner>,
}

/// The reading and controlling side of a source: what the binary, `/health`, the control API
/// and the dashboard use. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SourceHandle {
    inner: Arc<Inner>,
}

impl SourceRuntime {
    /// A runtime for the source `name` of type `kind`, registered on `health` as starting.
    pub fn new(
        name: &str,
        kind: &'static str,
        log: Arc<dyn Log>,
        metrics: &Metrics,
        health: Health,
        shutdown: Shutdown,
    ) -> Self {
        health.set(name, State::Starting, "starting");
        let (paused, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                kind,
                log,
                health,
                shutdown,
                received: metrics.source_received(name),
                accepted: metrics.source_accepted(name),
                rejected: metrics.source_rejected(name),
                paused,
                state: Mutex::new((State::Starting, "starting".to_owned())),
                rate: OnceLock::new(),
                bounded: OnceLock::new(),
                description: OnceLock::new(),
                per_topic: Mutex::new(Vec::new()),
                append_failing: AtomicBool::new(false),
            }),
        }
    }

    /// The handle on this source.
    pub fn handle(&self) -> SourceHandle {
        SourceHandle {
            inner: self.inner.clone(),
        }
    }

    /// The source's name: its metrics label, `/health` component and events' `source`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The log this source appends to.
    pub fn log(&self) -> &Arc<dyn Log> {
        &self.inner.log
    }

    /// The shutdown signal of the sources.
    pub fn shutdown(&self) -> &Shutdown {
        &self.inner.shutdown
    }

    /// Lets the control API change this source's rate.
    pub fn set_rate_control(&self, rate: Arc<dyn RateControl>) {
        let _ = self.inner.rate.set(rate);
    }

    /// Declares that the source ends by itself (the demo then waits for it before it stops).
    pub fn set_bounded(&self, bounded: bool) {
        let _ = self.inner.bounded.set(bounded);
    }

    /// Says in one line where the source listens or what it reads (`POST /ingest/pos`), for
    /// the lines `demo` prints at start.
    pub fn set_description(&self, description: impl Into<String>) {
        let _ = self.inner.description.set(description.into());
    }

    /// Sets the source's state on `/health`. While paused, the state is remembered and shown
    /// again on resume.
    pub fn set_state(&self, state: State, detail: impl Into<String>) {
        let detail = detail.into();
        if let Ok(mut s) = self.inner.state.lock() {
            *s = (state, detail.clone());
        }
        if !self.is_paused() || !matches!(state, State::Running | State::Starting) {
            self.inner.health.set(&self.inner.name, state, detail);
        }
    }

    /// Counts inputs taken in.
    pub fn received(&self, n: u64) {
        self.inner.received.inc_by(n);
    }

    /// Counts inputs refused at the source.
    pub fn rejected(&self, n: u64) {
        self.inner.rejected.inc_by(n);
    }

    /// Whether an operator paused the source.
    pub fn is_paused(&self) -> bool {
        *self.inner.paused.borrow()
    }

    /// A receiver that sees pause and resume.
    pub fn paused_changes(&self) -> watch::Receiver<bool> {
        self.inner.paused.subscribe()
    }

    /// Waits while the source is paused. `false` when shutdown came first.
    pub async fn wait_unpaused(&self) -> bool {
        let mut rx = self.paused_changes();
        loop {
            if self.inner.shutdown.is_triggered() {
                return false;
            }
            if !*rx.borrow_and_update() {
                return true;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return false },
                () = self.inner.shutdown.wait() => return false,
            }
        }
    }

    /// The one durable path: appends the batch `make` builds, retrying retryable log errors
    /// with backoff by calling `make` again for the same batch (a source that can rebuild its
    /// batch, like the generator, need not keep a copy). Counts the records as accepted once
    /// the log acknowledged them. `Ok(None)` if shutdown came while retrying: nothing of the
    /// batch may be acknowledged then. A log error that retrying cannot fix is returned.
    pub async fn append_with(
        &self,
        make: impl FnMut() -> Vec<ProducerRecord>,
    ) -> Result<Option<Vec<RecordMetadata>>> {
        self.append_counted(make, None).await
    }

    /// [`Self::append_with`], counting `accepted` records as accepted instead of the whole
    /// batch (the rest are refused inputs carried to the dead letters).
    pub async fn append_counted(
        &self,
        mut make: impl FnMut() -> Vec<ProducerRecord>,
        accepted: Option<u64>,
    ) -> Result<Option<Vec<RecordMetadata>>> {
        let mut backoff = BACKOFF.0;
        let mut failed = false;
        loop {
            let batch = make();
            let n = batch.len() as u64;
            if n == 0 {
                return Ok(Some(Vec::new()));
            }
            let topics = count_topics(&batch);
            match self.inner.log.append(batch).await {
                Ok(meta) => {
                    self.inner.accepted.inc_by(accepted.unwrap_or(n));
                    self.add_topic_counts(topics);
                    if failed {
                        info!(message = "append succeeded after retrying", source = %self.inner.name);
                        self.recovered();
                    }
                    return Ok(Some(meta));
                }
                Err(error) if error.is_retryable() => {
                    failed = true;
                    warn!(
                        message = "append failed, retrying the same batch",
                        source = %self.inner.name,
                        records = n,
                        %error,
                        backoff_ms = backoff.as_millis() as u64,
                    );
                    self.show(State::Retrying, format!("appending {n} records: {error}"));
                    if !self.sleep(backoff).await {
                        return Ok(None);
                    }
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Appends once, without retrying: for sources whose sender waits and can retry itself
    /// (a webhook answers 503 with `Retry-After` rather than hold the request through a log
    /// outage). `accepted` of the records are counted as accepted once the log acknowledged
    /// them (the rest are rejects carried to the dead letters). A retryable refusal shows
    /// the source as `retrying` with the log's reason (a full disk budget, say) until an
    /// append succeeds.
    pub async fn append_once(
        &self,
        records: Vec<ProducerRecord>,
        accepted: u64,
    ) -> Result<Vec<RecordMetadata>> {
        let topics = count_topics(&records);
        let meta = match self.inner.log.append(records).await {
            Ok(meta) => meta,
            Err(error) => {
                if error.is_retryable() {
                    // The sender is answered "retry later"; /health says why (a full disk, say).
                    self.inner.append_failing.store(true, Ordering::Relaxed);
                    self.show(State::Retrying, format!("appending to the log: {error}"));
                } else if error.needs_restart() {
                    // No later request can succeed: /health shows it failed, with the cause.
                    self.show(State::Failed, format!("appending to the log: {error}"));
                }
                return Err(Error::Log(error));
            }
        };
        if self.inner.append_failing.swap(false, Ordering::Relaxed) {
            info!(message = "the log takes appends again", source = %self.inner.name);
            self.recovered();
        }
        self.inner.accepted.inc_by(accepted);
        self.add_topic_counts(topics);
        Ok(meta)
    }

    /// Adds a batch's per-topic counts once the log acknowledged it.
    fn add_topic_counts(&self, batch: Vec<(String, u64)>) {
        let Ok(mut seen) = self.inner.per_topic.lock() else {
            return;
        };
        for (topic, n) in batch {
            match seen.iter_mut().find(|(t, _)| *t == topic) {
                Some((_, total)) => *total += n,
                None => seen.push((topic, n)),
            }
        }
    }

    /// Runs the log call `op` until it succeeds, backing off on retryable errors. `None` when
    /// shutdown came first.
    pub async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<Option<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = retail_log::Result<T>>,
    {
        let mut backoff = BACKOFF.0;
        let mut failed = false;
        loop {
            match op().await {
                Ok(v) => {
                    if failed {
                        info!(message = "log call succeeded after retrying", source = %self.inner.name, what);
                        self.recovered();
                    }
                    return Ok(Some(v));
                }
                Err(error) if error.is_retryable() => {
                    failed = true;
                    warn!(message = "log call failed, retrying", source = %self.inner.name, what, %error);
                    self.show(State::Retrying, format!("{what}: {error}"));
                    if !self.sleep(backoff).await {
                        return Ok(None);
                    }
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
                Err(error) => return Err(Error::Log(error)),
            }
        }
    }

    /// Creates (or checks) `topics` with `partitions` partitions each, retrying retryable log
    /// errors. `false` when shutdown came first.
    pub async fn ensure_topics(&self, topics: &[&str], partitions: i32) -> Result<bool> {
        for &topic in topics {
            let log = self.inner.log.clone();
            let made = self
                .retry(&format!("creating topic {topic}"), || {
                    log.ensure_topic(topic, partitions)
                })
                .await?;
            if made.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Sleeps `d` unless shutdown comes first (`false`).
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => true,
            () = self.inner.shutdown.wait() => false,
        }
    }

    /// Shows a transient state without forgetting the remembered one.
    fn show(&self, state: State, detail: String) {
        self.inner.health.set(&self.inner.name, state, detail);
    }

    /// Shows the remembered state again after a retry succeeded.
    fn recovered(&self) {
        let (state, detail) = self.inner.remembered();
        let state = if self.is_paused() { State::Paused } else { state };
        self.inner.health.set(&self.inner.name, state, detail);
    }
}

impl SourceHandle {
    /// The source's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The source's type (`generator`, `webhook`, `csv`, ...).
    pub fn kind(&self) -> &'static str {
        self.inner.kind
    }

    /// Its state as `/health` shows it.
    pub fn state(&self) -> State {
        self.inner
            .health
            .snapshot()
            .get(&self.inner.name)
            .map_or(State::Starting, |s| s.state)
    }

    /// Its counters so far.
    pub fn counts(&self) -> SourceCounts {
        SourceCounts {
            received: self.inner.received.get(),
            accepted: self.inner.accepted.get(),
            rejected: self.inner.rejected.get(),
        }
    }

    /// Stops taking new input until [`Self::resume`]. What a source does meanwhile is its own:
    /// the generator produces nothing, a webhook answers 503 with `Retry-After`, a folder is
    /// not read.
    pub fn pause(&self) {
        self.inner.paused.send_replace(true);
        self.inner
            .health
            .set(&self.inner.name, State::Paused, "paused by an operator");
        info!(message = "source paused", source = %self.inner.name);
    }

    /// Takes input again.
    pub fn resume(&self) {
        self.inner.paused.send_replace(false);
        let (state, detail) = self.inner.remembered();
        self.inner.health.set(&self.inner.name, state, detail);
        info!(message = "source resumed", source = %self.inner.name);
    }

    /// Whether paused.
    pub fn is_paused(&self) -> bool {
        *self.inner.paused.borrow()
    }

    /// The rate, for sources that have one.
    pub fn rate(&self) -> Option<f64> {
        self.inner.rate.get().map(|r| r.rate())
    }

    /// Sets the rate; an error for sources without one or for a value the source refuses.
    pub fn set_rate(&self, rate: f64) -> Result<()> {
        match self.inner.rate.get() {
            Some(r) => r.set_rate(rate),
            None => Err(Error::Config(format!(
                "source {:?} (type {}) has no rate",
                self.inner.name, self.inner.kind
            ))),
        }
    }

    /// One line for people: where it listens or what it reads.
    pub fn describe(&self) -> String {
        self.inner.description.get().cloned().unwrap_or_default()
    }

    /// Whether the source ends by itself, so a caller may wait for it.
    pub fn is_bounded(&self) -> bool {
        self.inner.bounded.get().copied().unwrap_or(false)
    }

    /// Records the log acknowledged, per topic, in the order the topics were first written
    /// (what lineage reports as the source's outputs).
    pub fn topic_counts(&self) -> Vec<(String, u64)> {
        self.inner.per_topic.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

/// Records per topic in a batch. A source writes a handful of topics, so a short list searched
/// in order beats a map; a topic's name is cloned once per batch, not per record.
fn count_topics(batch: &[ProducerRecord]) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = Vec::new();
    for r in batch {
        match counts.iter_mut().find(|(t, _)| *t == r.topic) {
            Some((_, n)) => *n += 1,
            None => counts.push((r.topic.clone(), 1)),
        }
    }
    counts
}
