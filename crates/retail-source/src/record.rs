//! The one record builder: how an event becomes a log record, for every source and for a
//! resubmitted dead letter alike. Topic and key come from the event (so a store's or an
//! order's events share a partition), and the headers every source sets let consumers route
//! and count records without parsing them.

use chrono::{DateTime, Utc};
use retail_core::event::SCHEMA_VERSION;
use retail_core::Event;
use retail_log::{Header, ProducerRecord};
use uuid::Uuid;

/// Names of the headers every source puts on its records.
pub mod headers {
    /// The event's `type` (`sale`, `return`, `store`, ...), as the producer meant it.
    pub const EVENT_TYPE: &str = "event_type";
    /// The envelope schema version, in decimal.
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// The producing source's name.
    pub const SOURCE: &str = "source";
}

/// The log record of `event`: its topic, its partition key, its JSON, the three headers, and
/// its event time as the record timestamp.
pub fn event_record(event: &Event) -> ProducerRecord {
    event_record_with_value(event, event.to_json())
}

/// [`event_record`] with `value` as the record's bytes instead of the event re-encoded: for a
/// source whose input already is the event's JSON (a webhook line), which the landing decodes
/// to the same event. Saves the re-encode, the largest cost of a webhook batch after decoding.
pub fn event_record_with_value(event: &Event, value: Vec<u8>) -> ProducerRecord {
    ProducerRecord {
        topic: event.topic().to_owned(),
        partition: None,
        key: Some(event.partition_key().into_bytes()),
        value,
        headers: vec![
            header(headers::EVENT_TYPE, event.type_name().as_bytes()),
            header(headers::SCHEMA_VERSION, decimal(SCHEMA_VERSION, &mut [0; 5])),
            header(headers::SOURCE, event.source.as_bytes()),
        ],
        timestamp_ms: Some(event.ts.timestamp_millis()),
    }
}

/// `n` in decimal, written into `buf` (a record header per event did not need a `String`).
fn decimal(mut n: u16, buf: &mut [u8; 5]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// A UUIDv7 whose time is the event's and whose other bits hash what identifies the input
/// (`seed`: the source and the `Idempotency-Key`, the item's bytes, or a file's checksum; and
/// the item's position). The same input sent or read again gets the same id, so the landing's
/// event ledger lands it once; ids stay ordered by event time, which keeps the store's index
/// appends cheap.
pub fn derived_id(ts: DateTime<Utc>, seed: &[u8], position: usize) -> Uuid {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(seed);
    h.update((position as u64).to_le_bytes());
    let digest = h.finalize();
    let mut bits = [0u8; 10];
    bits.copy_from_slice(&digest[..10]);
    let millis = u64::try_from(ts.timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &bits).into_uuid()
}

/// Header names of a record a source refused, carried to the landing so its dead letter says
/// why and where (file and line), not only the log position.
pub mod reject {
    /// Why the source refused the input.
    pub const REASON: &str = "reject_reason";
    /// A short class of the refusal (`csv_row`, ...).
    pub const KIND: &str = "reject_kind";
    /// The file the input came from.
    pub const FILE: &str = "origin_file";
    /// The 1-based line in that file.
    pub const LINE: &str = "origin_line";
    /// The input's identity across retries (a webhook's bad line under an `Idempotency-Key`,
    /// from the key and the line): the store keeps one dead letter per id.
    pub const ID: &str = "reject_id";
}

/// A record header.
pub fn header(key: &str, value: &[u8]) -> Header {
    Header {
        key: key.to_owned(),
        value: value.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_as_to_string_writes_them() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u16::MAX, SCHEMA_VERSION] {
            assert_eq!(decimal(n, &mut [0; 5]), n.to_string().as_bytes());
        }
    }
}
