//! The identity journal: which event id and time a message without its own was given, so that
//! the broker's redelivery of that message lands once.
//!
//! A QoS 1 message we appended but whose PUBACK the broker never saw (we crashed, or the
//! connection dropped) is sent again, with the DUP flag and the same packet id. A message that
//! carries `event_id` and `ts` needs nothing: the landing's event ledger drops the second copy.
//! One without them would get a new id and time on each delivery and land twice. So before a
//! batch is appended, the identities given to such messages are appended to
//! `<state-dir>/identities.tsv` (one `fdatasync` per batch); a redelivered message (DUP set)
//! with the same packet id, topic and payload gets its identity back. If the crash came before
//! the journal write, nothing was appended either, and a fresh identity is right.
//!
//! The journal keeps the last [`CAPACITY`] identities (fewer than the 65,535 packet ids, so a
//! packet id cannot be reused by another message with the same bytes within it) and is
//! rewritten compactly when the file holds twice that many lines.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use sha2::Digest;
use uuid::Uuid;

use crate::{Error, Result};

/// Identities kept.
pub const CAPACITY: usize = 20_000;

/// What identifies one delivery of a message: its packet id and a hash of topic and payload.
pub type Key = (u16, [u8; 16]);

/// The id and event time a message was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The event id (and the dead letter's id for a refused message).
    pub id: Uuid,
    /// The event time given (receipt time), epoch ms.
    pub ts_ms: i64,
}

/// The key of a delivery.
pub fn key(pkid: u16, topic: &str, payload: &[u8]) -> Key {
    let mut h = sha2::Sha256::new();
    h.update(topic.as_bytes());
    h.update([0]);
    h.update(payload);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    (pkid, out)
}

/// The journal of given identities.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    entries: HashMap<Key, Identity>,
    order: VecDeque<Key>,
    lines: usize,
}

impl Journal {
    /// Opens (or creates) the journal in `state_dir`. A torn last line (a crash mid-write) is
    /// ignored: its batch was never appended.
    pub fn open(state_dir: &Path) -> Result<Self> {
        let path = state_dir.join("identities.tsv");
        let mut journal = Self {
            file: open_append(&path)?,
            path,
            entries: HashMap::new(),
            order: VecDeque::new(),
            lines: 0,
        };
        let shown = journal.path.display().to_string();
        let what = || format!("reading {shown}");
        let text = std::fs::read(&journal.path).map_err(|e| Error::io(what(), e))?;
        // Cut a torn last line off, or the next write would be glued onto it and lost.
        let whole = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if whole < text.len() {
            journal
                .file
                .set_len(whole as u64)
                .and_then(|()| journal.file.sync_data())
                .map_err(|e| Error::io(format!("truncating the torn end of {shown}"), e))?;
        }
        for line in BufReader::new(&text[..whole]).lines() {
            let line = line.map_err(|e| Error::io(what(), e))?;
            journal.lines += 1;
            if let Some((key, identity)) = parse(&line) {
                journal.remember(key, identity);
            }
        }
        Ok(journal)
    }

    /// The identity given to the delivery `key`, if any.
    pub fn get(&self, key: &Key) -> Option<Identity> {
        self.entries.get(key).copied()
    }

    /// Writes `given` durably, then remembers it. Called before the batch is appended.
    pub fn record(&mut self, given: &[(Key, Identity)]) -> Result<()> {
        if given.is_empty() {
            return Ok(());
        }
        let mut text = String::with_capacity(given.len() * 96);
        for (key, identity) in given {
            text.push_str(&line(key, identity));
        }
        let what = || format!("writing {}", self.path.display());
        self.file
            .write_all(text.as_bytes())
            .map_err(|e| Error::io(what(), e))?;
        self.file.sync_data().map_err(|e| Error::io(what(), e))?;
        self.lines += given.len();
        for (key, identity) in given {
            self.remember(*key, *identity);
        }
        if self.lines > 2 * CAPACITY {
            self.compact()?;
        }
        Ok(())
    }

    fn remember(&mut self, key: Key, identity: Identity) {
        if self.entries.insert(key, identity).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }

    /// Rewrites the file with the kept identities only, replaced durably.
    fn compact(&mut self) -> Result<()> {
        let what = || format!("compacting {}", self.path.display());
        let mut text = String::with_capacity(self.order.len() * 96);
        for key in &self.order {
            if let Some(identity) = self.entries.get(key) {
                text.push_str(&line(key, identity));
            }
        }
        crate::state_file::replace(&self.path, text.as_bytes()).map_err(|e| Error::io(what(), e))?;
        self.file = open_append(&self.path)?;
        self.lines = self.order.len();
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

fn line((pkid, hash): &Key, identity: &Identity) -> String {
    format!(
        "{pkid}\t{}\t{}\t{}\n",
        hex::encode(hash),
        identity.id,
        identity.ts_ms
    )
}

fn parse(line: &str) -> Option<(Key, Identity)> {
    let mut parts = line.split('\t');
    let pkid = parts.next()?.parse().ok()?;
    let mut hash = [0u8; 16];
    hex::decode_to_slice(parts.next()?, &mut hash).ok()?;
    let id = Uuid::try_parse(parts.next()?).ok()?;
    let ts_ms = parts.next()?.parse().ok()?;
    parts
        .next()
        .is_none()
        .then_some(((pkid, hash), Identity { id, ts_ms }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(n: u128) -> Identity {
        Identity {
            id: Uuid::from_u128(n),
            ts_ms: 1_700_000_000_000 + n as i64,
        }
    }

    #[test]
    fn identities_survive_a_reopen_and_a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let k1 = key(1, "stores/1/lanes/2/status", b"{}");
        let k2 = key(2, "stores/1/lanes/2/status", b"{}");
        {
            let mut j = Journal::open(dir.path()).expect("opens");
            j.record(&[(k1, identity(1)), (k2, identity(2))])
                .expect("records");
        }
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("identities.tsv"))
            .expect("file");
        f.write_all(b"3\tabc").expect("torn write");
        let mut j = Journal::open(dir.path()).expect("reopens");
        assert_eq!(j.get(&k1), Some(identity(1)));
        assert_eq!(j.get(&k2), Some(identity(2)));
        assert_eq!(
            j.get(&key(1, "stores/1/lanes/2/status", b"{ }")),
            None,
            "another payload"
        );
        // What is written after a torn line survives the next reopen.
        let k3 = key(3, "stores/1/lanes/2/status", b"{}");
        j.record(&[(k3, identity(3))]).expect("records");
        drop(j);
        let j = Journal::open(dir.path()).expect("reopens again");
        assert_eq!(j.get(&k3), Some(identity(3)));
        assert_eq!(j.get(&k1), Some(identity(1)));
    }

    #[test]
    fn the_journal_keeps_the_last_identities_and_compacts_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut j = Journal::open(dir.path()).expect("opens");
        let total = 2 * CAPACITY + 10;
        let given: Vec<_> = (0..total)
            .map(|n| {
                (
                    key((n % 60_000) as u16, "t", &n.to_le_bytes()),
                    identity(n as u128),
                )
            })
            .collect();
        for chunk in given.chunks(1000) {
            j.record(chunk).expect("records");
        }
        assert_eq!(j.get(&given[0].0), None, "the oldest is forgotten");
        assert_eq!(j.get(&given[total - 1].0), Some(given[total - 1].1));
        let reopened = Journal::open(dir.path()).expect("reopens");
        assert_eq!(reopened.get(&given[total - 1].0), Some(given[total - 1].1));
        assert!(
            reopened.lines <= 2 * CAPACITY,
            "compacted: {} lines",
            reopened.lines
        );
    }
}
