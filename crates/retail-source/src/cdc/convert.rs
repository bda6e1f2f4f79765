//! One captured row as a log record: its columns typed by the event field they feed, decoded
//! with the one event decoder, or refused with a reason naming the source, table, column and
//! LSN (a record the landing dead-letters). Nothing here does I/O.

use chrono::{DateTime, NaiveDateTime, Utc};
use retail_core::event::topics;
use retail_core::Event;
use retail_log::ProducerRecord;
use serde_json::{Map, Value};

use super::config::CdcTable;
use super::pgoutput::lsn_text;
use crate::record::{derived_id, event_record_with_value, header, headers, reject};

/// Header with the commit LSN (`X/Y`) a record came from; the snapshot's records carry the
/// slot's starting point.
pub const CDC_LSN: &str = "cdc_lsn";
/// Header with the end LSN of a streamed record's transaction: the slot's position once it is
/// confirmed (not on snapshot records).
pub const CDC_END_LSN: &str = "cdc_end_lsn";

/// What happened to the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Read by the initial snapshot.
    Snapshot,
    /// Inserted.
    Insert,
    /// Updated (the new row).
    Update,
    /// Deleted (the old row).
    Delete,
}

impl Op {
    /// Lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// Where a row came from, for its id and its reject reason.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    /// The source's name.
    pub source: &'a str,
    /// `schema.table`.
    pub table: &'a str,
    /// Commit LSN of the change's transaction (the slot's start for the snapshot).
    pub lsn: u64,
    /// What identifies the row's change: the transaction and its place in it, or the
    /// snapshot row's content.
    pub seed: String,
    /// Position under `seed`.
    pub position: usize,
    /// Event time when the row has no `ts` column: the commit time (the snapshot's time).
    pub default_ts: DateTime<Utc>,
}

/// A row: column names and their text values (`None` for NULL).
pub type Row<'a> = [(&'a str, Option<&'a str>)];

/// The record of a row of a mapped table: the event, or a reject naming what is wrong.
pub fn record(map: &CdcTable, op: Op, row: &Row<'_>, at: &Origin<'_>) -> (ProducerRecord, bool) {
    match to_event(map, op, row, at) {
        Ok((event, value)) => {
            let mut r = event_record_with_value(&event, value);
            r.headers.push(header(CDC_LSN, lsn_text(at.lsn).as_bytes()));
            (r, true)
        }
        Err(reason) => (refused(Some(map), op, row, at, &reason), false),
    }
}

/// A reject record: the row as JSON, the reason prefixed with source, table, operation and LSN.
pub fn refused(map: Option<&CdcTable>, op: Op, row: &Row<'_>, at: &Origin<'_>, why: &str) -> ProducerRecord {
    let reason = format!(
        "source {:?}: table {}, {} at LSN {}: {why}",
        at.source,
        at.table,
        op.as_str(),
        lsn_text(at.lsn)
    );
    let raw: Map<String, Value> = row
        .iter()
        .map(|(c, v)| {
            (
                (*c).to_owned(),
                v.map_or(Value::Null, |v| Value::String(v.to_owned())),
            )
        })
        .collect();
    let id = derived_id(
        id_time(op, false, at.default_ts),
        format!("reject|{}", at.seed).as_bytes(),
        at.position,
    );
    ProducerRecord {
        topic: map.map_or(topics::SALES, |m| topic_of(&m.event_type)).to_owned(),
        partition: None,
        key: None,
        value: serde_json::to_vec(&raw).unwrap_or_default(),
        headers: vec![
            header(headers::SOURCE, at.source.as_bytes()),
            header(reject::REASON, reason.as_bytes()),
            header(reject::KIND, b"cdc_row"),
            header(reject::FILE, at.table.as_bytes()),
            header(reject::LINE, at.lsn.to_string().as_bytes()),
            header(reject::ID, id.to_string().as_bytes()),
            header(CDC_LSN, lsn_text(at.lsn).as_bytes()),
        ],
        timestamp_ms: None,
    }
}

/// The time in a record's id: the event's, except for a snapshot row without a time of its
/// own, whose event time is when the snapshot was taken. Its id must not change when the
/// snapshot is taken again, so it gets a fixed time (the epoch) in the id instead.
fn id_time(op: Op, own_ts: bool, ts: DateTime<Utc>) -> DateTime<Utc> {
    if op == Op::Snapshot && !own_ts {
        DateTime::UNIX_EPOCH
    } else {
        ts
    }
}

/// The topic of an event type's events.
fn topic_of(event_type: &str) -> &'static str {
    match event_type {
        "order" => topics::ORDERS,
        "payment" => topics::PAYMENTS,
        "inventory" => topics::INVENTORY,
        "store" | "product" | "seller" => topics::CATALOG,
        "device_status" => topics::DEVICES,
        _ => topics::SALES,
    }
}

/// How a field's text becomes JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Decimal,
    Timestamp,
    Text,
}

fn kind_of(field: &str) -> Kind {
    match field {
        "store_id" | "sku" | "qty" | "seller_id" | "on_hand" | "schema_version" => Kind::Int,
        "unit_price" | "amount" | "price" => Kind::Decimal,
        "ts" => Kind::Timestamp,
        _ => Kind::Text,
    }
}

/// A column's text as its field's JSON; `Err` names what was expected. Numbers go text ->
/// integer or text -> `Decimal` (checked, kept as text), never through a float.
fn typed(kind: Kind, text: &str) -> Result<Value, &'static str> {
    match kind {
        Kind::Int => text.parse::<i64>().map(Value::from).map_err(|_| "a whole number"),
        Kind::Decimal => text
            .parse::<rust_decimal::Decimal>()
            .map(|_| Value::String(text.to_owned()))
            .map_err(|_| "a decimal number of at most 28 digits"),
        Kind::Timestamp => timestamp_ms(text)
            .map(Value::from)
            .ok_or("a timestamp (timestamptz, timestamp as UTC, or epoch milliseconds)"),
        Kind::Text => Ok(Value::String(text.to_owned())),
    }
}

/// Epoch milliseconds of PostgreSQL's ISO output (`2024-08-12 10:00:00.5+02`, or without a
/// zone as UTC), of RFC 3339, or of epoch-millisecond digits.
pub fn timestamp_ms(text: &str) -> Option<i64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Some(t.timestamp_millis());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f") {
        return Some(t.and_utc().timestamp_millis());
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The event, and the JSON the record carries: the object it was decoded from with its id and
/// source filled in, which decodes to the same event. Not [`Event::to_json`], which writes
/// amounts as JSON floats: a `numeric` with more than 15 or so digits (an order total with 8
/// decimals) would not read back exactly.
fn to_event(map: &CdcTable, op: Op, row: &Row<'_>, at: &Origin<'_>) -> Result<(Event, Vec<u8>), String> {
    let mut object = Map::new();
    object.insert("type".to_owned(), Value::String(map.event_type.clone()));
    let mut field_column: Vec<(&str, &str)> = Vec::new();
    for (column, value) in row {
        let Some(field) = map.field(column) else {
            continue;
        };
        field_column.push((field, column));
        let Some(text) = value else {
            continue; // NULL: a required field is then reported missing by the decoder
        };
        let v = typed(kind_of(field), text)
            .map_err(|expected| format!("column {column} ({field}): expected {expected}, got {text:?}"))?;
        object.insert(field.to_owned(), v);
    }
    let own_ts = object.contains_key("ts");
    if !own_ts {
        object.insert("ts".to_owned(), Value::from(at.default_ts.timestamp_millis()));
    }
    if op == Op::Update && matches!(map.event_type.as_str(), "sale" | "return" | "void") {
        // A sale line is a fact, not a state: the new row as another sale would count it twice.
        return Err("an update of a sale row has no event (sales are append-only); \
                    correct it with a void and a new sale"
            .to_owned());
    }
    if matches!(op, Op::Update | Op::Delete) {
        // The row's own id names its insert; its later changes are other events.
        object.remove("event_id");
    }
    if op == Op::Delete {
        match map.event_type.as_str() {
            "sale" | "return" | "void" => {
                object.insert("type".to_owned(), Value::String("void".to_owned()));
            }
            "inventory" => {
                object.insert("on_hand".to_owned(), Value::from(0));
            }
            "order" => {
                object.insert("status".to_owned(), Value::String("cancelled".to_owned()));
            }
            other => {
                return Err(format!(
                    "a deleted {other} row has no event in the model (sales become void, \
                     inventory on_hand 0, orders cancelled)"
                ))
            }
        }
    }
    let bytes = serde_json::to_vec(&object).map_err(|e| e.to_string())?;
    let event = retail_core::decode_with(&bytes, at.source, |ts| {
        derived_id(id_time(op, own_ts, ts), at.seed.as_bytes(), at.position)
    })
    .map_err(|e| {
        e.problems
            .iter()
            .map(|p| match field_column.iter().find(|(f, _)| *f == p.path) {
                Some((_, c)) if *c != p.path => format!("column {c} ({p})"),
                Some(_) => format!("column {p}"),
                None if p.path.is_empty() => p.message.clone(),
                None => format!("no column feeds {p}"),
            })
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    object.insert("event_id".to_owned(), Value::String(event.event_id.to_string()));
    object.insert("source".to_owned(), Value::String(event.source.clone()));
    let value = serde_json::to_vec(&object).map_err(|e| e.to_string())?;
    Ok((event, value))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use retail_core::event::{EventBody, SaleKind};
    use rust_decimal::Decimal;

    use super::*;

    fn sales() -> CdcTable {
        CdcTable {
            table: "public.sales".into(),
            event_type: "sale".into(),
            columns: BTreeMap::from([("sold_at".to_owned(), "ts".to_owned())]),
        }
    }

    fn at() -> Origin<'static> {
        Origin {
            source: "cdc",
            table: "public.sales",
            lsn: 0x16B_3748,
            seed: "cdc|1/0|public.sales".into(),
            position: 3,
            default_ts: DateTime::from_timestamp_millis(1_723_456_789_000).expect("ts"),
        }
    }

    #[test]
    fn rows_become_events_with_exact_numbers_and_stable_ids() {
        let row = [
            ("store_id", Some("7")),
            ("sku", Some("100")),
            ("qty", Some("2")),
            ("unit_price", Some("12345678.99")),
            ("sold_at", Some("2024-08-12 10:00:00.25+00")),
        ];
        let (r, ok) = record(&sales(), Op::Insert, &row, &at());
        assert!(ok);
        let e = retail_core::decode(&r.value).expect("event");
        let EventBody::Sale(s) = &e.body else {
            panic!("{e:?}")
        };
        assert_eq!(s.unit_price, Some("12345678.99".parse::<Decimal>().expect("d")));
        assert_eq!(e.ts.timestamp_millis(), 1_723_456_800_250);
        let (again, _) = record(&sales(), Op::Insert, &row, &at());
        assert_eq!(again.value, r.value, "same change, same id");
        let (del, ok) = record(&sales(), Op::Delete, &row, &at());
        assert!(ok);
        let d = retail_core::decode(&del.value).expect("void");
        assert!(matches!(&d.body, EventBody::Sale(s) if s.kind == SaleKind::Void && s.qty == -2));
    }

    #[test]
    fn cdc_an_update_of_a_sale_row_is_refused_not_counted_again() {
        let row = [("store_id", Some("7")), ("sku", Some("100")), ("qty", Some("2"))];
        let (r, ok) = record(&sales(), Op::Update, &row, &at());
        assert!(!ok, "an updated sale row must not become another sale");
        let reason = r
            .headers
            .iter()
            .find(|h| h.key == reject::REASON)
            .map(|h| String::from_utf8_lossy(&h.value).into_owned())
            .expect("reason");
        assert!(
            reason.contains("append-only") && reason.contains("void"),
            "{reason}"
        );
        let orders = CdcTable {
            table: "public.orders".into(),
            event_type: "order".into(),
            columns: BTreeMap::new(),
        };
        let row = [("order_id", Some("o-1")), ("status", Some("paid"))];
        assert!(
            record(&orders, Op::Update, &row, &at()).1,
            "other updates are events"
        );
    }

    #[test]
    fn cdc_a_snapshot_taken_again_gives_the_same_ids_without_a_ts_column() {
        let orders = CdcTable {
            table: "public.orders".into(),
            event_type: "order".into(),
            columns: BTreeMap::from([("id".to_owned(), "order_id".to_owned())]),
        };
        let row = [("id", Some("o-1")), ("status", Some("paid"))];
        let first = at();
        let mut later = at();
        later.default_ts = first.default_ts + chrono::Duration::minutes(5);
        let (a, ok_a) = record(&orders, Op::Snapshot, &row, &first);
        let (b, ok_b) = record(&orders, Op::Snapshot, &row, &later);
        assert!(ok_a && ok_b);
        let (ea, eb) = (
            retail_core::decode(&a.value).expect("event"),
            retail_core::decode(&b.value).expect("event"),
        );
        assert_eq!(ea.event_id, eb.event_id, "same row, same id in a second snapshot");
        assert_eq!(eb.ts, later.default_ts, "the event time is still the snapshot's");
        let bad = [("id", Some("o-2")), ("status", Some("nonsense"))];
        let id = |r: &ProducerRecord| {
            r.headers
                .iter()
                .find(|h| h.key == reject::ID)
                .map(|h| h.value.clone())
        };
        let (ra, _) = record(&orders, Op::Snapshot, &bad, &first);
        let (rb, _) = record(&orders, Op::Snapshot, &bad, &later);
        assert_eq!(id(&ra), id(&rb), "a refused snapshot row keeps its reject id too");
    }

    #[test]
    fn a_long_numeric_stays_exact_on_the_record() {
        let orders = CdcTable {
            table: "public.orders".into(),
            event_type: "order".into(),
            columns: BTreeMap::from([("id".to_owned(), "order_id".to_owned())]),
        };
        let row = [
            ("id", Some("o-1")),
            ("status", Some("paid")),
            ("amount", Some("1234567890.12345678")),
        ];
        let (r, ok) = record(&orders, Op::Insert, &row, &at());
        assert!(ok);
        let e = retail_core::decode(&r.value).expect("event");
        let EventBody::Order(o) = &e.body else {
            panic!("{e:?}")
        };
        assert_eq!(
            o.amount,
            Some("1234567890.12345678".parse::<Decimal>().expect("d"))
        );
        assert_eq!(e.source, "cdc");
    }

    #[test]
    fn bad_rows_are_refused_naming_table_column_and_lsn() {
        let row = [("store_id", Some("7")), ("sku", Some("1")), ("qty", Some("two"))];
        let (r, ok) = record(&sales(), Op::Insert, &row, &at());
        assert!(!ok);
        let reason = r
            .headers
            .iter()
            .find(|h| h.key == reject::REASON)
            .map(|h| String::from_utf8_lossy(&h.value).into_owned())
            .expect("reason");
        assert!(
            reason.contains("public.sales") && reason.contains("column qty") && reason.contains("0/16B3748"),
            "{reason}"
        );
        let row = [("store_id", Some("7")), ("sku", Some("1")), ("qty", None)];
        let (r, ok) = record(&sales(), Op::Insert, &row, &at());
        assert!(!ok);
        let reason = String::from_utf8_lossy(&r.headers[1].value).into_owned();
        assert!(reason.contains("qty"), "{reason}");
    }

    #[test]
    fn postgres_timestamps_parse() {
        assert_eq!(timestamp_ms("2024-08-12 10:00:00+00"), Some(1_723_456_800_000));
        assert_eq!(timestamp_ms("2024-08-12 12:00:00+02"), Some(1_723_456_800_000));
        assert_eq!(
            timestamp_ms("2024-08-12 10:00:00.123456"),
            Some(1_723_456_800_123)
        );
        assert_eq!(timestamp_ms("1723456800000"), Some(1_723_456_800_000));
        assert_eq!(timestamp_ms("yesterday"), None);
    }
}
