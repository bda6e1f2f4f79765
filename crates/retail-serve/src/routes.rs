//! The whole router: `/health` and `/metrics` (always open), the API under `/api/v1` with its
//! access checks, `/api/openapi.json` and `/docs`.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::json;

use crate::server::ServeState;

pub(crate) fn router(state: ServeState, request_timeout: Duration) -> Router {
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
        .route(crate::server::SCHEMA_REGISTRY, any(schema_registry))
        .route("/schema-registry/{*rest}", any(schema_registry))
        // The request timeout bounds the time to a response's head, so the live stream, whose
        // head goes out at once, runs on. `/ingest` is outside it: a webhook reads its body in
        // its handler, bounded by its own max_body_bytes and backpressure, not by this.
        .layer(from_fn_with_state(request_timeout, time_limit))
        .route("/ingest/{*path}", any(ingest))
        .with_state(state);
    // Last, so that every route above is counted (a layer wraps only the routes it sees);
    // webhooks count under their one route `/ingest/{*path}`.
    crate::observe::instrument(app, metrics)
}

/// `/ingest/...`: handed to the routes the sources mounted (webhooks). The server starts
/// before the sources are built, so until then the answer is 503 with `Retry-After`, which a
/// webhook sender retries.
async fn ingest(State(s): State<ServeState>, request: axum::extract::Request) -> Response {
    use tower::ServiceExt;
    let Some(routes) = s.ingest() else {
        return crate::api::error::ApiError::unavailable("the sources are starting; retry shortly")
            .into_response();
    };
    match routes.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// `/schema-registry/...`: the Confluent Schema Registry REST API (issue 16). Reading takes a
/// read token, registering, deleting and configuring an admin token, like the rest of the API
/// (open when no token is configured).
async fn schema_registry(State(s): State<ServeState>, request: axum::extract::Request) -> Response {
    use tower::ServiceExt;
    let role = if matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) {
        crate::access::Role::Read
    } else {
        crate::access::Role::Admin
    };
    let authorization = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(e) = s.access.check(authorization, role) {
        return e.into_response();
    }
    let Some(routes) = s.schemas() else {
        return crate::api::error::ApiError::unavailable("the schema registry is opening; retry shortly")
            .into_response();
    };
    // A fresh request without this router's extensions: axum keeps the matched path
    // parameters there (`rest` here), and the registry's routes would see them as their own.
    let (parts, body) = request.into_parts();
    let mut request = axum::extract::Request::new(body);
    *request.method_mut() = parts.method;
    *request.uri_mut() = parts.uri;
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers;
    match routes.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// 503 when the handler has not produced its response's head within `limit`. The handler's future is dropped, so a
/// store query it waits for is abandoned (the SQLite reader skips a job whose caller left).
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => crate::api::error::ApiError::timed_out(limit).into_response(),
    }
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
