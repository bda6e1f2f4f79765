//! What the landing hands to a store, and what the store reports back.

use chrono::{DateTime, Utc};
use retail_core::{DeadLetter, Origin, Sale, TopicPartition};
use uuid::Uuid;

use crate::derived::SharedDerived;

/// A sale, return or void ready for `sales_raw`.
#[derive(Debug, Clone, PartialEq)]
pub struct LandedSale {
    /// Event id (dedup key).
    pub event_id: Uuid,
    /// Event time.
    pub ts: DateTime<Utc>,
    /// Producing system.
    pub source: String,
    /// The sale line.
    pub sale: Sale,
}

/// Any other valid event, kept as its JSON in `events_raw` for the views built on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandedEvent {
    /// Event id (dedup key).
    pub event_id: Uuid,
    /// Event time.
    pub ts: DateTime<Utc>,
    /// Producing system.
    pub source: String,
    /// Wire `type`, e.g. `order`.
    pub event_type: &'static str,
    /// Partition key (store id, order id, ...).
    pub key: String,
    /// The event as JSON.
    pub payload: String,
}

/// The offsets a batch covers in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRange {
    /// Partition.
    pub tp: TopicPartition,
    /// Offset of the first record of the batch in this partition.
    pub first: i64,
    /// Offset after the last record: the next one to read.
    pub next: i64,
}

/// One landing transaction's worth of work.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LandingBatch {
    /// Consumer group whose offsets this batch advances.
    pub group: String,
    /// Sales for `sales_raw`.
    pub sales: Vec<LandedSale>,
    /// Other events for `events_raw`.
    pub events: Vec<LandedEvent>,
    /// Rejected records for `dead_letters`.
    pub dead_letters: Vec<DeadLetter>,
    /// Offsets covered, one entry per partition touched.
    pub offsets: Vec<OffsetRange>,
    /// What stream processing derived from the batch, written in the same transaction.
    pub derived: SharedDerived,
    /// Where each row came from, with its raw bytes: what a dead letter needs if the store
    /// refuses the row ([`crate::isolate`]). Not written otherwise; may be empty.
    pub origins: Vec<RowOrigin>,
}

/// The log record a row of [`LandingBatch::sales`] or [`LandingBatch::events`] was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowOrigin {
    /// The row's event id.
    pub event_id: Uuid,
    /// Source, topic, partition and offset.
    pub origin: Origin,
    /// The record's bytes as the producer sent them.
    pub raw: Vec<u8>,
}

impl LandingBatch {
    /// Records in the batch (rows + dead letters).
    pub fn len(&self) -> usize {
        self.sales.len() + self.events.len() + self.dead_letters.len()
    }

    /// Whether the batch carries no records (it may still move offsets).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a committed batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// New rows in `sales_raw`.
    pub sales_inserted: u64,
    /// Sales skipped as already landed.
    pub sales_duplicates: u64,
    /// New rows in `events_raw`.
    pub events_inserted: u64,
    /// Other events skipped as already landed.
    pub events_duplicates: u64,
    /// Rows added to `dead_letters` (the `too_old` ones included).
    pub dead_letters: u64,
    /// Events older than the dedup horizon, dead-lettered as `too_old` (ADR 0022).
    pub too_old: u64,
    /// Aggregate rows inserted or updated.
    pub aggregate_rows: u64,
    /// Rows added to `late_events`.
    pub late_events: u64,
}
