//! `[landing]` configuration.

use serde::{Deserialize, Serialize};

/// How the landing reads the log and batches into the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LandingConfig {
    /// Consumer group whose offsets of record are kept in the store.
    pub group: String,
    /// Topics to land.
    pub topics: Vec<String>,
    /// Most records in one store transaction. Larger batches amortise the commit; smaller
    /// ones lower latency. Under load batches fill up; when quiet, whatever arrived is written
    /// at once.
    pub max_batch_records: usize,
    /// How long one poll of the log waits for records when none are there, in milliseconds.
    pub poll_timeout_ms: u64,
    /// First retry delay after a store failure, in milliseconds; doubles up to `max_backoff_ms`.
    pub min_backoff_ms: u64,
    /// Longest retry delay, in milliseconds.
    pub max_backoff_ms: u64,
}

impl LandingConfig {
    const fn defaults() -> Self {
        Self {
            group: String::new(),
            topics: Vec::new(),
            max_batch_records: 20_000,
            poll_timeout_ms: 100,
            min_backoff_ms: 100,
            max_backoff_ms: 5_000,
        }
    }
}

impl Default for LandingConfig {
    fn default() -> Self {
        Self {
            group: "landing".to_owned(),
            // The catalog topic is landed by its own group (`<group>.catalog`), so every
            // instance's join sees the whole catalog (ADR 0004).
            topics: retail_core::event::topics::ALL
                .iter()
                .filter(|t| **t != retail_core::event::topics::CATALOG)
                .map(|t| (*t).to_owned())
                .collect(),
            ..Self::defaults()
        }
    }
}
