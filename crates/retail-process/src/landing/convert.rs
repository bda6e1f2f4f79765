//! One log record -> a row for the store or a dead letter.

use chrono::Utc;
use retail_core::{
    event::decode_versioned, DeadLetter, DecodeError, Event, EventBody, FieldError, Origin, TopicPartition,
};
use retail_log::ConsumedRecord;
use retail_schema::{avro, wire, SchemaRegistry};
use retail_sink::{LandedEvent, LandedSale, LandingBatch, RowOrigin};
use uuid::Uuid;

/// A record read from the log and decoded, with where it came from.
#[derive(Debug)]
pub(super) struct Decoded {
    pub tp: TopicPartition,
    pub offset: i64,
    pub source: String,
    pub raw: Vec<u8>,
    pub result: Result<Event, DecodeError>,
    /// The event as JSON in its type's current version, when that is not `raw` (an event of an
    /// older version, upgraded): what lands as its payload. Dead letters keep `raw`.
    pub text: Option<Vec<u8>>,
    /// File and line, for input a file source refused (from the reject headers).
    pub file: Option<(String, Option<u64>)>,
    /// The input's identity at its source, if it named one (`reject_id`): its dead letter is
    /// kept once per id.
    pub reject_id: Option<Uuid>,
}

/// Header names of a record its source refused (as `retail_source::record::reject` sets
/// them): the landing dead-letters such a record with that reason, file and line, without
/// decoding it.
const REJECT_REASON: &str = "reject_reason";
const REJECT_FILE: &str = "origin_file";
const REJECT_LINE: &str = "origin_line";
/// The id a source gives input it refused when it can name it across retries (a webhook's bad
/// line under an `Idempotency-Key`), so that its dead letter is kept once.
const REJECT_ID: &str = "reject_id";

/// Decodes one record. A missing `event_id` is derived from the record's position. A record
/// its source already refused is not decoded: it carries its reason. A record in the Confluent
/// wire format (its first byte 0, which no JSON text starts with) is Avro: its writer's schema
/// comes from `schemas` by the id in its header, and it is decoded as the JSON it stands for.
pub(super) fn decode(rec: ConsumedRecord, schemas: Option<&SchemaRegistry>) -> Decoded {
    // The header is the producer's: a NUL in it would make the dead letter (and the row, when
    // the event names no source) unstorable in PostgreSQL (ADR 0008).
    let source = retail_sink::isolate::storable(header(&rec, "source").unwrap_or(&rec.topic));
    let (topic, partition, offset) = (rec.topic.as_str(), rec.partition, rec.offset);
    let file = header(&rec, REJECT_FILE)
        .filter(|_| header(&rec, REJECT_REASON).is_some())
        .map(|f| {
            (
                f.to_owned(),
                header(&rec, REJECT_LINE).and_then(|l| l.parse().ok()),
            )
        });
    let (result, text) = match header(&rec, REJECT_REASON) {
        Some(reason) => (
            Err(DecodeError {
                problems: vec![FieldError {
                    path: String::new(),
                    message: reason.to_owned(),
                }],
            }),
            None,
        ),
        None => {
            let avro = (rec.value.first() == Some(&wire::MAGIC)).then(|| avro_json(&rec.value, schemas));
            let json = match &avro {
                None => Ok(rec.value.as_slice()),
                Some(Ok(json)) => Ok(json.as_slice()),
                Some(Err(e)) => Err(e.clone()),
            };
            match json.and_then(|json| {
                decode_versioned(json, &source, |ts| {
                    position_id(ts.timestamp_millis(), topic, partition, offset)
                })
            }) {
                Ok(v) => (Ok(v.event), v.upgraded.or(avro.and_then(Result::ok))),
                Err(e) => (Err(e), None),
            }
        }
    };
    let reject_id = header(&rec, REJECT_ID).and_then(|id| Uuid::try_parse(id).ok());
    Decoded {
        tp: TopicPartition::new(rec.topic, rec.partition),
        offset: rec.offset,
        source,
        raw: rec.value,
        result,
        text,
        file,
        reject_id,
    }
}

/// Adds one decoded record to the batch: a sale row, another event's row, or a dead letter.
/// Returns the dead letter's kind when the record was rejected.
pub(super) fn add_decoded(batch: &mut LandingBatch, d: Decoded) -> Option<&'static str> {
    match d.result {
        Ok(event) => {
            let event_id = event.event_id;
            match event.body {
                EventBody::Sale(sale) => batch.sales.push(LandedSale {
                    event_id: event.event_id,
                    ts: event.ts,
                    source: event.source,
                    sale,
                }),
                _ => {
                    let (event_type, key) = (event.type_name(), event.partition_key());
                    batch.events.push(LandedEvent {
                        event_id: event.event_id,
                        ts: event.ts,
                        source: event.source,
                        event_type,
                        key,
                        payload: String::from_utf8_lossy(d.text.as_deref().unwrap_or(&d.raw)).into_owned(),
                    });
                }
            }
            // Kept (moved, not copied) in case the store refuses the row (ADR 0008).
            batch.origins.push(RowOrigin {
                event_id,
                origin: Origin::log(d.source, &d.tp, d.offset),
                raw: d.raw,
            });
            None
        }
        Err(err) => {
            let kind = if d.file.is_some() {
                "rejected_at_source"
            } else {
                err.kind()
            };
            let mut origin = Origin::log(d.source, &d.tp, d.offset);
            if let Some((file, line)) = d.file {
                origin.file = Some(file);
                origin.line = line;
            }
            batch.dead_letters.push(DeadLetter {
                reason: err.to_string(),
                kind,
                origin,
                rejected_at: Utc::now(),
                raw: d.raw,
                id: d.reject_id,
            });
            Some(kind)
        }
    }
}

/// Adds one record to the batch (decode, then [`add_decoded`]).
#[cfg(test)]
pub(super) fn add_record(batch: &mut LandingBatch, rec: ConsumedRecord) -> Option<&'static str> {
    add_decoded(batch, decode(rec, None))
}

/// An Avro record's JSON, or why it has none (the schema id unknown, the body damaged).
fn avro_json(value: &[u8], schemas: Option<&SchemaRegistry>) -> Result<Vec<u8>, DecodeError> {
    let whole = |message: String| DecodeError {
        problems: vec![FieldError {
            path: String::new(),
            message,
        }],
    };
    let (id, body) = wire::split(value).map_err(|e| whole(format!("Avro: {e}")))?;
    let Some(schemas) = schemas else {
        return Err(whole(format!(
            "Avro with schema id {id} (Confluent wire format), but this landing has no schema registry"
        )));
    };
    let Some(schema) = schemas.schema(id) else {
        return Err(whole(format!(
            "schema id {id} is not in the schema registry (Avro, Confluent wire format)"
        )));
    };
    avro::to_json(&schema, body).map_err(|e| whole(format!("Avro (schema id {id}): {e}")))
}

fn header<'a>(rec: &'a ConsumedRecord, key: &str) -> Option<&'a str> {
    rec.headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| std::str::from_utf8(&h.value).ok())
}

/// A UUIDv7 for an event that came without an id, derived from its log position so that
/// landing the same record twice (a retry, a replay) gives it the same id.
fn position_id(ts_ms: i64, topic: &str, partition: i32, offset: i64) -> Uuid {
    // FNV-1a over the position, then spread to 10 bytes: stable across builds and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic
        .bytes()
        .chain(partition.to_le_bytes())
        .chain(offset.to_le_bytes())
    {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let spread = h.rotate_left(17).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&h.to_le_bytes());
    random[8..].copy_from_slice(&spread.to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(ts_ms.max(0) as u64, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &[u8], offset: i64) -> ConsumedRecord {
        ConsumedRecord {
            topic: "sales".into(),
            partition: 3,
            offset,
            timestamp_ms: 0,
            key: None,
            value: value.to_vec(),
            headers: vec![retail_log::Header {
                key: "source".into(),
                value: b"pos".to_vec(),
            }],
        }
    }

    /// An Avro order of version 1 (the built-in schema) lands as the version 2 JSON; an unknown
    /// schema id, a damaged body and an Avro record without a registry are dead letters that
    /// name what was wrong, each keeping its raw bytes.
    #[tokio::test]
    async fn avro_records_land_as_their_current_json_or_become_named_dead_letters() {
        use retail_schema::{builtin, MemoryStore};
        let registry = SchemaRegistry::open(std::sync::Arc::new(MemoryStore::new()), &builtin::subjects())
            .await
            .expect("registry");
        let v1 = builtin::BUILTINS
            .iter()
            .find(|b| b.type_name == "order" && b.version == 1)
            .expect("order v1");
        let id = registry
            .lookup(v1.subject, v1.schema, None, retail_schema::Deleted::Hidden)
            .await
            .expect("registered")
            .id;
        let schema = registry.schema(id).expect("by id");
        let json = br#"{"type":"order","event_id":"0190f6a4-0000-7000-8000-000000000009","ts":1723456789000,"order_id":"O-9","status":"paid","amount":"12.30"}"#;
        let framed = wire::frame(id, &avro::from_json(&schema, json).expect("avro"));

        let mut batch = LandingBatch::default();
        let landed = add_decoded(&mut batch, decode(record(&framed, 1), Some(&registry)));
        assert_eq!(landed, None, "{:?}", batch.dead_letters);
        let payload: serde_json::Value = serde_json::from_str(&batch.events[0].payload).expect("json");
        assert_eq!(payload["schema_version"], 2, "{payload}");
        assert_eq!(payload["channel"], "web");
        assert_eq!(payload["amount"], "12.30", "money keeps its digits");
        assert_eq!(batch.origins[0].raw, framed, "the raw bytes stay the Avro record");

        let unknown = wire::frame(424_242, &[0, 1, 2]);
        let mut damaged = framed.clone();
        damaged.truncate(framed.len() - 3);
        for (value, schemas, kind, says) in [
            (
                &unknown,
                Some(&registry),
                "unknown_schema",
                "schema id 424242 is not in the schema registry",
            ),
            (
                &damaged,
                Some(&registry),
                "invalid_avro",
                &*format!("Avro (schema id {id}): not Avro"),
            ),
            (
                &framed,
                None,
                "invalid_avro",
                "but this landing has no schema registry",
            ),
            (&vec![0, 1], Some(&registry), "invalid_avro", "Avro: "),
        ] {
            let mut batch = LandingBatch::default();
            assert_eq!(
                add_decoded(&mut batch, decode(record(value, 2), schemas)),
                Some(kind),
                "{says}"
            );
            let dl = &batch.dead_letters[0];
            assert!(dl.reason.contains(says), "{}", dl.reason);
            assert_eq!(&dl.raw, value);
        }
    }

    #[test]
    fn a_bad_record_becomes_a_dead_letter_with_its_position() {
        let mut batch = LandingBatch::default();
        let kind = add_record(
            &mut batch,
            record(br#"{"store_id":1,"sku":2,"qty":"two","ts":1723456789000}"#, 17),
        );
        assert_eq!(kind, Some("invalid_field"));
        let dl = &batch.dead_letters[0];
        assert_eq!(dl.reason, r#"qty: must be a non-zero integer, got "two""#);
        assert_eq!(
            dl.origin.to_string(),
            "source pos, topic sales partition 3 offset 17"
        );
        assert_eq!(
            dl.raw,
            br#"{"store_id":1,"sku":2,"qty":"two","ts":1723456789000}"#
        );
    }

    #[test]
    fn a_record_its_source_refused_is_a_dead_letter_with_file_and_line() {
        let mut rec = record(b",2,101,two,1.00,7,1723456789000", 9);
        for (k, v) in [
            (
                "reject_reason",
                "line 3, column \"qty\" (qty): expected a whole number, got \"two\"",
            ),
            ("origin_file", "export.csv"),
            ("origin_line", "3"),
        ] {
            rec.headers.push(retail_log::Header {
                key: k.into(),
                value: v.as_bytes().to_vec(),
            });
        }
        let mut batch = LandingBatch::default();
        assert_eq!(add_record(&mut batch, rec), Some("rejected_at_source"));
        let dl = &batch.dead_letters[0];
        assert!(dl.reason.contains("expected a whole number"), "{}", dl.reason);
        assert_eq!(
            dl.origin.to_string(),
            "source pos, topic sales partition 3 offset 9, file export.csv line 3"
        );
    }

    #[test]
    fn a_refused_line_named_by_its_source_keeps_its_id_for_the_store() {
        let id = "0193a0c0-0000-7000-8000-000000000abc";
        let mut rec = record(br#"{"type":"sale","qty":"two"}"#, 4);
        rec.headers.push(retail_log::Header {
            key: "reject_id".into(),
            value: id.as_bytes().to_vec(),
        });
        let mut batch = LandingBatch::default();
        assert_eq!(add_record(&mut batch, rec), Some("invalid_field"));
        assert_eq!(batch.dead_letters[0].id, Some(Uuid::parse_str(id).expect("uuid")));
        add_record(&mut batch, record(br#"{"type":"sale","qty":"two"}"#, 5));
        assert_eq!(batch.dead_letters[1].id, None, "no header, no id");
    }

    #[test]
    fn a_missing_event_id_is_the_same_on_every_landing_of_the_record() {
        let value = br#"{"store_id":1,"sku":2,"qty":1,"ts":1723456789000}"#;
        let mut a = LandingBatch::default();
        let mut b = LandingBatch::default();
        add_record(&mut a, record(value, 5));
        add_record(&mut b, record(value, 5));
        assert_eq!(a.sales[0].event_id, b.sales[0].event_id);
        assert_eq!(a.sales[0].event_id.get_version_num(), 7);
        let mut c = LandingBatch::default();
        add_record(&mut c, record(value, 6));
        assert_ne!(a.sales[0].event_id, c.sales[0].event_id);
    }
}
