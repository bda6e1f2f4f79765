//! [`KafkaLog`]: the [`Log`] trait on a Kafka-protocol cluster through librdkafka.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::client::{client_config, error, Tracing};
use super::consumer::{KafkaConsumer, Member};
use super::KafkaConfig;
use crate::record::partition_for_key;
use crate::{ConsumedRecord, Consumer, Error, Log, ProducerRecord, RecordMetadata, Result, TopicPartition};

/// What the producer must do for "acknowledged means durable, once": the operator's
/// properties cannot turn these off.
const PRODUCER_FORCED: &[(&str, &str)] = &[("enable.idempotence", "true"), ("acks", "all")];

/// A Kafka cluster as the log. Cheap to share (`Arc<dyn Log>`).
pub struct KafkaLog {
    inner: Arc<Inner>,
}

struct Inner {
    servers: String,
    config: KafkaConfig,
    producer: FutureProducer<Tracing>,
    admin: AdminClient<Tracing>,
    /// A group-less client for metadata, watermarks and offsets-for-times.
    meta: BaseConsumer<Tracing>,
    /// Partition counts of topics seen, for keyed partitioning.
    partitions: Mutex<HashMap<String, i32>>,
    /// Live consumers per group: group offsets are committed through a member, since a broker
    /// refuses commits for an active group from outside it.
    members: Mutex<HashMap<String, Vec<Weak<Member>>>>,
    /// Round-robin counter for records without key or partition.
    next_partition: AtomicUsize,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("servers", &self.inner.servers)
            .finish_non_exhaustive()
    }
}

impl KafkaLog {
    /// Connects to `servers` (`host:port[,host:port]`) and checks that a broker answers.
    pub async fn open(servers: &str, config: &KafkaConfig) -> Result<Self> {
        config.validate().map_err(Error::Config)?;
        let producer: FutureProducer<Tracing> = client_config(servers, config, PRODUCER_FORCED)?
            .create_with_context(Tracing)
            .map_err(|e| error("create producer", &e))?;
        let admin: AdminClient<Tracing> = client_config(servers, config, &[])?
            .create_with_context(Tracing)
            .map_err(|e| error("create admin client", &e))?;
        let meta: BaseConsumer<Tracing> = client_config(servers, config, &[("enable.auto.commit", "false")])?
            .create_with_context(Tracing)
            .map_err(|e| error("create metadata client", &e))?;
        let log = Self {
            inner: Arc::new(Inner {
                servers: servers.to_owned(),
                config: config.clone(),
                producer,
                admin,
                meta,
                partitions: Mutex::new(HashMap::new()),
                members: Mutex::new(HashMap::new()),
                next_partition: AtomicUsize::new(0),
            }),
        };
        let inner = log.inner.clone();
        let timeout = log.timeout();
        blocking(move || {
            inner
                .meta
                .fetch_metadata(None, timeout)
                .map(drop)
                .map_err(|e| error(format!("connect to kafka://{}", inner.servers), &e))
        })
        .await?;
        Ok(log)
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.inner.config.request_timeout_ms)
    }

    /// The partition count of `topic` on the broker, `None` when it does not exist.
    async fn broker_partitions(&self, topic: &str) -> Result<Option<i32>> {
        let inner = self.inner.clone();
        let (topic, timeout) = (topic.to_owned(), self.timeout());
        blocking(move || {
            let md = inner
                .meta
                .fetch_metadata(Some(&topic), timeout)
                .map_err(|e| error(format!("metadata of {topic}"), &e))?;
            let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
                return Ok(None);
            };
            match t.error() {
                None if !t.partitions().is_empty() => Ok(Some(t.partitions().len() as i32)),
                None => Ok(None),
                Some(code) if RDKafkaErrorCode::from(code) == RDKafkaErrorCode::UnknownTopicOrPartition => {
                    Ok(None)
                }
                Some(code) => Err(error(
                    format!("metadata of {topic}"),
                    &KafkaError::MetadataFetch(code.into()),
                )),
            }
        })
        .await
    }

    fn remember(&self, topic: &str, n: i32) {
        lock(&self.inner.partitions).insert(topic.to_owned(), n);
    }

    /// A client in `group` that is not a member (no subscription): reads and, while the group
    /// has no live member, writes its committed offsets.
    fn group_client(&self, group: &str) -> Result<BaseConsumer<Tracing>> {
        client_config(
            &self.inner.servers,
            &self.inner.config,
            &[("group.id", group), ("enable.auto.commit", "false")],
        )?
        .create_with_context(Tracing)
        .map_err(|e| error(format!("create client of group {group}"), &e))
    }
}

#[async_trait]
impl Log for KafkaLog {
    async fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        crate::embedded::validate_name("topic", topic)?;
        if let Some(actual) = self.broker_partitions(topic).await? {
            return check_count(topic, partitions, actual).map(|()| self.remember(topic, actual));
        }
        let new = NewTopic::new(
            topic,
            partitions,
            TopicReplication::Fixed(self.inner.config.replication_factor),
        );
        let opts = AdminOptions::new().operation_timeout(Some(self.timeout()));
        let results = self
            .inner
            .admin
            .create_topics([&new], &opts)
            .await
            .map_err(|e| error(format!("create topic {topic}"), &e))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(error(format!("create topic {name}"), &KafkaError::AdminOp(code)))
                }
            }
        }
        // Creation is asynchronous on the broker: wait until metadata shows the partitions.
        let deadline = tokio::time::Instant::now() + self.timeout();
        loop {
            if let Some(actual) = self.broker_partitions(topic).await? {
                check_count(topic, partitions, actual)?;
                self.remember(topic, actual);
                tracing::info!(message = "kafka topic ready", topic, partitions = actual);
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Kafka {
                    op: format!("create topic {topic}"),
                    message: "the topic did not appear in the metadata in time".into(),
                    retryable: true,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn partitions(&self, topic: &str) -> Result<i32> {
        if let Some(&n) = lock(&self.inner.partitions).get(topic) {
            return Ok(n);
        }
        let n = self
            .broker_partitions(topic)
            .await?
            .ok_or_else(|| Error::UnknownTopic(topic.to_owned()))?;
        self.remember(topic, n);
        Ok(n)
    }

    async fn append(&self, records: Vec<ProducerRecord>) -> Result<Vec<RecordMetadata>> {
        let mut pending = Vec::with_capacity(records.len());
        // Enqueued in order, one at a time: the idempotent producer keeps that order per
        // partition, so events of one key stay in order.
        for r in &records {
            let partition = match (r.partition, &r.key) {
                (Some(p), _) => p,
                (None, Some(key)) => partition_for_key(key, self.partitions(&r.topic).await?),
                (None, None) => {
                    let n = self.partitions(&r.topic).await?.max(1) as usize;
                    (self.inner.next_partition.fetch_add(1, Ordering::Relaxed) % n) as i32
                }
            };
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for h in &r.headers {
                headers = headers.insert(KafkaHeader {
                    key: &h.key,
                    value: Some(&h.value),
                });
            }
            let mut record = FutureRecord::to(&r.topic)
                .partition(partition)
                .payload(&r.value)
                .headers(headers);
            if let Some(key) = &r.key {
                record = record.key(key);
            }
            if let Some(ts) = r.timestamp_ms {
                record = record.timestamp(ts);
            }
            loop {
                match self.inner.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // librdkafka's queue is full: wait for deliveries to make room.
                        record = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(error(format!("append to {}", r.topic), &e)),
                }
            }
        }
        let mut out = Vec::with_capacity(pending.len());
        for (delivery, r) in pending.into_iter().zip(&records) {
            match delivery.await {
                Ok(Ok(d)) => out.push(RecordMetadata {
                    partition: d.partition,
                    offset: d.offset,
                    timestamp_ms: d.timestamp.to_millis().unwrap_or_default(),
                }),
                Ok(Err((e, _))) => return Err(error(format!("append to {}", r.topic), &e)),
                Err(_) => return Err(Error::Closed),
            }
        }
        Ok(out)
    }

    async fn watermarks(&self, tp: &TopicPartition) -> Result<(i64, i64)> {
        let (inner, tp, timeout) = (self.inner.clone(), tp.clone(), self.timeout());
        blocking(move || {
            inner
                .meta
                .fetch_watermarks(&tp.topic, tp.partition, timeout)
                .map_err(|e| error(format!("watermarks of {tp}"), &e))
        })
        .await
    }

    async fn offset_for_timestamp(&self, tp: &TopicPartition, timestamp_ms: i64) -> Result<Option<i64>> {
        let (inner, tp, timeout) = (self.inner.clone(), tp.clone(), self.timeout());
        blocking(move || {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(timestamp_ms))
                .map_err(|e| error(format!("offsets for times of {tp}"), &e))?;
            let found = inner
                .meta
                .offsets_for_times(tpl, timeout)
                .map_err(|e| error(format!("offsets for times of {tp}"), &e))?;
            Ok(found
                .find_partition(&tp.topic, tp.partition)
                .and_then(|e| match e.offset() {
                    Offset::Offset(n) if n >= 0 => Some(n),
                    _ => None,
                }))
        })
        .await
    }

    async fn commit_offsets(&self, group: &str, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let members: Vec<Arc<Member>> = {
            let mut all = lock(&self.inner.members);
            let list = all.entry(group.to_owned()).or_default();
            list.retain(|m| m.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        if let Some(member) = members.first() {
            return member.commit(offsets.to_vec()).await;
        }
        let client = self.group_client(group)?;
        let tpl = offsets_list(offsets)?;
        let group = group.to_owned();
        blocking(move || {
            client
                .commit(&tpl, CommitMode::Sync)
                .map_err(|e| error(format!("commit offsets of group {group}"), &e))
        })
        .await
    }

    async fn committed_offsets(&self, group: &str, tps: &[TopicPartition]) -> Result<Vec<Option<i64>>> {
        let client = self.group_client(group)?;
        let (tps, timeout, group) = (tps.to_vec(), self.timeout(), group.to_owned());
        blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for tp in &tps {
                tpl.add_partition(&tp.topic, tp.partition);
            }
            let found = client
                .committed_offsets(tpl, timeout)
                .map_err(|e| error(format!("committed offsets of group {group}"), &e))?;
            Ok(tps
                .iter()
                .map(|tp| {
                    found
                        .find_partition(&tp.topic, tp.partition)
                        .and_then(|e| match e.offset() {
                            Offset::Offset(n) if n >= 0 => Some(n),
                            _ => None,
                        })
                })
                .collect())
        })
        .await
    }

    async fn topics(&self) -> Result<Vec<(String, i32)>> {
        let (inner, timeout) = (self.inner.clone(), self.timeout());
        blocking(move || {
            let md = inner
                .meta
                .fetch_metadata(None, timeout)
                .map_err(|e| error("list topics", &e))?;
            let mut list: Vec<(String, i32)> = md
                .topics()
                .iter()
                .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
                .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
                .collect();
            list.sort();
            Ok(list)
        })
        .await
    }

    async fn groups(&self) -> Result<Vec<String>> {
        let (inner, timeout) = (self.inner.clone(), self.timeout());
        blocking(move || {
            let list = inner
                .meta
                .fetch_group_list(None, timeout)
                .map_err(|e| error("list consumer groups", &e))?;
            let mut names: Vec<String> = list.groups().iter().map(|g| g.name().to_owned()).collect();
            names.sort();
            names.dedup();
            Ok(names)
        })
        .await
    }

    async fn read(&self, tp: &TopicPartition, offset: i64, max: usize) -> Result<Vec<ConsumedRecord>> {
        // Only the low end is checked here: some brokers (Tansu) report the base offset of the
        // last batch as the high watermark, so an offset past it is left to the broker, which
        // answers "out of range" (`auto.offset.reset=error`) or the end of the partition.
        let (low, high) = self.watermarks(tp).await?;
        if offset < low {
            return Err(Error::OffsetOutOfRange {
                tp: tp.clone(),
                offset,
                low,
                high,
            });
        }
        if max == 0 {
            return Ok(Vec::new());
        }
        // A plain assignment, no group membership: nothing joins, commits or moves.
        let reader: BaseConsumer<Tracing> = client_config(
            &self.inner.servers,
            &self.inner.config,
            &[
                ("group.id", "retail-etl-browser"),
                ("enable.auto.commit", "false"),
                ("enable.partition.eof", "true"),
                ("auto.offset.reset", "error"),
            ],
        )?
        .create_with_context(Tracing)
        .map_err(|e| error(format!("create reader of {tp}"), &e))?;
        let (tp, timeout) = (tp.clone(), self.timeout().min(Duration::from_secs(5)));
        blocking(move || {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(offset))
                .map_err(|e| error(format!("read {tp}"), &e))?;
            reader.assign(&tpl).map_err(|e| error(format!("read {tp}"), &e))?;
            let deadline = std::time::Instant::now() + timeout;
            let mut out = Vec::new();
            while out.len() < max {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                match reader.poll(left) {
                    Some(Ok(m)) => out.push(super::consumer::record(&m)),
                    Some(Err(KafkaError::PartitionEOF(_))) | None => break,
                    Some(Err(e)) => return Err(error(format!("read {tp}"), &e)),
                }
            }
            Ok(out)
        })
        .await
    }

    async fn consumer(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>> {
        let config = client_config(&self.inner.servers, &self.inner.config, &[])?;
        let consumer = KafkaConsumer::start(config, group, topics)?;
        lock(&self.inner.members)
            .entry(group.to_owned())
            .or_default()
            .push(Arc::downgrade(consumer.member()));
        Ok(Box::new(consumer))
    }
}

/// An existing topic must have the configured count: a different one would re-key silently.
fn check_count(topic: &str, expected: i32, actual: i32) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::PartitionMismatch {
            topic: topic.to_owned(),
            expected,
            actual,
        })
    }
}

/// `(partition, next offset)` pairs as a librdkafka list.
pub(super) fn offsets_list(offsets: &[(TopicPartition, i64)]) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for (tp, next) in offsets {
        tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*next))
            .map_err(|e| error(format!("offset list for {tp}"), &e))?;
    }
    Ok(tpl)
}

/// Runs a blocking librdkafka call off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|_| Error::Closed)?
}

/// Locks a mutex; a panic elsewhere while holding it leaves plain data, still usable.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
