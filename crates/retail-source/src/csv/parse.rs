//! One CSV file as events: the file-level checks that send a file to `failed/` (empty, not
//! UTF-8, no usable header, truncated), then each row typed by its column and decoded with the
//! one event decoder, or refused with its line and the reason.

use retail_core::Event;
use serde_json::{Map, Value};

use super::config::{ColumnType, CsvConfig};
use crate::record::derived_id;

/// A row of a file.
#[derive(Debug)]
pub enum Row {
    /// A valid event.
    Event {
        /// 1-based line of the row in the file.
        line: u64,
        /// The event.
        event: Event,
    },
    /// A refused row.
    Bad {
        /// 1-based line of the row in the file.
        line: u64,
        /// Why, naming the column or field.
        reason: String,
        /// The row as it was (fields joined by the delimiter).
        raw: Vec<u8>,
    },
}

impl Row {
    /// The row's line.
    pub fn line(&self) -> u64 {
        match self {
            Self::Event { line, .. } | Self::Bad { line, .. } => *line,
        }
    }
}

/// Reads a whole file into rows, or says why the file cannot be read at all. `seed` makes
/// derived event ids unique to this file's content (its checksum), so re-reading the same
/// file gives the same ids.
pub fn parse(config: &CsvConfig, bytes: &[u8], seed: &str) -> Result<Vec<Row>, String> {
    if bytes.trim_ascii().is_empty() {
        return Err("the file is empty".to_owned());
    }
    if let Err(e) = std::str::from_utf8(bytes) {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(format!(
            "not UTF-8 (wrong encoding? export as UTF-8): invalid byte at line {line}, byte offset {at}"
        ));
    }
    let delimiter = config.delimiter as u8;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(true)
        .from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format!("the header row cannot be read as CSV: {e}"))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_owned())
        .collect();
    let fields: Vec<String> = header
        .iter()
        .map(|h| config.columns.get(h).cloned().unwrap_or_else(|| h.clone()))
        .collect();
    let required: Vec<String> = if config.required.is_empty() && config.event_type == "sale" {
        ["store_id", "sku", "qty", "ts"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    } else {
        config.required.clone()
    };
    let missing: Vec<&String> = required.iter().filter(|r| !fields.contains(r)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing column{} {} (the header row is: {}); map other names with `columns`",
            if missing.len() > 1 { "s" } else { "" },
            missing.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", "),
            header.join(&(config.delimiter.to_string()))
        ));
    }
    if let Some(reason) = truncation(bytes, delimiter, header.len()) {
        return Err(reason);
    }
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                rows.push(Row::Bad {
                    line,
                    reason: format!("line {line} is not valid CSV: {e}"),
                    raw: Vec::new(),
                });
                continue;
            }
        }
        let line = record.position().map_or(0, csv::Position::line);
        let raw = record.iter().collect::<Vec<_>>().join(&delimiter);
        if record.len() != header.len() {
            rows.push(Row::Bad {
                line,
                reason: format!(
                    "line {line} has {} fields, the header has {}",
                    record.len(),
                    header.len()
                ),
                raw,
            });
            continue;
        }
        rows.push(match row_event(config, &header, &fields, &record, line, seed) {
            Ok(event) => Row::Event { line, event },
            Err(reason) => Row::Bad { line, reason, raw },
        });
    }
    Ok(rows)
}

/// A file whose last line has no newline and fewer fields than the header was cut off while
/// being written (or copied): the whole file is suspect, not only that row.
fn truncation(bytes: &[u8], delimiter: u8, columns: usize) -> Option<String> {
    if bytes.ends_with(b"\n") {
        return None;
    }
    let start = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if start == 0 {
        return None; // a header without a newline and no rows
    }
    let mut last = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(&bytes[start..]);
    let fields = last
        .byte_records()
        .next()
        .and_then(Result::ok)
        .map_or(0, |r| r.len());
    let line = bytes[..start].iter().filter(|&&b| b == b'\n').count() + 1;
    (fields < columns)
        .then(|| format!("truncated: the last line ({line}) has {fields} of {columns} fields and no newline"))
}

fn row_event(
    config: &CsvConfig,
    header: &[String],
    fields: &[String],
    record: &csv::ByteRecord,
    line: u64,
    seed: &str,
) -> Result<Event, String> {
    let mut object = Map::new();
    object.insert("type".to_owned(), Value::String(config.event_type.clone()));
    for ((column, field), cell) in header.iter().zip(fields).zip(record.iter()) {
        // UTF-8 was checked for the whole file.
        let cell = std::str::from_utf8(cell).unwrap_or_default().trim();
        if cell.is_empty() {
            continue;
        }
        let value = typed(config.type_of(field), cell).map_err(|expected| {
            format!("line {line}, column {column:?} ({field}): expected {expected}, got {cell:?}")
        })?;
        object.insert(field.clone(), value);
    }
    let bytes = serde_json::to_vec(&object).map_err(|e| format!("line {line}: {e}"))?;
    retail_core::decode_with(&bytes, &config.name, |ts| {
        derived_id(ts, seed.as_bytes(), usize::try_from(line).unwrap_or(usize::MAX))
    })
    .map_err(|e| format!("line {line}: {e}"))
}

/// A cell as the JSON its field's type calls for; `Err` names what was expected.
fn typed(kind: ColumnType, cell: &str) -> Result<Value, &'static str> {
    match kind {
        ColumnType::Int => cell.parse::<i64>().map(Value::from).map_err(|_| "a whole number"),
        ColumnType::Decimal => cell
            .parse::<rust_decimal::Decimal>()
            .map(|_| Value::String(cell.to_owned()))
            .map_err(|_| "a decimal number"),
        ColumnType::Timestamp if cell.bytes().all(|b| b.is_ascii_digit()) => cell
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| "epoch milliseconds or RFC 3339"),
        ColumnType::Timestamp => Ok(Value::String(cell.to_owned())),
        ColumnType::Bool => match cell.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err("true or false"),
        },
        ColumnType::String => Ok(Value::String(cell.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "event_id,store_id,sku,qty,unit_price,seller_id,ts\n";

    fn config() -> CsvConfig {
        CsvConfig::at("inbox", "/tmp".into())
    }

    #[test]
    fn good_rows_become_events_and_bad_rows_name_their_line_and_column() {
        let text = format!(
            "{HEADER}0190f3a4-0000-7000-8000-000000000001,1,100,2,3.50,7,1723456789000\n\
             ,2,101,two,1.00,7,1723456789000\n\
             ,3,102,1,1.00,7\n\
             ,4,103,1,1.00,7,2024-08-12T10:00:00Z\n"
        );
        let rows = parse(&config(), text.as_bytes(), "seed").expect("readable");
        assert_eq!(rows.iter().map(Row::line).collect::<Vec<_>>(), vec![2, 3, 4, 5]);
        assert!(
            matches!(&rows[0], Row::Event { event, .. } if event.event_id.to_string() == "0190f3a4-0000-7000-8000-000000000001")
        );
        let Row::Bad { reason, raw, .. } = &rows[1] else {
            panic!("{rows:?}")
        };
        assert!(
            reason.contains("line 3") && reason.contains("\"qty\"") && reason.contains("two"),
            "{reason}"
        );
        assert_eq!(raw, b",2,101,two,1.00,7,1723456789000");
        let Row::Bad { reason, .. } = &rows[2] else {
            panic!("{rows:?}")
        };
        assert!(reason.contains("6 fields, the header has 7"), "{reason}");
        assert!(matches!(&rows[3], Row::Event { .. }), "{:?}", rows[3]);
        // The same file read again gives the same derived ids.
        let again = parse(&config(), text.as_bytes(), "seed").expect("readable");
        let id = |r: &Row| match r {
            Row::Event { event, .. } => Some(event.event_id),
            Row::Bad { .. } => None,
        };
        assert_eq!(id(&rows[3]), id(&again[3]));
    }

    #[test]
    fn files_that_cannot_be_read_say_why() {
        let c = config();
        assert!(parse(&c, b"", "s").expect_err("empty").contains("empty"));
        let latin1 = b"store_id,sku,qty,ts\n1,2,3,K\xf6ln\n";
        assert!(parse(&c, latin1, "s").expect_err("latin-1").contains("not UTF-8"));
        let err = parse(&c, b"store,sku,qty,ts\n1,2,3,4\n", "s").expect_err("missing");
        assert!(err.contains("missing column store_id"), "{err}");
        let cut = format!("{HEADER},1,100,2,3.50,7,1723456789000\n,1,100");
        assert!(parse(&c, cut.as_bytes(), "s")
            .expect_err("truncated")
            .contains("truncated"));
        let json = br#"{"store_id":1,"sku":2,"qty":1,"ts":1}"#;
        assert!(parse(&c, json, "s").is_err(), "JSON is not CSV with a header");
    }

    #[test]
    fn mapped_headers_and_configured_types_are_used() {
        let mut c = config();
        c.columns.insert("Till".into(), "store_id".into());
        c.delimiter = ';';
        let rows = parse(&c, b"Till;sku;qty;ts\n9;100;1;1723456789000\n", "s").expect("readable");
        let Row::Event { event, .. } = &rows[0] else {
            panic!("{rows:?}")
        };
        assert_eq!(event.partition_key(), "9");
    }
}
