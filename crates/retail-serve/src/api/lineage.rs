//! Data lineage: the pipeline's jobs, the topics and tables they read and write, and each job's
//! current OpenLineage run (see [`crate::lineage`]).

use axum::extract::State;
use axum::Json;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::params::{Params, RawParams};
use crate::lineage::LineageGraph;
use crate::server::ServeState;

/// The lineage graph now, whether or not OpenLineage events are emitted anywhere.
#[utoipa::path(
    get,
    path = "/api/v1/lineage",
    tag = "lineage",
    responses(
        (status = 200, description = "Jobs, datasets, edges with record counts, and each job's run", body = LineageGraph),
        (status = 400, description = "A parameter was given (there are none)", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 503, description = "The pipeline is still starting", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn graph(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<LineageGraph>> {
    Params::parse(q, &[])?;
    let view = s.lineage().ok_or_else(|| {
        ApiError::unavailable("the pipeline is still starting; its lineage is known once every source runs")
    })?;
    Ok(Json(view.graph()))
}
