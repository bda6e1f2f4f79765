//! A fast, deterministic hasher for the per-event maps of stream processing (group keys,
//! catalog ids, partitions, event ids): foldhash with a fixed seed.
//!
//! The standard library's SipHash resists flooding by chosen keys, at a price that profiling
//! showed to be the largest single cost of computing aggregates: several lookups per event
//! and aggregate. These maps hold short keys from our own catalog and log; flooding would need
//! a crafted catalog and would only slow a batch, never corrupt it (equal keys are always
//! compared in full). A fixed seed keeps a batch's group order the same from run to run.

/// Map and set builders using foldhash.
pub type FastBuild = foldhash::fast::FixedState;
/// A `HashMap` using foldhash.
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastBuild>;
/// A `HashSet` using foldhash.
pub type FastSet<K> = std::collections::HashSet<K, FastBuild>;
