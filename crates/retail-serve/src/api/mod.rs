//! The REST API under `/api/v1`, one module per resource, and its OpenAPI document, generated
//! from the handlers' annotations: a route is added with `routes!(handler)`, which puts it in
//! the router and in the document at once, so the two cannot drift apart.
//!
//! Every handler validates its parameters by hand ([`params`]) and fails with [`ApiError`]
//! (`{"error": {"code", "message", "parameter"}}`). Read routes need a read or admin token,
//! the rest an admin token ([`crate::access`]).
//!
//! # Layout
//! - [`error`]: the error type and body.
//! - [`params`]: query and path parsing; pagination limits.
//! - `top`: the two rankings; `sales`: series and totals; `stores`: store summaries;
//!   `late_events`, `dead_letters` (with resubmit); `status`: the pipeline; `control`;
//!   `live`: the dashboard's stream (the snapshots come from [`crate::live`]); `log`: topics,
//!   consumer groups and a record browser; `lineage`: the data lineage graph (its shape is
//!   [`crate::lineage`]); `orders`: the order lifecycle (list, one with its events, counts
//!   by state); `alerts`: the alerts the pipelines raise; `inventory`: stock at risk; `fraud`:
//!   fraud alerts with their payments; `notifications`: the deliveries of alerts to channels;
//!   `event_types`: the event types with their versions and Avro schemas.

pub mod error;
pub mod params;

mod alerts;
mod control;
mod dead_letters;
mod event_types;
mod fraud;
mod inventory;
mod late_events;
mod lineage;
mod live;
mod log;
mod notifications;
mod orders;
mod sales;
mod status;
mod stores;
mod top;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use retail_sink::Reader;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::error::{ApiError, ApiResult};
use crate::access::{require_admin, require_read};
use crate::server::ServeState;

pub use alerts::Alert;
pub use control::MAX_RATE;
pub use inventory::InventoryRisk;
pub use live::LIVE_STREAM_PATH;
pub(crate) use orders::by_state;
pub use orders::StateOrders;
pub use params::{MAX_OFFSET, MAX_PAGE};
pub use top::MAX_RANK_LIMIT;

/// The document's header; the paths come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "retail-etl API",
        description = "Sales, rankings, orders and alerts, data quality and control of a running retail-etl pipeline. \
            Errors are `{\"error\": {\"code\", \"message\", \"parameter\"}}`. Send `Authorization: Bearer <token>` \
            when the server has tokens configured: read endpoints take a read or admin token, control and \
            resubmit an admin token.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "rankings", description = "Top cities and top sellers"),
        (name = "sales", description = "Sales over time"),
        (name = "stores", description = "Store summaries"),
        (name = "data quality", description = "Late events and dead letters"),
        (name = "pipeline", description = "Pipeline status"),
        (name = "control", description = "Pause, resume and rate of sources and the landing"),
        (name = "live", description = "What the dashboard shows, pushed once a second"),
        (name = "log", description = "Topics, consumer groups and records of the log"),
        (name = "lineage", description = "Data lineage: jobs, topics and tables, and their OpenLineage runs"),
        (name = "orders", description = "The order lifecycle (payments joined, timeouts, stuck orders) and the alerts"),
        (name = "notifications", description = "Deliveries of alerts to the notification channels: pending, sent, dead or suppressed"),
        (name = "schemas", description = "Event types, their versions and Avro schemas (the Confluent-compatible registry itself is at /schema-registry)"),
    )
)]
struct ApiDoc;

/// Declares the bearer scheme the paths' `security` refers to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The largest request body the API takes (413 above). The largest body any API route reads
/// is one corrected event (resubmit) or `{"rate": ...}`: well under a few KiB. 64 KiB leaves
/// room for an unusually large event while bounding what a connection can make the server
/// buffer: 64 MiB at 1,024 connections, where axum's default of 2 MiB allowed 2 GiB. `/ingest`
/// keeps each webhook's own `max_body_bytes`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The API routes with their access checks and body limit, and the OpenAPI document of exactly
/// those routes.
pub fn router(state: &ServeState) -> (axum::Router<ServeState>, utoipa::openapi::OpenApi) {
    let read = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(top::by_city))
        .routes(routes!(top::by_country))
        .routes(routes!(sales::per_minute))
        .routes(routes!(sales::per_hour))
        .routes(routes!(sales::totals))
        .routes(routes!(stores::list))
        .routes(routes!(stores::one))
        .routes(routes!(late_events::list))
        .routes(routes!(dead_letters::list))
        .routes(routes!(dead_letters::one))
        .routes(routes!(status::status))
        .routes(routes!(control::list))
        .routes(routes!(live::stream))
        .routes(routes!(live::snapshot))
        .routes(routes!(log::topics))
        .routes(routes!(log::groups))
        .routes(routes!(log::records))
        .routes(routes!(lineage::graph))
        .routes(routes!(orders::list))
        .routes(routes!(orders::counts))
        .routes(routes!(orders::one))
        .routes(routes!(alerts::list))
        .routes(routes!(inventory::list))
        .routes(routes!(fraud::list))
        .routes(routes!(notifications::deliveries))
        .routes(routes!(event_types::list))
        .route_layer(from_fn_with_state(state.clone(), require_read));
    let admin = OpenApiRouter::new()
        .routes(routes!(dead_letters::resubmit))
        .routes(routes!(control::pause_source))
        .routes(routes!(control::resume_source))
        .routes(routes!(control::set_rate))
        .routes(routes!(control::pause_landing))
        .routes(routes!(control::resume_landing))
        .route_layer(from_fn_with_state(state.clone(), require_admin));
    let (router, mut doc) = read
        .merge(admin)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(limit_body))
        .split_for_parts();
    if state.access.is_open() {
        declare_open(&mut doc);
    }
    (router, doc)
}

/// 413 for a declared body over [`MAX_BODY_BYTES`] before any of it is read; a chunked body is
/// cut at the same size by `DefaultBodyLimit` where a handler reads it.
async fn limit_body(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > MAX_BODY_BYTES as u64 => ApiError::too_large(format!(
            "the request body is {n} bytes; the API takes at most {MAX_BODY_BYTES}"
        ))
        .into_response(),
        _ => next.run(request).await,
    }
}

/// The document of an open API (no tokens, loopback only): no operation requires the bearer
/// scheme and none answers 401, since any token, or none, is accepted. The scheme stays
/// declared, so a client that always sends a token still reads a valid document.
fn declare_open(doc: &mut utoipa::openapi::OpenApi) {
    doc.info.description = Some(format!(
        "{} This server has no tokens configured: it accepts every request from loopback, with or \
         without a token.",
        doc.info.description.as_deref().unwrap_or_default()
    ));
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            operation.security = None;
            operation.responses.responses.remove("401");
        }
    }
}

/// The reader, or 503 while the store is still opening.
fn reader(s: &ServeState) -> ApiResult<Arc<dyn Reader>> {
    s.reader().ok_or_else(|| {
        ApiError::unavailable("the store is not open yet (it may be starting or retrying; see /health)")
    })
}

/// Unknown paths under `/api`.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(
        None,
        format!("no API endpoint at {}; see /api/openapi.json", uri.path()),
    )
}
