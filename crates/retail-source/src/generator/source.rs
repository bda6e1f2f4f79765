//! The generator as a pipeline source: a task that creates its topics, appends the catalog,
//! then paces data events onto the log at the configured rate, in group-commit sized batches,
//! under a [`GeneratorHandle`] that changes the rate or pauses it at runtime.
//!
//! Pacing is a schedule, not a sleep per event: since the last rate change, `elapsed * rate`
//! events are due; every [`TICK`] the task appends those due (at most [`MAX_BATCH`] per
//! append, so the log can group-commit them). A stalled log is caught up by at most one
//! second's worth, so a long outage does not end in a burst. Rate 0 means no pacing at all.
//! The clock is read once per batch, so the events of one batch share their `ts`.
//!
//! The task acknowledges nothing upstream (it has no upstream), but it follows the sources'
//! rule all the same: metrics and stats count a record only after the append that holds it
//! returned, so the stats describe exactly what is on the log.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use retail_core::event::topics;
use retail_core::health::State;
use retail_core::{Health, Metrics, Shutdown};
use retail_log::Log;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use super::config::GeneratorConfig;
use super::generate::{Clock, EventGenerator, GeneratorStats, SystemClock};
use crate::{Error, Result};

/// Most records per append: large enough for the log to group-commit, small enough to keep a
/// batch's generation (about a millisecond) from hogging the runtime.
pub const MAX_BATCH: usize = 2000;
/// How often a paced generator appends what is due.
pub const TICK: Duration = Duration::from_millis(10);
/// How far behind schedule a stalled log may leave the generator before it gives up catching up.
const MAX_CATCH_UP: Duration = Duration::from_secs(1);
/// Backoff between retries of a failed log call, doubling from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(5));

/// What the handle controls.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Control {
    rate: f64,
    paused: bool,
}

/// The stats as the handle reads them; written after every durable append.
#[derive(Debug, Default)]
struct LiveStats([AtomicU64; 10]);

impl LiveStats {
    fn publish(&self, s: &GeneratorStats) {
        let values = [
            s.catalog,
            s.generated,
            s.appended,
            s.sales,
            s.returns,
            s.duplicates,
            s.malformed,
            s.out_of_order,
            s.late,
            s.distinct,
        ];
        for (slot, v) in self.0.iter().zip(values) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> GeneratorStats {
        let v = self.0.each_ref().map(|a| a.load(Ordering::Relaxed));
        // The order of publish().
        GeneratorStats {
            catalog: v[0],
            generated: v[1],
            appended: v[2],
            sales: v[3],
            returns: v[4],
            duplicates: v[5],
            malformed: v[6],
            out_of_order: v[7],
            late: v[8],
            distinct: v[9],
        }
    }
}

/// Controls a running generator: rate, pause, live stats. Cheap to clone; the control API
/// holds one.
#[derive(Debug, Clone)]
pub struct GeneratorHandle {
    control: watch::Sender<Control>,
    stats: Arc<LiveStats>,
}

impl GeneratorHandle {
    /// Sets the data rate in events per second (0 = unlimited); takes effect at once, without
    /// catching up on the old schedule.
    pub fn set_rate(&self, rate: f64) -> Result<()> {
        if !(rate.is_finite() && rate >= 0.0) {
            return Err(Error::Config(format!(
                "generator rate must be a number >= 0, got {rate}"
            )));
        }
        self.control.send_modify(|c| c.rate = rate);
        Ok(())
    }

    /// The configured rate (also while paused).
    pub fn rate(&self) -> f64 {
        self.control.borrow().rate
    }

    /// Stops producing data events until [`Self::resume`].
    pub fn pause(&self) {
        self.control.send_modify(|c| c.paused = true);
    }

    /// Produces again at the configured rate.
    pub fn resume(&self) {
        self.control.send_modify(|c| c.paused = false);
    }

    /// Whether the generator is paused.
    pub fn is_paused(&self) -> bool {
        self.control.borrow().paused
    }

    /// What is on the log so far: the stats are published after each durable append, so they
    /// count appended records only.
    pub fn stats(&self) -> GeneratorStats {
        self.stats.snapshot()
    }
}

/// What [`GeneratorSource::produce`] generates: the catalog, or up to so many data events.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Catalog,
    Data(usize),
}

/// The schedule since the last rate change.
#[derive(Debug)]
struct Pace {
    rate: f64,
    start: Instant,
    emitted: u64,
}

impl Pace {
    const fn new(rate: f64, start: Instant) -> Self {
        Self {
            rate,
            start,
            emitted: 0,
        }
    }

    /// Events due at `now`: unlimited at rate 0, else at most [`MAX_CATCH_UP`] worth.
    fn due(&mut self, now: Instant) -> u64 {
        if self.rate == 0.0 {
            return u64::MAX;
        }
        // The epsilon absorbs float rounding, so that at `next_due()` the event really is due.
        let total = (now.saturating_duration_since(self.start).as_secs_f64() * self.rate + 1e-6) as u64;
        let max_backlog = ((self.rate * MAX_CATCH_UP.as_secs_f64()) as u64).max(1);
        let due = total.saturating_sub(self.emitted);
        if due > max_backlog {
            self.emitted = total - max_backlog;
            return max_backlog;
        }
        due
    }

    /// When the next event is due.
    fn next_due(&self) -> Instant {
        let after =
            Duration::try_from_secs_f64((self.emitted + 1) as f64 / self.rate).unwrap_or(Duration::MAX);
        self.start
            .checked_add(after)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }
}

/// The load generator as a source task. Build it from a [`GeneratorConfig`], take a
/// [`Self::handle`] if the rate should change at runtime, then [`Self::run`] it.
#[derive(Debug)]
pub struct GeneratorSource {
    generator: EventGenerator,
    handle: GeneratorHandle,
    name: String,
    partitions: i32,
    appended: u64,
    health: Option<Health>,
}

impl GeneratorSource {
    /// A source on the wall clock.
    pub fn new(config: &GeneratorConfig) -> Result<Self> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// A source whose events carry `clock`'s time.
    pub fn with_clock(config: &GeneratorConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        let generator = EventGenerator::with_clock(config, clock)?;
        let (control, _) = watch::channel(Control {
            rate: config.rate,
            paused: false,
        });
        Ok(Self {
            generator,
            handle: GeneratorHandle {
                control,
                stats: Arc::default(),
            },
            name: config.source_name.clone(),
            partitions: config.partitions,
            appended: 0,
            health: None,
        })
    }

    /// Reports this source's state under its name in `health`.
    /// Registers the source on `health` at once (as starting), so `/health` lists it from the
    /// first answer, before the task is first polled.
    #[must_use]
    pub fn with_health(mut self, health: Health) -> Self {
        health.set(&self.name, State::Starting, "starting");
        self.health = Some(health);
        self
    }

    /// The control handle.
    pub fn handle(&self) -> GeneratorHandle {
        self.handle.clone()
    }

    /// The source name (metrics label, health component, events' `source`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the `catalog` and `sales` topics, appends the catalog, then paced data events,
    /// until `events` were appended or `shutdown` is triggered (checked between batches).
    /// Counts `source_received`/`source_accepted` once each append returned. Retryable log
    /// errors are retried with backoff, the same batch again, never skipped; other log errors
    /// end the task. Returns the stats of what was appended.
    pub async fn run(
        mut self,
        log: Arc<dyn Log>,
        shutdown: Shutdown,
        metrics: Metrics,
    ) -> Result<GeneratorStats> {
        let result = self.run_inner(&log, &shutdown, &metrics).await;
        match &result {
            Ok(stats) if self.generator.is_finished() => {
                self.set_health(State::Done, format!("appended {} records", stats.appended));
                info!(message = "generator finished", source = %self.name, appended = stats.appended);
            }
            Ok(stats) => info!(message = "generator stopped", source = %self.name, appended = stats.appended),
            Err(error) => self.set_health(State::Failed, error.to_string()),
        }
        result
    }

    async fn run_inner(
        &mut self,
        log: &Arc<dyn Log>,
        shutdown: &Shutdown,
        metrics: &Metrics,
    ) -> Result<GeneratorStats> {
        let (received, accepted) = (
            metrics.source_received(&self.name),
            metrics.source_accepted(&self.name),
        );
        let counters = move |n: u64| {
            received.inc_by(n);
            accepted.inc_by(n);
        };
        self.set_health(State::Starting, "creating topics and appending the catalog");
        for topic in [topics::CATALOG, topics::SALES] {
            let what = format!("creating topic {topic}");
            if self
                .retry(&what, shutdown, || log.ensure_topic(topic, self.partitions))
                .await?
                .is_none()
            {
                return Ok(self.stats());
            }
        }

        while !self.generator.catalog_done() {
            if shutdown.is_triggered()
                || self
                    .produce(log, shutdown, &counters, Phase::Catalog)
                    .await?
                    .is_none()
            {
                return Ok(self.stats());
            }
        }

        let mut control_rx = self.handle.control.subscribe();
        let mut control = *control_rx.borrow_and_update();
        let mut pace = Pace::new(control.rate, Instant::now());
        let mut next_tick = Instant::now();
        self.set_control_health(control);
        info!(
            message = "generator running",
            source = %self.name,
            rate = control.rate,
            events = ?self.generator.data_remaining(),
        );
        while !shutdown.is_triggered() && self.generator.data_remaining() != Some(0) {
            let latest = *control_rx.borrow_and_update();
            if latest != control {
                control = latest;
                pace = Pace::new(control.rate, Instant::now());
                info!(
                    message = "generator control changed",
                    source = %self.name,
                    rate = control.rate,
                    paused = control.paused,
                );
                self.set_control_health(control);
            }
            if control.paused {
                tokio::select! {
                    _ = control_rx.changed() => {}
                    () = shutdown.wait() => {}
                }
                continue;
            }
            let now = Instant::now();
            let due = pace.due(now);
            if due == 0 {
                // At least a millisecond (the timer's resolution) ahead, so the loop cannot spin.
                let wake = pace.next_due().max(next_tick).max(now + Duration::from_millis(1));
                tokio::select! {
                    () = tokio::time::sleep_until(wake) => {}
                    _ = control_rx.changed() => {}
                    () = shutdown.wait() => {}
                }
                continue;
            }
            let max = usize::try_from(due).unwrap_or(MAX_BATCH).min(MAX_BATCH);
            let Some(n) = self.produce(log, shutdown, &counters, Phase::Data(max)).await? else {
                break;
            };
            pace.emitted += n as u64;
            next_tick = now + TICK;
            if control.rate == 0.0 {
                // Unpaced, the loop may never wait on anything: let other tasks run.
                tokio::task::yield_now().await;
            }
        }
        Ok(self.stats())
    }

    /// Generates the next batch of `phase` and appends it, then counts and publishes it.
    /// Returns its size, or `None` if shutdown came while retrying.
    ///
    /// A retryable failure is retried with the same batch, never skipping it: the generator is
    /// rewound to its state before the batch and refills it at the same clock reading, which
    /// reproduces it byte for byte. That is cheaper than keeping a copy of every batch in case
    /// the append fails (`append` consumes its records): a rewind point is a few RNG states,
    /// not thousands of allocations.
    async fn produce(
        &mut self,
        log: &Arc<dyn Log>,
        shutdown: &Shutdown,
        count: &impl Fn(u64),
        phase: Phase,
    ) -> Result<Option<usize>> {
        let rewind = self.generator.clone();
        let now_ms = self.generator.now_ms();
        let mut backoff = BACKOFF.0;
        let mut failed = false;
        loop {
            let mut batch = Vec::new();
            let n = match phase {
                Phase::Catalog => self.generator.fill_catalog_at(&mut batch, MAX_BATCH, now_ms),
                Phase::Data(max) => self.generator.fill_data_at(&mut batch, max, now_ms),
            };
            match log.append(batch).await {
                Ok(_) => {
                    if failed {
                        info!(message = "append succeeded after retrying", source = %self.name);
                        self.set_health(State::Running, "recovered");
                    }
                    self.appended += n as u64;
                    count(n as u64);
                    self.handle.stats.publish(&self.stats());
                    return Ok(Some(n));
                }
                Err(error) if error.is_retryable() => {
                    failed = true;
                    self.generator = rewind.clone();
                    warn!(
                        message = "append failed, retrying the same batch",
                        source = %self.name,
                        records = n,
                        %error,
                        backoff_ms = backoff.as_millis() as u64,
                    );
                    self.set_health(State::Retrying, format!("appending {n} records: {error}"));
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.wait() => return Ok(None),
                    }
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Runs `op` until it succeeds, backing off on retryable errors. `None` when shutdown came
    /// first.
    async fn retry<T, F, Fut>(&self, what: &str, shutdown: &Shutdown, mut op: F) -> Result<Option<T>>
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
                        info!(message = "log call succeeded after retrying", source = %self.name, what);
                        self.set_health(State::Running, "recovered");
                    }
                    return Ok(Some(v));
                }
                Err(error) if error.is_retryable() => {
                    failed = true;
                    warn!(
                        message = "log call failed, retrying",
                        source = %self.name,
                        what,
                        %error,
                        backoff_ms = backoff.as_millis() as u64,
                    );
                    self.set_health(State::Retrying, format!("{what}: {error}"));
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.wait() => return Ok(None),
                    }
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    fn stats(&self) -> GeneratorStats {
        GeneratorStats {
            appended: self.appended,
            ..*self.generator.stats()
        }
    }

    fn set_control_health(&self, control: Control) {
        if control.paused {
            self.set_health(State::Paused, "paused");
        } else if control.rate == 0.0 {
            self.set_health(State::Running, "unlimited rate");
        } else {
            self.set_health(State::Running, format!("{} events/s", control.rate));
        }
    }

    fn set_health(&self, state: State, detail: impl Into<String>) {
        if let Some(h) = &self.health {
            h.set(&self.name, state, detail);
        }
    }
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
