//! PostgreSQL store: how a batch lands exactly once at bulk-load speed.
//!
//! Every batch is one transaction (see `write`): fencing on the stored consumer offsets,
//! the event ids into the `landed_event_ids` ledger by binary COPY, the new rows into
//! `sales_raw`/`events_raw` by binary COPY, dead letters, then the offsets. Come here for the
//! SQL side of exactly-once, the partitioning of `sales_raw` or reconnect behaviour.
//!
//! The ledger is partitioned by event-time day (`landed_event_ids_YYYYMMDD`, unique on
//! `(event_id, day)`), and days older than the dedup horizon are dropped whole (ADR 0022).
//! `events_raw`, `late_events` and `dead_letters` are partitioned by day too (migration 0008),
//! and with a retention configured, days past it are dropped whole (ADR 0028).
//!
//! # Why `sales_raw` (and `events_raw`) have no primary key
//! `sales_raw` is range-partitioned by UTC day of `ts` (`sales_raw_YYYYMMDD`, created on demand
//! by `partition`) so that old days can be detached or dropped without a `DELETE`.
//! PostgreSQL enforces a unique index on a partitioned table only if it includes the partition
//! key, so `UNIQUE (event_id)` cannot exist there, and `UNIQUE (event_id, ts)` would let the
//! same event land twice with two timestamps. Uniqueness of `event_id` therefore lives in the
//! `landed_event_ids` ledger, written in the same transaction as the row: a row lands only if
//! its id entered the ledger, for every event type. The ledger is partitioned too, by the UTC
//! day of the event (`day`, unique on `(event_id, day)`), which makes a re-send with the same
//! `ts` (or any `ts` of the same day) a duplicate; ADR 0022 says what a re-send on another day
//! does, and why an event older than the horizon is rejected.
//!
//! # Layout
//! - `store`: [`PostgresStore`], the session and reconnecting after failures.
//! - `write`: the batch transaction (fast path, slow path on duplicates).
//! - `copy`: binary COPY encoders of each table.
//! - `partition`: day partitions (of `sales_raw`, `events_raw`, `late_events`, `dead_letters` and
//!   the ledger), created on demand and cached, listed and dropped whole.
//! - `ledger`: the ledger's dedup horizon (ADR 0022): the newest event day, days dropped.
//! - `retention`: day partitions of `events_raw`, `late_events` and `dead_letters`, and the
//!   days of those and of `sales_raw` dropped past their retention (ADR 0028).
//! - `read`: the [`crate::Reader`] on its own session; `read/orders`: its order and alert queries.
//! - `orders`: the order-lifecycle pipeline's rows and alerts, in the batch's transaction.
//! - `fraud`: the fraud rules' rows and alerts, in the batch's transaction.
//! - `stock`: the inventory-at-risk pipeline's rows and alerts, in the batch's transaction.
//! - `schemas`: the schema registry's rows (issue 16), loaded in one snapshot, saved in one
//!   transaction per change set.
//! - `migrate`: `migrations/postgres/*.sql` at open, under an advisory lock.
//! - `conn`: one session with its prepared statements and temp table.
//! - `bare`: the bulk-load baseline of the benchmark.
//! - `error`: driver errors to [`crate::Error`], retryable or not.

mod bare;
mod conn;
mod copy;
mod derived;
mod error;
mod fraud;
mod ledger;
mod migrate;
mod orders;
mod outbox;
mod partition;
mod read;
mod retention;
mod schemas;
mod stock;
mod store;
mod write;

pub use read::PostgresReader;
pub use store::PostgresStore;
