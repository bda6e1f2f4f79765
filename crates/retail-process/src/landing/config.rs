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
    /// Bytes of records (keys and values) after which a batch takes no more: with large
    /// records a batch ends before `max_batch_records`, so the landing's memory is bounded in
    /// bytes whatever the records' size (a batch is held decoded in up to three places: being
    /// read, queued, being written). The record that reaches it still joins the batch, so one
    /// record larger than this is a batch alone.
    pub max_batch_bytes: usize,
    /// How long one poll of the log waits for records when none are there, in milliseconds.
    pub poll_timeout_ms: u64,
    /// First retry delay after a store failure, in milliseconds; doubles up to `max_backoff_ms`.
    pub min_backoff_ms: u64,
    /// Longest retry delay, in milliseconds.
    pub max_backoff_ms: u64,
    /// Days of event time the dedup ledger remembers, counted back from the newest event day
    /// landed (ADR 0022). Older days are dropped from the ledger whole (a partition or table
    /// per day), so the ledger stays bounded; an event older than that cannot be told from a
    /// re-send any more and becomes a dead letter of kind `too_old` instead of landing. `0`
    /// keeps the ledger forever and rejects nothing as too old.
    pub dedup_horizon_days: u32,
    /// Days of event time `sales_raw` and `events_raw` keep, counted back from the newest event
    /// day landed like the dedup horizon (ADR 0028). Older days are dropped whole (PostgreSQL:
    /// a day partition at a time; SQLite: bounded deletes between batches). `0` keeps them
    /// forever. With the inventory pipeline on, it must cover the dedup horizon plus
    /// `processing.stock.velocity_days`, which a new series reads back from `sales_raw`.
    pub raw_retention_days: u32,
    /// Days of event time `late_events` keeps, by each late event's own time, counted back from
    /// the newest event day landed (ADR 0028). `0` keeps them forever.
    pub late_events_retention_days: u32,
    /// Days `dead_letters` keeps, by `rejected_at` against the wall clock (a dead letter has no
    /// event time to trust; ADR 0028). `0` keeps them forever. A dropped dead letter can no
    /// longer be read or resubmitted through the API.
    pub dead_letters_retention_days: u32,
}

impl LandingConfig {
    /// Default `max_batch_bytes`: 16 MiB, about three times what 20,000 typical events of a
    /// few hundred bytes take, so it only cuts batches of unusually large records.
    pub const DEFAULT_MAX_BATCH_BYTES: usize = 16 << 20;

    const fn defaults() -> Self {
        Self {
            group: String::new(),
            topics: Vec::new(),
            max_batch_records: 20_000,
            max_batch_bytes: Self::DEFAULT_MAX_BATCH_BYTES,
            poll_timeout_ms: 100,
            min_backoff_ms: 100,
            max_backoff_ms: 5_000,
            dedup_horizon_days: 0,
            raw_retention_days: 0,
            late_events_retention_days: 0,
            dead_letters_retention_days: 0,
        }
    }
}

impl LandingConfig {
    /// Refuses what would only fail once the landing starts, naming the key under
    /// `[landing]`: a group the log would refuse (its name is also a file name in the
    /// embedded log, and `<group>.catalog` must be one too), and topics that are not data
    /// topics, repeated, or leave nothing to land besides the catalog (which its own group
    /// lands).
    pub fn validate(&self) -> Result<(), String> {
        use retail_core::event::topics;
        for group in [self.group.clone(), format!("{}.catalog", self.group)] {
            retail_log::embedded::validate_name("consumer group", &group)
                .map_err(|e| format!("landing.group: {e}"))?;
        }
        for (i, topic) in self.topics.iter().enumerate() {
            if !topics::ALL.contains(&topic.as_str()) {
                return Err(format!(
                    "landing.topics[{i}]: {topic:?} is not a data topic (the topics are {})",
                    topics::ALL.join(", ")
                ));
            }
            if self.topics[..i].contains(topic) {
                return Err(format!("landing.topics[{i}]: {topic:?} is listed twice"));
            }
        }
        if !self.topics.iter().any(|t| t != topics::CATALOG) {
            return Err(format!(
                "landing.topics: names no data topic to land (the catalog is landed by its own group, \
                 \"{}.catalog\"); list some of {}",
                self.group,
                topics::ALL.join(", ")
            ));
        }
        if self.max_batch_records == 0 {
            return Err("landing.max_batch_records: must be at least 1".to_owned());
        }
        if self.max_batch_bytes == 0 {
            return Err("landing.max_batch_bytes: must be at least 1".to_owned());
        }
        Ok(())
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
