//! The one record builder: how an event becomes a log record, for every source and for a
//! resubmitted dead letter alike. Topic and key come from the event (so a store's or an
//! order's events share a partition), and the headers every source sets let consumers route
//! and count records without parsing them.

use retail_core::event::SCHEMA_VERSION;
use retail_core::Event;
use retail_log::{Header, ProducerRecord};

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
    ProducerRecord {
        topic: event.topic().to_owned(),
        partition: None,
        key: Some(event.partition_key().into_bytes()),
        value: event.to_json(),
        headers: vec![
            header(headers::EVENT_TYPE, event.type_name().as_bytes()),
            header(headers::SCHEMA_VERSION, SCHEMA_VERSION.to_string().as_bytes()),
            header(headers::SOURCE, event.source.as_bytes()),
        ],
        timestamp_ms: Some(event.ts.timestamp_millis()),
    }
}

fn header(key: &str, value: &[u8]) -> Header {
    Header {
        key: key.to_owned(),
        value: value.to_vec(),
    }
}
