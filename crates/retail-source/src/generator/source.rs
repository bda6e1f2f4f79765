//! The generator as a pipeline source: a task that creates its topics, appends the catalog,
//! then paces data events onto the log at the configured rate, in group-commit sized batches,
//! under a [`GeneratorHandle`] that changes the rate or pauses it at runtime.
//!
//! Pacing is a schedule, not a sleep per event: since the last rate change, `elapsed * rate`
//! events are due; every [`TICK`] the task appends those due (at most [`MAX_BATCH`] per
//! append, so the log can group-commit them). A stalled log is caught up by at most one
//! second's worth, so a long outage does not end in a burst. Rate 0 produces nothing (the
//! source waits for a new rate); an infinite rate (`rate = "unlimited"`) means no pacing.
//! The clock is read once per batch, so the events of one batch share their `ts`.
//!
//! The task acknowledges nothing upstream (it has no upstream), but it follows the sources'
//! rule all the same: it appends through the sources' one durable path
//! ([`SourceRuntime::append_with`]), and stats count a record only after the append that holds
//! it returned, so the stats describe exactly what is on the log.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use retail_core::health::State;
use retail_core::{Health, Metrics, Shutdown};
use retail_log::Log;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::info;

use super::clock::{Clock, SystemClock};
use super::config::GeneratorConfig;
use super::generate::EventGenerator;
use super::stats::GeneratorStats;
use crate::runtime::{RateControl, SourceRuntime};
use crate::{Error, Result};

/// Most records per append: large enough for the log to group-commit, small enough to keep a
/// batch's generation (about a millisecond) from hogging the runtime.
pub const MAX_BATCH: usize = 2000;
/// How often a paced generator appends what is due.
pub const TICK: Duration = Duration::from_millis(10);
/// How far behind schedule a stalled log may leave the generator before it gives up catching up.
const MAX_CATCH_UP: Duration = Duration::from_secs(1);

/// What the handle controls.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Control {
    rate: f64,
    paused: bool,
}

/// The stats as the handle reads them; written after every durable append (a lock taken once
/// per batch, never contended for long).
#[derive(Debug, Default)]
struct LiveStats(Mutex<GeneratorStats>);

impl LiveStats {
    fn publish(&self, s: &GeneratorStats) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = *s;
    }

    fn snapshot(&self) -> GeneratorStats {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
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
    /// Sets the data rate in events per second (0 = no events, infinity = unlimited); takes
    /// effect at once, without catching up on the old schedule.
    pub fn set_rate(&self, rate: f64) -> Result<()> {
        if rate.is_nan() || rate < 0.0 {
            return Err(Error::Config(format!(
                "generator rate must be a number >= 0 (0 = no events) or unlimited, got {rate}"
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

    /// Events due at `now`: none at rate 0, unlimited at an infinite rate, else at most
    /// [`MAX_CATCH_UP`] worth.
    fn due(&mut self, now: Instant) -> u64 {
        if self.rate.is_infinite() {
            return u64::MAX;
        }
        if self.rate <= 0.0 {
            return 0;
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
            name: config.name.clone(),
            partitions: config.partitions,
            appended: 0,
            health: None,
        })
    }

    /// Reports this source's state under its name in `health` when run with [`Self::run`].
    /// Registers the source on `health` at once (as starting), so `/health` lists it from the
    /// first answer, before the task is first polled.
    #[must_use]
    pub fn with_health(mut self, health: Health) -> Self {
        health.set(&self.name, State::Starting, "starting");
        self.health = Some(health);
        self
    }

    /// Where a simulated span ends ([`EventGenerator::set_span_end`]).
    pub fn set_span_end(&mut self, ms: i64) {
        self.generator.set_span_end(ms);
    }

    /// The control handle.
    pub fn handle(&self) -> GeneratorHandle {
        self.handle.clone()
    }

    /// The source name (metrics label, health component, events' `source`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the source on its own runtime (tests and tools that have no pipeline): see
    /// [`Self::run_in`].
    pub async fn run(
        self,
        log: Arc<dyn Log>,
        shutdown: Shutdown,
        metrics: Metrics,
    ) -> Result<GeneratorStats> {
        let health = self.health.clone().unwrap_or_default();
        let runtime = SourceRuntime::new(&self.name, "generator", log, &metrics, health, shutdown);
        self.run_in(runtime).await
    }

    /// Creates the `catalog` and `sales` topics, appends the catalog, then paced data events,
    /// until `events` were appended or shutdown is triggered (checked between batches), all
    /// through `runtime`'s durable path. Counts data events as received and every record as
    /// accepted once each append returned. Returns the stats of what was appended.
    pub async fn run_in(mut self, runtime: SourceRuntime) -> Result<GeneratorStats> {
        let result = self.run_inner(&runtime).await;
        match &result {
            Ok(stats) if self.generator.is_finished() => {
                runtime.set_state(State::Done, format!("appended {} records", stats.appended));
                info!(message = "generator finished", source = %self.name, appended = stats.appended);
            }
            Ok(stats) => info!(message = "generator stopped", source = %self.name, appended = stats.appended),
            Err(error) => runtime.set_state(State::Failed, error.to_string()),
        }
        result
    }

    async fn run_inner(&mut self, runtime: &SourceRuntime) -> Result<GeneratorStats> {
        runtime.set_state(State::Starting, "creating topics and appending the catalog");
        if !runtime
            .ensure_topics(&self.generator.topics(), self.partitions)
            .await?
        {
            return Ok(self.stats());
        }
        let shutdown = runtime.shutdown().clone();

        while !self.generator.catalog_done() {
            if shutdown.is_triggered() || self.produce(runtime, Phase::Catalog).await?.is_none() {
                return Ok(self.stats());
            }
        }

        let mut control_rx = self.handle.control.subscribe();
        let mut paused_rx = runtime.paused_changes();
        let mut control = *control_rx.borrow_and_update();
        let mut paused = *paused_rx.borrow_and_update();
        let mut pace = Pace::new(control.rate, Instant::now());
        let mut next_tick = Instant::now();
        Self::show_control(runtime, control);
        info!(
            message = "generator running",
            source = %self.name,
            rate = control.rate,
            events = ?self.generator.data_remaining(),
        );
        while !shutdown.is_triggered() && self.generator.data_remaining() != Some(0) {
            let latest = *control_rx.borrow_and_update();
            let latest_paused = *paused_rx.borrow_and_update();
            if latest != control || latest_paused != paused {
                control = latest;
                paused = latest_paused;
                pace = Pace::new(control.rate, Instant::now());
                info!(
                    message = "generator control changed",
                    source = %self.name,
                    rate = control.rate,
                    paused = control.paused || paused,
                );
                Self::show_control(runtime, control);
            }
            if control.paused || paused {
                tokio::select! {
                    _ = control_rx.changed() => {}
                    _ = paused_rx.changed() => {}
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
                    _ = paused_rx.changed() => {}
                    () = shutdown.wait() => {}
                }
                continue;
            }
            let max = usize::try_from(due).unwrap_or(MAX_BATCH).min(MAX_BATCH);
            let Some(n) = self.produce(runtime, Phase::Data(max)).await? else {
                break;
            };
            runtime.received(n as u64);
            pace.emitted += n as u64;
            next_tick = now + TICK;
            if control.rate.is_infinite() {
                // Unpaced, the loop may never wait on anything: let other tasks run.
                tokio::task::yield_now().await;
            }
        }
        Ok(self.stats())
    }

    /// Generates the next batch of `phase` and appends it through the durable path, then
    /// counts and publishes it. Returns its size, or `None` if shutdown came while retrying.
    ///
    /// A retried batch is the same batch, never a skipped one: the generator is rewound to its
    /// state before the batch and refills it at the same clock reading, which reproduces it
    /// byte for byte. That is cheaper than keeping a copy of every batch in case the append
    /// fails (`append` consumes its records): a rewind point is a few RNG states, not
    /// thousands of allocations. Not so with orders in flight and stock series, whose state
    /// grows with the world: then the batch is generated once and a copy appended each try.
    async fn produce(&mut self, runtime: &SourceRuntime, phase: Phase) -> Result<Option<usize>> {
        let now_ms = self.generator.now_ms();
        let mut n = 0;
        let generator = &mut self.generator;
        let fill = |generator: &mut EventGenerator, batch: &mut Vec<_>| match phase {
            Phase::Catalog => generator.fill_catalog_at(batch, MAX_BATCH, now_ms),
            Phase::Data(max) => generator.fill_data_at(batch, max, now_ms),
        };
        let appended = if generator.rewinds_cheaply() {
            let rewind = generator.clone();
            runtime
                .append_with(|| {
                    *generator = rewind.clone();
                    let mut batch = Vec::new();
                    n = fill(generator, &mut batch);
                    batch
                })
                .await?
        } else {
            let mut batch = Vec::new();
            n = fill(generator, &mut batch);
            runtime.append_with(|| batch.clone()).await?
        };
        if appended.is_none() {
            return Ok(None);
        }
        self.appended += n as u64;
        self.handle.stats.publish(&self.stats());
        Ok(Some(n))
    }

    fn stats(&self) -> GeneratorStats {
        GeneratorStats {
            appended: self.appended,
            ..*self.generator.stats()
        }
    }

    fn show_control(runtime: &SourceRuntime, control: Control) {
        if control.paused {
            runtime.set_state(State::Paused, "paused");
        } else if control.rate.is_infinite() {
            runtime.set_state(State::Running, "unlimited rate");
        } else if control.rate <= 0.0 {
            runtime.set_state(State::Running, "rate 0: producing nothing");
        } else {
            runtime.set_state(State::Running, format!("{} events/s", control.rate));
        }
    }
}

impl RateControl for GeneratorHandle {
    fn rate(&self) -> f64 {
        Self::rate(self)
    }
    fn set_rate(&self, rate: f64) -> Result<()> {
        Self::set_rate(self, rate)
    }
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
