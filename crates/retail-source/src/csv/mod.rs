//! The CSV drop folder for ERP and batch exports: complete files taken from a folder, each
//! ingested exactly once across restarts and crashes, bad rows dead-lettered with file and
//! line, unreadable files moved to `failed/` with the reason beside them.
//!
//! - `config.rs`: [`CsvConfig`], which builds the source.
//! - `source.rs`: the [`Inbox`] watcher task.
//! - `parse.rs`: a file as rows of events, or why it cannot be read.
//! - `ledger.rs`: per-file progress keyed by content checksum.

mod config;
mod ledger;
mod parse;
mod source;

pub use config::{ColumnType, CsvConfig, Readiness};
pub use source::{Inbox, CSV_FILE};
