//! The disk budget (issue 18, item 11): the bytes of the log no consumer group has consumed
//! yet, kept in one counter, so that an append is refused with a retryable
//! [`Error::DiskBudget`] once they reach `disk_budget_bytes`, and accepted again once the
//! groups commit past them. Nothing is dropped: the refused append never reaches the writer, and
//! the sources retry it (the webhook answers 503 with `Retry-After`).
//!
//! The backlog of a partition is the bytes from the smallest offset a live group committed for
//! it (the same floor retention honours, [`super::offsets::OffsetStore::floor`]) to its end,
//! and its whole size when no group ever committed for it. The floor's byte position comes from
//! the segment's sparse index, so the figure errs high by less than one index interval (4 KiB)
//! per partition, never low. A partition whose floor is its end counts 0.
//!
//! Cost on the append path: one atomic load and a compare ([`Budget::check`]). The counter is
//! raised by the writer as it publishes bytes ([`Budget::publish`]), and recounted from the
//! segments' sizes after every offset commit, retention pass and at open ([`recount`]). The
//! writer's publish and the recount exclude each other through one mutex, which the writer
//! takes once per round (uncontended except during a recount), so no published byte is counted
//! twice or missed.
//!
//! The side topics (`dead-letters`, `alerts`) are neither held back nor counted: the landing
//! writes them, and holding the landing back would stop the only thing that frees the budget;
//! and no group consumes them, so counted they would fill the budget for good (a burst of
//! poison events) while the landing is caught up. Retention bounds them like consumed data.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tracing::{info, warn};

use super::log::Shared;
use super::offsets::Expiry;
use super::writer::now_ms;
use crate::{Error, Result};

/// The budget and the backlog counted against it.
#[derive(Debug)]
pub(crate) struct Budget {
    /// `disk_budget_bytes`; 0 = no budget.
    limit: u64,
    /// Bytes not consumed by every group.
    backlog: AtomicU64,
    /// Held by the writer while it publishes and by a recount while it counts.
    counting: Mutex<()>,
    /// Whether an append was refused since the last time the backlog was under the budget
    /// (for one warning when holding starts and one line when it ends).
    holding: AtomicBool,
}

impl Budget {
    /// A budget of `limit` bytes (0 = none), with nothing counted yet.
    pub(crate) const fn new(limit: u64) -> Self {
        Self {
            limit,
            backlog: AtomicU64::new(0),
            counting: Mutex::new(()),
            holding: AtomicBool::new(false),
        }
    }

    /// Refuses an append while the backlog is at or over the budget.
    pub(crate) fn check(&self, dir: &std::path::Path) -> Result<()> {
        if self.limit == 0 {
            return Ok(());
        }
        let backlog = self.backlog.load(Ordering::Relaxed);
        if backlog < self.limit {
            return Ok(());
        }
        if !self.holding.swap(true, Ordering::Relaxed) {
            warn!(
                message = "log disk budget reached: appends are held back until consumers commit past the backlog",
                dir = %dir.display(),
                backlog_bytes = backlog,
                budget_bytes = self.limit,
            );
        }
        Err(Error::DiskBudget {
            dir: dir.display().to_string(),
            backlog,
            budget: self.limit,
        })
    }

    /// The bytes counted against the budget now.
    pub(crate) fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Runs the writer's `publish`, which makes bytes visible and returns how many, and counts
    /// them, with no recount in between.
    pub(crate) fn publish(&self, publish: impl FnOnce() -> u64) {
        let _counting = self.counting.lock().unwrap_or_else(PoisonError::into_inner);
        let added = publish();
        self.backlog.fetch_add(added, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.counting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a partition's bytes count against the budget: every topic but the side topics.
pub(crate) fn counts(tp: &retail_core::TopicPartition) -> bool {
    !retail_core::event::topics::SIDE.contains(&tp.topic.as_str())
}

/// Counts the backlog again from the segments and the committed offsets (after a commit, a
/// retention pass, at open). Groups idle past `group_idle_expiry_ms` do not count, as for
/// retention. While a group's offsets are unreadable the count is left as it was.
pub(crate) fn recount(shared: &Shared) {
    let budget = &shared.budget;
    let expiry = Some(Expiry {
        now_ms: now_ms(),
        idle_ms: shared.config.group_idle_expiry_ms,
    });
    // Each partition's floor and the byte position at or before it, found outside the lock: a
    // record's position never changes once written, and an index lookup may scan a segment.
    let mut floors = Vec::new();
    for part in shared.all_partitions().into_iter().filter(|p| counts(&p.tp)) {
        let floor = match shared.offsets.floor(&part.tp, expiry) {
            Ok(floor) => floor,
            Err(e) => {
                warn!(message = "log disk budget not recounted: committed consumer offsets unreadable", error = %e);
                return;
            }
        };
        let at = match floor {
            Some(floor) => match part.byte_position(floor.offset) {
                Ok(at) => Some((floor.offset, at)),
                Err(e) => {
                    warn!(message = "log disk budget not recounted", partition = %part.tp, error = %e);
                    return;
                }
            },
            None => None,
        };
        floors.push((part, at));
    }
    let counting = budget.lock();
    let backlog = floors
        .iter()
        .map(|(part, at)| part.unconsumed_bytes(*at))
        .fold(0u64, u64::saturating_add);
    budget.backlog.store(backlog, Ordering::Relaxed);
    drop(counting);
    if budget.limit > 0 && backlog < budget.limit && budget.holding.swap(false, Ordering::Relaxed) {
        info!(
            message = "log disk budget: backlog under the budget again, appends accepted",
            dir = %shared.dir.display(),
            backlog_bytes = backlog,
            budget_bytes = budget.limit,
        );
    }
}
