//! Where the registry's state is kept durably: three kinds of rows (schemas, subject versions,
//! config) behind the [`RegistryStore`] trait, and [`MemoryStore`] for tests.
//!
//! The store holds facts, not decisions: ids and version numbers are chosen by the state
//! ([`crate::registry`]) from the rows it loaded, so a registry restarted on the same rows
//! hands out the same ids. A store only has to keep what it is given, all of one `save` or
//! none of it.

use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Compatibility;

/// A schema under its global id. `schema_type` is Confluent's (`AVRO`); kept so that a store's
/// rows say what they hold should other types come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaRow {
    pub id: u32,
    pub schema_type: String,
    /// The schema as first registered, byte for byte: what clients get back.
    pub text: String,
}

/// Version `version` of `subject` is schema `schema_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRow {
    pub subject: String,
    pub version: u32,
    pub schema_id: u32,
    /// Soft-deleted: hidden from reads and checks, its number not given again.
    #[serde(default)]
    pub deleted: bool,
}

/// Deleting version `version` of `subject`: soft (the row's `deleted` set) or `permanent`
/// (the row removed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRow {
    pub subject: String,
    pub version: u32,
    pub permanent: bool,
}

/// The compatibility mode of a subject, or the global one when `subject` is `None`. One row
/// per subject at most: a new row replaces the old.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRow {
    pub subject: Option<String>,
    pub compatibility: Compatibility,
}

/// Everything a store holds, as loaded at start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rows {
    pub schemas: Vec<SchemaRow>,
    pub versions: Vec<VersionRow>,
    pub configs: Vec<ConfigRow>,
}

impl Rows {
    /// Writes `change` into the rows, as a store would into its tables: what [`MemoryStore`]
    /// does, and the reference for other stores.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::NewSchema(row) => self.schemas.push(row.clone()),
            Change::NewVersion(row) => self.versions.push(row.clone()),
            Change::DeleteVersion(row) => {
                let same = |v: &VersionRow| v.subject == row.subject && v.version == row.version;
                if row.permanent {
                    self.versions.retain(|v| !same(v));
                } else {
                    for v in self.versions.iter_mut().filter(|v| same(v)) {
                        v.deleted = true;
                    }
                }
            }
            Change::Config(row) => {
                self.configs.retain(|c| c.subject != row.subject);
                self.configs.push(row.clone());
            }
            Change::ClearConfig { subject } => self.configs.retain(|c| &c.subject != subject),
        }
    }
}

/// One row to write. A registration may be two (a new schema and its first version under the
/// subject), a subject's deletion one per version; each set is saved together, in one
/// transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    NewSchema(SchemaRow),
    NewVersion(VersionRow),
    DeleteVersion(DeleteRow),
    /// Insert or replace the config row of its subject.
    Config(ConfigRow),
    /// Remove the config row of `subject` (the global one when `None`).
    ClearConfig {
        subject: Option<String>,
    },
}

/// Why the store failed. The registry answers 50001 and changes nothing in memory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema store failed: {message}")]
pub struct StoreError {
    pub message: String,
    /// Whether the same save may succeed later (a lost connection, not a broken row).
    pub retryable: bool,
}

/// Where the registry's rows live. Implementations: [`MemoryStore`] here; a SQL table set in
/// the stores' crate.
#[async_trait]
pub trait RegistryStore: Send + Sync + std::fmt::Debug {
    /// Every row, in any order.
    async fn load(&self) -> Result<Rows, StoreError>;
    /// Writes all of `changes` or none of them.
    async fn save(&self, changes: &[Change]) -> Result<(), StoreError>;
}

/// Rows in memory. Shared through an `Arc`, it outlives a [`crate::SchemaRegistry`], which is
/// how tests restart a registry on the same rows; `fail_saves` lets them break it.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    rows: Rows,
    fail_saves: bool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later `save` fail (or succeed again), as a store that lost its disk would.
    pub fn fail_saves(&self, fail: bool) {
        self.lock().fail_saves = fail;
    }

    /// A copy of the rows held now.
    pub fn rows(&self) -> Rows {
        self.lock().rows.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The rows are whole between statements, so a panic elsewhere leaves them usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl RegistryStore for MemoryStore {
    async fn load(&self) -> Result<Rows, StoreError> {
        Ok(self.rows())
    }

    async fn save(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.fail_saves {
            return Err(StoreError {
                message: "the memory store was told to fail".to_owned(),
                retryable: true,
            });
        }
        for change in changes {
            inner.rows.apply(change);
        }
        Ok(())
    }
}
