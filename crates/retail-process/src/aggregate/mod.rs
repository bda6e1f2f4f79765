//! Stream processing: event-time windows, watermarks, late events and the catalog join, turning
//! each landing batch into aggregate contributions that the store applies in the batch's own
//! transaction (exactly once, see `retail_sink::derived`).
//!
//! # Layout
//! - [`spec`]: `[processing]` and the declarative `[[aggregates]]` (with the built-in four).
//! - [`compile`]: specs -> checked, runnable aggregates and their table definitions.
//! - [`field`]: the fields an aggregate reads, including those joined from the catalog.
//! - [`catalog`]: the in-memory catalog of the stream-table join.
//! - [`window`]: which windows an event time falls in.
//! - [`engine`]: watermarks, lateness and contributions, with no I/O.

pub mod catalog;
pub mod compile;
pub mod engine;
pub mod field;
pub mod spec;
pub mod window;

pub use compile::{compile, renamed, Compiled};
pub use engine::{DedupScope, Engine};
pub use spec::{AggregateSpec, ProcessingConfig};
