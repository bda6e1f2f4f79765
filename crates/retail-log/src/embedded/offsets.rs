//! Consumer groups' committed offsets, one small JSON file per group under
//! `<dir>/__consumer_offsets/`, replaced atomically on every commit so a crash leaves either the
//! previous or the new offsets, never a mix.
//!
//! These offsets give a consumer its starting position, tools their lag figures, and retention
//! its floor: no segment holding an offset at or above the smallest offset any group committed
//! for a partition is deleted (see [`OffsetStore::floor`]). The landing keeps its offsets of
//! record in the store, in the same transaction as the rows, and mirrors them here about once a
//! second while it lands, so the log keeps at least what the landing has not stored yet.
//!
//! Every group file is read at open (retention needs every group, not only those a consumer
//! asked for) and kept in memory; commits update the memory after the file. Commits serialize
//! on one lock, which is fine at the rate consumers commit.
//!
//! Idle groups expire (issue 18, item 3): a group that has no open consumer in this process and
//! has not committed for `group_idle_expiry_ms` (wall-clock time since its last commit; the
//! file's modification time across restarts, since every commit replaces the file) no longer
//! holds retention back. Its offsets stay on disk: a consumer that comes back still starts from
//! them, and learns from [`crate::Error::OffsetOutOfRange`] if retention passed them meanwhile.
//! So a finished replay (group `replay<suffix>`) stops pinning the log a while after it ends,
//! while a landing that is running keeps its floor however long it has nothing to land.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tracing::{error, info};

use super::files::write_atomic;
use super::writer::now_ms;
use crate::{Error, Result, TopicPartition};

type Offsets = BTreeMap<TopicPartition, i64>;

/// The committed offsets of every group.
#[derive(Debug)]
pub(crate) struct OffsetStore {
    dir: PathBuf,
    groups: Mutex<Groups>,
}

#[derive(Debug, Default)]
struct Groups {
    /// Offsets by group, read from disk or committed.
    offsets: HashMap<String, Offsets>,
    /// Groups with a file that could not be read: retention cannot know their floor.
    unreadable: BTreeSet<String>,
    /// Wall-clock ms of each group's last commit (its file's modification time until it
    /// commits in this process).
    last_commit_ms: HashMap<String, i64>,
    /// Open consumers per group: a group with one never expires.
    members: HashMap<String, usize>,
    /// Groups already logged as expired (until they commit again).
    expired: BTreeSet<String>,
}

/// When a group stops holding retention back: idle (no open consumer, no commit) for `idle_ms`
/// as of `now_ms`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expiry {
    /// Wall-clock now, ms since the epoch.
    pub now_ms: i64,
    /// Idle time after which a group expires; 0 never expires.
    pub idle_ms: u64,
}

impl Groups {
    /// Whether `group` has expired under `expiry`.
    fn is_expired(&self, group: &str, expiry: Expiry) -> bool {
        let idle_ms = i64::try_from(expiry.idle_ms).unwrap_or(i64::MAX);
        expiry.idle_ms > 0
            && self.members.get(group).copied().unwrap_or(0) == 0
            && self
                .last_commit_ms
                .get(group)
                .is_some_and(|&at| expiry.now_ms.saturating_sub(at) >= idle_ms)
    }
}

/// The smallest offset committed for a partition, and the group that committed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Floor {
    /// Next offset the group will read: everything from here on is unconsumed.
    pub offset: i64,
    /// The group holding the floor (for the log line when retention is held back).
    pub group: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    group: String,
    offsets: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    topic: String,
    partition: i32,
    offset: i64,
}

impl OffsetStore {
    /// Offsets kept in `dir` (which must exist), reading every group file there now. A file
    /// that cannot be read is logged and retried when it is next needed; until it reads,
    /// [`Self::floor`] fails, so retention deletes nothing rather than guess.
    pub(crate) fn open(dir: PathBuf) -> Result<Self> {
        let store = Self {
            dir,
            groups: Mutex::new(Groups::default()),
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&store.dir).map_err(|e| Error::io(&store.dir, e))? {
            let entry = entry.map_err(|e| Error::io(&store.dir, e))?;
            // `<group>.json`; a `<group>.json.tmp` left by a crash mid-commit is not a group.
            if let Some(group) = entry.file_name().to_str().and_then(|n| n.strip_suffix(".json")) {
                names.push(group.to_owned());
            }
        }
        {
            let mut guard = store.groups.lock().unwrap_or_else(PoisonError::into_inner);
            let groups = &mut *guard;
            for group in names {
                if let Err(e) = Self::load(
                    &store.dir,
                    &mut groups.offsets,
                    &group,
                    &mut groups.last_commit_ms,
                ) {
                    error!(message = "committed offsets unreadable; log retention is paused until they read", group, error = %e);
                    groups.unreadable.insert(group);
                }
            }
        }
        Ok(store)
    }

    fn path(dir: &std::path::Path, group: &str) -> PathBuf {
        dir.join(format!("{group}.json"))
    }

    fn load<'a>(
        dir: &std::path::Path,
        groups: &'a mut HashMap<String, Offsets>,
        group: &str,
        last_commit_ms: &mut HashMap<String, i64>,
    ) -> Result<&'a mut Offsets> {
        if !groups.contains_key(group) {
            let path = Self::path(dir, group);
            let offsets = match std::fs::read(&path) {
                Ok(bytes) => {
                    // Every commit replaces the file: its modification time is the last
                    // commit's. Unknown, the group counts as having committed now.
                    let modified = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .and_then(|d| i64::try_from(d.as_millis()).ok())
                        .unwrap_or_else(now_ms);
                    last_commit_ms.insert(group.to_owned(), modified);
                    let file: GroupFile = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                        path: path.display().to_string(),
                        position: e.column() as u64,
                        reason: format!("unreadable committed offsets (line {}): {e}", e.line()),
                    })?;
                    file.offsets
                        .into_iter()
                        .map(|e| (TopicPartition::new(e.topic, e.partition), e.offset))
                        .collect()
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Offsets::new(),
                Err(e) => return Err(Error::io(&path, e)),
            };
            groups.insert(group.to_owned(), offsets);
        }
        groups
            .get_mut(group)
            .ok_or_else(|| Error::Config(format!("consumer group {group:?} vanished from the offset cache")))
    }

    /// Every group that committed offsets (or whose file cannot be read), sorted.
    pub(crate) fn groups(&self) -> Vec<String> {
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<String> = groups
            .offsets
            .iter()
            .filter(|(_, offsets)| !offsets.is_empty())
            .map(|(group, _)| group)
            .chain(groups.unreadable.iter())
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The group's committed next offsets, `None` where it has none.
    pub(crate) fn committed(&self, group: &str, tps: &[TopicPartition]) -> Result<Vec<Option<i64>>> {
        let mut guard = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let groups = &mut *guard;
        let offsets = Self::load(&self.dir, &mut groups.offsets, group, &mut groups.last_commit_ms)?;
        Ok(tps.iter().map(|tp| offsets.get(tp).copied()).collect())
    }

    /// The smallest offset any group committed for `tp`, `None` when no group ever committed
    /// for it. With `expiry`, groups expired under it (see the module docs) are left out.
    /// Fails while a group file is unreadable (that group's floor is unknown). Reads memory
    /// only, except to retry an unreadable file.
    pub(crate) fn floor(&self, tp: &TopicPartition, expiry: Option<Expiry>) -> Result<Option<Floor>> {
        let mut guard = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let groups = &mut *guard;
        let mut failed = None;
        for group in std::mem::take(&mut groups.unreadable) {
            // A group that reads now is cached by `load`; one that still does not stays listed.
            if let Err(e) = Self::load(&self.dir, &mut groups.offsets, &group, &mut groups.last_commit_ms) {
                groups.unreadable.insert(group);
                failed.get_or_insert(e);
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let mut floor: Option<Floor> = None;
        let mut newly_expired = Vec::new();
        for (group, offsets) in &groups.offsets {
            if let Some(&offset) = offsets.get(tp) {
                if expiry.is_some_and(|x| groups.is_expired(group, x)) {
                    if !groups.expired.contains(group) {
                        newly_expired.push(group.clone());
                    }
                    continue;
                }
                if floor.as_ref().is_none_or(|f| offset < f.offset) {
                    floor = Some(Floor {
                        offset,
                        group: group.clone(),
                    });
                }
            }
        }
        for group in newly_expired {
            let idle_ms = expiry.map_or(0, |x| x.idle_ms);
            info!(
                message = "consumer group idle past log.embedded.group_idle_expiry_ms; it no longer holds log retention back",
                group,
                idle_expiry_ms = idle_ms,
            );
            groups.expired.insert(group);
        }
        Ok(floor)
    }

    /// A consumer of `group` opened: the group does not expire while it is open.
    pub(crate) fn join(&self, group: &str) {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        *groups.members.entry(group.to_owned()).or_insert(0) += 1;
    }

    /// A consumer of `group` closed.
    pub(crate) fn leave(&self, group: &str) {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = groups.members.get_mut(group) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                groups.members.remove(group);
            }
        }
    }

    /// Merges `commits` into the group's offsets and makes them durable.
    pub(crate) fn commit(&self, group: &str, commits: &[(TopicPartition, i64)]) -> Result<()> {
        let mut guard = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let groups = &mut *guard;
        let current = Self::load(&self.dir, &mut groups.offsets, group, &mut groups.last_commit_ms)?;
        let mut next = current.clone();
        for (tp, offset) in commits {
            next.insert(tp.clone(), *offset);
        }
        let file = GroupFile {
            group: group.to_owned(),
            offsets: next
                .iter()
                .map(|(tp, &offset)| Entry {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset,
                })
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| Error::Config(format!("consumer group {group:?}: cannot encode offsets: {e}")))?;
        write_atomic(&Self::path(&self.dir, group), &bytes)?;
        *current = next;
        groups.last_commit_ms.insert(group.to_owned(), now_ms());
        groups.expired.remove(group);
        Ok(())
    }
}
