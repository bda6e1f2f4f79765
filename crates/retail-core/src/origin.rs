//! Where a record came from, and the dead letter that carries rejected input with that origin.

use std::fmt;

use chrono::{DateTime, Utc};

/// A partition of a topic, as Kafka names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number, from 0.
    pub partition: i32,
}

impl TopicPartition {
    /// Builds a topic-partition pair.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Where an input came from: enough to find it again (source, log position, file and line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// Source name as configured (`generator`, `pos-webhook`, ...).
    pub source: String,
    /// Log topic, once the input is on the log.
    pub topic: Option<String>,
    /// Log partition.
    pub partition: Option<i32>,
    /// Log offset.
    pub offset: Option<i64>,
    /// File name, for file sources.
    pub file: Option<String>,
    /// Line number (1-based), for file sources.
    pub line: Option<u64>,
}

impl Origin {
    /// An origin on the log.
    pub fn log(source: impl Into<String>, tp: &TopicPartition, offset: i64) -> Self {
        Self {
            source: source.into(),
            topic: Some(tp.topic.clone()),
            partition: Some(tp.partition),
            offset: Some(offset),
            ..Self::default()
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "source {}", self.source)?;
        if let Some(t) = &self.topic {
            write!(f, ", topic {t}")?;
        }
        if let Some(p) = self.partition {
            write!(f, " partition {p}")?;
        }
        if let Some(o) = self.offset {
            write!(f, " offset {o}")?;
        }
        if let Some(file) = &self.file {
            write!(f, ", file {file}")?;
        }
        if let Some(l) = self.line {
            write!(f, " line {l}")?;
        }
        Ok(())
    }
}

/// Rejected input on its way to the dead-letter table or topic: the bytes exactly as received,
/// why they were rejected and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The raw input, unchanged.
    pub raw: Vec<u8>,
    /// Every problem found, e.g. `qty: must be a non-zero integer, got "two"`.
    pub reason: String,
    /// A short stable class for metrics: `malformed_json`, `invalid_field`, `oversized`, ...
    pub kind: &'static str,
    /// Where it came from.
    pub origin: Origin,
    /// When it was rejected.
    pub rejected_at: DateTime<Utc>,
    /// The input's identity at its source, when the source can name it across retries (a
    /// webhook's refused line under an `Idempotency-Key`). The store keeps one dead letter per
    /// id, through the same ledger that lands each event once, so input sent again after a
    /// crash is dead-lettered once. `None`: one dead letter per log record.
    pub id: Option<uuid::Uuid>,
}
