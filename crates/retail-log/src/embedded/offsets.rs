//! Consumer groups' committed offsets, one small JSON file per group under
//! `<dir>/__consumer_offsets/`, replaced atomically on every commit so a crash leaves either the
//! previous or the new offsets, never a mix.
//!
//! These offsets are advisory in this project (the landing keeps its offsets of record in the
//! store, in the same transaction as the rows); they give a consumer its starting position and
//! tools their lag figures. Files are cached after first read; commits serialize on one lock,
//! which is fine at the rate consumers commit.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::files::write_atomic;
use crate::{Error, Result, TopicPartition};

type Offsets = BTreeMap<TopicPartition, i64>;

/// The committed offsets of every group.
#[derive(Debug)]
pub(crate) struct OffsetStore {
    dir: PathBuf,
    groups: Mutex<HashMap<String, Offsets>>,
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
    /// Offsets kept in `dir` (which must exist).
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            groups: Mutex::new(HashMap::new()),
        }
    }

    fn path(&self, group: &str) -> PathBuf {
        self.dir.join(format!("{group}.json"))
    }

    fn load<'a>(&self, groups: &'a mut HashMap<String, Offsets>, group: &str) -> Result<&'a mut Offsets> {
        if !groups.contains_key(group) {
            let path = self.path(group);
            let offsets = match std::fs::read(&path) {
                Ok(bytes) => {
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

    /// The group's committed next offsets, `None` where it has none.
    pub(crate) fn committed(&self, group: &str, tps: &[TopicPartition]) -> Result<Vec<Option<i64>>> {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let offsets = self.load(&mut groups, group)?;
        Ok(tps.iter().map(|tp| offsets.get(tp).copied()).collect())
    }

    /// Merges `commits` into the group's offsets and makes them durable.
    pub(crate) fn commit(&self, group: &str, commits: &[(TopicPartition, i64)]) -> Result<()> {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.load(&mut groups, group)?;
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
        write_atomic(&self.path(group), &bytes)?;
        *current = next;
        Ok(())
    }
}
