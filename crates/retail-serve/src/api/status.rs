//! Pipeline status: every component's health, the sources, the landing, the log and its lag,
//! and the store's dead-letter and late-event counts.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use retail_core::health::Status;
use retail_sink::read::Counts;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiResult, ErrorBody};
use super::params::{Params, RawParams};
use crate::controls::{ControlKind, ControlStatus};
use crate::probe::{LandingStatus, LogStatus};
use crate::server::ServeState;

/// The store as the API sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoreStatus {
    /// Whether the API can read it yet.
    pub open: bool,
    /// `postgres` or `sqlite`, once open.
    pub kind: Option<String>,
    /// Dead letters and late events; `null` until open or if counting failed.
    pub counts: Option<Counts>,
}

/// The whole pipeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineReport {
    /// `ok`, or `failed` once any component failed.
    pub status: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Each component's state, as `/health` shows it.
    #[schema(value_type = Object)]
    pub components: BTreeMap<String, Status>,
    /// Each source with its controls.
    pub sources: Vec<ControlStatus>,
    /// The landing; `null` until it runs.
    pub landing: Option<LandingStatus>,
    /// The log partitions and the landing's lag; `null` until the pipeline runs.
    pub log: Option<LogStatus>,
    /// The store.
    pub store: StoreStatus,
}

/// Sources, log, landing, lag and store in one answer.
#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "pipeline",
    responses(
        (status = 200, description = "The pipeline now (also while parts are still opening)", body = PipelineReport),
        (status = 400, description = "A parameter was given (there are none)", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn status(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<PipelineReport>> {
    Params::parse(q, &[])?;
    let pipeline = s.pipeline_status().await;
    let reader = s.reader();
    let counts = match &reader {
        Some(r) => r.counts().await.ok(),
        None => None,
    };
    let (landing, log) = pipeline.map_or((None, None), |p| (Some(p.landing), Some(p.log)));
    Ok(Json(PipelineReport {
        status: if s.health.is_healthy() { "ok" } else { "failed" }.to_owned(),
        uptime_seconds: s.started.elapsed().as_secs(),
        components: s.health.snapshot(),
        sources: s
            .controls
            .list()
            .into_iter()
            .filter(|c| c.kind == ControlKind::Source)
            .collect(),
        landing,
        log,
        store: StoreStatus {
            open: reader.is_some(),
            kind: reader.map(|r| r.kind().to_owned()),
            counts,
        },
    }))
}
