//! One segment file: where a crash leaves its mark, so recovery, the sparse index and the
//! checked reads all live here.
//!
//! A segment is `<base offset, 20 digits>.log`, a run of records with consecutive offsets from
//! its base (format in [`super::format`]). Only the writer thread appends to the active (last)
//! segment, with `pwrite`; readers use `pread` on the same handle and never look past
//! [`Segment::visible`], the end of data the writer has published (written, and fsynced under
//! `every_batch`). So anything a reader finds malformed inside the visible range is real
//! corruption, reported as [`Error::Corrupt`], never handed out.
//!
//! After a crash, only the active segment can have a torn tail (the writer fsyncs a segment
//! before creating the next one), so [`Segment::recover`] scans it fully and truncates at the
//! first record that is cut short, fails its checksum or breaks the offset sequence. A bad record
//! *followed by a good one with the next offset* is not a torn write (kill -9 only ever loses a
//! suffix) but damage in the middle: it is kept, logged, and reads of that offset fail.
//! Sealed segments are trusted by size and indexed lazily, on first use, so opening a large log
//! does not read all of it.
//!
//! A damaged record fails every read that reaches it as [`Error::DamagedRecord`] (topic,
//! partition, offset, file, byte). Only a reader asked to start *past* it goes on: it resyncs
//! on the next record that passes every check ([`Segment::resync`]), which works also when the
//! damaged record's length field is what was hit and its end cannot be known.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::UNIX_EPOCH;

use tracing::{error, warn};

use super::files::sync_dir;
use super::format;
use super::writer::now_ms;
use crate::record::ConsumedRecord;
use crate::{Error, Result, TopicPartition};

/// A sparse index entry every this many bytes: a lookup scans at most this much.
pub(crate) const INDEX_INTERVAL: u64 = 4096;
/// Bytes read per `pread` when scanning.
const SCAN_CHUNK: usize = 1 << 20;

/// File name of the segment starting at `base`.
pub(crate) fn file_name(base: i64) -> String {
    format!("{base:020}.log")
}

/// Base offset from a segment file name, `None` for other files.
pub(crate) fn parse_file_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Sparse offset -> byte position index and newest timestamp of a segment.
#[derive(Debug, Clone)]
pub(crate) struct SegIndex {
    /// `(offset, byte position)` of record starts, ascending, about every [`INDEX_INTERVAL`].
    pub entries: Vec<(i64, u64)>,
    /// Newest record timestamp, `i64::MIN` while empty.
    pub max_ts: i64,
}

/// One segment file, shared by the writer, readers and retention.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Offset of the first record.
    pub base: i64,
    /// The file, for error messages and deletion.
    pub path: PathBuf,
    file: File,
    /// Bytes of published records; readers stop here.
    visible: AtomicU64,
    /// `None` until a sealed segment from an earlier run is first used.
    index: RwLock<Option<SegIndex>>,
    /// Written but not fsynced yet (`interval` policy), queued for the background fsync.
    pub dirty: AtomicBool,
    /// Wall-clock time (epoch ms) of the last append: set at creation and by every publish, and
    /// taken from the file's modification time for segments of an earlier run. Age retention
    /// goes by this, not by the records' own timestamps, which are event times.
    appended_ms: AtomicI64,
}

/// Outcome of scanning a segment from its start.
struct Scan {
    /// End of the last good record.
    valid_end: u64,
    /// Offset after the last good record.
    next_offset: i64,
    index: SegIndex,
    /// Where and why the scan stopped before the end of the data.
    stop: Option<(u64, String)>,
}

/// One record as found in a file.
enum Frame<'a> {
    /// Whole, checksum and layout good.
    Good {
        bytes: &'a [u8],
        checked: format::Checked,
    },
    /// Whole (its length field fits the data) but fails its checksum or layout.
    Bad { size: usize, reason: String },
    /// Length field impossible or pointing past the end of the data.
    Torn { reason: String },
}

impl Frame<'_> {
    fn good_offset(&self) -> Option<i64> {
        match self {
            Frame::Good { checked, .. } => Some(checked.offset),
            _ => None,
        }
    }
}

/// Reads a file in large chunks so record-by-record parsing costs no syscall per record.
struct ChunkReader<'a> {
    file: &'a File,
    path: &'a Path,
    /// Nothing at or past this byte is read.
    limit: u64,
    buf: &'a mut Vec<u8>,
    /// File position of `buf[0]`.
    start: u64,
    /// Valid bytes in `buf`.
    filled: usize,
    /// Bytes to read per `pread` when less is asked for.
    chunk: usize,
}

impl<'a> ChunkReader<'a> {
    fn new(file: &'a File, path: &'a Path, limit: u64, buf: &'a mut Vec<u8>, chunk: usize) -> Self {
        Self {
            file,
            path,
            limit,
            buf,
            start: 0,
            filled: 0,
            chunk,
        }
    }

    /// Up to `n` bytes at `pos`, fewer only where `limit` cuts them.
    fn bytes(&mut self, pos: u64, n: usize) -> Result<&[u8]> {
        let end = self.start + self.filled as u64;
        if pos < self.start || pos + n as u64 > end {
            let want = (self.limit.saturating_sub(pos)).min(n.max(self.chunk) as u64) as usize;
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            self.file.read_exact_at(&mut self.buf[..want], pos).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    Error::Corrupt {
                        path: self.path.display().to_string(),
                        position: pos,
                        reason: format!("file ends before byte {} it should hold", pos + want as u64),
                    }
                } else {
                    Error::io(self.path, e)
                }
            })?;
            self.start = pos;
            self.filled = want;
        }
        let from = (pos - self.start) as usize;
        let to = (from + n).min(self.filled);
        Ok(&self.buf[from..to])
    }

    /// The record starting at `pos`.
    fn frame(&mut self, pos: u64) -> Result<Frame<'_>> {
        let head = self.bytes(pos, 4)?;
        if head.len() < 4 {
            return Ok(Frame::Torn {
                reason: format!("{} bytes, too few for a length field", head.len()),
            });
        }
        let size = match format::total_size(head) {
            Ok(size) => size,
            Err(reason) => return Ok(Frame::Torn { reason }),
        };
        let bytes = self.bytes(pos, size)?;
        if bytes.len() < size {
            return Ok(Frame::Torn {
                reason: format!("record of {size} bytes cut short after {} bytes", bytes.len()),
            });
        }
        Ok(match format::check(bytes) {
            Ok(checked) => Frame::Good { bytes, checked },
            Err(reason) => Frame::Bad { size, reason },
        })
    }
}

impl Segment {
    /// Creates an empty segment file and makes its directory entry durable.
    pub(crate) fn create(dir: &Path, base: i64) -> Result<Arc<Self>> {
        let path = dir.join(file_name(base));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        sync_dir(dir)?;
        let index = SegIndex {
            entries: Vec::new(),
            max_ts: i64::MIN,
        };
        Ok(Arc::new(Self::new(base, path, file, 0, Some(index), now_ms())))
    }

    /// Opens a sealed segment, trusting its size; it is indexed on first use.
    pub(crate) fn open_sealed(path: PathBuf, base: i64) -> Result<Arc<Self>> {
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(&path, e))?;
        let appended = modified_ms(&meta);
        Ok(Arc::new(Self::new(base, path, file, meta.len(), None, appended)))
    }

    /// Opens the active segment of a partition after a restart: scans it fully and cuts off a
    /// torn tail. Returns the segment and the offset after its last record.
    pub(crate) fn recover(path: PathBuf, base: i64) -> Result<(Arc<Self>, i64)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(&path, e))?;
        // Read before a truncation below would touch the file.
        let (len, appended) = (meta.len(), modified_ms(&meta));
        let scan = scan(&file, &path, base, len)?;
        if scan.valid_end < len {
            let (at, reason) = scan
                .stop
                .clone()
                .unwrap_or((scan.valid_end, "trailing bytes".to_owned()));
            warn!(
                message = "truncating torn tail of log segment",
                file = %path.display(),
                cut_bytes = len - scan.valid_end,
                from_byte = at,
                reason = %reason,
            );
            file.set_len(scan.valid_end).map_err(|e| Error::io(&path, e))?;
            file.sync_all().map_err(|e| Error::io(&path, e))?;
        }
        let seg = Self::new(base, path, file, scan.valid_end, Some(scan.index), appended);
        Ok((Arc::new(seg), scan.next_offset))
    }

    fn new(
        base: i64,
        path: PathBuf,
        file: File,
        visible: u64,
        index: Option<SegIndex>,
        appended_ms: i64,
    ) -> Self {
        Self {
            base,
            path,
            file,
            visible: AtomicU64::new(visible),
            index: RwLock::new(index),
            dirty: AtomicBool::new(false),
            appended_ms: AtomicI64::new(appended_ms),
        }
    }

    /// The file handle, for the writer's `pwrite` and `fdatasync`.
    pub(crate) const fn file(&self) -> &File {
        &self.file
    }

    /// End of published data in bytes.
    pub(crate) fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// Makes bytes up to `visible` readable, with the index entries and newest timestamp of the
    /// records just written, and stamps the append time. Called by the writer only, after the
    /// write (and fsync) completed.
    pub(crate) fn publish(&self, visible: u64, entries: &[(i64, u64)], max_ts: i64) {
        if visible > self.visible() {
            self.appended_ms.fetch_max(now_ms(), Ordering::AcqRel);
        }
        {
            let mut guard = self.index.write().unwrap_or_else(PoisonError::into_inner);
            if let Some(index) = guard.as_mut() {
                index.entries.extend_from_slice(entries);
                index.max_ts = index.max_ts.max(max_ts);
            }
        }
        self.visible.store(visible, Ordering::Release);
    }

    /// The index, scanning the file first if this segment has not been indexed yet.
    fn index(&self) -> Result<RwLockReadGuard<'_, Option<SegIndex>>> {
        {
            let guard = self.index.read().unwrap_or_else(PoisonError::into_inner);
            if guard.is_some() {
                return Ok(guard);
            }
        }
        let scan = scan(&self.file, &self.path, self.base, self.visible())?;
        if let Some((at, reason)) = &scan.stop {
            error!(
                message = "sealed log segment is damaged; reads of the damaged record fail until a reader is moved past it (retail-etl log skip)",
                file = %self.path.display(),
                position = at,
                reason = %reason,
            );
        }
        let mut guard = self.index.write().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(scan.index);
        }
        drop(guard);
        Ok(self.index.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Wall-clock time (epoch ms) this segment was last appended to.
    pub(crate) fn appended_ms(&self) -> i64 {
        self.appended_ms.load(Ordering::Acquire)
    }

    /// Newest record timestamp, `i64::MIN` when empty.
    pub(crate) fn max_timestamp(&self) -> Result<i64> {
        Ok(self.index()?.as_ref().map_or(i64::MIN, |i| i.max_ts))
    }

    /// Last indexed byte position (the writer continues spacing entries from there).
    pub(crate) fn last_index_position(&self) -> Result<u64> {
        Ok(self
            .index()?
            .as_ref()
            .and_then(|i| i.entries.last())
            .map_or(0, |e| e.1))
    }

    /// A record start at or before `offset`: `(its offset, its byte position)`.
    pub(crate) fn locate(&self, offset: i64) -> Result<(i64, u64)> {
        let guard = self.index()?;
        let entries = guard.as_ref().map_or(&[][..], |i| &i.entries[..]);
        let i = entries.partition_point(|e| e.0 <= offset);
        Ok(if i == 0 { (self.base, 0) } else { entries[i - 1] })
    }

    /// Reads records from the one at byte `*pos` (whose offset is `*at`), skipping those below
    /// `from` and appending at most `max` to `out`, up to the visible end. `at` and `pos` follow
    /// the records read, so after an error they point at the damaged record. `end` is the offset
    /// after this segment's last record as far as the partition knows (the next segment's base,
    /// or the high watermark for the active segment).
    ///
    /// A damaged record at or after `from` is [`Error::DamagedRecord`], on every read. One
    /// *before* `from` is stepped over, because the caller asked to start past it: the read
    /// resyncs on the next record that passes every check ([`Self::resync`]), or, when none
    /// follows in this segment, continues at `end` in the next one. If the records it cannot read
    /// reach `from` itself, that is an error too, reported as offset `from` (the reason names the
    /// whole run): nothing at or after `from` is ever passed over. A whole record with a later
    /// offset where `*at` belongs (the one before it missing) is resumed at, and stray bytes
    /// followed by the very record that belongs at `*at` are passed over with a warning, as no
    /// offset is lost.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn read(
        &self,
        at: &mut i64,
        pos: &mut u64,
        from: i64,
        end: i64,
        max: usize,
        bytes_left: &mut usize,
        topic: &str,
        partition: i32,
        buf: &mut Vec<u8>,
        out: &mut Vec<ConsumedRecord>,
    ) -> Result<()> {
        let limit = self.visible();
        // Enough for the records asked for, at a few hundred bytes each, in one pread.
        let chunk = (max.saturating_mul(512)).clamp(64 << 10, SCAN_CHUNK);
        let mut reader = ChunkReader::new(&self.file, &self.path, limit, buf, chunk);
        let damaged = |offset: i64, position: u64, reason: String| Error::DamagedRecord {
            tp: TopicPartition::new(topic, partition),
            offset,
            path: self.path.display().to_string(),
            position,
            reason,
        };
        let mut emitted = 0;
        // `bytes_left` reaching 0 ends the read after the record that reached it (PollLimit).
        while emitted < max && *pos < limit && *bytes_left > 0 {
            let reason = match reader.frame(*pos)? {
                Frame::Good { bytes, checked } if checked.offset == *at => {
                    if *at >= from {
                        let record =
                            format::decode(bytes, topic, partition).map_err(|r| damaged(*at, *pos, r))?;
                        *bytes_left = bytes_left.saturating_sub(crate::record_bytes(&record));
                        out.push(record);
                        emitted += 1;
                    }
                    *pos += bytes.len() as u64;
                    *at += 1;
                    continue;
                }
                // A whole record at the wrong place (one missing before it, or a stale copy):
                // damage like a bad checksum, but the record itself may be the one to resume at.
                Frame::Good { checked, .. } => format!("offset {} where {at} belongs", checked.offset),
                Frame::Bad { reason, .. } | Frame::Torn { reason } => reason,
            };
            let (next_pos, next) = match self.resync(*pos, *at, end)? {
                Some(found) => found,
                None => (limit, end),
            };
            if next == *at {
                // Stray bytes (a stale copy of an earlier record, say) before the record that
                // belongs here, whole and in sequence: no offset is lost by passing over them.
                warn!(
                    message = "passed over stray bytes in a log segment; no record is lost",
                    file = %self.path.display(),
                    position = *pos,
                    resumed_at = next_pos,
                    offset = next,
                    reason = %reason,
                );
                *pos = next_pos;
                continue;
            }
            if *at >= from {
                return Err(damaged(*at, *pos, reason));
            }
            if next > from {
                // The run that cannot be read starts below `from` and reaches it: reported as
                // `from`, the offset asked for, which is what the reader's owner can act on.
                let reason = format!(
                    "{reason}; offsets {at}..{} cannot be read, and offset {from} was asked for",
                    next - 1
                );
                return Err(damaged(from, *pos, reason));
            }
            warn!(
                message = "stepped over damaged log records below the offset asked for",
                file = %self.path.display(),
                position = *pos,
                offsets = %format!("{at}..{}", next - 1),
                reason = %reason,
            );
            *pos = next_pos;
            *at = next;
        }
        Ok(())
    }

    /// Where reading can go on after the damaged record at byte `pos` (offset `at`): the first
    /// byte position from `pos` on where a whole record with an offset in `at..end` passes its
    /// checksum and layout checks, as `(position, offset)`, or `None` when no such record follows
    /// in the visible data. `pos` itself counts: a whole record there with a later offset (the
    /// one before it missing) is where reading goes on, not damage to pass over. An offset of
    /// `at` itself means the bytes at `pos` are stray and nothing is lost. The length and offset fields are checked before the checksum, so
    /// the scan costs a few comparisons per byte and reads each byte about once; it never looks
    /// past the segment's visible end.
    pub(crate) fn resync(&self, pos: u64, at: i64, end: i64) -> Result<Option<(u64, i64)>> {
        // Length, checksum and offset fields: what a candidate is screened by.
        const HEAD: u64 = (format::PREFIX + 8) as u64;
        let limit = self.visible();
        let mut window = Vec::new();
        let mut record = Vec::new();
        let mut start = pos;
        while start + HEAD <= limit {
            let want = (limit - start).min(SCAN_CHUNK as u64 + HEAD) as usize;
            window.resize(want, 0);
            self.file
                .read_exact_at(&mut window, start)
                .map_err(|e| Error::io(&self.path, e))?;
            let candidates = want - HEAD as usize + 1;
            for i in 0..candidates {
                let p = start + i as u64;
                // The offset first: on garbage it is almost never in range, a branch the CPU
                // predicts, where a length check passes about half the time. Inline rather than
                // `format::total_size`, whose refusal allocates its message: this runs per byte.
                let Ok(offset_bytes) = <[u8; 8]>::try_from(&window[i + format::PREFIX..i + HEAD as usize])
                else {
                    continue;
                };
                let offset = i64::from_le_bytes(offset_bytes);
                if offset < at || offset >= end || (p == pos && offset == at) {
                    continue;
                }
                let Ok(len_bytes) = <[u8; 4]>::try_from(&window[i..i + 4]) else {
                    continue;
                };
                let len = u32::from_le_bytes(len_bytes);
                let size = 4 + len as usize;
                if !(format::MIN_LEN..=format::MAX_LEN).contains(&len) || p + size as u64 > limit {
                    continue;
                }
                record.resize(size, 0);
                self.file
                    .read_exact_at(&mut record, p)
                    .map_err(|e| Error::io(&self.path, e))?;
                if format::check(&record).is_ok_and(|c| c.offset == offset) {
                    return Ok(Some((p, offset)));
                }
            }
            start += candidates as u64;
        }
        Ok(None)
    }

    /// Up to `max` bytes of the segment from byte `from`, stopping at `to` (what an operator's
    /// skip keeps of a damaged record).
    pub(crate) fn raw_bytes(&self, from: u64, to: u64, max: usize) -> Result<Vec<u8>> {
        let to = to.min(self.visible()).min(from.saturating_add(max as u64));
        let mut bytes = vec![0; to.saturating_sub(from) as usize];
        self.file
            .read_exact_at(&mut bytes, from)
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(bytes)
    }

    /// The first record, in offset order, with a timestamp at or after `ts`.
    pub(crate) fn find_timestamp(&self, ts: i64) -> Result<Option<i64>> {
        let limit = self.visible();
        let mut buf = Vec::new();
        let mut reader = ChunkReader::new(&self.file, &self.path, limit, &mut buf, SCAN_CHUNK);
        let mut pos = 0;
        while pos < limit {
            match reader.frame(pos)? {
                Frame::Good { bytes, checked } => {
                    if checked.timestamp_ms >= ts {
                        return Ok(Some(checked.offset));
                    }
                    pos += bytes.len() as u64;
                }
                Frame::Bad { size, .. } => pos += size as u64,
                Frame::Torn { reason } => return Err(self.corrupt(pos, reason)),
            }
        }
        Ok(None)
    }

    fn corrupt(&self, position: u64, reason: String) -> Error {
        Error::Corrupt {
            path: self.path.display().to_string(),
            position,
            reason,
        }
    }
}

/// A file's modification time in epoch ms, the time it was last appended to. When the file
/// system cannot tell, now: the segment then gets a full retention period from this open.
fn modified_ms(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or_else(now_ms)
}

/// Walks a segment from its start, building its index, until the end of `len` bytes or the
/// first record that cannot be trusted.
fn scan(file: &File, path: &Path, base: i64, len: u64) -> Result<Scan> {
    let mut buf = Vec::new();
    let mut reader = ChunkReader::new(file, path, len, &mut buf, SCAN_CHUNK);
    let mut index = SegIndex {
        entries: Vec::new(),
        max_ts: i64::MIN,
    };
    let (mut pos, mut expected, mut last_indexed) = (0u64, base, 0u64);
    let mut stop = None;
    while pos < len {
        let seen = match reader.frame(pos)? {
            Frame::Good { bytes, checked } => Ok((bytes.len(), checked)),
            Frame::Bad { size, reason } => Err((size, reason)),
            Frame::Torn { reason } => {
                stop = Some((pos, reason));
                break;
            }
        };
        let (size, ts) = match seen {
            Ok((size, checked)) if checked.offset == expected => (size, Some(checked.timestamp_ms)),
            Ok((_, checked)) => {
                stop = Some((pos, format!("offset {} where {expected} belongs", checked.offset)));
                break;
            }
            Err((size, reason)) => {
                let next = pos + size as u64;
                if reader.frame(next)?.good_offset() == Some(expected + 1) {
                    error!(
                        message = "damaged record inside log segment; reading it will fail",
                        file = %path.display(),
                        position = pos,
                        offset = expected,
                        reason = %reason,
                    );
                    (size, None)
                } else {
                    stop = Some((pos, reason));
                    break;
                }
            }
        };
        if let Some(ts) = ts {
            if pos - last_indexed >= INDEX_INTERVAL {
                index.entries.push((expected, pos));
                last_indexed = pos;
            }
            index.max_ts = index.max_ts.max(ts);
        }
        pos += size as u64;
        expected += 1;
    }
    Ok(Scan {
        valid_end: pos,
        next_offset: expected,
        index,
        stop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_sort_by_offset_and_round_trip() {
        assert_eq!(file_name(42), "00000000000000000042.log");
        assert_eq!(parse_file_name(&file_name(123_456)), Some(123_456));
        assert_eq!(parse_file_name("00000000000000000042.log.tmp"), None);
        assert_eq!(parse_file_name("42.log"), None);
        assert_eq!(parse_file_name("-0000000000000000042.log"), None);
        assert!(file_name(9) < file_name(10));
    }
}
