//! Typed retail events and their JSON envelope.
//!
//! On the wire every event is one JSON object:
//! `{"type", "schema_version", "event_id", "ts", "source", ...payload}`. The payload fields sit
//! beside the envelope fields (no nesting), so the seed's original sale shape
//! `{"event_id":"<uuid>","store_id":42,"sku":1234,"qty":2,"ts":1723456789000}` is simply a sale
//! whose `type` defaulted. [`decode`] turns bytes into an [`Event`]; [`Event::to_json`] is its
//! inverse and is what producers (the generator, the HTTP source) write to the log.
//!
//! `types.rs` holds the events, `versions.rs` each type's versions and upgrades, `decode.rs` the decoder and its checks, `fields.rs` the one
//! pass that splits an object into the fields the decoder reads, `encode.rs` the encoder.

mod decode;
mod encode;
mod fields;
mod types;
pub mod versions;

pub use decode::{
    decode, decode_versioned, decode_with, DecodeError, FieldError, Versioned, MAX_EVENT_BYTES, TYPE_NAMES,
};
pub use types::*;
