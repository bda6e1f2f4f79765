//! The whole router: `/health` and `/metrics` (always open), the API under `/api/v1` with its
//! access checks, `/api/openapi.json` and `/docs`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::json;

use crate::server::ServeState;

pub(crate) fn router(state: ServeState) -> Router {
    let (api, openapi) = crate::api::router(&state);
    let metrics = state.metrics.clone();
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(crate::observe::metrics))
        .merge(crate::docs::router(&openapi))
        .merge(crate::live::router())
        .merge(api)
        .route("/api", any(crate::api::not_found))
        .route("/api/{*rest}", any(crate::api::not_found))
        .with_state(state);
    // Last, so that every route above is counted (a layer wraps only the routes it sees).
    crate::observe::instrument(app, metrics)
}

async fn health(State(s): State<ServeState>) -> Response {
    let components = s.health.snapshot();
    let healthy = s.health.is_healthy();
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if healthy { "ok" } else { "failed" },
        "uptime_seconds": s.started.elapsed().as_secs(),
        "components": components,
    });
    (code, Json(body)).into_response()
}
