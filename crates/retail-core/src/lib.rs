//! The shared vocabulary of stream-retail-etl. Every pipeline stage depends on this crate and
//! on nothing else of the project's for its types, so the stages stay decoupled:
//! (1) sources -> (2) log -> (3) process -> (4) sink -> (5) serve.
//!
//! No I/O lives here: only types, the event decoder with its validation, metric handles and the
//! shutdown signal.
//!
//! # Layout
//! - [`event`]: the typed retail events, their JSON envelope and the decoder that turns raw bytes
//!   into an [`Event`] or a list of every problem found, each with its field path.
//! - [`origin`]: where a record came from (source, topic/partition/offset, file/line) and the
//!   [`DeadLetter`] that carries rejected input to the dead-letter path.
//! - [`metrics`]: the Prometheus registry and the counters/histograms every component moves.
//! - [`health`]: each component's state for `/health`.
//! - [`shutdown`]: a broadcast shutdown signal with a drop guard.
//! - [`redact`]: connection URLs with their credentials masked, for every line a person or a
//!   client sees.
//!
//! Data moves one way: a source produces raw bytes, the log stores them, the landing calls
//! [`event::decode`] and sends the result either to the store or, as a [`DeadLetter`], to the
//! dead-letter path.

pub mod event;
pub mod health;
pub mod metrics;
pub mod origin;
pub mod redact;
pub mod shutdown;

pub use event::{decode, decode_with, DecodeError, Event, EventBody, FieldError, Sale, SaleKind};
pub use health::Health;
pub use metrics::Metrics;
pub use origin::{DeadLetter, Origin, TopicPartition};
pub use shutdown::Shutdown;
