//! [`KafkaConsumer`]: a member of a consumer group whose rebalances wait for the caller.
//!
//! One thread owns librdkafka's consumer and polls it only when the caller asks (a request
//! per [`Consumer::poll`] or commit), so librdkafka's rebalance callback always runs inside a
//! caller's poll. The callback answers that poll with [`ConsumerEvent::Assigned`] or
//! [`ConsumerEvent::Revoked`] and then waits for the caller's next request before it assigns
//! or gives up the partitions:
//! - on assignment, seeks the caller made in between become the offsets of the assignment
//!   itself (the landing seeks to the offsets kept in the store), so there is no window where
//!   fetching starts at the group's committed offset and no seek-after-assign race;
//! - on revocation, the caller finishes (or abandons) its in-flight batch first, and commits
//!   made meanwhile go through while the partitions are still this member's, so the next owner
//!   finds the work of this one complete, never half of a batch.
//!
//! The store's offset fence stays the guarantee (a batch commits only from the offset the store
//! holds); this ordering only keeps members from tripping over each other.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::client::{error, Tracing};
use super::log::{lock, offsets_list};
use crate::{
    ConsumedRecord, Consumer, ConsumerEvent, Error, Header, PollLimit, Result, TopicPartition,
    OFFSET_BEGINNING, OFFSET_END,
};

/// What the consumer's thread is asked to do.
enum Request {
    Poll {
        limit: PollLimit,
        timeout: Duration,
        reply: oneshot::Sender<Result<ConsumerEvent>>,
    },
    Commit {
        offsets: Vec<(TopicPartition, i64)>,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// The link to a consumer's thread, shared with the log so group commits go through a live
/// member. Dropping the last strong reference stops the thread.
pub(super) struct Member {
    requests: Mutex<mpsc::Sender<Request>>,
}

impl Member {
    /// Commits `offsets` of partitions this member holds (others are skipped: their owner
    /// commits them).
    pub(super) async fn commit(&self, offsets: Vec<(TopicPartition, i64)>) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        lock(&self.requests)
            .send(Request::Commit { offsets, reply })
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}

/// State shared by the thread and the rebalance callback (both on the consumer's thread).
struct Bridge {
    requests: Mutex<mpsc::Receiver<Request>>,
    /// The reply of the poll being served, taken by whoever answers it.
    current: Mutex<Option<oneshot::Sender<Result<ConsumerEvent>>>>,
    /// A request the callback received while waiting; served next by the thread.
    pending: Mutex<Option<Request>>,
    /// Assignment changes no poll was waiting for, returned by the next polls.
    announcements: Mutex<VecDeque<ConsumerEvent>>,
    /// Seeks asked for and not yet applied.
    seeks: Arc<Mutex<HashMap<TopicPartition, i64>>>,
    /// Partitions currently this member's, as the caller sees them.
    assignment: Arc<Mutex<BTreeSet<TopicPartition>>>,
    group: String,
}

impl ClientContext for Bridge {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, line: &str) {
        Tracing.log(level, fac, line);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        Tracing.error(error, reason);
    }
}

impl ConsumerContext for Bridge {
    fn rebalance(&self, base: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let tps = partitions_of(tpl);
        let cooperative = matches!(base.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                info!(message = "kafka assigned partitions", group = %self.group, partitions = tps.len());
                lock(&self.assignment).extend(tps.iter().cloned());
                let next = self.announce_and_wait(base, ConsumerEvent::Assigned(tps.clone()));
                // Seeks made since the announcement are where the assignment starts.
                {
                    let mut seeks = lock(&self.seeks);
                    for tp in &tps {
                        if let Some(offset) = seeks.remove(tp) {
                            let _ = tpl.set_partition_offset(&tp.topic, tp.partition, to_offset(offset));
                        }
                    }
                }
                let result = if cooperative {
                    base.incremental_assign(tpl)
                } else {
                    base.assign(tpl)
                };
                if let Err(e) = result {
                    warn!(message = "kafka assign failed", group = %self.group, error = %e);
                }
                *lock(&self.pending) = next;
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                info!(message = "kafka revoked partitions", group = %self.group, partitions = tps.len());
                let next = self.announce_and_wait(base, ConsumerEvent::Revoked(tps.clone()));
                {
                    let mut assignment = lock(&self.assignment);
                    let mut seeks = lock(&self.seeks);
                    for tp in &tps {
                        assignment.remove(tp);
                        seeks.remove(tp);
                    }
                }
                let result = if cooperative {
                    base.incremental_unassign(tpl)
                } else {
                    base.unassign()
                };
                if let Err(e) = result {
                    warn!(message = "kafka unassign failed", group = %self.group, error = %e);
                }
                *lock(&self.pending) = next;
            }
            other => {
                warn!(message = "kafka rebalance error; giving up the assignment", group = %self.group, error = ?other);
                let revoked: Vec<TopicPartition> =
                    std::mem::take(&mut *lock(&self.assignment)).into_iter().collect();
                if !revoked.is_empty() {
                    lock(&self.announcements).push_back(ConsumerEvent::Revoked(revoked));
                }
                let _ = base.unassign();
            }
        }
    }
}

impl Bridge {
    /// Answers the poll being served with `event` and waits for the caller's next poll,
    /// serving commits meanwhile (the partitions are still ours). Returns that next request;
    /// `None` when no poll was waiting (the event is queued) or the consumer was dropped.
    fn announce_and_wait(&self, base: &BaseConsumer<Self>, event: ConsumerEvent) -> Option<Request> {
        let Some(reply) = lock(&self.current).take() else {
            lock(&self.announcements).push_back(event);
            return None;
        };
        if reply.send(Ok(event)).is_err() {
            return None; // the poll was cancelled; the caller will poll again
        }
        loop {
            match lock(&self.requests).recv() {
                Ok(Request::Commit { offsets, reply }) => {
                    let _ = reply.send(commit(base, &self.assignment, &offsets));
                }
                Ok(poll) => return Some(poll),
                Err(_) => return None,
            }
        }
    }
}

/// A Kafka consumer group member (see the module docs for how rebalances work).
pub struct KafkaConsumer {
    member: Arc<Member>,
    seeks: Arc<Mutex<HashMap<TopicPartition, i64>>>,
    assignment: Arc<Mutex<BTreeSet<TopicPartition>>>,
    group: String,
}

impl std::fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConsumer")
            .field("group", &self.group)
            .field("assignment", &*lock(&self.assignment))
            .finish_non_exhaustive()
    }
}

impl KafkaConsumer {
    /// Joins `group` subscribed to `topics`, with a thread of its own.
    pub(super) fn start(mut config: ClientConfig, group: &str, topics: &[&str]) -> Result<Self> {
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest");
        let (tx, rx) = mpsc::channel();
        let seeks = Arc::new(Mutex::new(HashMap::new()));
        let assignment = Arc::new(Mutex::new(BTreeSet::new()));
        let bridge = Bridge {
            requests: Mutex::new(rx),
            current: Mutex::new(None),
            pending: Mutex::new(None),
            announcements: Mutex::new(VecDeque::new()),
            seeks: seeks.clone(),
            assignment: assignment.clone(),
            group: group.to_owned(),
        };
        let base: BaseConsumer<Bridge> = config
            .create_with_context(bridge)
            .map_err(|e| error(format!("create consumer of group {group}"), &e))?;
        base.subscribe(topics)
            .map_err(|e| error(format!("subscribe group {group} to {topics:?}"), &e))?;
        std::thread::Builder::new()
            .name(format!("kafka-{group}"))
            .spawn(move || {
                Worker {
                    base,
                    buffer: VecDeque::new(),
                }
                .run()
            })
            .map_err(|e| Error::io("kafka consumer thread", e))?;
        Ok(Self {
            member: Arc::new(Member {
                requests: Mutex::new(tx),
            }),
            seeks,
            assignment,
            group: group.to_owned(),
        })
    }

    pub(super) fn member(&self) -> &Arc<Member> {
        &self.member
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn poll_limited(&mut self, limit: PollLimit, timeout: Duration) -> Result<ConsumerEvent> {
        let (reply, answer) = oneshot::channel();
        lock(&self.member.requests)
            .send(Request::Poll {
                limit: PollLimit {
                    records: limit.records.max(1),
                    bytes: limit.bytes.max(1),
                },
                timeout,
                reply,
            })
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        if offset < 0 && offset != OFFSET_BEGINNING && offset != OFFSET_END {
            return Err(Error::Config(format!("seek {tp} to {offset}: not an offset")));
        }
        lock(&self.seeks).insert(tp.clone(), offset);
        Ok(())
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        lock(&self.assignment).iter().cloned().collect()
    }

    async fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        self.member.commit(offsets.to_vec()).await
    }
}

/// The consumer's thread: serves requests until the consumer is dropped.
struct Worker {
    base: BaseConsumer<Bridge>,
    /// Records read past a rebalance announcement, returned by the next polls.
    buffer: VecDeque<ConsumedRecord>,
}

impl Worker {
    fn run(mut self) {
        loop {
            let next = lock(&self.bridge().pending).take();
            let request = match next {
                Some(r) => r,
                None => match lock(&self.bridge().requests).recv() {
                    Ok(r) => r,
                    Err(_) => break,
                },
            };
            match request {
                Request::Poll {
                    limit,
                    timeout,
                    reply,
                } => self.poll(limit, timeout, reply),
                Request::Commit { offsets, reply } => {
                    let _ = reply.send(commit(&self.base, &self.bridge().assignment, &offsets));
                }
            }
        }
        // Leaving the group: the base consumer closes when dropped here; a last rebalance
        // callback finds no caller and returns at once.
        info!(message = "kafka consumer closing", group = %self.bridge().group);
    }

    fn bridge(&self) -> &Bridge {
        self.base.context()
    }

    fn poll(&mut self, limit: PollLimit, timeout: Duration, reply: oneshot::Sender<Result<ConsumerEvent>>) {
        let max = limit.records;
        self.apply_seeks();
        let bridge = Arc::clone(self.base.context());
        if let Some(event) = lock(&bridge.announcements).pop_front() {
            let _ = reply.send(Ok(event));
            return;
        }
        {
            let assignment = lock(&bridge.assignment);
            self.buffer
                .retain(|r| assignment.contains(&TopicPartition::new(&r.topic, r.partition)));
        }
        if !self.buffer.is_empty() {
            // Within the limit, as a fresh read would be: records up to the one reaching `bytes`.
            let (mut n, mut bytes) = (0, 0usize);
            while n < max.min(self.buffer.len()) && bytes < limit.bytes {
                bytes = bytes.saturating_add(self.buffer.get(n).map_or(0, crate::record_bytes));
                n += 1;
            }
            let _ = reply.send(Ok(ConsumerEvent::Records(self.buffer.drain(..n).collect())));
            return;
        }
        *lock(&bridge.current) = Some(reply);
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut failure = None;
        loop {
            let wait = if out.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match self.base.poll(wait) {
                Some(Ok(m)) => {
                    let owned = {
                        let assignment = lock(&bridge.assignment);
                        assignment.contains(&TopicPartition::new(m.topic(), m.partition()))
                    };
                    if owned {
                        let r = record(&m);
                        bytes = bytes.saturating_add(crate::record_bytes(&r));
                        out.push(r);
                    }
                }
                Some(Err(e)) => {
                    if out.is_empty() {
                        failure = Some(error("poll", &e));
                    }
                    break;
                }
                None if wait.is_zero() || Instant::now() >= deadline => break,
                None => {}
            }
            if lock(&bridge.current).is_none() || out.len() >= max || bytes >= limit.bytes {
                break;
            }
        }
        let reply = lock(&bridge.current).take();
        match reply {
            Some(reply) => {
                let _ = reply.send(match failure {
                    Some(e) => Err(e),
                    None => Ok(ConsumerEvent::Records(out)),
                });
            }
            // A rebalance answered this poll: what was read waits for the next one.
            None => self.buffer.extend(out),
        }
    }

    /// Seeks of partitions already fetching (those made right after an assignment were used
    /// by the assignment itself). A seek the broker cannot do yet stays for the next poll.
    fn apply_seeks(&mut self) {
        let seeks: Vec<(TopicPartition, i64)> = lock(&self.bridge().seeks).drain().collect();
        for (tp, offset) in seeks {
            self.buffer
                .retain(|r| !(r.partition == tp.partition && r.topic == tp.topic));
            if let Err(e) = self.base.seek(
                &tp.topic,
                tp.partition,
                to_offset(offset),
                Duration::from_secs(10),
            ) {
                warn!(message = "kafka seek failed; retrying on the next poll", partition = %tp, offset, error = %e);
                lock(&self.bridge().seeks).entry(tp).or_insert(offset);
            }
        }
    }
}

/// Commits the offsets of partitions in `assignment`, synchronously.
fn commit(
    base: &BaseConsumer<Bridge>,
    assignment: &Mutex<BTreeSet<TopicPartition>>,
    offsets: &[(TopicPartition, i64)],
) -> Result<()> {
    let mine: Vec<(TopicPartition, i64)> = {
        let assignment = lock(assignment);
        offsets
            .iter()
            .filter(|(tp, _)| assignment.contains(tp))
            .cloned()
            .collect()
    };
    if mine.is_empty() {
        return Ok(());
    }
    base.commit(&offsets_list(&mine)?, CommitMode::Sync)
        .map_err(|e| error("commit offsets", &e))
}

fn to_offset(offset: i64) -> Offset {
    match offset {
        OFFSET_BEGINNING => Offset::Beginning,
        OFFSET_END => Offset::End,
        n => Offset::Offset(n),
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

/// A librdkafka message as the log's record.
pub(super) fn record(m: &BorrowedMessage<'_>) -> ConsumedRecord {
    ConsumedRecord {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis().unwrap_or_default(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        headers: m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| Header {
                        key: h.key.to_owned(),
                        value: h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}
