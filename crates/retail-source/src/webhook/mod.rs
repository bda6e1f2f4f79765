//! The HTTP webhook receiver for tills, e-commerce platforms and payment providers: events
//! posted to `POST /ingest/<path>` on the main server, answered 202 only once they are
//! durably in the log.
//!
//! - `config.rs`: [`WebhookConfig`], which builds the source.
//! - `source.rs`: the [`Receiver`] and its request path.
//! - `body.rs`: body framing (JSON, JSON array, NDJSON), gzip, decoding, derived event ids.
//! - `auth.rs`: bearer tokens and HMAC-SHA256 signatures with a replay window.
//! - `idempotency.rs`: remembered answers for `Idempotency-Key`.

pub mod auth;
pub mod body;
mod config;
mod idempotency;
mod source;

pub use config::WebhookConfig;
pub use source::{Problem, Receiver};
