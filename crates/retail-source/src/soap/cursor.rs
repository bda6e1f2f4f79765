//! The poller's cursor: the key (timestamp, payment id) of the last payment on the log, kept in
//! `<data-dir>/sources/<name>/cursor.json`.
//!
//! It is written only after the append of its page returned, and always whole: write
//! `cursor.json.tmp`, fsync it, rename it over `cursor.json`, fsync the directory. A kill at any
//! point leaves the previous or the new cursor, never half of one; a torn `cursor.json.tmp` is
//! ignored (and replaced by the next write). A crash between the append and the rename polls
//! the page again, whose payments get the same derived ids, so the landing lands them once.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::xml::parse_ts;
use crate::{Error, Result};

/// The file name of the cursor in the state directory.
pub const CURSOR_FILE: &str = "cursor.json";

/// Where the poller is: every payment up to this one, in the service's order, is on the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The timestamp as the service wrote it (sent back as `{cursor_ts}` unchanged, so no
    /// precision is lost in a round trip through our own format).
    pub ts: String,
    /// The payment id (`{cursor_id}`); empty before the first payment.
    pub id: String,
}

impl Cursor {
    /// The cursor before the first payment at `start`.
    pub fn start(start: &str) -> Self {
        Self {
            ts: start.to_owned(),
            id: String::new(),
        }
    }

    /// The instant of `ts` (the epoch if it does not parse, which validation prevents).
    pub fn instant(&self) -> DateTime<Utc> {
        parse_ts(&self.ts).unwrap_or(DateTime::UNIX_EPOCH)
    }

    /// Key order: instant, then payment id (byte order).
    pub fn cmp_key(&self, other: &Self) -> Ordering {
        self.instant()
            .cmp(&other.instant())
            .then_with(|| self.id.as_bytes().cmp(other.id.as_bytes()))
    }

    /// `(ts, "id")` for messages.
    pub fn show(&self) -> String {
        format!("({}, {:?})", self.ts, self.id)
    }
}

/// The cursor file of one source.
#[derive(Debug)]
pub struct CursorFile {
    path: PathBuf,
}

impl CursorFile {
    /// The cursor file in `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(CURSOR_FILE),
        }
    }

    /// The saved cursor, `None` before the first save. A damaged file (only a hand edit can do
    /// that) is an error naming it.
    pub fn load(&self) -> Result<Option<Cursor>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::Config(format!(
                    "the SOAP cursor {} is damaged ({e}); fix it, or remove it to poll again from `start`",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", self.path.display()), e)),
        }
    }

    /// Replaces the saved cursor durably.
    pub fn save(&self, cursor: &Cursor) -> Result<()> {
        let io = |what: &str, e| Error::io(format!("{what} {}", self.path.display()), e);
        let bytes = serde_json::to_vec(cursor).map_err(|e| Error::Config(e.to_string()))?;
        crate::state_file::replace(&self.path, &bytes).map_err(|e| io("replacing", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_temporary_file_is_ignored_and_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = CursorFile::new(dir.path());
        assert_eq!(file.load().expect("loads"), None);
        let c = Cursor {
            ts: "2026-11-30T10:00:00.000Z".into(),
            id: "p-7".into(),
        };
        file.save(&c).expect("saves");
        // A kill in the middle of the next save: half a temporary file.
        std::fs::write(dir.path().join("cursor.json.tmp"), b"{\"ts\":\"2026-12").expect("torn");
        assert_eq!(file.load().expect("loads"), Some(c.clone()));
        let next = Cursor {
            id: "p-8".into(),
            ..c
        };
        file.save(&next).expect("saves over the torn file");
        assert_eq!(file.load().expect("loads"), Some(next));
    }

    #[test]
    fn keys_order_by_instant_then_id() {
        let k = |ts: &str, id: &str| Cursor {
            ts: ts.into(),
            id: id.into(),
        };
        assert_eq!(
            k("2026-11-30T10:00:00Z", "b").cmp_key(&k("2026-11-30T11:00:00+01:00", "a")),
            Ordering::Greater
        );
        assert_eq!(
            k("2026-11-30T10:00:00Z", "").cmp_key(&k("2026-11-30T10:00:00.000Z", "a")),
            Ordering::Less
        );
    }
}
