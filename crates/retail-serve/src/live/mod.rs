//! The live dashboard: the page at `/`, its assets, and the server-sent-events stream that
//! pushes a [`Snapshot`] to it twice a second.
//!
//! # Layout
//! - [`figures`]: the pipeline's counters read from the metrics exposition.
//! - [`snapshot`]: the [`Snapshot`] and the one [`Ticker`] task that computes it every 500 ms.
//! - `inputs`: what the ticker reads from a running server: the store's read side, the controls.
//! - this file: the page's routes (`/`, `/assets/*`); the stream is `/api/v1/live` in
//!   [`crate::api`], documented with the rest of the API.
//! - `assets/`: the page (HTML, CSS, JS), embedded in the binary; no CDN, no build step.
//!
//! Controls on the page call the control API (`/api/v1/control/...`) with `fetch`.

pub mod figures;
mod inputs;
pub mod snapshot;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use snapshot::{LiveInputs, MinutePoint, RankedRow, Snapshot, StoreFigures, Ticker};

const INDEX_HTML: &str = include_str!("assets/index.html");
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// The page and its assets. They carry no data, so they are open like `/docs`; the data comes
/// from `/api/v1/live`, which takes a read token when tokens are configured.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/dashboard.js", get(js))
        .route("/assets/dashboard.css", get(css))
        // Browsers ask for /favicon.ico whatever the page says; an SVG answers both.
        .route("/favicon.ico", get(favicon))
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

async fn favicon() -> Response {
    asset("image/svg+xml", FAVICON_SVG)
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
