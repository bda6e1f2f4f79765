//! Data lineage: OpenLineage run events for every job of the pipeline, and the graph that
//! `GET /api/v1/lineage` serves.
//!
//! Each source, the landing and each aggregate is an OpenLineage job with one run per process:
//! START once the pipeline runs, RUNNING every `lineage.interval_s` with the records counted
//! so far on each input and output, then COMPLETE on a clean stop or FAIL with the error when
//! its task fails. Events go to an HTTP endpoint (Marquez's `/api/v1/lineage`) and/or an NDJSON
//! file through one emitter task, never in the pipeline's way (ADR 0011).
//!
//! # Layout
//! - [`config`]: the `[lineage]` section and its checks.
//! - [`naming`]: dataset namespaces and names from the log and store URLs, without secrets.
//! - [`jobs`]: the jobs, their datasets and counts read from the stages' handles, their run
//!   state, and the graph.
//! - [`event`]: the OpenLineage run event as JSON.
//! - [`emit`]: the bounded queue and the emitter task (file, HTTP).

pub mod config;
pub mod emit;
pub mod event;
pub mod jobs;
pub mod naming;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use retail_core::{Metrics, Shutdown};
use retail_process::LandingHandle;
use retail_serve::LineageView;
use retail_source::SourceHandle;
use tokio::task::JoinHandle;

pub use config::LineageConfig;

use self::emit::{Emitter, Sender};
use self::event::EventType;
use self::jobs::Jobs;

/// How long the end of a run waits for the last events to be delivered.
const FLUSH_BUDGET: Duration = Duration::from_secs(5);

/// The pipeline's lineage: its jobs, their runs, and the emitter.
#[derive(Debug)]
pub struct Lineage {
    jobs: Arc<Jobs>,
    emitter: Emitter,
    sender: Sender,
    ticker: Option<(Shutdown, JoinHandle<()>)>,
}

impl Lineage {
    /// Starts every job's run (START), and the RUNNING ticker.
    pub fn start(
        config: &crate::config::Config,
        metrics: &Metrics,
        sources: &[SourceHandle],
        landing: &LandingHandle,
    ) -> Result<Self> {
        let lineage = &config.lineage;
        let jobs = Arc::new(Jobs::new(
            lineage.namespace.clone(),
            naming::log_namespace(&config.log_url()?),
            naming::StoreNames::new(&config.store_url()?),
            sources,
            landing,
            &config.landing.topics,
            &config.aggregates()?,
        ));
        let emitter = Emitter::spawn(lineage, metrics)?;
        let sender = emitter.sender();
        for job in &jobs.jobs {
            emit(&jobs, &sender, job, EventType::Start, None);
        }
        let stop = Shutdown::new();
        let task = tokio::spawn(tick(
            jobs.clone(),
            sender.clone(),
            Duration::from_secs(lineage.interval_s),
            stop.clone(),
        ));
        Ok(Self {
            jobs,
            emitter,
            sender,
            ticker: Some((stop, task)),
        })
    }

    /// What `/api/v1/lineage` serves.
    pub fn view(&self) -> Arc<dyn LineageView> {
        self.jobs.clone()
    }

    /// The source `name` stopped: COMPLETE, or FAIL with `error`.
    pub fn source_ended(&self, name: &str, error: Option<String>) {
        self.end(|j| j.is_source(name), error.as_deref());
    }

    /// The landing's task stopped, and with it every aggregate: COMPLETE, or FAIL with `error`.
    pub fn landing_ended(&self, error: Option<String>) {
        self.end(jobs::Job::in_landing, error.as_deref());
    }

    fn end(&self, which: impl Fn(&jobs::Job) -> bool, error: Option<&str>) {
        let event_type = if error.is_some() {
            EventType::Fail
        } else {
            EventType::Complete
        };
        for job in self.jobs.jobs.iter().filter(|j| which(j)) {
            emit(&self.jobs, &self.sender, job, event_type, error);
        }
    }

    /// Ends every run still going (COMPLETE) and waits a bounded time for the emitter.
    pub async fn finish(&mut self) {
        self.end(|_| true, None);
        if let Some((stop, task)) = self.ticker.take() {
            stop.trigger();
            let _ = task.await;
        }
        self.sender.close();
        self.emitter.close(FLUSH_BUDGET).await;
    }
}

fn emit(jobs: &Jobs, sender: &Sender, job: &jobs::Job, event_type: EventType, error: Option<&str>) {
    if let Some(body) = jobs.transition(job, event_type, error) {
        sender.send(event_type, body);
    }
}

/// RUNNING with the counts so far, for every run still going, every `every`.
async fn tick(jobs: Arc<Jobs>, sender: Sender, every: Duration, stop: Shutdown) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stop.wait() => return,
        }
        for job in &jobs.jobs {
            emit(&jobs, &sender, job, EventType::Running, None);
        }
    }
}
