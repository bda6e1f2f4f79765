//! The control API: pause and resume each source and the landing, set a source's rate. Admin
//! token required. Effects are immediate (the handles are watch channels the tasks select on).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::params::{Params, RawParams};
use crate::controls::{ControlKind, ControlStatus, Controllable, LANDING};
use crate::server::ServeState;

/// The largest rate the API accepts, events per second.
pub const MAX_RATE: f64 = 10_000_000.0;

/// Every control.
#[derive(Debug, Serialize, ToSchema)]
pub struct ControlList {
    /// Each source, then the landing.
    pub controls: Vec<ControlStatus>,
}

/// Lists the sources and the landing with their state.
#[utoipa::path(
    get,
    path = "/api/v1/control",
    tag = "control",
    responses(
        (status = 200, description = "Every control", body = ControlList),
        (status = 400, description = "A parameter was given (there are none)", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<ControlList>> {
    Params::parse(q, &[])?;
    Ok(Json(ControlList {
        controls: s.controls.list(),
    }))
}

fn source(s: &ServeState, name: &str) -> ApiResult<Arc<dyn Controllable>> {
    s.controls.source(name).ok_or_else(|| {
        let known = s.controls.source_names();
        ApiError::not_found(
            Some("name"),
            format!(
                "no source named {name:?}; sources: {}",
                if known.is_empty() {
                    "none yet".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        )
    })
}

fn landing(s: &ServeState) -> ApiResult<Arc<dyn Controllable>> {
    s.controls
        .landing()
        .ok_or_else(|| ApiError::unavailable("the landing is not running yet; see /health"))
}

fn state_of(s: &ServeState, kind: ControlKind, name: &str) -> ApiResult<Json<ControlStatus>> {
    s.controls
        .status_of(kind, name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(Some("name"), format!("no control named {name:?}")))
}

/// Pauses a source: it stops appending new events until resumed.
#[utoipa::path(
    post,
    path = "/api/v1/control/sources/{name}/pause",
    tag = "control",
    params(("name" = String, Path, description = "Source name, as GET /api/v1/control lists it")),
    responses(
        (status = 200, description = "The source's state after pausing", body = ControlStatus),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "The token may only read", body = ErrorBody),
        (status = 404, description = "No such source", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn pause_source(
    State(s): State<ServeState>,
    Path(name): Path<String>,
    q: RawParams,
) -> ApiResult<Json<ControlStatus>> {
    Params::parse(q, &[])?;
    source(&s, &name)?.pause();
    tracing::info!(message = "source paused through the API", source = %name);
    state_of(&s, ControlKind::Source, &name)
}

/// Resumes a paused source at its configured rate.
#[utoipa::path(
    post,
    path = "/api/v1/control/sources/{name}/resume",
    tag = "control",
    params(("name" = String, Path, description = "Source name, as GET /api/v1/control lists it")),
    responses(
        (status = 200, description = "The source's state after resuming", body = ControlStatus),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "The token may only read", body = ErrorBody),
        (status = 404, description = "No such source", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn resume_source(
    State(s): State<ServeState>,
    Path(name): Path<String>,
    q: RawParams,
) -> ApiResult<Json<ControlStatus>> {
    Params::parse(q, &[])?;
    source(&s, &name)?.resume();
    tracing::info!(message = "source resumed through the API", source = %name);
    state_of(&s, ControlKind::Source, &name)
}

/// The body of a rate change: `{"rate": 100}`, `{"rate": 0}` (no events) or
/// `{"unlimited": true}` (as fast as the log goes).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateChange {
    /// Events per second; 0 produces no events.
    #[serde(default)]
    pub rate: Option<f64>,
    /// As fast as the log accepts them; `rate` must then be left out.
    #[serde(default)]
    pub unlimited: bool,
}

/// The document's schema of [`RateChange`]: exactly what `set_rate` accepts, `{"rate": r}`
/// with `0 <= r <= MAX_RATE` (and `"unlimited": false` allowed beside it) or
/// `{"unlimited": true}` (and `"rate": null` beside it). A derived schema would declare `{}` and `{"rate": 1, "unlimited": true}`
/// valid, which the handler refuses.
impl utoipa::PartialSchema for RateChange {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Type};
        let closed = || Some(AdditionalProperties::FreeForm(false));
        let rate = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "rate",
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .minimum(Some(0.0))
                    .maximum(Some(MAX_RATE))
                    .description(Some("Events per second; 0 produces no events.")),
            )
            .required("rate")
            .property(
                "unlimited",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .enum_values(Some([false])),
            )
            .additional_properties(closed());
        let unlimited = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "unlimited",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .enum_values(Some([true]))
                    .description(Some("As fast as the log accepts.")),
            )
            .required("unlimited")
            // serde reads `"rate": null` as no rate, so the handler takes it here.
            .property("rate", ObjectBuilder::new().schema_type(Type::Null))
            .additional_properties(closed());
        OneOfBuilder::new().item(rate).item(unlimited).into()
    }
}

impl ToSchema for RateChange {}

/// Sets a source's rate.
#[utoipa::path(
    put,
    path = "/api/v1/control/sources/{name}/rate",
    tag = "control",
    params(("name" = String, Path, description = "Source name, as GET /api/v1/control lists it")),
    request_body(content = RateChange, content_type = "application/json"),
    responses(
        (status = 200, description = "The source's state with its new rate", body = ControlStatus),
        (status = 400, description = "The body or the rate is invalid", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "The token may only read", body = ErrorBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 409, description = "The source has no rate (it does not generate events)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn set_rate(
    State(s): State<ServeState>,
    Path(name): Path<String>,
    q: RawParams,
    body: Bytes,
) -> ApiResult<Json<ControlStatus>> {
    Params::parse(q, &[])?;
    let control = source(&s, &name)?;
    const SHAPE: &str =
        "the body must be {\"rate\": <events per second, 0 = no events>} or {\"unlimited\": true}";
    let change: RateChange =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid("rate", format!("{SHAPE}: {e}")))?;
    let rate = match (change.rate, change.unlimited) {
        (None, true) => f64::INFINITY,
        (Some(rate), false) if rate.is_finite() && (0.0..=MAX_RATE).contains(&rate) => rate,
        (Some(rate), false) => {
            return Err(ApiError::invalid(
                "rate",
                format!(
                    "rate must be between 0 (no events) and {MAX_RATE} events per second, got {rate}; \
                     for no limit send {{\"unlimited\": true}}"
                ),
            ))
        }
        _ => return Err(ApiError::invalid("rate", SHAPE)),
    };
    if control.rate().is_none() {
        // Not a bad request but one this source's state cannot take: it has no rate.
        return Err(ApiError::conflict(format!(
            "source {name:?} has no rate: only generating sources do"
        )));
    }
    control.set_rate(rate).map_err(|e| ApiError::invalid("rate", e))?;
    tracing::info!(message = "source rate changed through the API", source = %name, rate);
    state_of(&s, ControlKind::Source, &name)
}

/// Pauses the landing: the log keeps what arrives, the lag grows.
#[utoipa::path(
    post,
    path = "/api/v1/control/landing/pause",
    tag = "control",
    responses(
        (status = 200, description = "The landing's state after pausing", body = ControlStatus),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "The token may only read", body = ErrorBody),
        (status = 503, description = "The landing is not running yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn pause_landing(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<ControlStatus>> {
    Params::parse(q, &[])?;
    landing(&s)?.pause();
    tracing::info!(message = "landing paused through the API");
    state_of(&s, ControlKind::Landing, LANDING)
}

/// Resumes the landing; it catches up on the lag.
#[utoipa::path(
    post,
    path = "/api/v1/control/landing/resume",
    tag = "control",
    responses(
        (status = 200, description = "The landing's state after resuming", body = ControlStatus),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "The token may only read", body = ErrorBody),
        (status = 503, description = "The landing is not running yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn resume_landing(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<ControlStatus>> {
    Params::parse(q, &[])?;
    landing(&s)?.resume();
    tracing::info!(message = "landing resumed through the API");
    state_of(&s, ControlKind::Landing, LANDING)
}
