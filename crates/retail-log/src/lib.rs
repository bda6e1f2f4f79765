//! (2) The durable, partitioned, replayable log between the sources and the processors.
//!
//! Stage (2) of (1) sources -> (2) log -> (3) process -> (4) sink -> (5) serve. Sources append
//! records and acknowledge their own input only once [`Log::append`] returned; the landing reads
//! with a [`Consumer`] and keeps its offsets of record in the store, not here.
//!
//! The [`Log`] trait maps one-to-one onto Kafka: topics with partitions, records with key, value,
//! headers and timestamp, offsets, consumer groups with committed offsets, and
//! offsets-for-timestamp for replay. A backend is chosen by URL ([`LogUrl`]):
//! `embedded://<dir>` (the default, [`embedded::EmbeddedLog`]) or `kafka://host:port[,host:port]`
//! (`kafka::KafkaLog`, built with the cargo feature `kafka`).
//!
//! # Layout
//! - [`record`]: producer and consumer records, headers, partitioning by key.
//! - [`error`]: the crate's error, saying whether a failure is worth retrying.
//! - [`embedded`]: the segment-file backend (segments, recovery, retention, group offsets, the
//!   disk budget).
//! - [`metered`]: [`metered::MeteredLog`], any backend with its appended bytes, end offsets and
//!   sizes on `/metrics`.
//! - this file: the [`Log`] and [`Consumer`] traits and [`open`].

pub mod embedded;
mod error;
#[cfg(feature = "kafka")]
pub mod kafka;
mod kafka_config;
pub mod metered;
mod record;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
pub use error::{Error, Result};
pub use kafka_config::KafkaConfig;
pub use record::{partition_for_key, ConsumedRecord, Header, ProducerRecord, RecordMetadata};
pub use retail_core::TopicPartition;

/// Earliest available offset of a partition.
pub const OFFSET_BEGINNING: i64 = -2;
/// End of a partition: only records appended from now on.
pub const OFFSET_END: i64 = -1;

/// A durable, partitioned log. Shared by every task of the process (`Arc<dyn Log>`).
#[async_trait]
pub trait Log: Send + Sync + std::fmt::Debug + 'static {
    /// Creates `topic` with `partitions` partitions, or checks that an existing topic has exactly
    /// that many: a different count is an error, never a silent re-keying.
    async fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<()>;

    /// Partition count of an existing topic.
    async fn partitions(&self, topic: &str) -> Result<i32>;

    /// Appends records, each to the partition given or else chosen by key
    /// ([`partition_for_key`]), or round-robin without a key. Returns once every record is
    /// durable under the configured policy; only then may a source acknowledge its input.
    /// Either every record is appended or an error is returned.
    async fn append(&self, records: Vec<ProducerRecord>) -> Result<Vec<RecordMetadata>>;

    /// Low watermark (first available offset) and high watermark (next offset to be written).
    async fn watermarks(&self, tp: &TopicPartition) -> Result<(i64, i64)>;

    /// The first offset whose record timestamp is at or after `timestamp_ms`, or `None` when
    /// every record is older (Kafka's `offsetsForTimes`).
    async fn offset_for_timestamp(&self, tp: &TopicPartition, timestamp_ms: i64) -> Result<Option<i64>>;

    /// Stores a consumer group's next offsets. Consumers whose offsets of record live elsewhere
    /// (the landing keeps them in the store) still commit here: for lag tools, and because the
    /// embedded backend's retention never deletes what a committed group has not consumed.
    async fn commit_offsets(&self, group: &str, offsets: &[(TopicPartition, i64)]) -> Result<()>;

    /// A consumer group's committed next offsets, `None` where the group has none.
    async fn committed_offsets(&self, group: &str, tps: &[TopicPartition]) -> Result<Vec<Option<i64>>>;

    /// A consumer in `group` subscribed to `topics`. Its first poll reports its assignment.
    async fn consumer(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>>;

    /// Every topic with its partition count, sorted by name: the operator's view of the log.
    /// Both backends list theirs; a log that cannot (a test double) says so.
    async fn topics(&self) -> Result<Vec<(String, i32)>> {
        Err(Error::Config("this log cannot list its topics".into()))
    }

    /// The consumer groups the log knows (those that committed offsets), sorted.
    async fn groups(&self) -> Result<Vec<String>> {
        Err(Error::Config("this log cannot list its consumer groups".into()))
    }

    /// Up to `max` records of one partition from `offset` on, read outside any consumer group
    /// (the record browser): nothing is assigned, committed or moved. An offset outside
    /// `low..=high` is [`Error::OffsetOutOfRange`]; at `high` the answer is empty.
    async fn read(&self, tp: &TopicPartition, offset: i64, max: usize) -> Result<Vec<ConsumedRecord>> {
        let _ = (tp, offset, max);
        Err(Error::Config("this log cannot be browsed".into()))
    }

    /// Bytes a partition takes on disk, `None` where the backend cannot tell (a broker's).
    async fn size_bytes(&self, _tp: &TopicPartition) -> Result<Option<u64>> {
        Ok(None)
    }

    /// `(bytes not yet consumed, disk budget)` where the log holds appends back at a budget
    /// (the embedded log with `disk_budget_bytes` set; [`Error::DiskBudget`]), else `None`.
    /// Cheap: a counter read, for `/health`.
    fn disk_budget(&self) -> Option<(u64, u64)> {
        None
    }
}

/// What a poll returns: a change of assignment (as Kafka's rebalance callbacks) or records.
#[derive(Debug)]
pub enum ConsumerEvent {
    /// These partitions are now this consumer's. Positions start at the group's committed
    /// offsets (or the beginning); call [`Consumer::seek`] to start elsewhere, e.g. at the
    /// offsets kept in the store.
    Assigned(Vec<TopicPartition>),
    /// These partitions were taken away: finish or abandon in-flight work for them.
    Revoked(Vec<TopicPartition>),
    /// Records, in offset order within each partition. May be empty after a timeout.
    Records(Vec<ConsumedRecord>),
}

/// How much one poll may return: at most `records` records, and records only until their
/// bytes (key and value) reach `bytes`. The record that reaches it is returned (so one larger
/// than `bytes` comes alone, and a poll always makes progress): a poll holds at most `bytes`
/// plus one record, whatever the records' size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollLimit {
    /// Most records.
    pub records: usize,
    /// Bytes of keys and values after which no further record is added.
    pub bytes: usize,
}

impl PollLimit {
    /// At most `records` records, of any size.
    pub const fn records(records: usize) -> Self {
        Self {
            records,
            bytes: usize::MAX,
        }
    }
}

/// The bytes a record counts for in a [`PollLimit`]: its key and value.
pub fn record_bytes(record: &ConsumedRecord) -> usize {
    record.value.len() + record.key.as_ref().map_or(0, Vec::len)
}

/// Reads records of a consumer group's assigned partitions.
#[async_trait]
pub trait Consumer: Send + std::fmt::Debug {
    /// Waits up to `timeout` for records (at most `max_records`, of any size) or an
    /// assignment change.
    async fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<ConsumerEvent> {
        self.poll_limited(PollLimit::records(max_records), timeout).await
    }

    /// Waits up to `timeout` for records within `limit` or an assignment change. What the
    /// landing calls, so that a batch's memory is bounded in bytes too.
    async fn poll_limited(&mut self, limit: PollLimit, timeout: Duration) -> Result<ConsumerEvent>;

    /// Moves the position of an assigned partition. [`OFFSET_BEGINNING`] and [`OFFSET_END`]
    /// are accepted; an offset below the low watermark (deleted by retention) is an error.
    fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()>;

    /// Currently assigned partitions.
    fn assignment(&self) -> Vec<TopicPartition>;

    /// Commits next offsets to the log for this consumer's group.
    async fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()>;
}

/// A log backend chosen by URL scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogUrl {
    /// `embedded://<dir>`: segment files under `<dir>`.
    Embedded(PathBuf),
    /// `kafka://host:port[,host:port]`: bootstrap servers.
    Kafka(String),
}

impl std::str::FromStr for LogUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if let Some(path) = s.strip_prefix("embedded://") {
            if path.is_empty() {
                return Err(Error::Config(format!(
                    "log URL {s:?}: embedded:// needs a directory"
                )));
            }
            Ok(Self::Embedded(PathBuf::from(path)))
        } else if let Some(servers) = s.strip_prefix("kafka://") {
            Ok(Self::Kafka(servers.to_owned()))
        } else {
            Err(Error::Config(format!(
                "log URL {s:?}: unknown scheme (expected embedded://<dir> or kafka://host:port)"
            )))
        }
    }
}

/// Opens the backend a URL names.
pub async fn open(
    url: &LogUrl,
    embedded: &embedded::EmbeddedConfig,
    kafka: &KafkaConfig,
) -> Result<Arc<dyn Log>> {
    match url {
        LogUrl::Embedded(dir) => Ok(Arc::new(
            embedded::EmbeddedLog::open(dir, embedded.clone()).await?,
        )),
        #[cfg(feature = "kafka")]
        LogUrl::Kafka(servers) => Ok(Arc::new(kafka::KafkaLog::open(servers, kafka).await?)),
        #[cfg(not(feature = "kafka"))]
        LogUrl::Kafka(servers) => {
            let _ = kafka;
            Err(Error::Config(format!(
                "log URL kafka://{servers}: this binary was built without Kafka support; \
                 build it with `cargo build --release --features kafka` (needs make, pkg-config, \
                 libssl-dev and zlib1g-dev) or use embedded://<dir>"
            )))
        }
    }
}
