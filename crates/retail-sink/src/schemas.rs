//! The schema registry's rows in the store (issue 16): [`RegistryTables`] is retail-schema's
//! [`RegistryStore`] over any [`Store`], so a registry restarted on the same database finds the
//! same ids, versions and modes. Come here to wire the registry to the store, or for how rows
//! are encoded in the tables; the SQL is in each backend's `schemas` module and in the
//! `schema_registry` migrations.
//!
//! The registry decides, the store keeps: ids and version numbers are chosen by
//! `retail_schema::State` from the rows it loaded, and a save writes all of its changes in one
//! transaction or none of them.

use std::sync::Arc;

use async_trait::async_trait;
use retail_schema::{Compatibility, ConfigRow, RegistryStore, Rows, SchemaRow, StoreError, VersionRow};

use crate::{Error, Result, Store};

/// retail-schema's [`RegistryStore`] on a store's `schema_registry_*` tables:
/// `SchemaRegistry::open(Arc::new(RegistryTables(store.clone())), builtins)`.
#[derive(Debug, Clone)]
pub struct RegistryTables(pub Arc<dyn Store>);

#[async_trait]
impl RegistryStore for RegistryTables {
    async fn load(&self) -> Result<Rows, StoreError> {
        self.0.load_schema_registry().await.map_err(store_error)
    }

    async fn save(&self, changes: &[retail_schema::Change]) -> Result<(), StoreError> {
        self.0.save_schema_registry(changes).await.map_err(store_error)
    }
}

/// The registry answers a store failure with 50001 and logs this message (it may name hosts,
/// files and tables; the client is not shown it). Retryable as the store says: a lost
/// connection or a busy file, not a refused row.
fn store_error(e: Error) -> StoreError {
    StoreError {
        message: e.to_string(),
        retryable: e.is_retryable(),
    }
}

/// The `subject` of the global mode's row in `schema_registry_config`: a subject name is never
/// empty, and a primary key can not be NULL.
const GLOBAL: &str = "";

/// The config row's key of `subject`, [`GLOBAL`] for the global mode. An empty subject name is
/// refused: it would be taken for (and overwrite) the global mode.
pub(crate) fn config_key(subject: Option<&str>) -> Result<&str> {
    match subject {
        None => Ok(GLOBAL),
        Some(GLOBAL) => Err(Error::Refused {
            message: "schema registry: a subject's name can not be empty (the empty subject is the \
                      global mode's row)"
                .to_owned(),
        }),
        Some(s) => Ok(s),
    }
}

/// An id or version number as the tables' `integer`: the registry keeps them within
/// 1..=2147483647 (Confluent's range), and a value past it is refused, not wrapped.
pub(crate) fn to_sql(what: &str, n: u32) -> Result<i32> {
    i32::try_from(n).map_err(|_| Error::Refused {
        message: format!("schema registry: {what} {n} is past the store's integer range (2147483647)"),
    })
}

/// Rows read back from the tables. Each `Err` is a row the store holds but the registry can not
/// take (a negative id, an unknown mode): a broken table, said in words the backend wraps into
/// its own non-retryable error.
pub(crate) fn schema_row(id: i64, schema_type: String, text: String) -> Result<SchemaRow, String> {
    Ok(SchemaRow {
        id: from_sql("schema_registry_schemas.id", id)?,
        schema_type,
        text,
    })
}

pub(crate) fn version_row(
    subject: String,
    version: i64,
    schema_id: i64,
    deleted: bool,
) -> Result<VersionRow, String> {
    Ok(VersionRow {
        version: from_sql("schema_registry_versions.version", version)?,
        schema_id: from_sql("schema_registry_versions.schema_id", schema_id)?,
        subject,
        deleted,
    })
}

pub(crate) fn config_row(subject: String, compatibility: &str) -> Result<ConfigRow, String> {
    let compatibility: Compatibility = compatibility
        .parse()
        .map_err(|e| format!("schema_registry_config row of subject {subject:?}: {e}"))?;
    Ok(ConfigRow {
        subject: (subject != GLOBAL).then_some(subject),
        compatibility,
    })
}

fn from_sql(column: &str, n: i64) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("{column} holds {n}, not a number from 0 to 4294967295"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_global_mode_is_the_empty_subject_and_no_subject_may_take_it() {
        assert_eq!(config_key(None).expect("global"), "");
        assert_eq!(config_key(Some("orders-value")).expect("subject"), "orders-value");
        assert!(config_key(Some("")).expect_err("empty subject").is_refused());
        let global = config_row(String::new(), "full").expect("parses");
        assert_eq!(global.subject, None);
        assert_eq!(global.compatibility, Compatibility::Full);
        assert!(config_row("s".into(), "SIDEWAYS").is_err());
    }

    #[test]
    fn numbers_out_of_range_are_refused_not_wrapped() {
        assert_eq!(to_sql("schema id", 7).expect("fits"), 7);
        assert!(to_sql("schema id", 1 << 31).expect_err("too big").is_refused());
        assert!(schema_row(-1, "AVRO".into(), "{}".into()).is_err());
    }

    #[test]
    fn the_registry_hears_whether_a_store_failure_may_pass() {
        let lost = store_error(Error::Postgres {
            message: "connection reset".into(),
            retryable: true,
        });
        assert!(lost.retryable && lost.message.contains("connection reset"));
        let refused = store_error(Error::Refused {
            message: "foreign key".into(),
        });
        assert!(!refused.retryable);
    }
}
