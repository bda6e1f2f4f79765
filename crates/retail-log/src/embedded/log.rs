//! [`EmbeddedLog`]: the [`Log`] trait on top of the pieces of this folder, and the lifetime of
//! its two threads (writer, housekeeping).
//!
//! Everything that blocks on the disk runs off the async runtime: appends on the writer thread,
//! recovery, topic creation, offset commits and timestamp lookups in `spawn_blocking`. The async
//! methods validate, route and wait.
//!
//! Shutdown: [`EmbeddedLog::close`] (or dropping the log) stops accepting appends, lets the writer
//! finish its queue and fsync everything, then joins both threads. One process owns a log
//! directory at a time; nothing here locks it against a second process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use async_trait::async_trait;
use tokio::sync::{oneshot, watch};
use tracing::warn;

use super::budget::{self, Budget};
use super::config::EmbeddedConfig;
use super::consumer::EmbeddedConsumer;
use super::files::sync_dir;
use super::format;
use super::housekeeping::{self, apply_retention, Groups};
use super::offsets::OffsetStore;
use super::partition::{DamagedSpan, Partition};
use super::segment::Segment;
use super::topic::{validate_name, validate_partition_count, Topic, OFFSETS_DIR};
use super::writer::{AppendRequest, Failure, Msg, Reply, Writer};
use retail_core::event::topics;

use crate::record::{partition_for_key, ConsumedRecord, ProducerRecord, RecordMetadata};
use crate::{Consumer, Error, Log, Result, TopicPartition};

/// State shared by the log handle, its threads and its consumers.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The log directory.
    pub dir: PathBuf,
    /// Settings.
    pub config: EmbeddedConfig,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Source of partition ids.
    next_id: AtomicUsize,
    /// Serializes topic creation.
    create_lock: Mutex<()>,
    /// Bumped after every published write round; consumers wait on it.
    pub appended: watch::Sender<u64>,
    /// Segments written but not fsynced (`interval` policy).
    pub dirty: Mutex<Vec<Arc<Segment>>>,
    /// Set when the writer cannot go on.
    pub failure: Mutex<Option<Failure>>,
    /// Consumer groups' committed offsets.
    pub offsets: OffsetStore,
    /// The disk budget and the unconsumed bytes counted against it.
    pub budget: Budget,
    /// The open lock file, holding the directory's exclusive lock until the log is closed or
    /// dropped (consumers may hold this state longer; they only read).
    lock: Mutex<Option<std::fs::File>>,
}

/// The lock file in the log directory: held with an exclusive `flock` while the log is open,
/// and holding the pid of the process that holds it, for the error a second opener gets.
pub const LOCK_FILE: &str = "LOCK";

/// Takes the directory's exclusive lock, or says who holds it. The OS drops the lock when the
/// process ends however it ends (`kill -9` included), so a stale lock file never blocks. The
/// lock lasts as long as the returned file is open. The binary also takes it on the sources'
/// state directory, which the log's lock does not cover when the log is elsewhere (Kafka).
pub fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            // Best effort: the holder writes its pid right after locking.
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim() {
                "" => "pid unknown".to_owned(),
                pid => format!("pid {pid}"),
            };
            return Err(Error::Locked {
                dir: dir.display().to_string(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| write!(file, "{}", std::process::id()))
        .and_then(|()| file.flush())
        .map_err(|e| Error::io(&path, e))?;
    Ok(file)
}

impl Shared {
    /// Opens the directory: recovers every topic, reads every group's committed offsets, then
    /// applies retention.
    fn open(dir: PathBuf, config: EmbeddedConfig) -> Result<Self> {
        config.validate().map_err(Error::Config)?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        // Before anything is read: recovery truncates and retention deletes (issue 18, item 2).
        let lock = lock_dir(&dir)?;
        let offsets_dir = dir.join(OFFSETS_DIR);
        if !offsets_dir.exists() {
            std::fs::create_dir_all(&offsets_dir).map_err(|e| Error::io(&offsets_dir, e))?;
            sync_dir(&dir)?;
        }
        let next_id = AtomicUsize::new(0);
        let mut topics = HashMap::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let path = entry.path();
            if !entry.file_type().map_err(|e| Error::io(&path, e))?.is_dir() {
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name == OFFSETS_DIR {
                continue;
            }
            if validate_name("topic", &name).is_err() {
                warn!(message = "ignoring directory that is not a topic", dir = %path.display());
                continue;
            }
            match Topic::load(&dir, &name, &next_id)? {
                Some(topic) => {
                    topics.insert(name, Arc::new(topic));
                }
                None => warn!(
                    message = "topic directory without meta.json (interrupted creation) ignored until ensure_topic",
                    dir = %path.display(),
                ),
            }
        }
        let shared = Self {
            offsets: OffsetStore::open(offsets_dir)?,
            budget: Budget::new(config.disk_budget_bytes),
            dir,
            config,
            topics: RwLock::new(topics),
            next_id,
            create_lock: Mutex::new(()),
            appended: watch::Sender::new(0),
            dirty: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
            lock: Mutex::new(Some(lock)),
        };
        apply_retention(&shared, Groups::AllHold);
        budget::recount(&shared);
        Ok(shared)
    }

    /// A topic by name.
    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic(name.to_owned()))
    }

    /// A partition by topic and number.
    pub(crate) fn partition(&self, tp: &TopicPartition) -> Result<Arc<Partition>> {
        let topic = self.topic(&tp.topic)?;
        usize::try_from(tp.partition)
            .ok()
            .and_then(|p| topic.partitions.get(p))
            .cloned()
            .ok_or_else(|| Error::UnknownPartition {
                topic: tp.topic.clone(),
                partition: tp.partition,
            })
    }

    /// The partition, if `offset` lies within its watermarks (the high one included: reading
    /// there returns nothing yet); `OffsetOutOfRange` otherwise.
    pub(crate) fn partition_holding(&self, tp: &TopicPartition, offset: i64) -> Result<Arc<Partition>> {
        let part = self.partition(tp)?;
        let (low, high) = part.watermarks();
        if offset < low || offset > high {
            return Err(Error::OffsetOutOfRange {
                tp: tp.clone(),
                offset,
                low,
                high,
            });
        }
        Ok(part)
    }

    /// Every topic with its partition count, sorted by name.
    pub(crate) fn topic_list(&self) -> Vec<(String, i32)> {
        let topics = self.topics.read().unwrap_or_else(PoisonError::into_inner);
        let mut list: Vec<(String, i32)> = topics
            .values()
            .map(|t| (t.name.clone(), t.partitions.len() as i32))
            .collect();
        list.sort();
        list
    }

    /// Every partition of every topic.
    pub(crate) fn all_partitions(&self) -> Vec<Arc<Partition>> {
        let topics = self.topics.read().unwrap_or_else(PoisonError::into_inner);
        topics
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let _creating = self.create_lock.lock().unwrap_or_else(PoisonError::into_inner);
        if let Ok(topic) = self.topic(name) {
            return check_count(&topic, partitions);
        }
        let topic = Topic::create(&self.dir, name, partitions, &self.next_id)?;
        self.topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), Arc::new(topic));
        Ok(())
    }
}

fn check_count(topic: &Topic, expected: i32) -> Result<()> {
    let actual = topic.partitions.len() as i32;
    if actual == expected {
        Ok(())
    } else {
        Err(Error::PartitionMismatch {
            topic: topic.name.clone(),
            expected,
            actual,
        })
    }
}

/// Runs blocking file work off the async runtime.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Io {
        path: "(blocking log task)".to_owned(),
        source: std::io::Error::other(e),
    })?
}

/// The writer and housekeeping threads.
#[derive(Debug)]
struct Threads {
    writer: JoinHandle<Result<()>>,
    housekeeping: JoinHandle<()>,
}

impl Threads {
    fn join(self) -> Result<()> {
        let written = self.writer.join().unwrap_or_else(|_| {
            Err(Error::Io {
                path: "(log writer thread)".to_owned(),
                source: std::io::Error::other("panicked"),
            })
        });
        // The writer held the housekeeping channel's only sender: it is gone now.
        let _ = self.housekeeping.join();
        written
    }
}

/// The embedded segment-file log. See the [module docs](super) for the layout and the
/// durability guarantees.
pub struct EmbeddedLog {
    shared: Arc<Shared>,
    writer: Mutex<Option<mpsc::Sender<Msg>>>,
    threads: Mutex<Option<Threads>>,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("dir", &self.shared.dir)
            .field("config", &self.shared.config)
            .finish()
    }
}

impl EmbeddedLog {
    /// Opens (creating if needed) the log in `dir`: recovers every partition (cutting torn tails
    /// left by a crash), applies retention, and starts the writer and housekeeping threads.
    pub async fn open(dir: &Path, config: EmbeddedConfig) -> Result<Self> {
        let dir = dir.to_path_buf();
        let shared = Arc::new(blocking(move || Shared::open(dir, config)).await?);
        let (tx, rx) = mpsc::channel();
        let (chores_tx, chores_rx) = mpsc::channel();
        let writer = Writer::new(Arc::clone(&shared), chores_tx);
        let spawn_error = |e| Error::io(&shared.dir, e);
        let housekeeping = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("retail-log-housekeeping".to_owned())
                .spawn(move || housekeeping::run(&shared, &chores_rx))
                .map_err(spawn_error)?
        };
        let writer = std::thread::Builder::new()
            .name("retail-log-writer".to_owned())
            .spawn(move || writer.run(rx))
            .map_err(spawn_error)?;
        Ok(Self {
            shared,
            writer: Mutex::new(Some(tx)),
            threads: Mutex::new(Some(Threads { writer, housekeeping })),
        })
    }

    /// Fsyncs everything appended so far (useful under the `interval` policy before a planned
    /// stop; under `every_batch` everything acknowledged is already on disk).
    pub async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Flush(tx))?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Stops accepting appends, waits for the appends already queued, fsyncs and stops the
    /// threads. Appends after this fail with [`Error::Closed`]; consumers keep reading.
    /// Dropping the log does the same, without reporting a failed final fsync.
    pub async fn close(&self) -> Result<()> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner).take();
        let threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner).take();
        let joined = match threads {
            Some(threads) => blocking(move || threads.join()).await,
            None => Ok(()),
        };
        // Nothing writes, truncates or deletes any more: another process may open the directory.
        self.shared
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        joined
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Number of segment files of a partition (for tests and tools).
    pub fn segment_count(&self, tp: &TopicPartition) -> Result<usize> {
        Ok(self.shared.partition(tp)?.segment_count())
    }

    /// Bytes a partition holds on disk (for tests and tools).
    pub fn partition_bytes(&self, tp: &TopicPartition) -> Result<u64> {
        Ok(self.shared.partition(tp)?.size_bytes())
    }

    /// Bytes counted against the disk budget now: what no consumer group has consumed yet
    /// (see [`EmbeddedConfig::disk_budget_bytes`]).
    pub fn backlog_bytes(&self) -> u64 {
        self.shared.budget.backlog()
    }

    /// Applies the retention limits now instead of at the next roll or minute (idle groups
    /// expired, as in the periodic pass).
    pub async fn enforce_retention(&self) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        blocking(move || {
            apply_retention(&shared, Groups::IdleExpire);
            Ok(())
        })
        .await
    }

    /// The damaged record at `offset` of `tp`, with where reading can resume after it and up
    /// to `max_raw` of its bytes; `None` when that record reads fine. What the operator's skip
    /// records before it moves a reader past the damage.
    pub async fn damaged_span(
        &self,
        tp: &TopicPartition,
        offset: i64,
        max_raw: usize,
    ) -> Result<Option<DamagedSpan>> {
        let part = self.shared.partition_holding(tp, offset)?;
        blocking(move || part.damaged_span(offset, max_raw)).await
    }

    fn send(&self, msg: Msg) -> Result<()> {
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        writer
            .as_ref()
            .ok_or(Error::Closed)?
            .send(msg)
            .map_err(|_| Error::Closed)
    }

    /// Resolves each record's partition and checks its size.
    fn route(&self, records: &[ProducerRecord]) -> Result<Vec<Arc<Partition>>> {
        let max = self.shared.config.max_record_bytes.min(format::MAX_PAYLOAD);
        let mut targets = Vec::with_capacity(records.len());
        let mut topic: Option<Arc<Topic>> = None;
        for rec in records {
            let t = match topic.take() {
                Some(t) if t.name == rec.topic => t,
                _ => self.shared.topic(&rec.topic)?,
            };
            match format::payload_size(rec) {
                Ok(size) if size <= max => {}
                Ok(size) | Err(size) => {
                    return Err(Error::RecordTooLarge {
                        topic: rec.topic.clone(),
                        size,
                        max,
                    });
                }
            }
            let count = t.partitions.len();
            let p =
                match (rec.partition, &rec.key) {
                    (Some(p), _) => usize::try_from(p).ok().filter(|&p| p < count).ok_or_else(|| {
                        Error::UnknownPartition {
                            topic: rec.topic.clone(),
                            partition: p,
                        }
                    })?,
                    (None, Some(key)) => partition_for_key(key, count as i32) as usize,
                    (None, None) => t.next_round_robin(),
                };
            targets.push(Arc::clone(&t.partitions[p]));
            topic = Some(t);
        }
        Ok(targets)
    }
}

impl Drop for EmbeddedLog {
    fn drop(&mut self) {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner).take();
        let threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(threads) = threads {
            if let Err(e) = threads.join() {
                warn!(message = "log shut down with an error", error = %e);
            }
        }
        self.shared
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

#[async_trait]
impl Log for EmbeddedLog {
    async fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        validate_name("topic", topic)?;
        validate_partition_count(topic, partitions)?;
        if let Ok(existing) = self.shared.topic(topic) {
            return check_count(&existing, partitions);
        }
        let shared = Arc::clone(&self.shared);
        let name = topic.to_owned();
        blocking(move || shared.create_topic(&name, partitions)).await
    }

    async fn partitions(&self, topic: &str) -> Result<i32> {
        Ok(self.shared.topic(topic)?.partitions.len() as i32)
    }

    async fn append(&self, records: Vec<ProducerRecord>) -> Result<Vec<RecordMetadata>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        if records.iter().any(|r| !topics::SIDE.contains(&r.topic.as_str())) {
            self.shared.budget.check(&self.shared.dir)?;
        }
        let targets = self.route(&records)?;
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Append(AppendRequest {
            records,
            targets,
            reply,
        }))?;
        let Reply { result, spent } = rx.await.map_err(|_| Error::Closed)?;
        // Freed here, on the thread that allocated them (see `Reply`).
        drop(spent);
        result
    }

    async fn watermarks(&self, tp: &TopicPartition) -> Result<(i64, i64)> {
        Ok(self.shared.partition(tp)?.watermarks())
    }

    async fn offset_for_timestamp(&self, tp: &TopicPartition, timestamp_ms: i64) -> Result<Option<i64>> {
        let part = self.shared.partition(tp)?;
        blocking(move || part.offset_for_timestamp(timestamp_ms)).await
    }

    async fn commit_offsets(&self, group: &str, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        commit(&self.shared, group, offsets).await
    }

    async fn committed_offsets(&self, group: &str, tps: &[TopicPartition]) -> Result<Vec<Option<i64>>> {
        validate_name("consumer group", group)?;
        let shared = Arc::clone(&self.shared);
        let (group, tps) = (group.to_owned(), tps.to_vec());
        blocking(move || shared.offsets.committed(&group, &tps)).await
    }

    async fn consumer(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>> {
        Ok(Box::new(
            EmbeddedConsumer::new(Arc::clone(&self.shared), group, topics).await?,
        ))
    }

    async fn topics(&self) -> Result<Vec<(String, i32)>> {
        Ok(self.shared.topic_list())
    }

    async fn groups(&self) -> Result<Vec<String>> {
        Ok(self.shared.offsets.groups())
    }

    async fn read(&self, tp: &TopicPartition, offset: i64, max: usize) -> Result<Vec<ConsumedRecord>> {
        let part = self.shared.partition_holding(tp, offset)?;
        blocking(move || {
            let (mut position, mut cursor) = (offset, None);
            let (mut buf, mut out) = (Vec::new(), Vec::new());
            let mut any_size = usize::MAX;
            part.read(&mut position, &mut cursor, max, &mut any_size, &mut buf, &mut out)?;
            Ok(out)
        })
        .await
    }

    async fn size_bytes(&self, tp: &TopicPartition) -> Result<Option<u64>> {
        Ok(Some(self.shared.partition(tp)?.size_bytes()))
    }

    fn disk_budget(&self) -> Option<(u64, u64)> {
        let budget = self.shared.config.disk_budget_bytes;
        (budget > 0).then(|| (self.shared.budget.backlog(), budget))
    }
}

/// Commits a group's offsets after checking the partitions exist.
pub(crate) async fn commit(
    shared: &Arc<Shared>,
    group: &str,
    offsets: &[(TopicPartition, i64)],
) -> Result<()> {
    validate_name("consumer group", group)?;
    for (tp, offset) in offsets {
        shared.partition(tp)?;
        if *offset < 0 {
            return Err(Error::Config(format!(
                "cannot commit negative offset {offset} for {tp}"
            )));
        }
    }
    let shared = Arc::clone(shared);
    let (group, offsets) = (group.to_owned(), offsets.to_vec());
    blocking(move || {
        shared.offsets.commit(&group, &offsets)?;
        budget::recount(&shared);
        Ok(())
    })
    .await
}
