//! Topics on disk: name rules (a topic name becomes a directory name), `meta.json` with the
//! partition count, and creating or reopening a topic's partitions.
//!
//! `meta.json` is written last and atomically when a topic is created, so a topic directory
//! without it is a creation that crashed half-way: it is ignored at open and completed by the
//! next `ensure_topic`.

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::files::{sync_dir, write_atomic};
use super::partition::{partition_dir, Partition};
use crate::{Error, Result, TopicPartition};

/// Directory of the consumer groups' committed offsets; no topic may take this name.
pub(crate) const OFFSETS_DIR: &str = "__consumer_offsets";
/// Most partitions a topic may have.
const MAX_PARTITIONS: i32 = 10_000;

/// A topic and its partitions.
#[derive(Debug)]
pub(crate) struct Topic {
    /// Name.
    pub name: String,
    /// Partitions by number.
    pub partitions: Vec<Arc<Partition>>,
    round_robin: AtomicU32,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    partitions: i32,
}

impl Topic {
    /// The partition for the next record without key or partition.
    pub(crate) fn next_round_robin(&self) -> usize {
        self.round_robin.fetch_add(1, Ordering::Relaxed) as usize % self.partitions.len().max(1)
    }

    /// Reopens a topic directory; `None` when it has no `meta.json` (an interrupted creation).
    pub(crate) fn load(dir: &Path, name: &str, ids: &AtomicUsize) -> Result<Option<Self>> {
        let meta_path = dir.join(name).join("meta.json");
        let bytes = match std::fs::read(&meta_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&meta_path, e)),
        };
        let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: meta_path.display().to_string(),
            position: e.column() as u64,
            reason: format!("unreadable topic metadata: {e}"),
        })?;
        if !(1..=MAX_PARTITIONS).contains(&meta.partitions) {
            return Err(Error::Corrupt {
                path: meta_path.display().to_string(),
                position: 0,
                reason: format!("partition count {} out of range", meta.partitions),
            });
        }
        Self::open_partitions(dir, name, meta.partitions, ids).map(Some)
    }

    /// Creates a topic (or completes an interrupted creation): partition directories with an
    /// empty first segment, then `meta.json`.
    pub(crate) fn create(dir: &Path, name: &str, partitions: i32, ids: &AtomicUsize) -> Result<Self> {
        let topic_dir = dir.join(name);
        std::fs::create_dir_all(&topic_dir).map_err(|e| Error::io(&topic_dir, e))?;
        sync_dir(dir)?;
        let topic = Self::open_partitions(dir, name, partitions, ids)?;
        let meta = serde_json::to_vec_pretty(&Meta { partitions })
            .map_err(|e| Error::Config(format!("topic {name:?}: cannot encode metadata: {e}")))?;
        write_atomic(&topic_dir.join("meta.json"), &meta)?;
        Ok(topic)
    }

    fn open_partitions(dir: &Path, name: &str, count: i32, ids: &AtomicUsize) -> Result<Self> {
        let partitions = (0..count)
            .map(|p| {
                let tp = TopicPartition::new(name, p);
                let pdir = partition_dir(dir, &tp);
                Partition::open(ids.fetch_add(1, Ordering::Relaxed), tp, pdir).map(Arc::new)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            name: name.to_owned(),
            partitions,
            round_robin: AtomicU32::new(0),
        })
    }
}

/// Checks a topic or group name: `[A-Za-z0-9._-]{1,249}`, not `.` or `..`, not reserved.
/// `kind` names what is checked in the error. The Kafka backend and the landing's
/// configuration check names by the same rule, so a name is good or bad on every backend.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if name.is_empty() || name.len() > 249 || !name.bytes().all(allowed) {
        return Err(Error::Config(format!(
            "{kind} name {name:?} is invalid: use 1 to 249 of the characters A-Z a-z 0-9 . _ -"
        )));
    }
    if name == "." || name == ".." || name == OFFSETS_DIR {
        return Err(Error::Config(format!("{kind} name {name:?} is reserved")));
    }
    Ok(())
}

/// Checks a partition count asked for.
pub(crate) fn validate_partition_count(topic: &str, partitions: i32) -> Result<()> {
    if (1..=MAX_PARTITIONS).contains(&partitions) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "topic {topic:?}: partition count {partitions} must be 1 to {MAX_PARTITIONS}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_log_directory() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "sales raw",
            "é",
            OFFSETS_DIR,
            &"x".repeat(250),
        ] {
            assert!(validate_name("topic", bad).is_err(), "{bad:?} accepted");
        }
        for good in ["sales", "sales.raw-v2", "_x", "..."] {
            assert!(validate_name("topic", good).is_ok(), "{good:?} rejected");
        }
    }
}
