//! PostgreSQL change data capture (`type = "postgres_cdc"`): the rows of mapped tables as
//! retail events, first an initial snapshot, then every insert, update and delete in commit
//! order, each exactly once by event id across restarts and crashes.
//!
//! How (ADR 0012): logical decoding with the `pgoutput` plugin, read through the SQL function
//! `pg_logical_slot_peek_binary_changes` every `poll_ms` (whole transactions, at most
//! `max_changes` changes a read). The records of a read are appended through the durable
//! path, and only after that returned is the slot moved with `pg_replication_slot_advance`
//! to the end of the last transaction read: the slot never passes what the log holds, and a
//! crash in between reads the same transactions again, which give the same event ids
//! (`derived_id` of source, commit LSN, xid and the change's place in the transaction; an
//! insert's own `event_id` column where the table has one).
//!
//! The snapshot: the slot is made first (`pg_create_logical_replication_slot`); then one
//! `REPEATABLE READ` transaction reads every mapped table and records its
//! `pg_current_snapshot()` and WAL insert position in `<state_dir>/cdc.json`. A streamed
//! transaction the snapshot already saw (committed before that position, with an xid below
//! the snapshot's `xmax` and not in progress in it) is skipped, every other one is streamed.
//! An interrupted snapshot is taken again from a new slot; snapshot rows' ids hash their
//! content, so rows read twice land once.
//!
//! - `config.rs`: [`CdcConfig`] and its [`CdcTable`] mappings, which build the source.
//! - `source.rs`: the [`Cdc`] task: connection, publication, slot, snapshot, reads, advance.
//! - `convert.rs`: a row as an event (exact numerics, deletes) or a reject record.
//! - `pgoutput.rs`: the bounds-checked decoder of `pgoutput` messages.

mod config;
pub mod convert;
pub mod pgoutput;
mod source;

pub use config::{CdcConfig, CdcTable};
pub use source::{test_hooks, Cdc};
