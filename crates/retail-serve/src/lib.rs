//! (5) Serve: the HTTP face of the pipeline.
//!
//! Stage (5) of (1) sources -> (2) log -> (3) process -> (4) sink -> (5) serve. `/health`
//! (each component's state as JSON; 503 once any component has failed), `/metrics` (the
//! Prometheus text exposition), the REST API under `/api/v1` with its OpenAPI document at
//! `/api/openapi.json` and interactive docs at `/docs`, and the control API. Data comes from
//! the store's [`retail_sink::Reader`]; control and pipeline state from what the binary
//! registers in [`ServeState`] ([`Controls`], [`Probe`], [`LineageView`]), so this crate depends on no stage
//! crate but the store's read side and the log (for resubmitting dead letters).
//!
//! # Layout
//! - [`server`]: [`ServeState`] (with slots for what opens after the server), [`serve`] and
//!   its [`ServeOptions`].
//! - `conn`: the accept loop and each connection: the cap, the timeouts, TLS, shutdown.
//! - [`tls`]: the certificate and key from PEM files.
//! - `routes`: the whole router: `/health`, `/metrics`, docs, API.
//! - [`observe`]: HTTP request metrics around the whole router, and `/metrics` itself
//!   (scrape-time gauges, OpenMetrics or Prometheus text by the `Accept` header).
//! - [`api`]: the REST API, one module per resource, its error type and parameter checks.
//! - [`access`]: read and admin bearer tokens, static or JWT (HS256, or JWKS keys by `kid`).
//! - [`controls`]: the registry of pausable sources and the landing.
//! - [`probe`]: the pipeline's report for `/api/v1/status`.
//! - [`lineage`]: the data lineage graph for `/api/v1/lineage`, which the binary provides.
//! - [`live`]: the dashboard at `/` and its live stream (server-sent events).
//! - [`docs`]: `/api/openapi.json` and Swagger UI from `assets/swagger-ui/`.

pub mod access;
pub mod api;
mod conn;
pub mod controls;
pub mod docs;
pub mod lineage;
pub mod live;
pub mod observe;
pub mod probe;
mod routes;
pub mod server;
pub mod tls;

pub use access::Access;
pub use controls::{ControlKind, ControlStatus, Controllable, Controls};
pub use lineage::{LineageDataset, LineageEdge, LineageGraph, LineageJob, LineageRun, LineageView};
pub use probe::{LandingStatus, LogStatus, PartitionStatus, PipelineStatus, Probe};
pub use server::{serve, serve_with, ServeOptions, ServeState};
pub use tls::{TlsConfig, TlsError};

/// The router `serve` runs, for tests that drive it without a socket.
pub fn router(state: ServeState) -> axum::Router {
    routes::router(state, ServeOptions::REQUEST_TIMEOUT)
}
