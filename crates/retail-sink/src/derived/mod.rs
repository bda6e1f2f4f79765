//! What stream processing derives from a batch and lands in the same transaction as its raw
//! rows: aggregate contributions, late events, partition watermarks and catalog dimensions.
//!
//! The processor (stage 3) cannot know which events are new: only the store's ledger does, in
//! the transaction. So the processor hands over one contribution per event and window, tagged
//! with the event's id, and the store folds only those of events the ledger accepted
//! ([`fold`]). A duplicate therefore never contributes, even when its first copy landed days ago.
//! Contributions travel in the compact form of [`Contributions`]: every group once per batch,
//! and per event a small fixed-size entry naming its group, so a contribution allocates nothing
//! of its own (ADR 0004, cost).
//!
//! # Layout
//! - this file: the shapes handed over ([`Derived`]) and the aggregate tables' definitions.
//! - [`contributions`]: the compact, per-batch form of the contributions.
//! - [`fast_hash`]: the hasher of the per-event maps (processor and fold).
//! - [`fold`]: contributions of new events -> one delta row per table, window and group.
//! - [`sql`]: the DDL and upsert statements of an aggregate table, per dialect.
//! - [`orders`]: the order-lifecycle pipeline (payment join, timeouts, stuck orders), run by
//!   the store on the rows it keeps (ADR 0023).
//! - [`stock`]: the inventory-at-risk pipeline (snapshots, sales after them, velocity, risk
//!   levels), applied in event-time order on the rows the store keeps (ADR 0024).
//! - [`fraud`]: fraud rules as data over payments per card or customer (ADR 0025).

pub mod contributions;
pub mod fast_hash;
pub mod fold;
pub mod fraud;
pub mod orders;
pub mod sql;
pub mod stock;

pub use contributions::{Contributions, Entry, Group};

use std::sync::Arc;

use chrono::{DateTime, Utc};
use retail_core::TopicPartition;
use rust_decimal::Decimal;
use uuid::Uuid;

/// Everything derived from one batch. Shared (`Arc`) so a backend that writes on its own
/// thread can keep it without copying.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Derived {
    /// One entry per event, aggregate and window the event falls in (on time, or late under
    /// the `update` policy), with each group stored once.
    pub contributions: Contributions,
    /// Events that missed a closed window, for `late_events`.
    pub late: Vec<LateEvent>,
    /// Each touched partition's watermark state after the batch.
    pub watermarks: Vec<PartitionWatermark>,
    /// Catalog rows seen in the batch, in log order (last one wins).
    pub catalog: Vec<CatalogRow>,
    /// The order-lifecycle pipeline's input, when it runs.
    pub orders: Option<orders::OrderBatch>,
    /// The inventory-at-risk pipeline's input, when it runs.
    pub stock: Option<stock::StockBatch>,
    /// The fraud rules' input, when they run.
    pub fraud: Option<fraud::FraudBatch>,
    /// The channels the alerts these pipelines raise go to: each new alert gets its
    /// deliveries in the same transaction (ADR 0026). `None`: no channel.
    pub notifications: Option<Arc<crate::outbox::Routes>>,
}

impl Derived {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.contributions.is_empty()
            && self.late.is_empty()
            && self.watermarks.is_empty()
            && self.catalog.is_empty()
            && self.orders.is_none()
            && self.stock.is_none()
            && self.fraud.is_none()
    }
}

/// Shared handle on a batch's derived data.
pub type SharedDerived = Arc<Derived>;

/// A group key or measure value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    /// Absent (a missing optional field): ignored by every measure, as SQL does.
    Null,
    /// A whole number.
    Int(i64),
    /// An exact decimal (money).
    Decimal(Decimal),
    /// Text; shared because the same city or name repeats in every row of a batch.
    Text(Arc<str>),
}

/// One event's input to one window of one aggregate table, as a standalone value (tests and
/// callers building a [`Derived`] by hand; the processor adds to [`Contributions`] directly).
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    /// The event, so the store can drop contributions of events that landed before.
    pub event_id: Uuid,
    /// Index of the table in the list given to `Store::prepare_aggregates`.
    pub table: u16,
    /// Window start, epoch milliseconds.
    pub window_start: i64,
    /// Window end (exclusive), epoch milliseconds.
    pub window_end: i64,
    /// Group-by values, in the table's key column order.
    pub key: Vec<Value>,
    /// One input per measure, in the table's measure order; `Null` where the measure's filter
    /// did not match or the field was absent.
    pub values: Vec<Value>,
}

/// An event that arrived after its window closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateEvent {
    /// The late event.
    pub event_id: Uuid,
    /// Aggregate whose window it missed.
    pub aggregate: Arc<str>,
    /// The missed window, epoch milliseconds.
    pub window_start: i64,
    /// End of the missed window (exclusive), epoch milliseconds.
    pub window_end: i64,
    /// The event's own time, epoch milliseconds.
    pub event_ts: i64,
    /// The partition watermark it was judged against, epoch milliseconds.
    pub watermark: i64,
    /// Why, in words.
    pub reason: String,
    /// Where it was read.
    pub tp: TopicPartition,
    /// Its offset.
    pub offset: i64,
}

/// The watermark state of one partition: the largest event time seen so far. The watermark is
/// that minus the allowed out-of-orderness; keeping the maximum (not the watermark) lets the
/// setting change between runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionWatermark {
    /// Partition.
    pub tp: TopicPartition,
    /// Largest event time seen, epoch milliseconds.
    pub max_event_ts: i64,
}

/// A catalog dimension row, from a catalog event.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogRow {
    /// `store_dim`.
    Store {
        /// Key.
        store_id: i64,
        /// Store name.
        name: String,
        /// City.
        city: String,
        /// Country code.
        country: String,
    },
    /// `seller_dim`.
    Seller {
        /// Key.
        seller_id: i64,
        /// Home store.
        store_id: i64,
        /// Name.
        name: String,
    },
    /// `product_dim`.
    Product {
        /// Key.
        sku: i64,
        /// Name.
        name: String,
        /// Category.
        category: String,
        /// List price.
        price: Option<Decimal>,
    },
}

/// The whole catalog as the store holds it, for a processor starting up or refreshing after a
/// join miss.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogSnapshot {
    /// Every dimension row.
    pub rows: Vec<CatalogRow>,
}

/// The SQL type of a key or measure input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// `bigint` / `INTEGER`.
    Int,
    /// `numeric` / `INTEGER` cents (SQLite has no exact decimal column; ADR 0020).
    Decimal,
    /// `text` / `TEXT`.
    Text,
}

/// How a measure combines inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Merge {
    /// Number of non-null inputs.
    Count,
    /// Sum of non-null inputs (0 when none).
    Sum,
    /// Smallest non-null input.
    Min,
    /// Largest non-null input.
    Max,
    /// Mean of non-null inputs, kept as hidden `<name>__sum` and `<name>__n` columns.
    Avg,
    /// Number of distinct non-null inputs, kept in a `<table>__distinct` side table.
    DistinctCount,
}

/// A group-by column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyColumn {
    /// Column name.
    pub name: String,
    /// Type.
    pub ty: ColumnType,
}

/// A measure column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeasureColumn {
    /// Column name.
    pub name: String,
    /// Type of the inputs (count and distinct-count columns are always whole numbers).
    pub input: ColumnType,
    /// How inputs combine.
    pub merge: Merge,
}

impl MeasureColumn {
    /// The SQL type of the stored column.
    pub const fn stored(&self) -> StoredType {
        match self.merge {
            Merge::Count | Merge::DistinctCount => StoredType::Int,
            Merge::Avg => StoredType::Float,
            Merge::Sum | Merge::Min | Merge::Max => match self.input {
                ColumnType::Int => StoredType::Int,
                ColumnType::Decimal => StoredType::Decimal,
                ColumnType::Text => StoredType::Text,
            },
        }
    }
}

/// The type of a stored measure column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredType {
    /// Whole number.
    Int,
    /// Exact decimal.
    Decimal,
    /// Text (min/max of a text field).
    Text,
    /// Floating point (averages).
    Float,
}

/// Ranking of an aggregate's rows, published as a `<table>_ranked` view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rank {
    /// Measure to rank by, highest first.
    pub by: String,
    /// Key columns the rank restarts within (the window is always one of them).
    pub within: Vec<String>,
}

/// An aggregate table: `window_start`, `window_end`, the key columns, the measures and
/// `updated_at`, with primary key `(window_start, keys...)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AggregateTable {
    /// Table name (checked to be a plain identifier by the processor's config).
    pub name: String,
    /// Group-by columns.
    pub keys: Vec<KeyColumn>,
    /// Measures.
    pub measures: Vec<MeasureColumn>,
    /// Optional ranking view.
    pub rank: Option<Rank>,
}

impl AggregateTable {
    /// Whether any measure needs the distinct side table.
    pub fn has_distinct(&self) -> bool {
        self.measures.iter().any(|m| m.merge == Merge::DistinctCount)
    }
}

/// Epoch milliseconds as a UTC time (clamped into chrono's range).
pub fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}
