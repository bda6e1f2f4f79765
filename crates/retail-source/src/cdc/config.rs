//! Settings of one PostgreSQL change-data-capture source: the database, the publication and
//! slot (made if missing), and how each captured table maps onto an event type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::source::Cdc;
use crate::registry::{BuildSource, BuiltSource};
use crate::{Error, Result, SourceContext};

/// How one table's rows become events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdcTable {
    /// The table, `schema.name` (`public.sales`).
    pub table: String,
    /// The event type its rows become (`sale`, `order`, `inventory`, `payment`, `store`,
    /// `product`, `seller`, `device_status`). A delete becomes `void` for sales, `on_hand = 0`
    /// for inventory and `status = "cancelled"` for orders; a delete of another type is
    /// dead-lettered (ADR 0012).
    pub event_type: String,
    /// Column -> event field, for columns whose name is not the field's; other columns keep
    /// their name (and are ignored by the decoder if no field has it). `"-"` drops a column.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
}

impl CdcTable {
    /// `(schema, name)`; a name without a schema is in `public`.
    pub fn parts(&self) -> (&str, &str) {
        self.table.split_once('.').unwrap_or(("public", &self.table))
    }

    /// `schema.name`.
    pub fn qualified(&self) -> String {
        let (s, n) = self.parts();
        format!("{s}.{n}")
    }

    /// The field a column feeds, `None` for a dropped column.
    pub fn field<'a>(&'a self, column: &'a str) -> Option<&'a str> {
        match self.columns.get(column).map(String::as_str) {
            Some("-") => None,
            Some(f) => Some(f),
            None => Some(column),
        }
    }
}

/// A PostgreSQL change-data-capture source (`type = "postgres_cdc"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CdcConfig {
    /// Source name: metrics label, `/health` component, the events' `source`.
    pub name: String,
    /// The database, as a `postgres://` URL; the user needs the REPLICATION attribute (or to
    /// be a superuser) and the server `wal_level = logical`.
    pub url: String,
    /// The publication read; made `FOR TABLE` the mapped tables if missing. Default:
    /// `retail_<name>`.
    pub publication: Option<String>,
    /// The logical replication slot (plugin `pgoutput`), made if missing. Default:
    /// `retail_<name>`.
    pub slot: Option<String>,
    /// Whether a new slot starts with a snapshot of the mapped tables' current rows.
    pub snapshot: bool,
    /// How often the slot is read when it had nothing, ms.
    pub poll_ms: u64,
    /// Changes read per call (whole transactions; a larger one is read whole).
    pub max_changes: u32,
    /// The captured tables and what they become.
    pub tables: Vec<CdcTable>,
}

impl Default for CdcConfig {
    fn default() -> Self {
        Self {
            name: "cdc".to_owned(),
            url: "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
            publication: None,
            slot: None,
            snapshot: true,
            poll_ms: 200,
            max_changes: 5000,
            tables: Vec::new(),
        }
    }
}

/// `retail_<name>` with every character outside `[a-z0-9_]` as `_`, at most 63 bytes.
fn derived_name(name: &str) -> String {
    let mut s: String = format!("retail_{name}")
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(63);
    s
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl CdcConfig {
    /// The slot's name.
    pub fn slot_name(&self) -> String {
        self.slot.clone().unwrap_or_else(|| derived_name(&self.name))
    }

    /// The publication's name.
    pub fn publication_name(&self) -> String {
        self.publication
            .clone()
            .unwrap_or_else(|| derived_name(&self.name))
    }

    /// The mapping of `schema.table`, if captured.
    pub fn table(&self, qualified: &str) -> Option<&CdcTable> {
        self.tables.iter().find(|t| t.qualified() == qualified)
    }
}

#[async_trait::async_trait]
impl BuildSource for CdcConfig {
    const KIND: &'static str = "postgres_cdc";

    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| Err(Error::Config(format!("postgres_cdc.{key}: {why}")));
        if self.name.trim().is_empty() {
            return bad("name", "must not be empty".to_owned());
        }
        if !self.url.starts_with("postgres://") && !self.url.starts_with("postgresql://") {
            return bad("url", format!("must be a postgres:// URL, got {:?}", self.url));
        }
        if let Err(e) = self.url.parse::<tokio_postgres::Config>() {
            return bad("url", format!("cannot be read: {e}"));
        }
        for (key, v) in [
            ("slot", self.slot_name()),
            ("publication", self.publication_name()),
        ] {
            if !valid_name(&v) {
                return bad(
                    key,
                    format!("must be 1-63 characters of a-z, 0-9 and _, got {v:?}"),
                );
            }
        }
        if self.poll_ms == 0 {
            return bad("poll_ms", "must be at least 1".to_owned());
        }
        if self.max_changes == 0 || self.max_changes > 1_000_000 {
            return bad(
                "max_changes",
                format!("must be 1..=1000000, got {}", self.max_changes),
            );
        }
        if self.tables.is_empty() {
            return bad("tables", "list at least one table to capture".to_owned());
        }
        for (i, t) in self.tables.iter().enumerate() {
            let (schema, name) = t.parts();
            if schema.is_empty() || name.is_empty() || name.contains('.') {
                return bad(
                    &format!("tables[{i}].table"),
                    format!("must be schema.name, got {:?}", t.table),
                );
            }
            if !retail_core::event::TYPE_NAMES.contains(&t.event_type.as_str()) {
                return bad(
                    &format!("tables[{i}].event_type"),
                    format!(
                        "must be one of {}, got {:?}",
                        retail_core::event::TYPE_NAMES.join(", "),
                        t.event_type
                    ),
                );
            }
            if self.tables[..i].iter().any(|o| o.qualified() == t.qualified()) {
                return bad(
                    &format!("tables[{i}].table"),
                    format!("{} is mapped twice", t.qualified()),
                );
            }
        }
        Ok(())
    }

    async fn build(&self, cx: &SourceContext) -> Result<BuiltSource> {
        self.validate()?;
        let state = cx.state_dir(&self.name)?;
        let runtime = cx.runtime(&self.name, Self::KIND);
        let url: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|e| Error::Config(format!("postgres_cdc.url: {e}")))?;
        let host = url
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_default();
        runtime.set_description(format!(
            "changes of {} from PostgreSQL {host}/{} (publication {}, slot {})",
            self.tables
                .iter()
                .map(CdcTable::qualified)
                .collect::<Vec<_>>()
                .join(", "),
            url.get_dbname().unwrap_or("postgres"),
            self.publication_name(),
            self.slot_name(),
        ));
        let cdc = Cdc::new(self.clone(), runtime.clone(), state.join("cdc.json"));
        Ok(BuiltSource {
            handle: runtime.handle(),
            task: Box::pin(cdc.run()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceConfig;

    /// The commented `postgres_cdc` block of `config/retail.example.toml`, uncommented.
    fn example_block() -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/retail.example.toml");
        let text = std::fs::read_to_string(path).expect("example config");
        let start = text.find("# >>> postgres_cdc").expect("block start marker");
        let end = text.find("# <<< postgres_cdc").expect("block end marker");
        text[start..end]
            .lines()
            .skip(1)
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| !l.starts_with(' ') && !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[derive(Deserialize)]
    struct File {
        sources: Vec<SourceConfig>,
    }

    #[test]
    fn the_example_block_parses_and_validates() {
        let block = example_block();
        let file: File = toml::from_str(&block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        let [SourceConfig::PostgresCdc(c)] = file.sources.as_slice() else {
            panic!("one postgres_cdc block expected: {:?}", file.sources)
        };
        c.validate().expect("valid");
        assert_eq!(c.tables.len(), 3);
        assert_eq!(c.slot_name(), "retail_erp_cdc");
        assert_eq!(
            c.table("public.sales").and_then(|t| t.field("sold_at")),
            Some("ts")
        );
    }

    #[test]
    fn bad_settings_name_their_key() {
        let mut c = CdcConfig {
            tables: vec![CdcTable {
                table: "public.sales".into(),
                event_type: "sale".into(),
                columns: BTreeMap::new(),
            }],
            ..CdcConfig::default()
        };
        c.validate().expect("valid");
        c.slot = Some("Bad-Slot".into());
        assert!(c.validate().expect_err("slot").to_string().contains("slot"));
        c.slot = None;
        c.tables[0].event_type = "sales".into();
        assert!(c.validate().expect_err("type").to_string().contains("event_type"));
        c.tables[0].event_type = "sale".into();
        c.url = "mysql://x".into();
        assert!(c.validate().expect_err("url").to_string().contains("url"));
        assert_eq!(derived_name("ERP-cdc.1"), "retail_erp_cdc_1");
    }
}
