//! [`MeteredLog`]: any [`Log`] backend with its appends and sizes on `/metrics`, so the log's
//! metric families move the same way whichever backend the URL picked.
//!
//! The decorator counts the bytes of every append per topic
//! (`retail_log_appended_bytes_total`: keys, values and headers as the producer gave them, not
//! a backend's framing), and a sampler task sets, every [`SAMPLE_EVERY`], each partition's end
//! offset (`retail_log_end_offset`) and each topic's bytes on disk (`retail_log_size_bytes`,
//! where the backend knows them: [`Log::size_bytes`]) for every topic created or checked
//! through it. Appended records are not counted here: `/metrics` reads them from the end
//! offsets at scrape time, so appends by every writer count (ADR 0007).
//!
//! The sampler holds only a weak reference: it ends when the last handle on the log is dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use retail_core::Metrics;

use crate::{ConsumedRecord, Consumer, Log, ProducerRecord, RecordMetadata, Result, TopicPartition};

/// How often the sampler reads end offsets and sizes.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// A [`Log`] that meters the log it wraps.
#[derive(Debug)]
pub struct MeteredLog {
    inner: Arc<dyn Log>,
    metrics: Metrics,
    /// Topics seen through [`Log::ensure_topic`], with their partition counts.
    topics: Mutex<BTreeMap<String, i32>>,
}

impl MeteredLog {
    /// `log`, metered into `metrics`, with its sampler running on the current tokio runtime
    /// (call from within one).
    pub fn wrap(log: Arc<dyn Log>, metrics: Metrics) -> Arc<dyn Log> {
        let metered = Arc::new(Self {
            inner: log,
            metrics,
            topics: Mutex::new(BTreeMap::new()),
        });
        tokio::spawn(sample_until_dropped(Arc::downgrade(&metered)));
        metered
    }

    /// Sets every known partition's end offset and every topic's size once.
    async fn sample(&self) {
        let topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for (topic, partitions) in topics {
            let mut size: Option<u64> = None;
            for partition in 0..partitions {
                let tp = TopicPartition::new(topic.as_str(), partition);
                if let Ok((_, high)) = self.inner.watermarks(&tp).await {
                    self.metrics.log_end_offset(&topic, partition).set(high);
                }
                if let Ok(Some(bytes)) = self.inner.size_bytes(&tp).await {
                    size = Some(size.unwrap_or(0).saturating_add(bytes));
                }
            }
            if let Some(bytes) = size {
                self.metrics
                    .log_size_bytes(&topic)
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
        }
    }
}

/// Samples every [`SAMPLE_EVERY`] until the log is dropped.
async fn sample_until_dropped(log: Weak<MeteredLog>) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let Some(log) = log.upgrade() else {
            return;
        };
        log.sample().await;
    }
}

/// The bytes of a record as the producer gave them: key, value, and each header's key and value.
fn record_bytes(r: &ProducerRecord) -> u64 {
    let headers: usize = r.headers.iter().map(|h| h.key.len() + h.value.len()).sum();
    (r.key.as_ref().map_or(0, Vec::len) + r.value.len() + headers) as u64
}

#[async_trait]
impl Log for MeteredLog {
    async fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        self.inner.ensure_topic(topic, partitions).await?;
        self.topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic.to_owned(), partitions);
        Ok(())
    }

    async fn partitions(&self, topic: &str) -> Result<i32> {
        self.inner.partitions(topic).await
    }

    async fn append(&self, records: Vec<ProducerRecord>) -> Result<Vec<RecordMetadata>> {
        // Counted per topic before the records move into the backend; added only once the
        // append succeeded (an append is all or nothing).
        // (An append rarely spans more than one or two topics: a list beats a map.)
        let mut bytes: Vec<(String, u64)> = Vec::with_capacity(1);
        for r in &records {
            match bytes.iter_mut().find(|(t, _)| *t == r.topic) {
                Some((_, n)) => *n += record_bytes(r),
                None => bytes.push((r.topic.clone(), record_bytes(r))),
            }
        }
        let appended = self.inner.append(records).await?;
        for (topic, n) in bytes {
            self.metrics.log_appended_bytes(&topic).inc_by(n);
        }
        Ok(appended)
    }

    async fn watermarks(&self, tp: &TopicPartition) -> Result<(i64, i64)> {
        self.inner.watermarks(tp).await
    }

    async fn offset_for_timestamp(&self, tp: &TopicPartition, timestamp_ms: i64) -> Result<Option<i64>> {
        self.inner.offset_for_timestamp(tp, timestamp_ms).await
    }

    async fn commit_offsets(&self, group: &str, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        self.inner.commit_offsets(group, offsets).await
    }

    async fn committed_offsets(&self, group: &str, tps: &[TopicPartition]) -> Result<Vec<Option<i64>>> {
        self.inner.committed_offsets(group, tps).await
    }

    async fn consumer(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>> {
        self.inner.consumer(group, topics).await
    }

    async fn topics(&self) -> Result<Vec<(String, i32)>> {
        self.inner.topics().await
    }

    async fn groups(&self) -> Result<Vec<String>> {
        self.inner.groups().await
    }

    async fn read(&self, tp: &TopicPartition, offset: i64, max: usize) -> Result<Vec<ConsumedRecord>> {
        self.inner.read(tp, offset, max).await
    }

    async fn size_bytes(&self, tp: &TopicPartition) -> Result<Option<u64>> {
        self.inner.size_bytes(tp).await
    }

    fn disk_budget(&self) -> Option<(u64, u64)> {
        self.inner.disk_budget()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::{EmbeddedConfig, EmbeddedLog};
    use crate::Header;

    fn rec(topic: &str, value: &str) -> ProducerRecord {
        ProducerRecord {
            topic: topic.to_owned(),
            partition: None,
            key: Some(b"k".to_vec()),
            value: value.as_bytes().to_vec(),
            headers: vec![Header {
                key: "h".into(),
                value: b"v".to_vec(),
            }],
            timestamp_ms: None,
        }
    }

    /// The value of the first sample line starting with `prefix`.
    fn sample(metrics: &Metrics, prefix: &str) -> Option<f64> {
        metrics
            .render_text()
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[tokio::test]
    async fn appends_count_per_topic_and_the_sampler_sets_ends_and_sizes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let embedded = EmbeddedLog::open(dir.path(), EmbeddedConfig::default())
            .await
            .expect("open");
        let metrics = Metrics::new();
        let log = MeteredLog::wrap(Arc::new(embedded), metrics.clone());
        log.ensure_topic("sales", 2).await.expect("topic");
        log.ensure_topic("orders", 1).await.expect("topic");
        log.append(vec![
            rec("sales", "12345"),
            rec("sales", "1"),
            rec("orders", "xy"),
        ])
        .await
        .expect("append");
        // Each record: key 1 + header 2 + value.
        assert_eq!(
            sample(&metrics, "retail_log_appended_bytes_total{topic=\"sales\"}"),
            Some(12.0)
        );
        assert_eq!(
            sample(&metrics, "retail_log_appended_bytes_total{topic=\"orders\"}"),
            Some(5.0)
        );
        // A failed append counts nothing.
        assert!(log.append(vec![rec("nope", "x")]).await.is_err());
        assert_eq!(
            sample(&metrics, "retail_log_appended_bytes_total{topic=\"nope\"}"),
            None
        );

        // The sampler's first round ran at once (before the appends); the next within SAMPLE_EVERY.
        tokio::time::sleep(SAMPLE_EVERY + Duration::from_millis(500)).await;
        let ends: f64 = (0..2)
            .filter_map(|p| {
                sample(
                    &metrics,
                    &format!("retail_log_end_offset{{topic=\"sales\",partition=\"{p}\"}}"),
                )
            })
            .sum();
        assert_eq!(ends, 2.0);
        let size = sample(&metrics, "retail_log_size_bytes{topic=\"sales\"}").expect("size sampled");
        assert!(size >= 12.0, "the embedded log knows its bytes on disk: {size}");

        // Everything else is the wrapped log's: the operator's view of it included.
        let topics = log.topics().await.expect("topics");
        assert!(topics.contains(&("sales".to_owned(), 2)), "{topics:?}");
        log.commit_offsets("g", &[(TopicPartition::new("orders", 0), 1)])
            .await
            .expect("commit");
        assert_eq!(log.groups().await.expect("groups"), vec!["g".to_owned()]);
        let read = log
            .read(&TopicPartition::new("orders", 0), 0, 10)
            .await
            .expect("read");
        assert_eq!(read.len(), 1);
    }
}
