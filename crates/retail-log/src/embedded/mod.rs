//! The embedded segment-file log: the default backend, so the whole pipeline runs on a laptop
//! with no broker, yet keeps Kafka's model (topics, partitions, offsets, replay) and survives
//! `kill -9` at any moment without losing an acknowledged record or returning a corrupt one.
//!
//! # On disk
//! ```text
//! <dir>/<topic>/meta.json                      {"partitions": N}, written last at creation
//! <dir>/<topic>/<partition>/<base:020>.log     segments; the last one is active
//! <dir>/__consumer_offsets/<group>.json        committed offsets, replaced atomically
//! ```
//! Records are little-endian with a CRC-32C each; the byte layout is in `format.rs`.
//!
//! # Durability
//! - `fsync = "every_batch"`: an append returns after `fdatasync` of every file it touched.
//!   Survives power loss. Concurrent appends share one write and one fsync per file (group
//!   commit on one writer thread).
//! - `fsync = "interval"`: an append returns after `write()` to the OS; a background fsync runs
//!   every `fsync_interval_ms`. Survives `kill -9` (the page cache outlives the process), not
//!   power loss: the last interval may be lost.
//!
//! Consumers only ever see records that are complete (and, under `every_batch`, fsynced). At
//! open, each partition's last segment is scanned and cut at the first torn record (a warning
//! names the file and the bytes cut); older segments are trusted by size and checked record by
//! record as they are read. A damaged record anywhere else is reported as
//! [`Error::DamagedRecord`](crate::Error::DamagedRecord) when read, never returned, and never
//! stepped over unless the reader is moved past it (a seek past its offset, which is what the
//! operator's `retail-etl log skip` makes the landing do): the reader then resyncs on the next
//! good record, also after a damaged length field ([`EmbeddedLog::damaged_span`] says where).
//!
//! # Retention
//! Retention deletes whole old sealed segments, from the oldest, while the partition is over
//! `retention_bytes` or the segment was last appended to more than `retention_ms` ago. The age
//! is the wall-clock time of the last append (kept in memory, and the file's modification time
//! across restarts), never the records' own timestamps: producers set those to event time, so
//! back-filled events from long ago are kept as long as fresh ones.
//!
//! Retention never deletes what a consumer group has not consumed: no segment holding an offset
//! at or above the smallest offset any group committed for the partition is deleted, whatever the
//! limits say (a warning names the group holding it back). A group protects data once it has
//! committed once for the partition; the landing mirrors its stored offsets to the log about once
//! a second while it lands, and its last commit holds while it is idle or down. Partitions no
//! group ever committed for get the limits as configured. A group with no open consumer that has
//! not committed for `group_idle_expiry_ms` (default 7 days) expires and stops holding data back
//! (a finished replay's group, say); its offsets stay. A consumer whose position was deleted
//! anyway gets [`Error::OffsetOutOfRange`](crate::Error::OffsetOutOfRange) from its next poll,
//! never a silent move forward.
//!
//! # Disk budget
//! The bytes no consumer group has consumed yet (from each partition's smallest committed offset
//! to its end, a partition no group committed for counting whole) are kept in one counter. Once
//! they reach `disk_budget_bytes` an append is refused with the retryable
//! [`Error::DiskBudget`](crate::Error::DiskBudget): sources hold back, nothing is dropped, and
//! appends are accepted again once the groups commit past enough of it. Appends to the side
//! topics (`dead-letters`, `alerts`), which the landing writes, are never refused.
//!
//! # Layout
//! - `log.rs`: [`EmbeddedLog`], the [`Log`](crate::Log) implementation; owns the threads.
//! - `writer.rs`: the writer thread, group commit, segment roll.
//! - `housekeeping.rs`: the `interval` fsync and retention thread.
//! - `budget.rs`: the disk budget: the unconsumed-bytes counter and the check an append makes.
//! - `topic.rs`, `partition.rs`, `segment.rs`: the directory tree, from topic to segment file;
//!   recovery and the sparse index live in `segment.rs`.
//! - `format.rs`: a record's bytes. `files.rs`: fsync of directories, atomic file replace.
//! - `consumer.rs`: [`EmbeddedConsumer`]. `offsets.rs`: committed offsets.
//! - `config.rs`: [`EmbeddedConfig`].
//!
//! An append travels `log.rs` (route, size check) -> `writer.rs` (encode, write, fsync,
//! publish) -> `partition.rs` (high watermark) -> wakes `consumer.rs`, which reads through
//! `partition.rs` and `segment.rs`.

mod budget;
mod config;
mod consumer;
mod files;
mod format;
mod housekeeping;
mod log;
mod offsets;
mod partition;
mod segment;
mod topic;
mod writer;

pub use config::{EmbeddedConfig, FsyncPolicy};
pub use consumer::EmbeddedConsumer;
pub use log::{lock_dir, EmbeddedLog};
pub use partition::DamagedSpan;
// The Kafka backend and the landing's configuration check names with the same rule.
pub use topic::validate_name;
