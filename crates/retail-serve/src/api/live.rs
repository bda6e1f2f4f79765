//! The dashboard's data: a server-sent-events stream of snapshots, and the newest snapshot as
//! JSON. Both read the one ticker's `watch` channel ([`crate::live`]), so any number of open
//! pages cost the same as one.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::stream::{self, Stream};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::params::{Params, RawParams};
use crate::live::Snapshot;
use crate::server::ServeState;

/// How long a snapshot request waits for the next snapshot.
const FRESH_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Where the stream is served; the access check also takes its token from the query here.
pub const LIVE_STREAM_PATH: &str = "/api/v1/live";

/// One server-sent event of the stream, as the document describes it (each event is checked
/// against this schema by clients such as Schemathesis).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // Only its schema is used: axum writes the events.
pub struct LiveEvent {
    /// `snapshot`.
    #[schema(pattern = "^snapshot$")]
    pub event: String,
    /// The snapshot as JSON: the body of `GET /api/v1/live/snapshot`.
    #[schema(content_media_type = "application/json")]
    pub data: String,
}

/// Snapshots pushed twice a second (`event: snapshot`, data: the JSON of `GET /api/v1/live/snapshot`).
///
/// The first snapshot comes with the next tick, then each new one. The stream ends when the server
/// shuts down. `EventSource` cannot send headers, so this endpoint also takes the token as
/// `?access_token=`.
#[utoipa::path(
    get,
    path = "/api/v1/live",
    tag = "live",
    params(("access_token" = Option<String>, Query, description = "A read token, for clients that cannot send headers")),
    responses(
        (status = 200, description = "text/event-stream of `snapshot` events", content_type = "text/event-stream", body = LiveEvent),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 503, description = "The dashboard's ticker is not running, or too many live streams are open", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn stream(
    State(s): State<ServeState>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let mut rx = s.live().ok_or_else(not_running)?;
    // Held by the stream, so released when the page goes away.
    let permit = s.live_streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::unavailable(
            "too many live streams are open; close a dashboard page or poll /api/v1/live/snapshot",
        )
    })?;
    // What the channel holds may be old (nobody watched: the ticker skipped the store); this
    // receiver makes the next tick a watched one, so the stream starts with that.
    rx.mark_unchanged();
    let events = stream::unfold((rx, permit), |(mut rx, permit)| async move {
        rx.changed().await.ok()?;
        let snapshot = rx.borrow_and_update().clone();
        let event = Event::default()
            .event("snapshot")
            .json_data(snapshot.as_ref())
            .unwrap_or_else(|e| Event::default().event("error").data(e.to_string()));
        Some((Ok(event), (rx, permit)))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// A fresh snapshot (taken within the next tick): every figure the dashboard shows.
#[utoipa::path(
    get,
    path = "/api/v1/live/snapshot",
    tag = "live",
    responses(
        (status = 200, description = "What the dashboard shows now", body = Snapshot),
        (status = 400, description = "A parameter was given (there are none)", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 503, description = "The dashboard's ticker is not running", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn snapshot(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<Snapshot>> {
    Params::parse(q, &[])?;
    let mut rx = s.live().ok_or_else(not_running)?;
    // Holding a receiver makes the ticker's next round a watched one (with the store's
    // figures); wait for it: a tick plus the store's time to answer, at most two seconds.
    // At shutdown, or if it does not come, the last one.
    rx.mark_unchanged();
    let _ = tokio::time::timeout(FRESH_WITHIN, rx.changed()).await;
    let snapshot = rx.borrow().clone();
    Ok(Json(snapshot.as_ref().clone()))
}

fn not_running() -> ApiError {
    ApiError::unavailable("the dashboard's ticker is not running")
}
