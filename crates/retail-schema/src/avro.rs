//! An Avro message in the Confluent wire format -> the same JSON object a JSON producer sends.
//!
//! Why through JSON: the landing has one decoder, with its checks, field paths, bounds and
//! version upgrades (`retail_core::event`); an Avro event is turned into the JSON object it
//! stands for and goes through that decoder, so an Avro sale and a JSON sale cannot disagree on
//! what is valid. The conversion's cost is measured against JSON alone (`bench --compare-avro`).
//!
//! The mapping: a record is an object; `null` (alone or as the chosen branch of a union) leaves
//! the field out, as a JSON producer omits an absent field; numbers, strings, booleans and enums
//! are themselves; timestamps are epoch milliseconds; arrays and maps are arrays and objects.
//! Money travels as Avro `string` (exact decimal text; JSON numbers in the output keep that
//! text, see ADR 0020). `bytes`, `fixed` and Avro `decimal` are refused with the field named:
//! no built-in event has them, and a guess at their meaning would be a silent change.

use std::sync::Once;

use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The largest single allocation the Avro reader may make for one length-prefixed value. A
/// damaged length would otherwise ask for up to apache-avro's default of 512 MiB per record.
const MAX_AVRO_ALLOCATION: usize = 1024 * 1024;

/// Why an Avro body is not an event's JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AvroError(pub String);

/// Decodes `body` (Avro binary, without the wire header) written with `writer`, and writes it
/// as one JSON object.
pub fn to_json(writer: &Schema, body: &[u8]) -> Result<Vec<u8>, AvroError> {
    static LIMIT: Once = Once::new();
    LIMIT.call_once(|| {
        apache_avro::util::max_allocation_bytes(MAX_AVRO_ALLOCATION);
    });
    let whole = body;
    // apache-avro builds a table of the schema's named types on every call, hashed with SipHash:
    // most of a small record's decoding time. Without the table first (`schemata` empty: the
    // built-in schemas name no type twice); a schema that refers to one of its named types
    // fails there and is decoded again with the table, whose error is the one reported.
    // apache-avro `expect`s in a few places; a damaged record must cost one dead letter, not
    // the landing's task.
    let mut reader = Strict::new(body);
    let decoded =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            || match apache_avro::from_avro_datum_schemata(writer, Vec::new(), &mut reader, None) {
                Ok(value) => Ok(value),
                Err(_) => {
                    reader = Strict::new(whole);
                    apache_avro::from_avro_datum(writer, &mut reader, None)
                }
            },
        ))
        .map_err(|_| AvroError("the Avro reader failed on this body".to_owned()))?
        .map_err(|e| AvroError(format!("not Avro of its writer's schema: {e}")))?;
    if reader.read_past_end {
        // apache-avro reads a union whose index is cut off as `null`: a truncated body would
        // otherwise lose its last optional fields without a word.
        return Err(AvroError(format!(
            "not Avro of its writer's schema: the body ({} bytes) ends inside the record",
            whole.len()
        )));
    }
    let rest = reader.rest.len();
    if rest > 0 {
        return Err(AvroError(format!(
            "{rest} bytes left after the Avro record: the body is longer than its schema says"
        )));
    }
    let Avro::Record(fields) = decoded else {
        return Err(AvroError(
            "the writer's schema is not a record: an event is an Avro record".to_owned(),
        ));
    };
    // Written field by field in the record's order, without building a map first.
    let mut out = Vec::with_capacity(whole.len() * 3);
    out.push(b'{');
    for (name, value) in fields {
        if let Some(v) = json(&name, value)? {
            if out.len() > 1 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, &name)
                .and_then(|()| {
                    out.push(b':');
                    serde_json::to_writer(&mut out, &v)
                })
                .map_err(|e| AvroError(format!("{name}: could not write JSON: {e}")))?;
        }
    }
    out.push(b'}');
    Ok(out)
}

/// The inverse of [`to_json`] for flat event records: a JSON event -> an Avro body (without the
/// wire header) of `schema`, as an Avro producer of the built-in event types writes it. A field
/// the JSON lacks takes the schema's default (`null` for an optional one); a JSON number sent
/// for a `string` field (money) keeps its exact text. For the benchmark, the tests, and Avro
/// output topics.
pub fn from_json(schema: &Schema, json: &[u8]) -> Result<Vec<u8>, AvroError> {
    let Schema::Record(record) = schema else {
        return Err(AvroError("the schema is not a record".to_owned()));
    };
    let object: std::collections::HashMap<String, Box<RawValue>> =
        serde_json::from_slice(json).map_err(|e| AvroError(format!("not a JSON object: {e}")))?;
    let mut fields = Vec::with_capacity(record.fields.len());
    for field in &record.fields {
        let value = match object.get(&field.name).map(|v| v.get()).filter(|v| *v != "null") {
            Some(text) => avro_value(&field.name, &field.schema, text)?,
            None => match &field.default {
                Some(default) => Avro::from(default.clone())
                    .resolve(&field.schema)
                    .map_err(|e| AvroError(format!("{}: the default does not fit: {e}", field.name)))?,
                None => {
                    return Err(AvroError(format!(
                        "{}: missing, and the schema has no default",
                        field.name
                    )))
                }
            },
        };
        fields.push((field.name.clone(), value));
    }
    apache_avro::to_avro_datum(schema, Avro::Record(fields))
        .map_err(|e| AvroError(format!("could not write Avro: {e}")))
}

/// The JSON text of one field as an Avro value of `schema`.
fn avro_value(path: &str, schema: &Schema, text: &str) -> Result<Avro, AvroError> {
    let wrong = || AvroError(format!("{path}: {text} does not fit the schema's {schema:?}"));
    Ok(match schema {
        Schema::Union(union) => {
            let (index, branch) = union
                .variants()
                .iter()
                .enumerate()
                .find(|(_, s)| !matches!(s, Schema::Null))
                .ok_or_else(wrong)?;
            let index = u32::try_from(index).map_err(|_| wrong())?;
            Avro::Union(index, Box::new(avro_value(path, branch, text)?))
        }
        Schema::String => match serde_json::from_str::<String>(text) {
            Ok(s) => Avro::String(s),
            // A number for a text field: money, kept as its exact digits.
            Err(_) if serde_json::from_str::<serde_json::Number>(text).is_ok() => {
                Avro::String(text.to_owned())
            }
            Err(_) => return Err(wrong()),
        },
        Schema::Long => Avro::Long(text.parse().map_err(|_| wrong())?),
        Schema::TimestampMillis => Avro::TimestampMillis(text.parse().map_err(|_| wrong())?),
        Schema::Int => Avro::Int(text.parse().map_err(|_| wrong())?),
        Schema::Boolean => Avro::Boolean(text.parse().map_err(|_| wrong())?),
        Schema::Double => Avro::Double(text.parse().map_err(|_| wrong())?),
        _ => return Err(wrong()),
    })
}

/// A reader over the body that remembers whether anything tried to read past its end.
struct Strict<'a> {
    rest: &'a [u8],
    read_past_end: bool,
}

impl<'a> Strict<'a> {
    const fn new(body: &'a [u8]) -> Self {
        Self {
            rest: body,
            read_past_end: false,
        }
    }
}

impl std::io::Read for Strict<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.rest.is_empty() && !buf.is_empty() {
            self.read_past_end = true;
        }
        self.rest.read(buf)
    }
}

/// One Avro value as JSON; `None` for null (the field is left out). `path` names it in errors.
fn json(path: &str, value: Avro) -> Result<Option<Value>, AvroError> {
    Ok(Some(match value {
        Avro::Null => return Ok(None),
        Avro::Union(_, inner) => return json(path, *inner),
        Avro::Boolean(b) => Value::Bool(b),
        Avro::Int(n) | Avro::Date(n) | Avro::TimeMillis(n) => Value::from(n),
        Avro::Long(n) | Avro::TimeMicros(n) | Avro::TimestampMillis(n) | Avro::LocalTimestampMillis(n) => {
            Value::from(n)
        }
        Avro::TimestampMicros(n) | Avro::LocalTimestampMicros(n) => Value::from(n.div_euclid(1_000)),
        Avro::TimestampNanos(n) | Avro::LocalTimestampNanos(n) => Value::from(n.div_euclid(1_000_000)),
        Avro::Float(x) => number(path, f64::from(x))?,
        Avro::Double(x) => number(path, x)?,
        Avro::String(s) | Avro::Enum(_, s) => Value::String(s),
        Avro::Uuid(u) => Value::String(u.hyphenated().to_string()),
        Avro::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| json(&format!("{path}[{i}]"), v).map(|v| v.unwrap_or(Value::Null)))
                .collect::<Result<_, _>>()?,
        ),
        Avro::Map(entries) => {
            let mut m = Map::new();
            for (k, v) in entries {
                if let Some(v) = json(&format!("{path}.{k}"), v)? {
                    m.insert(k, v);
                }
            }
            Value::Object(m)
        }
        Avro::Record(fields) => {
            let mut m = Map::new();
            for (k, v) in fields {
                if let Some(v) = json(&format!("{path}.{k}"), v)? {
                    m.insert(k, v);
                }
            }
            Value::Object(m)
        }
        other => {
            return Err(AvroError(format!(
                "{path}: Avro {} is not read (send money and text as `string`)",
                kind(&other)
            )))
        }
    }))
}

/// A finite double as a JSON number written with Rust's shortest round-trip digits.
fn number(path: &str, x: f64) -> Result<Value, AvroError> {
    if !x.is_finite() {
        return Err(AvroError(format!("{path}: {x} is not a number JSON can hold")));
    }
    let raw = RawValue::from_string(format!("{x:?}"))
        .map_err(|e| AvroError(format!("{path}: {x} could not be written ({e})")))?;
    serde_json::from_str(raw.get()).map_err(|e| AvroError(format!("{path}: {e}")))
}

fn kind(value: &Avro) -> &'static str {
    match value {
        Avro::Bytes(_) => "bytes",
        Avro::Fixed(..) => "fixed",
        Avro::Decimal(_) | Avro::BigDecimal(_) => "decimal",
        Avro::Duration(_) => "duration",
        _ => "value of this type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::to_avro_datum;
    use apache_avro::types::Record;

    const SALE: &str = r#"{"type":"record","name":"Sale","fields":[
        {"name":"type","type":"string"},
        {"name":"event_id","type":["null","string"],"default":null},
        {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"store_id","type":"long"},
        {"name":"qty","type":"int"},
        {"name":"unit_price","type":["null","string"],"default":null}]}"#;

    #[test]
    fn a_record_becomes_the_json_object_a_producer_would_send() {
        let schema = Schema::parse_str(SALE).expect("schema");
        let mut r = Record::new(&schema).expect("record");
        r.put("type", "sale");
        r.put("event_id", Avro::Union(0, Box::new(Avro::Null)));
        r.put("ts", Avro::TimestampMillis(1_723_456_789_000));
        r.put("store_id", 7_i64);
        r.put("qty", 2_i32);
        r.put(
            "unit_price",
            Avro::Union(1, Box::new(Avro::String("19.99".into()))),
        );
        let body = to_avro_datum(&schema, r).expect("encode");
        let text = to_json(&schema, &body).expect("json");
        let v: Value = serde_json::from_slice(&text).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"type": "sale", "ts": 1_723_456_789_000_i64, "store_id": 7, "qty": 2, "unit_price": "19.99"})
        );
    }

    #[test]
    fn damaged_bodies_are_errors_not_panics() {
        let schema = Schema::parse_str(SALE).expect("schema");
        for body in [&b""[..], &[0x02], &[0xff; 12], &[0x0c, b's', b'a', b'l', b'e']] {
            let e = to_json(&schema, body).expect_err("damaged");
            assert!(e.0.starts_with("not Avro") || e.0.contains("Avro reader"), "{e}");
        }
        // A string length far past the body asks for no large allocation.
        let e = to_json(&schema, &[0xfe, 0xff, 0xff, 0xff, 0x0f]).expect_err("huge length");
        assert!(e.0.starts_with("not Avro"), "{e}");
        // A body cut anywhere is refused, even where apache-avro would read a cut-off union
        // index as null.
        let order = Schema::parse_str(crate::builtin::BUILTINS[1].schema).expect("order");
        let json =
            br#"{"type":"order","ts":1723456789000,"order_id":"O-9","status":"paid","amount":"12.30"}"#;
        let body = from_json(&order, json).expect("avro");
        assert!(to_json(&order, &body).is_ok());
        for cut in 1..body.len() {
            let e = to_json(&order, &body[..body.len() - cut]).expect_err("cut");
            assert!(e.0.starts_with("not Avro"), "{cut}: {e}");
        }
        // Bytes after the record are refused too.
        let mut r = Record::new(&schema).expect("record");
        r.put("type", "sale");
        r.put("event_id", Avro::Union(0, Box::new(Avro::Null)));
        r.put("ts", Avro::TimestampMillis(1));
        r.put("store_id", 1_i64);
        r.put("qty", 1_i32);
        r.put("unit_price", Avro::Union(0, Box::new(Avro::Null)));
        let mut body = to_avro_datum(&schema, r).expect("encode");
        body.push(0);
        assert!(to_json(&schema, &body)
            .expect_err("trailing")
            .0
            .contains("1 bytes left"));
    }

    #[test]
    fn from_json_and_back_gives_the_same_event() {
        let schema = Schema::parse_str(SALE).expect("schema");
        let json =
            br#"{"type":"sale","ts":1723456789000,"store_id":7,"qty":-2,"unit_price":1234567.89,"extra":1}"#;
        let body = from_json(&schema, json).expect("avro");
        let back: Value = serde_json::from_slice(&to_json(&schema, &body).expect("json")).expect("json");
        assert_eq!(
            back,
            serde_json::json!({"type": "sale", "ts": 1_723_456_789_000_i64, "store_id": 7, "qty": -2, "unit_price": "1234567.89"})
        );
        let e = from_json(&schema, br#"{"type":"sale","ts":1,"qty":1}"#).expect_err("no store_id");
        assert_eq!(e.0, "store_id: missing, and the schema has no default");
    }

    #[test]
    fn bytes_are_refused_with_the_field_named() {
        let schema =
            Schema::parse_str(r#"{"type":"record","name":"X","fields":[{"name":"blob","type":"bytes"}]}"#)
                .expect("schema");
        let mut r = Record::new(&schema).expect("record");
        r.put("blob", Avro::Bytes(vec![1, 2]));
        let body = to_avro_datum(&schema, r).expect("encode");
        let e = to_json(&schema, &body).expect_err("bytes");
        assert!(e.0.starts_with("blob: Avro bytes"), "{e}");
    }
}
