//! The SOAP payments poller (`type = "soap"`): asks a payment provider's SOAP 1.1 or 1.2
//! service for payment confirmations after a persisted cursor, a page at a time, and puts them
//! on the `payments` topic exactly once across restarts and crashes (ADR 0013). Bad elements are
//! dead-lettered with the endpoint, page and position; faults show on `/health` and are retried.
//!
//! - `config.rs`: [`SoapConfig`], which builds the source.
//! - `source.rs`: the [`Poller`] task: request, page, append, then cursor.
//! - `xml.rs`: the request template, and an answer as payment elements or a SOAP Fault (no I/O).
//! - `cursor.rs`: the cursor (timestamp, payment id), replaced atomically.

mod config;
mod cursor;
mod source;
mod xml;

pub use config::{Elements, SoapConfig, SoapVersion, PLACEHOLDERS};
pub use cursor::{Cursor, CURSOR_FILE};
pub use source::{Poller, REJECT_KIND};
