//! (4) The stores where everything lands: PostgreSQL to scale, an SQLite file by default.
//!
//! Stage (4) of (1) sources -> (2) log -> (3) process -> (4) sink -> (5) serve. The landing
//! (stage 3) hands a [`LandingBatch`] to [`Store::write_batch`], which writes the batch's rows,
//! its dead letters and the consumer offsets it covers in ONE transaction. That single
//! transaction is the whole exactly-once protocol: after a crash the consumer seeks to the
//! offsets in the store, so a batch is either entirely applied or entirely re-read. Events are
//! de-duplicated by `event_id` through the `landed_event_ids` ledger, so a source re-sending an
//! event, or a generator re-run with the same seed, lands it once. The ledger keeps event-time
//! days within a horizon ([`StoreOptions::dedup_horizon_days`]) and drops older days whole; an
//! event older than the horizon becomes a `too_old` dead letter (ADR 0022).
//!
//! # Layout
//! - [`batch`]: what the landing hands over and what the store reports back.
//! - [`postgres`]: tokio-postgres, binary COPY, day partitions of `sales_raw`.
//! - [`sqlite`]: bundled SQLite in WAL mode on a blocking thread.
//! - [`read`]: the [`Reader`] the REST API and the dashboard query, with its own connection.
//! - [`error`]: the crate's error, with [`Error::is_retryable`] and [`Error::is_refused`].
//! - [`isolate`]: when the store refuses a batch for its data, finds the rows at fault,
//!   dead-letters them and lands the rest in one transaction.
//! - `dedup`: in-batch de-duplication by `event_id`, shared by both backends.
//! - `retention`: how long raw rows, late events and dead letters are kept (ADR 0028); the
//!   backends drop day partitions (PostgreSQL) or delete in bounded passes (SQLite).
//! - [`horizon`]: the dedup horizon (ADR 0022): ledger days kept, dropped, and events too old
//!   to land, shared by both backends.
//! - [`outbox`]: the notification outbox: which channels an alert goes to, de-duplication,
//!   the deliveries dispatchers claim (ADR 0026).
//! - [`schemas`]: the schema registry's rows (issue 16) in the store: [`RegistryTables`], the
//!   registry's `RegistryStore` over a [`Store`], and the rows' encoding both backends share.
//! - `migrations/<backend>/*.sql`: the schema, applied at open.
//! - this file: the [`Store`] trait and [`open`] by URL ([`StoreUrl`]).

pub mod batch;
mod dedup;
pub mod derived;
mod error;
pub mod horizon;
pub mod isolate;
pub mod outbox;
pub mod postgres;
pub mod read;
mod retention;
pub mod schemas;
pub mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
pub use batch::{BatchOutcome, LandedEvent, LandedSale, LandingBatch, OffsetRange, RowOrigin};
pub use derived::{AggregateTable, CatalogRow, CatalogSnapshot, Derived, PartitionWatermark};
pub use error::{Error, Result};
pub use read::{open_reader, Reader};
use retail_core::TopicPartition;
pub use schemas::RegistryTables;

/// Tables users see, for counting and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Raw sales, returns and voids.
    SalesRaw,
    /// Every other valid event, as JSON.
    EventsRaw,
    /// Rejected input.
    DeadLetters,
    /// Events that missed a closed window.
    LateEvents,
}

impl Table {
    /// The SQL table name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::SalesRaw => "sales_raw",
            Self::EventsRaw => "events_raw",
            Self::DeadLetters => "dead_letters",
            Self::LateEvents => "late_events",
        }
    }
}

/// Every table the store's migrations and bookkeeping create. No aggregate (live or replayed)
/// may take one of these names: a replay drops its target tables first.
pub const STORE_TABLES: &[&str] = &[
    "sales_raw",
    "events_raw",
    "dead_letters",
    "late_events",
    "landed_event_ids",
    "consumer_offsets",
    "partition_watermarks",
    "product_dim",
    "seller_dim",
    "store_dim",
    "schema_migrations",
    "retail_batch_ids",
    "order_lifecycle",
    "alerts",
    "pipeline_clock",
    "inventory_risks",
    "fraud_state",
    "fraud_alerts",
    "landed_event_ids_legacy",
    "ledger_horizon",
    "events_raw_legacy",
    "late_events_legacy",
    "dead_letters_legacy",
    "retention_legacy",
    "notification_deliveries",
    "schema_registry_schemas",
    "schema_registry_versions",
    "schema_registry_config",
];

/// The tables kept as one partition (PostgreSQL) or table (the SQLite ledger) per day.
const DAY_PARTITIONED: &[&str] = &[
    "sales_raw",
    "events_raw",
    "late_events",
    "dead_letters",
    "landed_event_ids",
];

/// Whether `name` is a table the store owns: one of [`STORE_TABLES`], or a day partition of
/// `sales_raw`, `events_raw`, `late_events` or `dead_letters` (`<table>_YYYYMMDD` on
/// PostgreSQL) or of the ledger (`landed_event_ids_YYYYMMDD`, both backends). Returns the table
/// it belongs to.
pub fn store_table(name: &str) -> Option<&'static str> {
    let day_partition = |parent: &str| {
        name.strip_prefix(parent)
            .and_then(|rest| rest.strip_prefix('_'))
            .is_some_and(|day| day.len() == 8 && day.bytes().all(|b| b.is_ascii_digit()))
    };
    STORE_TABLES
        .iter()
        .copied()
        .find(|t| *t == name || (DAY_PARTITIONED.contains(t) && day_partition(t)))
}

/// A store. Shared by the tasks of a process (`Arc<dyn Store>`); a backend serialises its own
/// writes.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// `postgres` or `sqlite`, for logs and `/health`.
    fn kind(&self) -> &'static str;

    /// Writes the batch in one transaction: new sales into `sales_raw`, other new events into
    /// `events_raw`, every dead letter into `dead_letters`, each [`OffsetRange::next`] into
    /// `consumer_offsets`, and the batch's [`Derived`] data: the contributions of new events
    /// folded into the aggregate tables, late events of new events into `late_events`, the
    /// partition watermarks and the catalog dimensions. An event whose `event_id` already landed (in an earlier batch or
    /// earlier in this one) is skipped and counted as a duplicate; the ledger remembers ids by
    /// event-time day within [`StoreOptions::dedup_horizon_days`], and an event older than that
    /// horizon becomes a dead letter of kind `too_old` ([`horizon::TOO_OLD`]) and nothing else.
    ///
    /// Fencing: if the stored next offset of a partition is not the batch's
    /// [`OffsetRange::first`] (someone else moved it), nothing is written and
    /// [`Error::OffsetConflict`] is returned. A partition with no stored offset accepts any start.
    async fn write_batch(&self, batch: &LandingBatch) -> Result<BatchOutcome>;

    /// Does everything [`Store::write_batch`] does in a transaction and rolls it back: whether
    /// the store would accept `batch`, and if not, its error. [`isolate`] bisects a refused
    /// batch with it.
    async fn probe_batch(&self, batch: &LandingBatch) -> Result<BatchOutcome>;

    /// Creates the aggregate tables (and their ranking views) that do not exist yet, checks
    /// that those that exist have the columns the definitions need, and remembers the list:
    /// [`derived::Contribution::table`] indexes it. Call before the first batch carrying
    /// contributions.
    async fn prepare_aggregates(&self, tables: &[AggregateTable]) -> Result<()>;

    /// Removes `tables` (with their views and side tables), their rows of `late_events`, and
    /// the offsets and watermarks of `group`: a clean slate for rebuilding them by replay.
    async fn reset_aggregates(&self, tables: &[AggregateTable], group: &str) -> Result<()>;

    /// A consumer group's partition watermark state, as the last committed batch left it.
    async fn watermarks(&self, group: &str) -> Result<Vec<PartitionWatermark>>;

    /// The catalog dimensions.
    async fn catalog(&self) -> Result<CatalogSnapshot>;

    /// The next offsets of record of a consumer group.
    async fn offsets(&self, group: &str) -> Result<Vec<(TopicPartition, i64)>>;

    /// Rows in a table.
    async fn count(&self, table: Table) -> Result<i64>;

    /// Cheap round trip for `/health`.
    async fn ping(&self) -> Result<()>;

    /// Inserts alerts raised outside a landing batch (the pipeline's own: a component failing)
    /// with their deliveries over `routes`, and ends those of `resolutions`, in one transaction
    /// (the same rules as the pipelines' alerts: an alert id already present inserts nothing).
    async fn raise_alerts(
        &self,
        alerts: &[derived::orders::Alert],
        resolutions: &[derived::orders::Resolution],
        routes: &outbox::Routes,
    ) -> Result<()>;

    /// Claims up to `limit` due deliveries of `channel` from the notification outbox (ADR 0026):
    /// each claim counts an attempt and holds the row for `lease` (a dispatcher that dies
    /// mid-send leaves it due again after that). Oldest alert first.
    async fn claim_deliveries(
        &self,
        channel: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<outbox::Delivery>>;

    /// When the next pending delivery of `channel` is due (wall clock), if one is pending: a
    /// dispatcher draining at stop waits for it only if it falls due before its deadline.
    async fn next_delivery_due(&self, channel: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>>;

    /// Records how attempt `attempt` of a claimed delivery went. `false`: the claim was no
    /// longer this caller's (its lease ran out and another dispatcher took the row), so nothing
    /// changed.
    async fn finish_delivery(
        &self,
        delivery_id: uuid::Uuid,
        attempt: u32,
        how: &outbox::Attempt,
    ) -> Result<bool>;

    /// Every row of the schema registry's tables (issue 16), in one snapshot: what a
    /// `retail_schema::SchemaRegistry` starts from. Read through [`RegistryTables`].
    async fn load_schema_registry(&self) -> Result<retail_schema::Rows>;

    /// Writes the registry's `changes` (as `retail_schema::Rows::apply` describes them) in one
    /// transaction: all of them or, on any error, none. A version naming a schema id the
    /// tables do not hold, or a schema id already taken, is refused ([`Error::is_refused`]).
    async fn save_schema_registry(&self, changes: &[retail_schema::Change]) -> Result<()>;

    /// Benchmark baseline, step 1 of 3: drops and creates the scratch tables (the same shape
    /// as `sales_raw` and the ledger) that [`Store::bare_chunk`] fills. Not timed.
    async fn bare_begin(&self) -> Result<()>;

    /// Benchmark baseline, step 2 (called as often as the caller has chunks): loads `rows`
    /// into the scratch tables with the backend's bare bulk path (binary COPY for PostgreSQL,
    /// plain prepared INSERTs for SQLite), `batch_rows` per transaction, in the same row
    /// orders as the write path, with no dedup, fencing, savepoint or offsets. Times only the
    /// transactions (ordering, BEGIN, the loads, COMMIT); creating day partitions and
    /// preparing statements are not timed. Chunks that are whole multiples of `batch_rows`
    /// give exactly the transactions one call with all the rows would, so a caller can
    /// stream millions of rows in bounded memory and measure the same thing.
    async fn bare_chunk(&self, rows: &[LandedSale], batch_rows: usize) -> Result<BareLoad>;

    /// Benchmark baseline, step 3: drops the scratch tables. Not timed.
    async fn bare_finish(&self) -> Result<()>;

    /// The whole baseline in one call: [`Store::bare_begin`], one [`Store::bare_chunk`] of
    /// `rows`, [`Store::bare_finish`]. The scratch tables are dropped even if the load failed.
    async fn bare_load(&self, rows: &[LandedSale], batch_rows: usize) -> Result<BareLoad> {
        self.bare_begin().await?;
        let loaded = self.bare_chunk(rows, batch_rows).await;
        let finished = self.bare_finish().await;
        let loaded = loaded?;
        finished?;
        Ok(loaded)
    }
}

/// What a bare load (or one chunk of it) did: rows the store reported loaded into the scratch
/// copy of `sales_raw`, and the time its transactions took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BareLoad {
    /// Rows loaded (as the COPY or the INSERTs reported them).
    pub rows: u64,
    /// Time spent in the load transactions.
    pub elapsed: Duration,
}

impl std::ops::AddAssign for BareLoad {
    fn add_assign(&mut self, other: Self) {
        self.rows += other.rows;
        self.elapsed += other.elapsed;
    }
}

/// A store chosen by URL scheme. `Display` (and `Debug`) show the URL with its credentials
/// masked ([`retail_core::redact::url`]): print it, never the string it was parsed from.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `postgres://...` or `postgresql://...`: a libpq-style URL passed to tokio-postgres.
    Postgres(String),
    /// `sqlite://<path>`: a database file (created if missing).
    Sqlite(PathBuf),
}

impl std::str::FromStr for StoreUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Self::Postgres(s.to_owned()))
        } else if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(Error::Config(format!(
                    "store URL {:?}: sqlite:// needs a file path",
                    retail_core::redact::url(s)
                )));
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else {
            Err(Error::Config(format!(
                "store URL {:?}: unknown scheme (expected postgres://... or sqlite://<path>)",
                retail_core::redact::url(s)
            )))
        }
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Postgres(url) => f.write_str(&retail_core::redact::url(url)),
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
        }
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Postgres(url) => f
                .debug_tuple("Postgres")
                .field(&retail_core::redact::url(url))
                .finish(),
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
        }
    }
}

/// How a store keeps its dedup ledger (ADR 0022) and how long it keeps raw rows, late events
/// and dead letters (ADR 0028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Days of event time the `landed_event_ids` ledger remembers behind the newest event day
    /// landed; older days are dropped whole, and an event older than that becomes a `too_old`
    /// dead letter. `0`: the ledger is kept forever and no event is too old.
    pub dedup_horizon_days: u32,
    /// Days of event time `sales_raw` and `events_raw` keep behind the newest event day landed
    /// (the dedup horizon's clock); older days are dropped whole. `0`: kept forever.
    pub raw_retention_days: u32,
    /// Days of event time `late_events` keeps behind the newest event day landed, by the late
    /// event's own time (`event_ts`). `0`: kept forever.
    pub late_events_retention_days: u32,
    /// Days of wall-clock time `dead_letters` keeps, by `rejected_at`. `0`: kept forever.
    pub dead_letters_retention_days: u32,
}

impl StoreOptions {
    /// The default horizon, the same as `landing.dedup_horizon_days`'s.
    pub const DEFAULT_DEDUP_HORIZON_DAYS: u32 = 0;
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            dedup_horizon_days: Self::DEFAULT_DEDUP_HORIZON_DAYS,
            raw_retention_days: 0,
            late_events_retention_days: 0,
            dead_letters_retention_days: 0,
        }
    }
}

/// Opens the store a URL names and applies its migrations, with the default
/// [`StoreOptions`].
pub async fn open(url: &StoreUrl) -> Result<Arc<dyn Store>> {
    open_with(url, StoreOptions::default()).await
}

/// Opens the store a URL names with `options` and applies its migrations.
pub async fn open_with(url: &StoreUrl, options: StoreOptions) -> Result<Arc<dyn Store>> {
    match url {
        StoreUrl::Postgres(u) => Ok(Arc::new(postgres::PostgresStore::connect_with(u, options).await?)),
        StoreUrl::Sqlite(path) => Ok(Arc::new(sqlite::SqliteStore::open_with(path, options).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::StoreUrl;

    #[test]
    fn store_tables_and_their_day_partitions_are_known() {
        assert_eq!(super::store_table("sales_raw"), Some("sales_raw"));
        assert_eq!(super::store_table("sales_raw_20261130"), Some("sales_raw"));
        assert_eq!(super::store_table("landed_event_ids"), Some("landed_event_ids"));
        assert_eq!(
            super::store_table("landed_event_ids_20261130"),
            Some("landed_event_ids")
        );
        assert_eq!(super::store_table("sales_raw_by_city"), None);
        assert_eq!(super::store_table("sales_agg_minute"), None);
        // Partitioned by day for retention (ADR 0028).
        assert_eq!(super::store_table("dead_letters_20261130"), Some("dead_letters"));
        assert_eq!(super::store_table("events_raw_legacy"), Some("events_raw_legacy"));
        assert_eq!(super::store_table("late_events_2026113"), None);
    }

    #[test]
    fn a_store_url_never_shows_its_password() {
        let url: StoreUrl = "postgres://etl:s3cret@db:5432/retail".parse().expect("parses");
        assert_eq!(url.to_string(), "postgres://etl:***@db:5432/retail");
        assert!(!format!("{url:?}").contains("s3cret"));
        let err = "postgress://etl:s3cret@db:5432/retail"
            .parse::<StoreUrl>()
            .expect_err("unknown scheme");
        assert!(
            err.to_string().contains("etl:***@db") && !err.to_string().contains("s3cret"),
            "{err}"
        );
    }
}
