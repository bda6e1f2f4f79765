//! Helpers shared by the embedded log's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use retail_log::embedded::{EmbeddedConfig, EmbeddedLog};
use retail_log::{ConsumedRecord, Consumer, ConsumerEvent, Header, ProducerRecord};

pub async fn open(dir: &Path, config: EmbeddedConfig) -> EmbeddedLog {
    EmbeddedLog::open(dir, config).await.expect("log opens")
}

pub fn record(topic: &str, key: Option<&str>, value: &str) -> ProducerRecord {
    ProducerRecord {
        topic: topic.to_owned(),
        partition: None,
        key: key.map(|k| k.as_bytes().to_vec()),
        value: value.as_bytes().to_vec(),
        headers: vec![Header {
            key: "event_type".into(),
            value: b"sale".to_vec(),
        }],
        timestamp_ms: None,
    }
}

pub fn to_partition(topic: &str, partition: i32, value: &str, ts: Option<i64>) -> ProducerRecord {
    ProducerRecord {
        topic: topic.to_owned(),
        partition: Some(partition),
        key: None,
        value: value.as_bytes().to_vec(),
        headers: Vec::new(),
        timestamp_ms: ts,
    }
}

/// Everything the consumer can read now (call after the appends returned: their records are
/// visible, so the first empty poll means the end); panics on a poll error.
pub async fn drain(consumer: &mut dyn Consumer) -> Vec<ConsumedRecord> {
    try_drain(consumer).await.expect("poll succeeds")
}

pub async fn try_drain(consumer: &mut dyn Consumer) -> retail_log::Result<Vec<ConsumedRecord>> {
    let mut out = Vec::new();
    loop {
        match consumer.poll(1000, Duration::from_millis(20)).await? {
            ConsumerEvent::Records(records) if records.is_empty() => return Ok(out),
            ConsumerEvent::Records(records) => out.extend(records),
            ConsumerEvent::Assigned(_) | ConsumerEvent::Revoked(_) => {}
        }
    }
}

/// The only segment file of partition 0 of `topic` (the last one when there are several).
pub fn last_segment(dir: &Path, topic: &str, partition: i32) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(topic).join(partition.to_string()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files.pop().expect("a segment")
}

pub fn small_config() -> EmbeddedConfig {
    EmbeddedConfig {
        retention_ms: 0,
        ..EmbeddedConfig::default()
    }
}

/// Every segment file of a partition, in offset order.
pub fn segments(dir: &Path, topic: &str, partition: i32) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(topic).join(partition.to_string()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// Sets the modification time of every segment of a partition `ago` into the past, as if they
/// were last appended to then (call with the log closed: it reads the times at open).
pub fn backdate_segments(dir: &Path, topic: &str, partition: i32, ago: Duration) {
    let when = SystemTime::now() - ago;
    for path in segments(dir, topic, partition) {
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }
}
