//! Settings of one CSV drop folder: where files arrive, when a file counts as complete, how
//! its columns map to event fields and what type each field has.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::source::Inbox;
use crate::registry::{BuildSource, BuiltSource};
use crate::{Error, Result, SourceContext};

/// When a file is complete and may be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// Its size and modification time did not change for `stable_ms`.
    Stable,
    /// A marker file `<name>.done` exists beside it (the exporter writes it last).
    Marker,
}

/// A field's type in a CSV cell, which decides its JSON form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// A whole number.
    Int,
    /// A decimal number, kept as its text so money is never rounded through a float.
    Decimal,
    /// Text.
    String,
    /// Epoch milliseconds, or RFC 3339 text.
    Timestamp,
    /// `true`/`false`.
    Bool,
}

/// A CSV drop folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsvConfig {
    /// Source name: metrics label, `/health` component, the events' default `source`.
    pub name: String,
    /// The folder watched; `processed/` and `failed/` are made inside it. Default:
    /// `<data_dir>/inbox`.
    pub dir: Option<PathBuf>,
    /// `stable` (size and mtime unchanged for `stable_ms`) or `marker` (a `<file>.done`).
    pub ready: Readiness,
    /// How long a file must stay unchanged to count as complete, with `ready = "stable"`.
    pub stable_ms: u64,
    /// How often the folder is listed, ms.
    pub poll_ms: u64,
    /// Rows per append (and per ledger entry): a crash repeats at most this many.
    pub batch_rows: usize,
    /// The field delimiter, one ASCII character.
    pub delimiter: char,
    /// The event type every row becomes, unless the file has a `type` column.
    pub event_type: String,
    /// Header name -> event field, for headers that are not already field names
    /// (`{ "Till" = "store_id" }`).
    pub columns: BTreeMap<String, String>,
    /// Event field -> type, beside the built-in types of the sale fields (`store_id`, `sku`,
    /// `qty`, `seller_id` int; `unit_price` decimal; `ts` timestamp; others text).
    pub types: BTreeMap<String, ColumnType>,
    /// Fields every file must have (after `columns`); a file without one goes to `failed/`.
    pub required: Vec<String>,
    /// Largest file read, bytes; a larger one goes to `failed/`.
    pub max_file_bytes: u64,
}

impl Default for CsvConfig {
    fn default() -> Self {
        Self {
            name: "csv".to_owned(),
            dir: None,
            ready: Readiness::Stable,
            stable_ms: 1000,
            poll_ms: 250,
            batch_rows: 5000,
            delimiter: ',',
            event_type: "sale".to_owned(),
            columns: BTreeMap::new(),
            types: BTreeMap::new(),
            required: Vec::new(),
            max_file_bytes: 256 * 1024 * 1024,
        }
    }
}

impl CsvConfig {
    /// A folder source called `name` reading `dir`, with the defaults.
    pub fn at(name: &str, dir: PathBuf) -> Self {
        Self {
            name: name.to_owned(),
            dir: Some(dir),
            ..Self::default()
        }
    }

    /// The type of `field`: configured, else built in for the sale fields, else text.
    pub fn type_of(&self, field: &str) -> ColumnType {
        if let Some(t) = self.types.get(field) {
            return *t;
        }
        match field {
            "store_id" | "sku" | "qty" | "seller_id" | "schema_version" => ColumnType::Int,
            "unit_price" | "amount" | "price" => ColumnType::Decimal,
            "ts" => ColumnType::Timestamp,
            _ => ColumnType::String,
        }
    }
}

#[async_trait::async_trait]
impl BuildSource for CsvConfig {
    const KIND: &'static str = "csv";

    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| Err(Error::Config(format!("csv.{key}: {why}")));
        if self.name.trim().is_empty() {
            return bad("name", "must not be empty".to_owned());
        }
        if !self.delimiter.is_ascii() || self.delimiter == '\n' || self.delimiter == '"' {
            return bad(
                "delimiter",
                format!(
                    "must be one ASCII character other than newline and quote, got {:?}",
                    self.delimiter
                ),
            );
        }
        if self.batch_rows == 0 || self.batch_rows > 100_000 {
            return bad(
                "batch_rows",
                format!("must be 1..=100000, got {}", self.batch_rows),
            );
        }
        if self.poll_ms == 0 {
            return bad("poll_ms", "must be at least 1".to_owned());
        }
        if self.event_type.trim().is_empty() {
            return bad("event_type", "must not be empty".to_owned());
        }
        Ok(())
    }

    async fn build(&self, cx: &SourceContext) -> Result<BuiltSource> {
        let dir = self.dir.clone().unwrap_or_else(|| cx.data_dir.join("inbox"));
        for sub in [dir.clone(), dir.join("processed"), dir.join("failed")] {
            std::fs::create_dir_all(&sub).map_err(|e| Error::io(format!("creating {}", sub.display()), e))?;
        }
        let state = cx.state_dir(&self.name)?;
        let runtime = cx.runtime(&self.name, Self::KIND);
        runtime.set_description(format!(
            "drop CSV files into {} (header row naming the fields; taken when {})",
            dir.display(),
            match self.ready {
                Readiness::Stable => format!("unchanged for {} ms", self.stable_ms),
                Readiness::Marker => "a <file>.done marker appears".to_owned(),
            }
        ));
        let inbox = Inbox::open(self.clone(), dir, &state, runtime.clone(), cx.partitions)?;
        let handle = runtime.handle();
        let task = Box::pin(inbox.run());
        Ok(BuiltSource { handle, task })
    }
}
