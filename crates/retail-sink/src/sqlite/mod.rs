//! SQLite store: the default, zero-infrastructure backend (one file), with the same tables,
//! columns and exactly-once protocol as PostgreSQL. Come here for the embedded store's
//! durability settings or its worker thread.
//!
//! # Durability: WAL with `synchronous=FULL`
//! WAL mode lets readers (API, dashboards) run while the landing writes. With
//! `synchronous=NORMAL` a commit is durable against a killed process (`kill -9`) but not
//! against power loss: the last commits can vanish after a reboot, and a store that forgets a
//! commit after the sources were told "landed" is not exactly-once. `synchronous=FULL` fsyncs
//! the WAL at every commit, which closes that gap. Measured on this 2-core VM with
//! `tests/bench.rs` (500k sales, 5,000 per transaction, 3 runs each), `write_batch` ran at
//! 58-65k rows/s with FULL and 61-88k with NORMAL: about 20%, within the VM's run-to-run
//! noise, because one fsync is shared by thousands of rows. Not a big enough difference to
//! give up durability, so FULL it is.
//!
//! # Differences from PostgreSQL
//! No partitioning; `event_id` is hyphenated lower-case text; timestamps are RFC 3339 text in
//! UTC with milliseconds and `Z` (fixed width, so they sort as text); money (`unit_price`,
//! `product_dim.price`, every decimal column of an aggregate) is INTEGER cents, exact like
//! PostgreSQL's `numeric`, and a value with more than two decimals is refused (ADR 0020);
//! `raw` is a BLOB. The ledger is written with `INSERT OR IGNORE`, one id at a
//! time, which is as fast as SQLite inserts get, into one table per event-time day
//! (`landed_event_ids_YYYYMMDD`) where PostgreSQL has one partition per day (ADR 0022).
//!
//! # Layout
//! - `store`: [`SqliteStore`] and its worker thread.
//! - `write`: the batch transaction and the bulk-load baseline.
//! - `rows`: owned compact copies of a batch (after the dedup horizon's verdict), text forms
//!   of ids and timestamps.
//! - `ledger`: the ledger's day tables, the newest event day, days dropped (ADR 0022).
//! - `retention`: rows of `sales_raw`, `events_raw`, `late_events` and `dead_letters` past
//!   their retention, deleted in bounded passes between batches (ADR 0028).
//! - `read`: the [`crate::Reader`] on its own connection and thread; `read/orders`: its order
//!   and alert queries.
//! - `thread`: a connection owned by one thread, with async calls on it (store and reader).
//! - `schemas`: the schema registry's rows (issue 16), loaded in one snapshot, saved in one
//!   transaction per change set.
//! - `migrate`: `migrations/sqlite/*.sql` at open; refuses a file that keeps money as REAL.
//! - `orders`: the order-lifecycle pipeline's rows and alerts, in the batch's transaction.
//! - `fraud`: the fraud rules' rows and alerts, in the batch's transaction.
//! - `stock`: the inventory-at-risk pipeline's rows and alerts, in the batch's transaction.
//! - `money`: exact decimals to integer cents and back.
//! - `error`: rusqlite errors to [`crate::Error`].

mod derived;
mod error;
mod fraud;
mod ledger;
mod migrate;
mod money;
mod orders;
mod outbox;
mod read;
mod retention;
mod rows;
mod schemas;
mod stock;
mod store;
mod thread;
mod write;

pub use read::SqliteReader;
pub use store::SqliteStore;
