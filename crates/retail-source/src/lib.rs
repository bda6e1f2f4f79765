//! (1) Ingest: the sources that put retail events on the log.
//!
//! Stage (1) of (1) sources -> (2) log -> (3) process -> (4) sink -> (5) serve. A source turns
//! outside input into [`retail_log::ProducerRecord`]s (one JSON event each, see
//! [`retail_core::event`]), appends them through the one durable path
//! ([`SourceRuntime::append_with`]) and acknowledges its input only after that append
//! returned, so nothing it acknowledged can be lost.
//!
//! # Layout
//! The seam every source plugs into, then one module folder per source (each with a
//! `config.rs` that builds it and a `source.rs` that runs it):
//! - [`registry`]: the `[[sources]]` config enum ([`SourceConfig`], one line per type) and the
//!   [`BuildSource`] trait each type's config implements.
//! - [`context`]: the [`SourceContext`] a source is built with: log, metrics, health,
//!   shutdown, its state directory, HTTP routes on the main server, the landing's backlog.
//! - [`runtime`]: the [`SourceRuntime`] (counters, state, pause, the durable append with retries)
//!   and [`SourceHandle`], what the binary, `/health`, the control API and the dashboard use.
//! - [`demo`]: the sources `demo` runs without configuration, and its flags.
//! - [`record`]: the one record builder (topic, key, headers) for sources and resubmits.
//! - [`generator`]: the load and chaos generator. A simulated retail world (`model.rs`) feeds a
//!   deterministic event stream with fault injection (`generate.rs`, no I/O): sales, and on
//!   demand web orders with payments, anomalies and fraud patterns (`commerce.rs`) and ERP
//!   stock levels (`stock.rs`), their future steps queued by due time (`schedule.rs`); a paced
//!   task appends it to the log (`source.rs`).
//! - [`webhook`]: the HTTP webhook receiver at `POST /ingest/<path>` (tills, e-commerce,
//!   payment providers): formats, auth, idempotency, backpressure.
//! - [`csv`]: the CSV drop folder (ERP exports): readiness, mapping, a checksum ledger that
//!   resumes mid-file, `processed/` and `failed/`.
//! - [`mqtt`]: store devices over MQTT: a persistent QoS 1 session acknowledged only after
//!   the append, topic levels as event fields, redeliveries landed once.
//! - [`cdc`]: PostgreSQL change data capture: a snapshot, then inserts, updates and deletes of
//!   mapped tables read from a logical replication slot that moves only after the append.
//! - [`soap`]: the SOAP payments poller (payment providers): a templated request per page, a
//!   cursor (timestamp, payment id) replaced atomically after each append, faults on `/health`.
//! - [`state_file`]: a source's small state file replaced durably (ledger, cursor, journal);
//!   [`secret`]: `${VAR}` secrets in source settings.
//! - [`error`]: the crate's error, saying whether a failure is worth retrying.

pub mod cdc;
pub mod context;
pub mod csv;
pub mod demo;
pub mod error;
pub mod generator;
pub mod mqtt;
pub mod record;
pub mod registry;
pub mod runtime;
pub mod secret;
pub mod soap;
pub mod state_file;
pub mod webhook;

pub use context::{Backlog, Routes, SourceContext};
pub use error::{Error, Result};
pub use record::{event_record, headers};
pub use registry::{BuildSource, BuiltSource, SourceConfig};
pub use runtime::{RateControl, SourceCounts, SourceHandle, SourceRuntime};
