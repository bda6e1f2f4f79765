//! (5) Serve: the HTTP face of the pipeline.
//!
//! Stage (5) of (1) sources -> (2) log -> (3) process -> (4) sink -> (5) serve. Today: `/health`
//! (each component's state as JSON; 503 once any component has failed) and `/metrics` (the
//! Prometheus text exposition). The REST API, the dashboard and the control API join here.
//!
//! # Layout
//! - [`server`]: binds, serves until shutdown, returns the bound address (tests bind port 0).
//! - [`routes`]: `/health` and `/metrics`.
//! - [`live`]: the dashboard at `/` and its live stream.

pub mod live;
mod routes;
pub mod server;

pub use server::{serve, ServeState};
