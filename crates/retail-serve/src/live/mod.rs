//! The live dashboard: the page at `/`, its assets, and the server-sent-events stream that
//! pushes a [`Snapshot`] to it once a second.
//!
//! # Layout
//! - [`figures`]: the pipeline's counters read from the metrics exposition.
//! - [`snapshot`]: the [`Snapshot`] and the one [`Ticker`] task that computes it each second.
//! - this file: the routes (`/`, `/assets/*`, `/api/v1/live`, `/api/v1/live/snapshot`).
//! - `assets/`: the page (HTML, CSS, JS), embedded in the binary; no CDN, no build step.
//!
//! Controls on the page call the control API (`/api/v1/control/...`) with `fetch`.

pub mod figures;
pub mod snapshot;

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use tokio::sync::watch;

pub use snapshot::{LiveInputs, MinutePoint, RankedRow, Snapshot, StoreFigures, Ticker};

const INDEX_HTML: &str = include_str!("assets/index.html");
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");

/// The dashboard's routes, fed by a [`Ticker`]'s receiver.
pub fn router(snapshots: watch::Receiver<Arc<Snapshot>>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/dashboard.js", get(js))
        .route("/assets/dashboard.css", get(css))
        .route("/api/v1/live", get(live))
        .route("/api/v1/live/snapshot", get(latest))
        .with_state(snapshots)
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", DASHBOARD_JS)
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", DASHBOARD_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The newest snapshot as JSON: what the page shows, for scripts and tests.
async fn latest(State(rx): State<watch::Receiver<Arc<Snapshot>>>) -> Json<Snapshot> {
    let snapshot = rx.borrow().clone();
    Json(snapshot.as_ref().clone())
}

/// `text/event-stream`: the current snapshot at once, then each new one (event `snapshot`).
/// Ends when the ticker stops at shutdown.
async fn live(
    State(rx): State<watch::Receiver<Arc<Snapshot>>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let snapshot = rx.borrow_and_update().clone();
        let event = Event::default()
            .event("snapshot")
            .json_data(snapshot.as_ref())
            .unwrap_or_else(|e| Event::default().event("error").data(e.to_string()));
        Some((Ok(event), (rx, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
