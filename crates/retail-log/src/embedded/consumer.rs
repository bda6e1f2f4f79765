//! [`EmbeddedConsumer`]: reads every partition of its topics (one process, so no rebalancing;
//! the group only names the committed offsets), fairly and without losing its place when a poll
//! is cancelled.
//!
//! Fairness: each poll offers every partition with data an equal share of `max_records`, then
//! gives what is left to those that had more, starting one partition later each poll, so a
//! busy partition cannot starve the others.
//!
//! Cancellation: the reading happens in `spawn_blocking` on copies of the positions, which are
//! applied only when the poll returns its records. A poll dropped half-way (a `select!` on
//! shutdown) leaves the positions where they were, so no record is skipped.
//!
//! Deleted positions: when retention deleted the record at a partition's position, poll returns
//! [`Error::OffsetOutOfRange`] (not retryable) and keeps returning it, with the position
//! unchanged, until the caller [`seek`](Consumer::seek)s that partition, e.g. to
//! [`OFFSET_BEGINNING`] once it has decided the gap is acceptable. It never jumps forward on its
//! own. Records read before the error in the same poll are returned first. Retention cannot
//! delete a consumer group's committed offset, so a group that commits (the landing does, about
//! once a second while it lands) only meets this before its first commit or after seeking
//! behind it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tracing::warn;

use super::log::{blocking, commit, Shared};
use super::partition::{Cursor, Partition};
use super::topic::validate_name;
use crate::record::ConsumedRecord;
use crate::{
    Consumer, ConsumerEvent, Error, PollLimit, Result, TopicPartition, OFFSET_BEGINNING, OFFSET_END,
};

/// One assigned partition and where this consumer stands in it.
#[derive(Debug)]
struct Assigned {
    part: Arc<Partition>,
    /// Next offset to return.
    position: i64,
    /// Where `position` is on disk, when known.
    cursor: Option<Cursor>,
}

/// A consumer of the embedded log, assigned every partition of its topics.
///
/// [`poll`](Consumer::poll) returns [`Error::OffsetOutOfRange`] (not retryable) when retention
/// deleted the record at a partition's position, and keeps returning it until the caller
/// [`seek`](Consumer::seek)s that partition: it never skips forward on its own, so the caller
/// decides whether the lost records matter (the landing would rather stop than miss them).
/// Positions at or after a committed offset of this consumer's group are safe from retention.
pub struct EmbeddedConsumer {
    shared: Arc<Shared>,
    group: String,
    parts: Vec<Assigned>,
    announced: bool,
    /// Partition the next poll starts with.
    next_start: usize,
    appended: watch::Receiver<u64>,
    /// Read buffer reused across polls (lost, harmlessly, when a poll is cancelled).
    scratch: Option<Vec<u8>>,
}

impl std::fmt::Debug for EmbeddedConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let positions: Vec<String> = self
            .parts
            .iter()
            .map(|a| format!("{}@{}", a.part.tp, a.position))
            .collect();
        f.debug_struct("EmbeddedConsumer")
            .field("group", &self.group)
            .field("positions", &positions)
            .finish()
    }
}

impl Drop for EmbeddedConsumer {
    /// The group may expire once its last consumer is gone and it stays idle.
    fn drop(&mut self) {
        self.shared.offsets.leave(&self.group);
    }
}

/// A partition to read in one poll, with a copy of its position.
struct Planned {
    index: usize,
    part: Arc<Partition>,
    position: i64,
    cursor: Option<Cursor>,
    more: bool,
}

impl EmbeddedConsumer {
    /// A consumer of every partition of `topics`, starting at the group's committed offsets or
    /// else at the low watermarks. A committed offset below the low watermark is kept, so the
    /// first poll reports it as [`Error::OffsetOutOfRange`]; one past the high watermark starts
    /// at the high watermark.
    pub(crate) async fn new(shared: Arc<Shared>, group: &str, topics: &[&str]) -> Result<Self> {
        validate_name("consumer group", group)?;
        let mut parts = Vec::new();
        for name in topics {
            let topic = shared.topic(name)?;
            for part in &topic.partitions {
                if !parts.iter().any(|a: &Assigned| Arc::ptr_eq(&a.part, part)) {
                    parts.push(Assigned {
                        part: Arc::clone(part),
                        position: 0,
                        cursor: None,
                    });
                }
            }
        }
        let tps: Vec<TopicPartition> = parts.iter().map(|a| a.part.tp.clone()).collect();
        let committed = {
            let shared = Arc::clone(&shared);
            let group = group.to_owned();
            blocking(move || shared.offsets.committed(&group, &tps)).await?
        };
        for (a, committed) in parts.iter_mut().zip(committed) {
            let (low, high) = a.part.watermarks();
            a.position = match committed {
                None => low,
                Some(c) if c <= high => {
                    if c < low {
                        warn!(
                            message = "committed offset was deleted by retention; poll reports it until the consumer seeks",
                            group,
                            partition = %a.part.tp,
                            committed = c,
                            low_watermark = low,
                        );
                    }
                    c
                }
                Some(c) => {
                    warn!(
                        message = "committed offset past the end of the partition, starting at the end",
                        group,
                        partition = %a.part.tp,
                        committed = c,
                        high_watermark = high,
                    );
                    high
                }
            };
        }
        let appended = shared.appended.subscribe();
        shared.offsets.join(group);
        Ok(Self {
            shared,
            group: group.to_owned(),
            parts,
            announced: false,
            next_start: 0,
            appended,
            scratch: None,
        })
    }

    /// The partitions with records past this consumer's position, in this poll's order.
    fn plan(&self) -> Vec<Planned> {
        let n = self.parts.len();
        (0..n)
            .map(|i| (self.next_start + i) % n)
            .filter_map(|index| {
                let a = &self.parts[index];
                let (_, high) = a.part.watermarks();
                (a.position < high).then(|| Planned {
                    index,
                    part: Arc::clone(&a.part),
                    position: a.position,
                    cursor: a.cursor.clone(),
                    more: true,
                })
            })
            .collect()
    }
}

/// Reads up to `limit` (records, and bytes: see [`PollLimit`]) from the planned partitions,
/// fairly. An error after some records were read returns those records (with the positions
/// that follow them): the error comes back on the next poll, so records before a damaged one
/// are not held back.
fn fetch(plan: &mut [Planned], limit: PollLimit, buf: &mut Vec<u8>) -> Result<Vec<ConsumedRecord>> {
    let max = limit.records;
    let quota = max.div_ceil(plan.len().max(1)).max(1);
    let mut out = Vec::with_capacity(max.min(16 * 1024));
    let mut bytes_left = limit.bytes;
    for pass in 0..2 {
        for p in plan.iter_mut() {
            let budget = max - out.len();
            if budget == 0 || bytes_left == 0 {
                return Ok(out);
            }
            if pass == 1 && !p.more {
                continue;
            }
            let want = if pass == 0 { quota.min(budget) } else { budget };
            let before = out.len();
            if let Err(e) = p.part.read(
                &mut p.position,
                &mut p.cursor,
                want,
                &mut bytes_left,
                buf,
                &mut out,
            ) {
                return if out.is_empty() { Err(e) } else { Ok(out) };
            }
            p.more = out.len() - before == want;
        }
    }
    Ok(out)
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn poll_limited(&mut self, limit: PollLimit, timeout: Duration) -> Result<ConsumerEvent> {
        if !self.announced {
            self.announced = true;
            return Ok(ConsumerEvent::Assigned(self.assignment()));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Marked seen before looking, so an append landing after the look still wakes us.
            self.appended.borrow_and_update();
            let mut plan = if limit.records == 0 || limit.bytes == 0 {
                Vec::new()
            } else {
                self.plan()
            };
            if !plan.is_empty() {
                let mut buf = self.scratch.take().unwrap_or_default();
                let (plan, buf, result) = blocking(move || {
                    let result = fetch(&mut plan, limit, &mut buf);
                    Ok((plan, buf, result))
                })
                .await?;
                self.scratch = Some(buf);
                let records = result?;
                for p in plan {
                    let a = &mut self.parts[p.index];
                    a.position = p.position;
                    a.cursor = p.cursor;
                }
                self.next_start = (self.next_start + 1) % self.parts.len().max(1);
                if !records.is_empty() {
                    return Ok(ConsumerEvent::Records(records));
                }
            }
            match tokio::time::timeout_at(deadline, self.appended.changed()).await {
                Ok(Ok(())) => {}
                // Timed out, or the log is gone (cannot happen while we hold `shared`).
                Ok(Err(_)) | Err(_) => return Ok(ConsumerEvent::Records(Vec::new())),
            }
        }
    }

    fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        let a = self
            .parts
            .iter_mut()
            .find(|a| a.part.tp == *tp)
            .ok_or_else(|| Error::UnknownPartition {
                topic: tp.topic.clone(),
                partition: tp.partition,
            })?;
        let (low, high) = a.part.watermarks();
        a.position = match offset {
            OFFSET_BEGINNING => low,
            OFFSET_END => high,
            o if (low..=high).contains(&o) => o,
            o => {
                return Err(Error::OffsetOutOfRange {
                    tp: tp.clone(),
                    offset: o,
                    low,
                    high,
                })
            }
        };
        a.cursor = None;
        Ok(())
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.parts.iter().map(|a| a.part.tp.clone()).collect()
    }

    async fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        commit(&self.shared, &self.group, offsets).await
    }
}
