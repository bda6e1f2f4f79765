//! The pipeline's jobs as lineage sees them: each source (its outputs are the topics it has
//! written), the landing (data and catalog topics in; raw tables, dead letters and catalog
//! tables out) and each aggregate (its topic and the catalog tables it joins in; its table and
//! `late_events` out). Inputs, outputs and counts are read from the stages' own handles when
//! asked, so an event and the graph always say what the pipeline did.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use retail_core::event::topics;
use retail_process::aggregate::spec::LatePolicy;
use retail_process::aggregate::Compiled;
use retail_process::LandingHandle;
use retail_serve::{LineageDataset, LineageEdge, LineageGraph, LineageJob, LineageRun, LineageView};
use retail_source::SourceHandle;
use uuid::Uuid;

use super::event::{DatasetIo, EventType, JobRun};
use super::naming::StoreNames;

/// Where a job's inputs and outputs come from.
#[derive(Debug)]
enum Probe {
    Source(SourceHandle),
    Landing {
        handle: LandingHandle,
        topics: Vec<String>,
    },
    Aggregate {
        handle: LandingHandle,
        /// Index of its table in the engine (and in the landing's per-aggregate counts).
        index: usize,
        table: String,
        topic: String,
        joins: Vec<&'static str>,
        records_late: bool,
    },
}

/// One job and its run in this process.
#[derive(Debug)]
pub struct Job {
    /// `source.<name>`, `landing` or `aggregate.<name>`.
    pub name: String,
    probe: Probe,
    run_id: Uuid,
    started: DateTime<Utc>,
    state: Mutex<RunState>,
}

#[derive(Debug, Clone)]
struct RunState {
    last: EventType,
    updated: DateTime<Utc>,
    error: Option<String>,
}

/// Every job, with the names of the log and the store.
#[derive(Debug)]
pub struct Jobs {
    /// The jobs' namespace.
    pub namespace: String,
    log: String,
    store: StoreNames,
    /// The jobs, sources first, in the order data flows.
    pub jobs: Vec<Job>,
}

impl Jobs {
    /// The jobs of a pipeline with these sources, landing (reading `landing_topics` and the
    /// catalog) and aggregates.
    pub fn new(
        namespace: String,
        log: String,
        store: StoreNames,
        sources: &[SourceHandle],
        landing: &LandingHandle,
        landing_topics: &[String],
        aggregates: &[Compiled],
    ) -> Self {
        let mut jobs: Vec<Job> = sources
            .iter()
            .map(|s| Job::new(format!("source.{}", s.name()), Probe::Source(s.clone())))
            .collect();
        let mut topics: Vec<String> = landing_topics.to_vec();
        if !topics.iter().any(|t| t == topics::CATALOG) {
            topics.push(topics::CATALOG.to_owned());
        }
        jobs.push(Job::new(
            "landing".to_owned(),
            Probe::Landing {
                handle: landing.clone(),
                topics,
            },
        ));
        for (index, a) in aggregates.iter().enumerate() {
            let mut joins: Vec<&'static str> = a.dimensions().map(|d| d.table()).collect();
            joins.sort_unstable();
            joins.dedup();
            jobs.push(Job::new(
                format!("aggregate.{}", a.name),
                Probe::Aggregate {
                    handle: landing.clone(),
                    index,
                    table: a.name.to_string(),
                    topic: a.topic.clone(),
                    joins,
                    records_late: a.late == LatePolicy::Record,
                },
            ));
        }
        Self {
            namespace,
            log,
            store,
            jobs,
        }
    }

    fn topic(&self, name: &str, records: Option<u64>) -> DatasetIo {
        DatasetIo {
            namespace: self.log.clone(),
            name: name.to_owned(),
            kind: "topic",
            records,
        }
    }

    fn table(&self, name: &str, records: Option<u64>) -> DatasetIo {
        DatasetIo {
            namespace: self.store.namespace.clone(),
            name: self.store.table(name),
            kind: "table",
            records,
        }
    }

    /// A job's inputs and outputs now, with counts.
    pub fn io(&self, job: &Job) -> (Vec<DatasetIo>, Vec<DatasetIo>) {
        match &job.probe {
            Probe::Source(s) => {
                let outputs = s
                    .topic_counts()
                    .iter()
                    .map(|(t, n)| self.topic(t, Some(*n)))
                    .collect();
                (Vec::new(), outputs)
            }
            Probe::Landing { handle, topics } => {
                let read = handle.topic_records();
                let count = |t: &str| read.iter().find(|(x, _)| x == t).map_or(0, |(_, n)| *n);
                let inputs = topics.iter().map(|t| self.topic(t, Some(count(t)))).collect();
                let p = handle.progress();
                let outputs = vec![
                    self.table("sales_raw", Some(p.sales_landed)),
                    self.table("events_raw", Some(p.events_landed)),
                    self.table("dead_letters", Some(p.dead_letters)),
                    self.topic(topics::DEAD_LETTERS, Some(p.dead_letters)),
                    self.table("store_dim", None),
                    self.table("seller_dim", None),
                    self.table("product_dim", None),
                ];
                (inputs, outputs)
            }
            Probe::Aggregate {
                handle,
                index,
                table,
                topic,
                joins,
                records_late,
            } => {
                let p = handle
                    .aggregate_progress()
                    .get(*index)
                    .copied()
                    .unwrap_or_default();
                let mut inputs = vec![self.topic(topic, Some(p.contributions))];
                inputs.extend(joins.iter().map(|t| self.table(t, None)));
                let mut outputs = vec![self.table(table, Some(p.rows))];
                if *records_late {
                    outputs.push(self.table("late_events", None));
                }
                (inputs, outputs)
            }
        }
    }

    /// Moves `job` to `event_type` (a final state stays final) and returns the event to send,
    /// or `None` if the run had already ended.
    pub fn transition(&self, job: &Job, event_type: EventType, error: Option<&str>) -> Option<String> {
        let now = Utc::now();
        {
            let mut s = job.state.lock().ok()?;
            if s.last.is_final() {
                return None;
            }
            s.last = event_type;
            s.updated = now;
            if let Some(e) = error {
                s.error = Some(e.to_owned());
            }
        }
        let (inputs, outputs) = self.io(job);
        Some(super::event::run_event(
            event_type,
            now,
            &JobRun {
                namespace: &self.namespace,
                name: &job.name,
                job_type: job.job_type(),
                run_id: job.run_id,
                inputs: &inputs,
                outputs: &outputs,
                error,
            },
        ))
    }
}

impl Job {
    fn new(name: String, probe: Probe) -> Self {
        let now = Utc::now();
        Self {
            name,
            probe,
            run_id: Uuid::now_v7(),
            started: now,
            state: Mutex::new(RunState {
                last: EventType::Start,
                updated: now,
                error: None,
            }),
        }
    }

    fn job_type(&self) -> &'static str {
        match self.probe {
            Probe::Source(_) => "SOURCE",
            Probe::Landing { .. } => "LANDING",
            Probe::Aggregate { .. } => "AGGREGATE",
        }
    }

    /// Whether this is the source called `name`.
    pub fn is_source(&self, name: &str) -> bool {
        matches!(&self.probe, Probe::Source(s) if s.name() == name)
    }

    /// Whether this job runs in the landing's task (the landing and every aggregate).
    pub fn in_landing(&self) -> bool {
        !matches!(self.probe, Probe::Source(_))
    }
}

impl LineageView for Jobs {
    fn graph(&self) -> LineageGraph {
        let mut datasets: Vec<LineageDataset> = Vec::new();
        let mut edges = Vec::new();
        let mut jobs = Vec::with_capacity(self.jobs.len());
        for job in &self.jobs {
            let id = format!("job:{}:{}", self.namespace, job.name);
            let (inputs, outputs) = self.io(job);
            for (d, input) in inputs
                .iter()
                .map(|d| (d, true))
                .chain(outputs.iter().map(|d| (d, false)))
            {
                let dataset_id = format!("dataset:{}:{}", d.namespace, d.name);
                if !datasets.iter().any(|x| x.id == dataset_id) {
                    datasets.push(LineageDataset {
                        id: dataset_id.clone(),
                        namespace: d.namespace.clone(),
                        name: d.name.clone(),
                        kind: d.kind.to_owned(),
                    });
                }
                let (from, to) = if input {
                    (dataset_id, id.clone())
                } else {
                    (id.clone(), dataset_id)
                };
                edges.push(LineageEdge {
                    from,
                    to,
                    records: d.records,
                });
            }
            let state = job.state.lock().map(|s| s.clone()).unwrap_or(RunState {
                last: EventType::Start,
                updated: job.started,
                error: None,
            });
            jobs.push(LineageJob {
                id,
                name: job.name.clone(),
                kind: job.job_type().to_ascii_lowercase(),
                source_type: match &job.probe {
                    Probe::Source(s) => Some(s.kind().to_owned()),
                    _ => None,
                },
                run: LineageRun {
                    id: job.run_id.to_string(),
                    state: state.last.as_str().to_owned(),
                    started_at: job.started,
                    updated_at: state.updated,
                    error: state.error,
                },
            });
        }
        LineageGraph {
            namespace: self.namespace.clone(),
            jobs,
            datasets,
            edges,
        }
    }
}
