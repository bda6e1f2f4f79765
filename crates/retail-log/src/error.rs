//! The log's error type.

/// Result with the log's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Disk I/O failed; the operation may succeed later.
    #[error("log I/O error on {path}: {source}")]
    Io {
        /// File or directory involved.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The topic does not exist.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// The partition does not exist.
    #[error("unknown partition {topic}/{partition}")]
    UnknownPartition {
        /// Topic.
        topic: String,
        /// Partition asked for.
        partition: i32,
    },
    /// An existing topic's partition count differs from the configured one.
    #[error("topic {topic:?} has {actual} partitions but {expected} are configured; refusing to re-key")]
    PartitionMismatch {
        /// Topic.
        topic: String,
        /// Configured count.
        expected: i32,
        /// Count on disk or on the broker.
        actual: i32,
    },
    /// An offset outside what the partition holds.
    #[error("offset {offset} out of range for {tp} (available {low}..{high})")]
    OffsetOutOfRange {
        /// Partition.
        tp: retail_core::TopicPartition,
        /// Requested offset.
        offset: i64,
        /// Low watermark.
        low: i64,
        /// High watermark.
        high: i64,
    },
    /// A record larger than the log accepts.
    #[error("record of {size} bytes for topic {topic:?} exceeds the {max}-byte limit")]
    RecordTooLarge {
        /// Topic.
        topic: String,
        /// Record size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// Data on disk failed its checksum somewhere other than the tail (the tail is repaired).
    #[error("corrupt log data in {path} at byte {position}: {reason}")]
    Corrupt {
        /// Segment file.
        path: String,
        /// Byte position.
        position: u64,
        /// What was wrong.
        reason: String,
    },
    /// A record in a segment is damaged (its length, checksum or layout is wrong): reads of the
    /// partition stop at it, every time, until the reader is moved past it on purpose (the
    /// operator's `retail-etl log skip`, which records what it skipped). Not retryable.
    #[error("damaged log record at topic {topic:?} partition {partition} offset {offset} (segment {path}, byte {position}): {reason}", topic = tp.topic, partition = tp.partition)]
    DamagedRecord {
        /// Partition.
        tp: retail_core::TopicPartition,
        /// Offset of the damaged record (the first one that cannot be read).
        offset: i64,
        /// Segment file.
        path: String,
        /// Byte position of the damaged record in the segment.
        position: u64,
        /// What was wrong.
        reason: String,
    },
    /// Another process (or another handle in this one) has the directory open: two writers
    /// would truncate and delete under each other (the log), or read and write one ledger,
    /// journal or cursor (the sources' state).
    #[error("directory {dir} is in use by another process ({holder}); one process per data directory (stop it, or pick another --data-dir)")]
    Locked {
        /// The locked directory.
        dir: String,
        /// Who holds it, e.g. `pid 4242`, as that process wrote in the lock file.
        holder: String,
    },
    /// A Kafka client call failed (broker unreachable, refused, timed out).
    #[error("kafka: {op}: {message}")]
    Kafka {
        /// What was being done, e.g. `append to sales`.
        op: String,
        /// librdkafka's message.
        message: String,
        /// Whether the same call later may succeed (broker down, leader moving, timeout).
        retryable: bool,
    },
    /// The embedded log's disk budget is reached: the bytes no consumer group has consumed yet
    /// are at or over `log.embedded.disk_budget_bytes`. Nothing was appended; the same append
    /// succeeds once the landing commits past enough of the backlog.
    #[error("log disk budget reached in {dir}: {backlog} bytes not yet consumed, budget log.embedded.disk_budget_bytes = {budget}; appends are held back until the landing catches up")]
    DiskBudget {
        /// The log directory.
        dir: String,
        /// Bytes not yet consumed when the append was refused.
        backlog: u64,
        /// The budget.
        budget: u64,
    },
    /// The embedded log's writer stopped for good: an fsync, a rollback or the creation of a
    /// segment failed, and what is on disk is no longer known to match what was acknowledged
    /// (after a failed fsync the kernel may have dropped the dirty pages). No append succeeds
    /// until the process restarts and recovery re-reads the files. Not retryable: retrying the
    /// same call cannot succeed, so a source shows `failed` and a webhook answers 500.
    #[error("log writer stopped after a failed {op} of {path}: {cause}; no append is accepted until the process is restarted (recovery at open re-reads what is on disk)")]
    WriterStopped {
        /// What failed: `fsync`, `rollback (truncate)`, `segment creation`, ...
        op: String,
        /// File or directory involved.
        path: String,
        /// The OS error.
        cause: String,
    },
    /// Bad configuration or URL.
    #[error("{0}")]
    Config(String),
    /// The log is shutting down.
    #[error("log is closed")]
    Closed,
}

impl Error {
    /// Whether retrying the same call later may succeed (I/O hiccups), as opposed to errors that
    /// will repeat until something is changed.
    pub const fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Io { .. } | Self::DiskBudget { .. } | Self::Kafka { retryable: true, .. }
        )
    }

    /// Whether only a restart of the process can clear this error (the log writer stopped):
    /// what a source shows as `failed`, and a webhook answers 500 for rather than 503.
    pub const fn needs_restart(&self) -> bool {
        matches!(self, Self::WriterStopped { .. })
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
