//! The background thread for work no append should wait for: the periodic fsync of the
//! `interval` policy and retention.
//!
//! Retention runs when the writer rolls a segment (the only moment a partition can newly exceed
//! its size limit) and once a minute (for the age limit). It is the only code that removes
//! segments, and it runs here, at open (before this thread starts) and when a tool calls
//! [`super::log::EmbeddedLog::enforce_retention`]. Segments are only ever removed from the front
//! and added at the end, which is what lets
//! [`super::partition::Partition::apply_retention`] decide outside the lock.
//!
//! Each partition's floor, the smallest offset any consumer group committed for it, is read from
//! memory ([`super::offsets::OffsetStore::floor`]) just before that partition is decided, so a
//! commit that returned before is honoured. While a group's offsets file cannot be read, nothing
//! is deleted anywhere. Groups idle past `group_idle_expiry_ms` are left out of the floor, except
//! in the pass at open ([`Groups::AllHold`]).

use std::sync::{mpsc, Arc, PoisonError};
use std::time::{Duration, Instant};

use tracing::error;

use super::config::FsyncPolicy;
use super::log::Shared;
use super::offsets::Expiry;
use super::writer::{now_ms, Failure};

/// How often retention runs without being asked.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Work the writer hands over.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Chore {
    /// A segment rolled: check the retention limits now.
    Retention,
}

/// Runs until every sender of `rx` is gone, then fsyncs what is still dirty.
pub(crate) fn run(shared: &Arc<Shared>, rx: &mpsc::Receiver<Chore>) {
    let tick = match shared.config.fsync {
        FsyncPolicy::Interval => Duration::from_millis(shared.config.fsync_interval_ms.max(1)),
        FsyncPolicy::EveryBatch => RETENTION_EVERY,
    };
    let mut last_retention = Instant::now();
    loop {
        match rx.recv_timeout(tick) {
            Ok(Chore::Retention) => {
                apply_retention(shared, Groups::IdleExpire);
                last_retention = Instant::now();
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                sync_dirty(shared);
                return;
            }
        }
        sync_dirty(shared);
        if last_retention.elapsed() >= RETENTION_EVERY {
            apply_retention(shared, Groups::IdleExpire);
            last_retention = Instant::now();
        }
    }
}

/// Fsyncs the segments written since the last tick (`interval` policy).
fn sync_dirty(shared: &Shared) {
    let dirty = std::mem::take(&mut *shared.dirty.lock().unwrap_or_else(PoisonError::into_inner));
    for seg in dirty {
        // Cleared before the fsync: a write racing with it marks the segment dirty again.
        seg.dirty.store(false, std::sync::atomic::Ordering::Release);
        if let Err(e) = seg.file().sync_data() {
            error!(message = "background fsync failed, log stops accepting appends", file = %seg.path.display(), error = %e);
            *shared.failure.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(Failure::new("background fsync", &seg.path, &e));
        }
    }
}

/// When a retention pass lets idle consumer groups go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Groups {
    /// Every group holds its floor: the pass at open, before any consumer had the chance to
    /// come back (a pipeline stopped for longer than the expiry must not lose what its landing
    /// has not landed the moment it restarts).
    AllHold,
    /// Groups idle past `group_idle_expiry_ms` no longer hold retention back.
    IdleExpire,
}

/// Applies the retention limits to every partition.
pub(crate) fn apply_retention(shared: &Shared, groups: Groups) {
    let (bytes, ms) = (shared.config.retention_bytes, shared.config.retention_ms);
    if bytes == 0 && ms == 0 {
        return;
    }
    retain(shared, groups, bytes, ms);
    // Retention may have deleted a partition no group consumes; and groups may have expired.
    super::budget::recount(shared);
}

fn retain(shared: &Shared, groups: Groups, bytes: u64, ms: u64) {
    let now = now_ms();
    let expiry = (groups == Groups::IdleExpire).then_some(Expiry {
        now_ms: now,
        idle_ms: shared.config.group_idle_expiry_ms,
    });
    for part in shared.all_partitions() {
        let floor = match shared.offsets.floor(&part.tp, expiry) {
            Ok(floor) => floor,
            Err(e) => {
                error!(message = "log retention skipped: committed consumer offsets unreadable", error = %e);
                return;
            }
        };
        if let Err(e) = part.apply_retention(bytes, ms, now, floor.as_ref()) {
            error!(message = "log retention failed", partition = %part.tp, error = %e);
        }
    }
}
