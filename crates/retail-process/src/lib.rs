//! (3) Stream processing between the log and the stores.
//!
//! Stage (3) of (1) sources -> (2) log -> (3) process -> (4) sink -> (5) serve. Today it holds the
//! raw landing; event-time windows, watermarks and joins join it here, and their aggregate
//! deltas ride in the same store transaction as the raw rows and the offsets.
//!
//! # Layout
//! - [`landing`]: consumes the data topics, decodes and validates every record, and writes each
//!   batch with its offsets in one store transaction (the exactly-once protocol). Bad records
//!   become dead letters in that same transaction.
//! - [`aggregate`]: the declarative aggregates' engine: windows, per-partition watermarks,
//!   late events, the catalog join; its contributions land with the batch.
//! - [`pipelines`]: the retail pipelines beyond aggregates; [`pipelines::orders`] hands the
//!   order facts and the pipeline time to the store, which keeps the rows (ADR 0023).
//! - [`error`]: the crate's error.

pub mod aggregate;
mod error;
pub mod landing;
pub mod pipelines;

pub use error::{Error, Result};
pub use landing::{AggregateProgress, Landing, LandingConfig, LandingHandle, LandingProgress, StartAt};
