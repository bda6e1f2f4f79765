//! The data lineage graph `GET /api/v1/lineage` answers: the pipeline's jobs (each source, the
//! landing, each aggregate), the datasets they read and write (log topics, store tables), the
//! edges between them with record counts, and each job's current OpenLineage run. The binary
//! implements [`LineageView`] over its handles (the same state its OpenLineage events are built
//! from), so this crate depends on no stage crate for it.
//!
//! Node ids follow Marquez's lineage API: `job:<namespace>:<name>` and
//! `dataset:<namespace>:<name>`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// The whole graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LineageGraph {
    /// The OpenLineage namespace of the jobs (configuration `lineage.namespace`).
    pub namespace: String,
    /// Every job.
    pub jobs: Vec<LineageJob>,
    /// Every dataset some job reads or writes.
    pub datasets: Vec<LineageDataset>,
    /// Dataset -> job for an input, job -> dataset for an output.
    pub edges: Vec<LineageEdge>,
}

/// One job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LineageJob {
    /// Node id, `job:<namespace>:<name>`.
    pub id: String,
    /// Job name: `source.<name>`, `landing` or `aggregate.<name>`.
    pub name: String,
    /// `source`, `landing` or `aggregate`.
    pub kind: String,
    /// The source's type (`generator`, `webhook`, `csv`...), for sources.
    pub source_type: Option<String>,
    /// This process's run of the job.
    pub run: LineageRun,
}

/// A job's current run, as its last OpenLineage event said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LineageRun {
    /// OpenLineage `runId` (a UUIDv7, new at every start of the process).
    pub id: String,
    /// The last event type: `START`, `RUNNING`, `COMPLETE` or `FAIL`.
    pub state: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When its state last changed or its counts were last reported.
    pub updated_at: DateTime<Utc>,
    /// Why it failed, for `FAIL`.
    pub error: Option<String>,
}

/// One dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LineageDataset {
    /// Node id, `dataset:<namespace>:<name>`.
    pub id: String,
    /// OpenLineage namespace: the log or the store, as a URL without credentials.
    pub namespace: String,
    /// Topic or table name (`db.schema.table` on PostgreSQL).
    pub name: String,
    /// `topic` or `table`.
    pub kind: String,
}

/// One edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LineageEdge {
    /// Node id it starts at.
    pub from: String,
    /// Node id it ends at.
    pub to: String,
    /// Records that went along it in this run (events read, records appended, rows written),
    /// where the pipeline counts them.
    pub records: Option<u64>,
}

/// Implemented by the binary over its sources, landing and aggregates.
pub trait LineageView: Send + Sync + std::fmt::Debug + 'static {
    /// The graph now.
    fn graph(&self) -> LineageGraph;
}
