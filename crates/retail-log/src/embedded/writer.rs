//! The single writer thread: group commit, so that many concurrent appends cost one `pwrite` per
//! partition and one `fdatasync` per file per round instead of a syscall per record.
//!
//! Every append is a message on a channel. The thread takes all the messages waiting, encodes
//! their records into one buffer per partition (assigning offsets in arrival order), writes each
//! buffer with one `pwrite`, fsyncs every file touched (policy `every_batch`), then publishes the
//! segments' new visible ends and the high watermarks, wakes consumers, and answers every append
//! of the round. While a round is on disk the next one queues up, so the batch grows exactly when
//! the disk is the bottleneck.
//!
//! Under `interval` the round is answered right after `pwrite` (the page cache survives a killed
//! process, not a power cut); the touched segments are queued for the housekeeping thread's
//! periodic fsync.
//!
//! A segment is fsynced before its successor is created, so after any crash only the last
//! segment of a partition can have a torn tail; recovery relies on that.
//!
//! A failed `pwrite` is rolled back (files truncated to where the round began, and segments the
//! round rolled to deleted: a roll is published only with its round) and the round's appends
//! fail, leaving nothing of themselves in the log; the next round may succeed (a full disk
//! emptied). A failed `fsync` cannot be
//! rolled back (the kernel may have dropped the dirty pages), so the writer stops accepting
//! appends until the log is reopened and recovery has re-read what is really on disk; so does a
//! failed rollback or segment creation. Appends then fail with [`Error::WriterStopped`], which
//! is not retryable: only a restart helps (ADR 0021).

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, PoisonError};

use tokio::sync::oneshot;
use tracing::error;

use super::config::FsyncPolicy;
use super::format;
use super::housekeeping::Chore;
use super::log::Shared;
use super::partition::Partition;
use super::segment::{Segment, INDEX_INTERVAL};
use crate::record::{ProducerRecord, RecordMetadata};
use crate::{Error, Result};

/// Most messages and records taken into one round, to bound a round's latency and memory.
const MAX_ROUND_MESSAGES: usize = 4096;
const MAX_ROUND_RECORDS: usize = 64 * 1024;
/// A partition buffer grown beyond this is released after the round.
const KEEP_BUFFER_BYTES: usize = 8 << 20;

/// A message to the writer thread.
#[derive(Debug)]
pub(crate) enum Msg {
    /// Append records; each already has its partition resolved and its size checked.
    Append(AppendRequest),
    /// Fsync everything written so far.
    Flush(oneshot::Sender<Result<()>>),
}

/// Records to append and where the answer goes.
#[derive(Debug)]
pub(crate) struct AppendRequest {
    /// The records, in the caller's order.
    pub records: Vec<ProducerRecord>,
    /// The partition of each record.
    pub targets: Vec<Arc<Partition>>,
    /// Where each record landed, or why none did.
    pub reply: oneshot::Sender<Reply>,
}

/// The answer to an append, with the request's records handed back for the appending thread to
/// free. The allocator makes a thread that frees what others allocated return each block to
/// its owner's arena under a lock: freeing every record here took half the writer thread's CPU
/// in a webhook benchmark, where the thread that built them frees them almost for free.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Where each record landed, or why none did.
    pub result: Result<Vec<RecordMetadata>>,
    /// The records and their partitions, written or not.
    pub spent: (Vec<ProducerRecord>, Vec<Arc<Partition>>),
}

impl AppendRequest {
    /// Answers the append, handing its records back.
    fn answer(self, result: Result<Vec<RecordMetadata>>) {
        let _ = self.reply.send(Reply {
            result,
            spent: (self.records, self.targets),
        });
    }
}

/// Why the writer stopped for good.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    op: &'static str,
    path: String,
    message: String,
}

impl Failure {
    /// A failure of `op` on `path`.
    pub(crate) fn new(op: &'static str, path: &std::path::Path, e: &io::Error) -> Self {
        Self {
            op,
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// The error appends get from now on: not retryable, naming the file and what failed.
    pub(crate) fn to_error(&self) -> Error {
        Error::WriterStopped {
            op: self.op.to_owned(),
            path: self.path.clone(),
            cause: self.message.clone(),
        }
    }
}

/// An I/O failure during a round.
struct RoundError {
    /// What failed, for the error: `write`, `fsync`, `segment creation`, ...
    op: &'static str,
    path: String,
    source: io::Error,
    /// Cannot be rolled back: the writer must stop.
    fatal: bool,
}

impl RoundError {
    fn new(op: &'static str, segment: &Segment, source: io::Error, fatal: bool) -> Self {
        Self {
            op,
            path: segment.path.display().to_string(),
            source,
            fatal,
        }
    }

    fn from_error(op: &'static str, e: Error) -> Self {
        match e {
            Error::Io { path, source } => Self {
                op,
                path,
                source,
                fatal: true,
            },
            other => Self {
                op,
                path: String::new(),
                source: io::Error::other(other.to_string()),
                fatal: true,
            },
        }
    }

    fn to_error(&self) -> Error {
        if self.fatal {
            return self.failure().to_error();
        }
        Error::Io {
            path: self.path.clone(),
            source: io::Error::new(self.source.kind(), self.source.to_string()),
        }
    }

    fn failure(&self) -> Failure {
        Failure {
            op: self.op,
            path: self.path.clone(),
            message: self.source.to_string(),
        }
    }
}

/// The writer's view of one partition it has written to.
struct WriteState {
    part: Arc<Partition>,
    active: Arc<Segment>,
    /// Bytes written to `active`.
    size: u64,
    next_offset: i64,
    /// Position of the last index entry of `active`.
    last_indexed: u64,
    /// Records encoded this round, not written yet.
    buf: Vec<u8>,
    /// Index entries and newest timestamp written but not published.
    entries: Vec<(i64, u64)>,
    max_ts: i64,
    /// Round this partition was last touched in, and where it stood when that round began (or
    /// when it rolled to the active segment during the round): the undo point of a failed round.
    round: u64,
    start: (u64, i64, u64),
    /// Written since the last fsync of `active`.
    unsynced: bool,
    /// Segments this round sealed by rolling, oldest first: written and fsynced but not
    /// published, and every one after the first (and `active`) created but not yet in the
    /// partition's list. A failed round undoes all of it; a round that succeeds publishes it.
    rolled: Vec<Sealed>,
}

/// A segment a round sealed, with what its publication makes visible.
struct Sealed {
    segment: Arc<Segment>,
    size: u64,
    entries: Vec<(i64, u64)>,
    max_ts: i64,
}

impl WriteState {
    fn new(part: Arc<Partition>) -> Result<Self> {
        let active = part.active();
        let last_indexed = active.last_index_position()?;
        let (_, high) = part.watermarks();
        Ok(Self {
            size: active.visible(),
            active,
            part,
            next_offset: high,
            last_indexed,
            buf: Vec::new(),
            entries: Vec::new(),
            max_ts: i64::MIN,
            round: 0,
            start: (0, 0, 0),
            unsynced: false,
            rolled: Vec::new(),
        })
    }

    fn write_buffer(&mut self) -> Result<(), RoundError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.active
            .file()
            .write_all_at(&self.buf, self.size)
            .map_err(|e| RoundError::new("write", &self.active, e, false))?;
        self.size += self.buf.len() as u64;
        self.unsynced = true;
        if self.buf.capacity() > KEEP_BUFFER_BYTES {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), RoundError> {
        if self.unsynced {
            self.active
                .file()
                .sync_data()
                .map_err(|e| RoundError::new("fsync", &self.active, e, true))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Makes the round visible: each sealed segment's final end before the segment after it
    /// joins the partition (readers rely on that order), then the active segment's end. Returns
    /// how many bytes became visible and count against the disk budget (called under its lock;
    /// the side topics do not count).
    fn publish(&mut self) -> u64 {
        let counts = super::budget::counts(&self.part.tp);
        let mut added = 0;
        let rolled = std::mem::take(&mut self.rolled);
        let successors: Vec<Arc<Segment>> = rolled
            .iter()
            .skip(1)
            .map(|s| Arc::clone(&s.segment))
            .chain(std::iter::once(Arc::clone(&self.active)))
            .collect();
        for (sealed, next) in rolled.into_iter().zip(successors) {
            if counts {
                added += sealed.size.saturating_sub(sealed.segment.visible());
            }
            sealed
                .segment
                .publish(sealed.size, &sealed.entries, sealed.max_ts);
            self.part.push_segment(next);
        }
        if counts {
            added += self.size.saturating_sub(self.active.visible());
        }
        self.active.publish(self.size, &self.entries, self.max_ts);
        self.entries.clear();
        self.max_ts = i64::MIN;
        added
    }

    /// Seals the active segment (written and fsynced) and starts a new one at the next offset.
    ///
    /// The roll is provisional until the round succeeds: the sealed part is not published and
    /// the new segment not added to the partition, so a failure later in the round (a full
    /// disk) undoes the whole round, the sealed part included, and an append that fails left
    /// nothing of itself in the log. A failed fsync or segment creation stops the writer.
    fn roll(&mut self) -> Result<(), RoundError> {
        self.write_buffer()?;
        self.sync()?;
        let next = Segment::create(&self.part.dir, self.next_offset)
            .map_err(|e| RoundError::from_error("segment creation", e))?;
        self.rolled.push(Sealed {
            segment: std::mem::replace(&mut self.active, next),
            size: self.size,
            entries: std::mem::take(&mut self.entries),
            max_ts: std::mem::replace(&mut self.max_ts, i64::MIN),
        });
        self.size = 0;
        self.last_indexed = 0;
        Ok(())
    }

    /// Undoes the unpublished part of the round: the segments it created are deleted, and the
    /// segment it began in is truncated to where it began (and fsynced, so that a crash now
    /// does not bring the undone records back).
    fn roll_back(&mut self) -> Result<(), RoundError> {
        let (size, next, indexed) = self.start;
        self.buf.clear();
        self.entries.clear();
        self.max_ts = i64::MIN;
        if !self.rolled.is_empty() {
            let rolled = std::mem::take(&mut self.rolled);
            let created = rolled
                .iter()
                .skip(1)
                .map(|s| &s.segment)
                .chain(std::iter::once(&self.active));
            for seg in created {
                std::fs::remove_file(&seg.path)
                    .map_err(|e| RoundError::new("rollback (delete segment)", seg, e, true))?;
            }
            super::files::sync_dir(&self.part.dir)
                .map_err(|e| RoundError::from_error("rollback (delete segment)", e))?;
            self.active = rolled
                .into_iter()
                .next()
                .map(|s| s.segment)
                .unwrap_or_else(|| Arc::clone(&self.active));
            self.active
                .file()
                .set_len(size)
                .and_then(|()| self.active.file().sync_data())
                .map_err(|e| RoundError::new("rollback (truncate)", &self.active, e, true))?;
            self.unsynced = false;
        } else {
            self.active
                .file()
                .set_len(size)
                .map_err(|e| RoundError::new("rollback (truncate)", &self.active, e, true))?;
        }
        (self.size, self.next_offset, self.last_indexed) = (size, next, indexed);
        Ok(())
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    chores: mpsc::Sender<Chore>,
    /// By partition id.
    states: Vec<Option<WriteState>>,
    round: u64,
    /// Ids of the partitions touched this round.
    touched: Vec<usize>,
    fsync: SyncPool,
}

impl Writer {
    pub(crate) fn new(shared: Arc<Shared>, chores: mpsc::Sender<Chore>) -> Self {
        Self {
            shared,
            chores,
            states: Vec::new(),
            round: 0,
            touched: Vec::new(),
            fsync: SyncPool::new(),
        }
    }

    /// Runs until every sender is gone, then fsyncs what is still unsynced.
    pub(crate) fn run(mut self, rx: mpsc::Receiver<Msg>) -> Result<()> {
        let mut msgs = Vec::new();
        let records = |m: &Msg| match m {
            Msg::Append(r) => r.records.len(),
            Msg::Flush(_) => 0,
        };
        while let Ok(first) = rx.recv() {
            let mut taken = records(&first);
            msgs.push(first);
            while msgs.len() < MAX_ROUND_MESSAGES && taken < MAX_ROUND_RECORDS {
                match rx.try_recv() {
                    Ok(m) => {
                        taken += records(&m);
                        msgs.push(m);
                    }
                    Err(_) => break,
                }
            }
            self.round(&mut msgs);
        }
        self.sync_all().map_err(|e| e.to_error())
    }

    fn failure(&self) -> Option<Failure> {
        self.shared
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn fail(&self, e: &RoundError) {
        error!(message = "log writer stopped: fsync or rollback failed", file = %e.path, error = %e.source);
        let failure = e.failure();
        *self.shared.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(failure);
    }

    fn round(&mut self, msgs: &mut Vec<Msg>) {
        let mut appends = Vec::with_capacity(msgs.len());
        let mut flushes = Vec::new();
        for m in msgs.drain(..) {
            match m {
                Msg::Append(r) => appends.push(r),
                Msg::Flush(tx) => flushes.push(tx),
            }
        }
        if let Some(failure) = self.failure() {
            for r in appends {
                r.answer(Err(failure.to_error()));
            }
            for tx in flushes {
                let _ = tx.send(Err(failure.to_error()));
            }
            return;
        }
        let mut results = Vec::with_capacity(appends.len());
        match self.write_round(&appends, &mut results) {
            Ok(()) => {
                for (r, meta) in appends.into_iter().zip(results) {
                    r.answer(Ok(meta));
                }
            }
            Err(e) => {
                let e = self.roll_back(e);
                for r in appends {
                    r.answer(Err(e.to_error()));
                }
            }
        }
        for tx in flushes {
            let _ = tx.send(self.sync_all().map_err(|e| e.to_error()));
        }
    }

    fn state(&mut self, part: &Arc<Partition>) -> Result<&mut WriteState, RoundError> {
        if self.states.len() <= part.id {
            self.states.resize_with(part.id + 1, || None);
        }
        let slot = &mut self.states[part.id];
        if slot.is_none() {
            *slot =
                Some(WriteState::new(Arc::clone(part)).map_err(|e| RoundError::from_error("index read", e))?);
        }
        let st = slot.as_mut().ok_or_else(|| RoundError {
            op: "writer state lookup",
            path: part.dir.display().to_string(),
            source: io::Error::other("writer state missing"),
            fatal: true,
        })?;
        if st.round != self.round {
            st.round = self.round;
            st.start = (st.size, st.next_offset, st.last_indexed);
            self.touched.push(part.id);
        }
        Ok(st)
    }

    fn write_round(
        &mut self,
        appends: &[AppendRequest],
        results: &mut Vec<Vec<RecordMetadata>>,
    ) -> Result<(), RoundError> {
        self.round += 1;
        self.touched.clear();
        let now = now_ms();
        let shared = Arc::clone(&self.shared);
        let segment_bytes = self.shared.config.segment_bytes.max(1);
        let mut rolled = false;
        for req in appends {
            let mut meta = Vec::with_capacity(req.records.len());
            for (rec, part) in req.records.iter().zip(&req.targets) {
                let st = self.state(part)?;
                let len = format::encoded_len(rec) as u64;
                let pending = st.size + st.buf.len() as u64;
                if pending > 0 && pending + len > segment_bytes {
                    st.roll()?;
                    rolled = true;
                }
                let pos = st.size + st.buf.len() as u64;
                if pos - st.last_indexed >= INDEX_INTERVAL {
                    st.entries.push((st.next_offset, pos));
                    st.last_indexed = pos;
                }
                let ts = rec.timestamp_ms.unwrap_or(now);
                format::encode(&mut st.buf, st.next_offset, ts, rec);
                meta.push(RecordMetadata {
                    partition: part.tp.partition,
                    offset: st.next_offset,
                    timestamp_ms: ts,
                });
                st.next_offset += 1;
                st.max_ts = st.max_ts.max(ts);
            }
            results.push(meta);
        }
        if rolled {
            let _ = self.chores.send(Chore::Retention);
        }
        for &id in &self.touched {
            if let Some(st) = self.states[id].as_mut() {
                st.write_buffer()?;
            }
        }
        match self.shared.config.fsync {
            FsyncPolicy::EveryBatch => self.sync_touched()?,
            FsyncPolicy::Interval => {
                for &id in &self.touched {
                    if let Some(st) = self.states[id].as_ref() {
                        if !st.active.dirty.swap(true, Ordering::AcqRel) {
                            self.shared
                                .dirty
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push(Arc::clone(&st.active));
                        }
                    }
                }
            }
        }
        shared.budget.publish(|| {
            let mut added = 0;
            for &id in &self.touched {
                if let Some(st) = self.states[id].as_mut() {
                    added += st.publish();
                    st.part.set_high(st.next_offset);
                }
            }
            added
        });
        self.shared
            .appended
            .send_modify(|generation| *generation = generation.wrapping_add(1));
        Ok(())
    }

    /// Fsyncs every partition written since its last fsync (under `every_batch`, exactly the
    /// files written this round).
    fn sync_touched(&mut self) -> Result<(), RoundError> {
        let mut states: Vec<&mut WriteState> = self
            .states
            .iter_mut()
            .filter_map(|s| s.as_mut())
            .filter(|s| s.unsynced)
            .collect();
        self.fsync.sync(&mut states)
    }

    /// Fsyncs every partition written since its last fsync, and stops the writer if that fails.
    fn sync_all(&mut self) -> Result<(), RoundError> {
        let result = self.sync_touched();
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    /// Rolls back a failed round, and stops the writer when that is impossible. Returns the
    /// error the round's appends are answered with: the failed rollback's when one failed.
    fn roll_back(&mut self, e: RoundError) -> RoundError {
        if e.fatal {
            self.fail(&e);
            return e;
        }
        let mut failed = None;
        for &id in &self.touched {
            if let Some(st) = self.states[id].as_mut() {
                if let Err(rb) = st.roll_back() {
                    error!(message = "could not roll back failed log write", file = %rb.path, error = %rb.source, cause = %e.source);
                    failed.get_or_insert(rb);
                }
            }
        }
        match failed {
            Some(rb) => {
                self.fail(&rb);
                rb
            }
            None => e,
        }
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("round", &self.round)
            .finish_non_exhaustive()
    }
}

/// Threads that run `fdatasync`s of one round concurrently: on a journaling filesystem
/// concurrent fsyncs share journal commits, where one after the other each waits for its own
/// (measured here: 8 files one by one ~10 ms, 8 at once ~1.5 ms).
struct SyncPool {
    jobs: Option<mpsc::Sender<SyncJob>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

type SyncJob = (Arc<Segment>, mpsc::Sender<(Arc<Segment>, io::Result<()>)>);

/// Fsync threads kept beside the writer.
const SYNC_THREADS: usize = 7;

impl SyncPool {
    fn new() -> Self {
        let (tx, rx) = mpsc::channel::<SyncJob>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let threads = (0..SYNC_THREADS)
            .filter_map(|i| {
                let rx = Arc::clone(&rx);
                std::thread::Builder::new()
                    .name(format!("retail-log-fsync-{i}"))
                    .spawn(move || loop {
                        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        let Ok((segment, done)) = job else { return };
                        let result = segment.file().sync_data();
                        let _ = done.send((segment, result));
                    })
                    .ok()
            })
            .collect();
        Self {
            jobs: Some(tx),
            threads,
        }
    }

    /// Fsyncs every state's active segment, the first on this thread, the others on the pool.
    fn sync(&self, states: &mut [&mut WriteState]) -> Result<(), RoundError> {
        let Some((first, rest)) = states.split_first_mut() else {
            return Ok(());
        };
        let (done_tx, done_rx) = mpsc::channel();
        let mut pending = 0;
        for st in rest.iter_mut() {
            let job = (Arc::clone(&st.active), done_tx.clone());
            match self.jobs.as_ref().map(|jobs| jobs.send(job)) {
                Some(Ok(())) => pending += 1,
                // No pool (threads could not start): do it here.
                _ => st.sync()?,
            }
        }
        drop(done_tx);
        let mut result = first.sync();
        for _ in 0..pending {
            let outcome = done_rx.recv().map_err(|_| RoundError {
                op: "fsync",
                path: String::new(),
                source: io::Error::other("fsync thread stopped"),
                fatal: true,
            });
            let failed = match outcome {
                Ok((_, Ok(()))) => None,
                Ok((segment, Err(e))) => Some(RoundError::new("fsync", &segment, e, true)),
                Err(e) => Some(e),
            };
            if let (Some(e), true) = (failed, result.is_ok()) {
                result = Err(e);
            }
        }
        if result.is_ok() {
            for st in rest {
                st.unsynced = false;
            }
        }
        result
    }
}

impl Drop for SyncPool {
    fn drop(&mut self) {
        self.jobs.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Wall-clock time in epoch milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
