//! (1) Ingest: the sources that put retail events on the log.
//!
//! Stage (1) of (1) sources -> (2) log -> (3) process -> (4) sink -> (5) serve. A source turns
//! outside input into [`retail_log::ProducerRecord`]s (one JSON event each, see
//! [`retail_core::event`]), appends them with [`retail_log::Log::append`] and acknowledges its
//! input only after that append returned, so nothing it acknowledged can be lost. Sources do not
//! validate deeply: bad input is data, and the landing sends it to the dead-letter path.
//!
//! # Layout
//! One module folder per source; each has a `config.rs` (its serde settings, which build it)
//! and a `source.rs` (the task that runs it).
//! - [`generator`]: the load and chaos generator. A simulated retail world (`model.rs`) feeds a
//!   deterministic event stream with fault injection (`generate.rs`, no I/O, testable on its
//!   own), which a paced async task appends to the log (`source.rs`) under a runtime control
//!   handle.
//! - [`error`]: the crate's error, saying whether a failure is worth retrying.
//! - [`headers`]: the record header names every source sets.
//!
//! Later sources (HTTP webhooks, CSV drop folder, MQTT, PostgreSQL CDC, SOAP poller) get their
//! own folders beside `generator`.

pub mod error;
pub mod generator;

pub use error::{Error, Result};

/// Names of the headers every source puts on its records, so consumers can route or count
/// records without parsing them.
pub mod headers {
    /// The event's `type` (`sale`, `return`, `store`, ...), as the producer meant it.
    pub const EVENT_TYPE: &str = "event_type";
    /// The envelope schema version, in decimal.
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// The producing source's name.
    pub const SOURCE: &str = "source";
}
