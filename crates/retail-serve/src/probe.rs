//! What the pipeline reports about itself for `GET /api/v1/status` (and the dashboard): the
//! landing's counters, latency and watermark, and each log partition's ends against the
//! committed offsets. The binary implements [`Probe`] over its handles, so this crate depends
//! on none of the stage crates.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// The end-to-end latency objective, event time to store: 5 s.
pub const LATENCY_OBJECTIVE_MS: f64 = 5_000.0;

/// The landing's state.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LandingStatus {
    /// Whether paused through the control API.
    pub paused: bool,
    /// Store transactions committed.
    pub batches: u64,
    /// Log records consumed and committed.
    pub records: u64,
    /// New rows in `sales_raw`.
    pub sales_landed: u64,
    /// New rows in `events_raw`.
    pub events_landed: u64,
    /// Events skipped as already landed.
    pub duplicates_skipped: u64,
    /// Records sent to `dead_letters`.
    pub dead_letters: u64,
    /// Median event-time-to-store latency, ms.
    pub latency_p50_ms: f64,
    /// 95th percentile latency, ms.
    pub latency_p95_ms: f64,
    /// 99th percentile latency, ms.
    pub latency_p99_ms: f64,
    /// The objective the p95 is held against, ms.
    pub latency_objective_ms: f64,
    /// Combined event-time watermark; `null` before the first event.
    pub watermark: Option<DateTime<Utc>>,
}

/// One log partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PartitionStatus {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset still in the log.
    pub low: i64,
    /// Next offset to be written.
    pub high: i64,
    /// Next offset the landing will read (committed in the store).
    pub committed: i64,
    /// Records appended but not landed.
    pub lag: i64,
}

/// The log and how far behind the landing is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LogStatus {
    /// Every data partition.
    pub partitions: Vec<PartitionStatus>,
    /// Total records appended but not landed.
    pub lag: i64,
}

/// The running pipeline's own report.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PipelineStatus {
    /// The landing.
    pub landing: LandingStatus,
    /// The log.
    pub log: LogStatus,
}

/// Implemented by the binary over its landing and log handles.
#[async_trait]
pub trait Probe: Send + Sync + std::fmt::Debug + 'static {
    /// The state now.
    async fn status(&self) -> PipelineStatus;
}
