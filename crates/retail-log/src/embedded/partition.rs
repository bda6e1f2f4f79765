//! One partition: its ordered list of segments and its two watermarks, the state every reader,
//! the writer and retention agree on.
//!
//! The segment list only changes at its ends: the writer pushes a new segment when it rolls,
//! retention drains old ones from the front. Readers clone the `Arc` of the segment they read, so
//! a segment deleted under a reader stays readable through its open handle until the reader moves
//! on; a reader whose next offset is gone gets [`Error::OffsetOutOfRange`], never the next
//! offset that still exists.
//!
//! The high watermark is stored by the writer after a round's data is durable (under the fsync
//! policy) and after the segments' visible ends were published, so a reader that sees an offset
//! below it is guaranteed to find that record complete in a segment.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use tracing::{info, warn};

use super::files::sync_dir;
use super::offsets::Floor;
use super::segment::{self, Segment};
use crate::record::ConsumedRecord;
use crate::{Error, Result, TopicPartition};

/// A partition of a topic.
#[derive(Debug)]
pub(crate) struct Partition {
    /// Dense number of this partition in the whole log, for the writer's state table.
    pub id: usize,
    /// Topic and partition.
    pub tp: TopicPartition,
    /// `<dir>/<topic>/<partition>`.
    pub dir: PathBuf,
    segments: RwLock<Vec<Arc<Segment>>>,
    low: AtomicI64,
    high: AtomicI64,
}

/// A damaged record as [`EmbeddedLog::damaged_span`](super::EmbeddedLog::damaged_span) finds it: what an operator skipping it
/// needs to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedSpan {
    /// Partition.
    pub tp: TopicPartition,
    /// Offset of the damaged record.
    pub offset: i64,
    /// The next offset a reader can resume at: the first record after the damage that passes
    /// every check, or the next segment's base (or the high watermark) when none follows in the
    /// segment. Offsets `offset..next` are the ones a skip passes over.
    pub next: i64,
    /// Segment file.
    pub path: String,
    /// Byte position of the damaged record in the segment.
    pub position: u64,
    /// What was wrong with it.
    pub reason: String,
    /// Its bytes as they are on disk, from `position` to where reading resumes (capped).
    pub raw: Vec<u8>,
}

/// Where a reader stands in a partition, so the next read continues without an index lookup.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    /// Segment holding the next record.
    pub segment: Arc<Segment>,
    /// Offset of the next record.
    pub offset: i64,
    /// Byte position of the next record.
    pub position: u64,
}

impl Partition {
    /// Opens a partition directory, recovering its active segment, or creates it empty.
    pub(crate) fn open(id: usize, tp: TopicPartition, dir: PathBuf) -> Result<Self> {
        if !dir.exists() {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let name = entry.file_name();
            match name.to_str().and_then(segment::parse_file_name) {
                Some(base) => bases.push(base),
                None => {
                    warn!(message = "ignoring unknown file in log partition", file = %entry.path().display())
                }
            }
        }
        bases.sort_unstable();
        let mut segments = Vec::with_capacity(bases.len().max(1));
        let high = match bases.split_last() {
            None => {
                segments.push(Segment::create(&dir, 0)?);
                0
            }
            Some((&last, sealed)) => {
                for &base in sealed {
                    segments.push(Segment::open_sealed(dir.join(segment::file_name(base)), base)?);
                }
                let (active, next) = Segment::recover(dir.join(segment::file_name(last)), last)?;
                segments.push(active);
                next
            }
        };
        let low = segments.first().map_or(high, |s| s.base);
        Ok(Self {
            id,
            tp,
            dir,
            segments: RwLock::new(segments),
            low: AtomicI64::new(low),
            high: AtomicI64::new(high),
        })
    }

    /// First available offset and next offset to be written.
    pub(crate) fn watermarks(&self) -> (i64, i64) {
        // High first: retention never moves low past high, so low <= high holds.
        let high = self.high.load(Ordering::Acquire);
        (self.low.load(Ordering::Acquire).min(high), high)
    }

    /// Publishes a new high watermark (writer only).
    pub(crate) fn set_high(&self, high: i64) {
        self.high.store(high, Ordering::Release);
    }

    /// The segment new records go to.
    pub(crate) fn active(&self) -> Arc<Segment> {
        let segments = self.segments.read().unwrap_or_else(PoisonError::into_inner);
        // The list is never empty: open creates a segment and retention keeps the last one.
        Arc::clone(&segments[segments.len() - 1])
    }

    /// Adds a new active segment (writer only, on roll).
    pub(crate) fn push_segment(&self, segment: Arc<Segment>) {
        self.segments
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(segment);
    }

    fn snapshot(&self) -> Vec<Arc<Segment>> {
        self.segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The segment that holds `offset`, if any still does.
    fn segment_for(&self, offset: i64) -> Option<Arc<Segment>> {
        let segments = self.segments.read().unwrap_or_else(PoisonError::into_inner);
        let i = segments.partition_point(|s| s.base <= offset);
        (i > 0).then(|| Arc::clone(&segments[i - 1]))
    }

    /// The segment after the one starting at `base`.
    fn segment_after(&self, base: i64) -> Option<Arc<Segment>> {
        let segments = self.segments.read().unwrap_or_else(PoisonError::into_inner);
        let i = segments.partition_point(|s| s.base <= base);
        segments.get(i).cloned()
    }

    /// Reads up to `max` records from offset `*position`, continuing from `*cursor` when it points
    /// there. Both follow the records appended to `out`, also when an error stops the read
    /// half-way. A position retention deleted is [`Error::OffsetOutOfRange`] (now or on the read
    /// that reaches it), and stays one until the owner moves the position: skipping to the
    /// oldest record left would pass over records nobody read.
    pub(crate) fn read(
        &self,
        position: &mut i64,
        cursor: &mut Option<Cursor>,
        max: usize,
        bytes_left: &mut usize,
        buf: &mut Vec<u8>,
        out: &mut Vec<ConsumedRecord>,
    ) -> Result<()> {
        let (low, high) = self.watermarks();
        if *position < low {
            *cursor = None;
            return Err(self.out_of_range(*position));
        }
        let from = *position;
        if from >= high || max == 0 {
            return Ok(());
        }
        let (mut seg, mut at, mut pos) = match cursor.take() {
            Some(c) if c.offset == from => (c.segment, c.offset, c.position),
            _ => {
                let Some(seg) = self.segment_for(from) else {
                    // Retention deleted it since the watermark check.
                    return Err(self.out_of_range(from));
                };
                let (at, pos) = seg.locate(from)?;
                (seg, at, pos)
            }
        };
        let start = out.len();
        let result = loop {
            let want = max - (out.len() - start);
            let end = self.segment_after(seg.base).map_or(high, |next| next.base);
            let read = seg.read(
                &mut at,
                &mut pos,
                from,
                end,
                want,
                bytes_left,
                &self.tp.topic,
                self.tp.partition,
                buf,
                out,
            );
            if read.is_err() || out.len() - start >= max || *bytes_left == 0 {
                break read;
            }
            // At the visible end of `seg`. A segment after it means `seg` was sealed, and its final
            // end was published before the next segment was pushed: look again before leaving it.
            let Some(next) = self.segment_after(seg.base) else {
                break Ok(());
            };
            if pos < seg.visible() {
                continue;
            }
            if next.base != at {
                // Retention deleted the segments between the one still open here and `next`.
                if at < self.watermarks().0 {
                    break Err(self.out_of_range(at));
                }
                warn!(
                    message = "offset gap between log segments",
                    partition = %self.tp,
                    expected = at,
                    next_segment = %next.path.display(),
                );
            }
            at = next.base;
            pos = 0;
            seg = next;
        };
        if at >= from {
            *position = at;
            *cursor = Some(Cursor {
                segment: seg,
                offset: at,
                position: pos,
            });
        }
        result
    }

    /// The damaged record at `offset`, if reading it fails with [`Error::DamagedRecord`] naming
    /// that offset: where it is, why, the next offset a reader can resume at, and up to
    /// `max_raw` of its bytes. `None` when the record reads fine (or `offset` is the high
    /// watermark). A damaged run that starts before `offset` and reaches it is this one's too:
    /// the span then starts at `offset` (records before it are not skipped), at the byte where
    /// the run starts. A damaged record whose run ends before `offset` is read past.
    pub(crate) fn damaged_span(&self, offset: i64, max_raw: usize) -> Result<Option<DamagedSpan>> {
        let (mut position, mut cursor) = (offset, None);
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        let mut any_size = usize::MAX;
        let (path, byte, reason) =
            match self.read(&mut position, &mut cursor, 1, &mut any_size, &mut buf, &mut out) {
                Ok(()) => return Ok(None),
                Err(Error::DamagedRecord {
                    offset: damaged,
                    path,
                    position,
                    reason,
                    ..
                }) if damaged <= offset => (path, position, reason),
                Err(e) => return Err(e),
            };
        let Some(seg) = self.segment_for(offset) else {
            return Err(self.out_of_range(offset));
        };
        let end = self
            .segment_after(seg.base)
            .map_or(self.watermarks().1, |next| next.base);
        let (next_position, next) = seg.resync(byte, offset, end)?.unwrap_or((seg.visible(), end));
        Ok(Some(DamagedSpan {
            tp: self.tp.clone(),
            offset,
            next,
            path,
            position: byte,
            reason,
            raw: seg.raw_bytes(byte, next_position, max_raw)?,
        }))
    }

    /// [`Error::OffsetOutOfRange`] for `offset`, with the current watermarks.
    fn out_of_range(&self, offset: i64) -> Error {
        let (low, high) = self.watermarks();
        Error::OffsetOutOfRange {
            tp: self.tp.clone(),
            offset,
            low,
            high,
        }
    }

    /// Deletes the oldest sealed segments while the partition is over `max_bytes` or they were
    /// last appended to more than `max_age_ms` ago (each 0 = no limit), but never a segment
    /// holding an offset at or above `floor`, the smallest offset a consumer group committed
    /// (`None`: no group ever committed here). Returns how many were deleted.
    pub(crate) fn apply_retention(
        &self,
        max_bytes: u64,
        max_age_ms: u64,
        now_ms: i64,
        floor: Option<&Floor>,
    ) -> Result<usize> {
        if max_bytes == 0 && max_age_ms == 0 {
            return Ok(0);
        }
        let segments = self.snapshot();
        let mut total: u64 = segments.iter().map(|s| s.visible()).sum();
        let mut doomed = 0;
        // Sealed segments, each with the one after it: `seg` holds offsets `seg.base..next.base`.
        for (seg, next) in segments.iter().zip(segments.iter().skip(1)) {
            let size = seg.visible();
            let too_big = max_bytes > 0 && total > max_bytes;
            let too_old =
                max_age_ms > 0 && (size == 0 || now_ms.saturating_sub(seg.appended_ms()) > max_age_ms as i64);
            if !(too_big || too_old) {
                break;
            }
            if let Some(floor) = floor.filter(|f| next.base > f.offset) {
                warn!(
                    message = "log retention held back: a consumer group has not consumed this segment",
                    partition = %self.tp,
                    file = %seg.path.display(),
                    group = %floor.group,
                    committed = floor.offset,
                    partition_bytes = total,
                );
                break;
            }
            total -= size;
            doomed += 1;
        }
        if doomed == 0 {
            return Ok(0);
        }
        // Everything below the first segment kept, and only that: a retention run racing this
        // one ([`super::log::EmbeddedLog::enforce_retention`] against the housekeeping thread)
        // may have drained some already, and the writer only ever adds at the end.
        let keep_from = segments[doomed].base;
        let removed: Vec<Arc<Segment>> = {
            let mut list = self.segments.write().unwrap_or_else(PoisonError::into_inner);
            let n = list
                .iter()
                .take_while(|s| s.base < keep_from)
                .count()
                .min(list.len() - 1);
            let removed = list.drain(..n).collect();
            self.low.store(list[0].base, Ordering::Release);
            removed
        };
        for seg in &removed {
            info!(message = "retention deleted log segment", file = %seg.path.display(), bytes = seg.visible());
            if let Err(e) = std::fs::remove_file(&seg.path) {
                warn!(message = "could not delete log segment", file = %seg.path.display(), error = %e);
            }
        }
        sync_dir(&self.dir)?;
        Ok(removed.len())
    }

    /// The first offset, in offset order, whose timestamp is at or after `ts`.
    pub(crate) fn offset_for_timestamp(&self, ts: i64) -> Result<Option<i64>> {
        for seg in self.snapshot() {
            if seg.max_timestamp()? >= ts {
                if let Some(offset) = seg.find_timestamp(ts)? {
                    return Ok(Some(offset));
                }
            }
        }
        Ok(None)
    }

    /// The segment holding `offset` and the byte position of the index entry at or before it
    /// (the record itself or up to one index interval earlier); `None` when no segment holds it.
    pub(crate) fn byte_position(&self, offset: i64) -> Result<Option<(i64, u64)>> {
        match self.segment_for(offset) {
            Some(seg) => Ok(Some((seg.base, seg.locate(offset)?.1))),
            None => Ok(None),
        }
    }

    /// Bytes published from the consumed-up-to point `at` on: `(floor offset, where it is)` as
    /// [`Self::byte_position`] found it, `None` when no group committed (everything counts).
    /// 0 once the floor is the high watermark. For the disk budget, under its lock.
    pub(crate) fn unconsumed_bytes(&self, at: Option<(i64, Option<(i64, u64)>)>) -> u64 {
        let segments = self.segments.read().unwrap_or_else(PoisonError::into_inner);
        let all = || segments.iter().map(|s| s.visible()).sum::<u64>();
        match at {
            None | Some((_, None)) => all(),
            Some((floor, _)) if floor >= self.high.load(Ordering::Acquire) => 0,
            Some((_, Some((base, position)))) => segments
                .iter()
                .filter(|s| s.base >= base)
                .map(|s| s.visible())
                .sum::<u64>()
                .saturating_sub(position),
        }
    }

    /// Bytes on disk (published).
    pub(crate) fn size_bytes(&self) -> u64 {
        self.snapshot().iter().map(|s| s.visible()).sum()
    }

    /// Number of segment files.
    pub(crate) fn segment_count(&self) -> usize {
        self.segments.read().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// `<dir>/<topic>/<partition>`.
pub(crate) fn partition_dir(dir: &Path, tp: &TopicPartition) -> PathBuf {
    dir.join(&tp.topic).join(tp.partition.to_string())
}
