//! The ledger: which files (by content checksum) were ingested, and how far into the file in
//! progress, so each file is ingested exactly once across restarts and crashes.
//!
//! Per batch: the ledger first records the batch as pending (its lines, and the end of every
//! log partition just before the append), then the append runs, then the ledger records the
//! batch as done. Each write is a whole-file replace with fsync (write, fsync, rename, fsync
//! the directory), so a crash leaves the old or the new ledger, never half of one. After a
//! crash with a batch pending, the source reads the log from the recorded ends to find which
//! of the batch's lines are already there, and appends only the others (`source.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A batch whose append may or may not have happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// First line of the batch.
    pub from_line: u64,
    /// Last line of the batch.
    pub to_line: u64,
    /// End offset of each `topic/partition` just before the append.
    pub ends: BTreeMap<String, i64>,
}

/// A file's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// The file's name when it was taken (for people).
    pub name: String,
    /// Every line up to and including this one is on the log.
    pub done_through: u64,
    /// A batch whose append may have happened.
    pub pending: Option<Pending>,
    /// The whole file is on the log (it may still have to be moved to `processed/`).
    pub finished: bool,
}

/// The ledger of one source.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    files: BTreeMap<String, FileState>,
}

impl Ledger {
    /// Opens (or creates) the ledger in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self> {
        let path = state_dir.join("ledger.json");
        let files = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::Config(format!(
                    "the CSV ledger {} is damaged ({e}); move it away to re-ingest every file in the folder",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        Ok(Self { path, files })
    }

    /// The state of the file with this checksum.
    pub fn get(&self, checksum: &str) -> Option<&FileState> {
        self.files.get(checksum)
    }

    /// Sets a file's state and writes the ledger durably.
    pub fn set(&mut self, checksum: &str, state: FileState) -> Result<()> {
        self.files.insert(checksum.to_owned(), state);
        self.save()
    }

    fn save(&self) -> Result<()> {
        let io = |what: &str, e| Error::io(format!("{what} {}", self.path.display()), e);
        let bytes = serde_json::to_vec(&self.files).map_err(|e| Error::Config(e.to_string()))?;
        crate::state_file::replace(&self.path, &bytes).map_err(|e| io("replacing", e))
    }
}
