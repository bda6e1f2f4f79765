//! The faults the generator injects into data records (duplicates, out-of-order and late event
//! times, malformed records) and how a malformed record is broken.

use retail_core::event::MAX_EVENT_BYTES;
use retail_log::ProducerRecord;

/// The ways a malformed record is broken, produced in rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MalformedKind {
    /// A valid event cut in half: not JSON.
    BrokenJson,
    /// `"qty":"two"`: a field of the wrong type.
    WrongType,
    /// `"type":"refund_request"`: a type no decoder knows.
    UnknownType,
    /// A sale without its `store_id`.
    MissingStoreId,
    /// A valid sale padded past [`MAX_EVENT_BYTES`].
    Oversized,
}

impl MalformedKind {
    /// Every kind, in the order they rotate.
    pub const ALL: [Self; 5] = [
        Self::BrokenJson,
        Self::WrongType,
        Self::UnknownType,
        Self::MissingStoreId,
        Self::Oversized,
    ];

    /// The [`retail_core::DecodeError::kind`] the landing reports for it.
    pub const fn decode_error_kind(self) -> &'static str {
        match self {
            Self::BrokenJson => "malformed_json",
            Self::WrongType | Self::MissingStoreId => "invalid_field",
            Self::UnknownType => "unknown_type",
            Self::Oversized => "oversized",
        }
    }
}

/// A fault injected into one data record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// An exact copy (same bytes, same `event_id`) of an earlier record.
    Duplicate,
    /// Event time moved back by `by_ms` (at most `out_of_order_max_ms`).
    OutOfOrder {
        /// Shift, milliseconds.
        by_ms: i64,
    },
    /// Event time moved back by `late_by_ms`.
    Late {
        /// Shift, milliseconds.
        by_ms: i64,
    },
    /// Bytes that are not a valid event.
    Malformed(MalformedKind),
}

/// Breaks a sale's record as `kind` says; it stays on the sales topic with the sale's key, as
/// a buggy till would send it.
pub(crate) fn break_record(mut record: ProducerRecord, kind: MalformedKind) -> ProducerRecord {
    let v = &mut record.value;
    let done = match kind {
        MalformedKind::BrokenJson => false,
        MalformedKind::WrongType => replace_field(v, "qty", Some(b"\"two\"")),
        MalformedKind::UnknownType => {
            let unknown = "refund_request";
            record.headers[0].value = unknown.as_bytes().to_vec();
            replace_field(v, "type", Some(format!("\"{unknown}\"").as_bytes()))
        }
        MalformedKind::MissingStoreId => replace_field(v, "store_id", None),
        MalformedKind::Oversized => {
            let mut padding = Vec::with_capacity(MAX_EVENT_BYTES + 32);
            padding.extend_from_slice(b"\"comment\":\"");
            padding.resize(padding.len() + MAX_EVENT_BYTES, b'x');
            padding.extend_from_slice(b"\",");
            v.splice(1..1, padding);
            true
        }
    };
    if !done {
        // A strict prefix of a JSON object is never valid JSON.
        v.truncate(v.len() / 2);
    }
    record
}

/// Replaces the value of the top-level field `name` of a flat JSON object we encoded (values
/// are numbers or strings without escapes), or removes the field when `value` is `None`.
/// Returns false when the field is not there.
pub(crate) fn replace_field(json: &mut Vec<u8>, name: &str, value: Option<&[u8]>) -> bool {
    let pattern = format!("\"{name}\":");
    let Some(start) = json.windows(pattern.len()).position(|w| w == pattern.as_bytes()) else {
        return false;
    };
    let value_start = start + pattern.len();
    let value_end = if json.get(value_start) == Some(&b'"') {
        match json[value_start + 1..].iter().position(|&b| b == b'"') {
            Some(i) => value_start + 1 + i + 1,
            None => return false,
        }
    } else {
        match json[value_start..].iter().position(|&b| b == b',' || b == b'}') {
            Some(i) => value_start + i,
            None => return false,
        }
    };
    match value {
        Some(v) => {
            json.splice(value_start..value_end, v.iter().copied());
        }
        None if json.get(value_end) == Some(&b',') => {
            json.drain(start..=value_end);
        }
        None if start > 0 && json[start - 1] == b',' => {
            json.drain(start - 1..value_end);
        }
        None => {
            json.drain(start..value_end);
        }
    }
    true
}
