//! The log for operators, as the Kafka UIs beside a broker show it: topics with their
//! partitions and offsets, consumer groups with committed offsets and lag, and a record browser
//! that reads a partition from an offset or a time. The same for the embedded log and Kafka:
//! everything goes through the [`Log`] trait.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use retail_log::{Log, TopicPartition};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::params::{Params, RawParams};
use crate::server::ServeState;

/// Most records one browse returns.
pub const MAX_BROWSE: u32 = 200;

/// One partition of a topic.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicPartitionView {
    /// Partition number.
    pub partition: i32,
    /// First offset still in the log.
    pub low: i64,
    /// Next offset to be written (the end offset).
    pub high: i64,
    /// Records held: `high - low`.
    pub records: i64,
}

/// A topic.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicView {
    /// Name.
    pub topic: String,
    /// Its partitions.
    pub partitions: Vec<TopicPartitionView>,
    /// Records held, summed over partitions.
    pub records: i64,
}

/// Every topic of the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct Topics {
    /// Sorted by name.
    pub topics: Vec<TopicView>,
}

/// A consumer group's position in one partition.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupPartitionView {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset the group reads (as committed to the log).
    pub committed: i64,
    /// End offset of the partition.
    pub high: i64,
    /// Records not consumed yet: `high - committed`.
    pub lag: i64,
}

/// A consumer group.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    /// Name.
    pub group: String,
    /// Partitions the group committed offsets for.
    pub partitions: Vec<GroupPartitionView>,
    /// Summed lag.
    pub lag: i64,
}

/// Every consumer group of the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct Groups {
    /// Sorted by name.
    pub groups: Vec<GroupView>,
}

/// A record header; the value as text (invalid UTF-8 replaced by U+FFFD).
#[derive(Debug, Serialize, ToSchema)]
pub struct HeaderView {
    /// Name.
    pub key: String,
    /// Value.
    pub value: String,
}

/// A record as stored in the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordView {
    /// Offset in the partition.
    pub offset: i64,
    /// Record timestamp, epoch milliseconds.
    pub timestamp_ms: i64,
    /// Key as text, if any.
    pub key: Option<String>,
    /// Headers, in order.
    pub headers: Vec<HeaderView>,
    /// Value as text (invalid UTF-8 replaced by U+FFFD).
    pub value: String,
}

/// A page of one partition.
#[derive(Debug, Serialize, ToSchema)]
pub struct Records {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Records from the offset asked for (or the first at or after the time).
    pub records: Vec<RecordView>,
    /// Offset to ask for next; equal to `high` at the end.
    pub next_offset: i64,
    /// End offset of the partition when read.
    pub high: i64,
}

fn log(s: &ServeState) -> ApiResult<Arc<dyn Log>> {
    s.log()
        .ok_or_else(|| ApiError::unavailable("the log is not open yet (see /health)"))
}

fn log_error(what: &str, e: &retail_log::Error) -> ApiError {
    if e.is_retryable() {
        tracing::warn!(message = "log unavailable for an API request", what, error = %e);
        ApiError::unavailable("the log is unavailable right now; retry shortly")
    } else {
        ApiError::internal(what, e)
    }
}

/// Topics with their partitions and offsets.
#[utoipa::path(
    get,
    path = "/api/v1/log/topics",
    tag = "log",
    responses(
        (status = 200, description = "Every topic of the log", body = Topics),
        (status = 400, description = "A parameter was given (there are none)", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 503, description = "The log is not open yet or unreachable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn topics(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<Topics>> {
    Params::parse(q, &[])?;
    let log = log(&s)?;
    let mut topics = Vec::new();
    for (topic, count) in log.topics().await.map_err(|e| log_error("listing topics", &e))? {
        let mut partitions = Vec::new();
        for partition in 0..count {
            let tp = TopicPartition::new(&topic, partition);
            let (low, high) = log
                .watermarks(&tp)
                .await
                .map_err(|e| log_error("reading watermarks", &e))?;
            partitions.push(TopicPartitionView {
                partition,
                low,
                high,
                records: high - low,
            });
        }
        let records = partitions.iter().map(|p| p.records).sum();
        topics.push(TopicView {
            topic,
            partitions,
            records,
        });
    }
    Ok(Json(Topics { topics }))
}

/// Consumer groups with their committed offsets and lag per partition.
#[utoipa::path(
    get,
    path = "/api/v1/log/groups",
    tag = "log",
    responses(
        (status = 200, description = "Every consumer group the log knows", body = Groups),
        (status = 400, description = "A parameter was given (there are none)", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 503, description = "The log is not open yet or unreachable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn groups(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<Groups>> {
    Params::parse(q, &[])?;
    let log = log(&s)?;
    let mut tps = Vec::new();
    for (topic, count) in log.topics().await.map_err(|e| log_error("listing topics", &e))? {
        tps.extend((0..count).map(|p| TopicPartition::new(&topic, p)));
    }
    let mut ends = Vec::with_capacity(tps.len());
    for tp in &tps {
        ends.push(
            log.watermarks(tp)
                .await
                .map_err(|e| log_error("reading watermarks", &e))?
                .1,
        );
    }
    let mut groups = Vec::new();
    for group in log.groups().await.map_err(|e| log_error("listing groups", &e))? {
        let committed = log
            .committed_offsets(&group, &tps)
            .await
            .map_err(|e| log_error("reading committed offsets", &e))?;
        let partitions: Vec<GroupPartitionView> = tps
            .iter()
            .zip(&ends)
            .zip(committed)
            .filter_map(|((tp, &high), committed)| {
                committed.map(|committed| GroupPartitionView {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    committed,
                    high,
                    lag: (high - committed).max(0),
                })
            })
            .collect();
        let lag = partitions.iter().map(|p| p.lag).sum();
        groups.push(GroupView {
            group,
            partitions,
            lag,
        });
    }
    Ok(Json(Groups { groups }))
}

/// Records of one partition, from an offset or from a time.
#[utoipa::path(
    get,
    path = "/api/v1/log/records",
    tag = "log",
    params(
        ("topic" = String, Query, example = "sales", description = "Topic, e.g. sales"),
        ("partition" = i32, Query, minimum = 0, maximum = 1023, description = "Partition"),
        ("offset" = Option<i64>, Query, minimum = 0, description = "First offset to read; default the first in the log"),
        ("from" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Instead of offset: the first record at or after this time (RFC 3339)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Records, 1..=200; default 50"),
    ),
    responses(
        (status = 200, description = "Records of the partition", body = Records),
        (status = 400, description = "A parameter is invalid, or the offset is outside the partition", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such topic or partition", body = ErrorBody),
        (status = 503, description = "The log is not open yet or unreachable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn records(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<Records>> {
    let p = Params::parse(q, &["topic", "partition", "offset", "from", "limit"])?;
    let topic = p
        .get("topic")
        .ok_or_else(|| ApiError::invalid("topic", "topic is required, e.g. topic=sales"))?
        .to_owned();
    let partition = p
        .int("partition", 0, 1023)?
        .ok_or_else(|| ApiError::invalid("partition", "partition is required, e.g. partition=0"))?
        as i32;
    let offset = p.int("offset", 0, i64::MAX)?;
    let from = p.time("from")?;
    if offset.is_some() && from.is_some() {
        return Err(ApiError::invalid("from", "give offset or from, not both"));
    }
    let limit = p.limit(50, MAX_BROWSE)? as usize;
    let log = log(&s)?;
    let known = log.topics().await.map_err(|e| log_error("listing topics", &e))?;
    match known.iter().find(|(t, _)| *t == topic) {
        None => {
            return Err(ApiError::not_found(
                Some("topic"),
                format!("no topic {topic:?} in the log"),
            ))
        }
        Some((_, n)) if partition >= *n => {
            return Err(ApiError::not_found(
                Some("partition"),
                format!(
                    "topic {topic:?} has {n} partitions (0..{}), not {partition}",
                    n - 1
                ),
            ))
        }
        Some(_) => {}
    }
    let tp = TopicPartition::new(&topic, partition);
    let (low, high) = log
        .watermarks(&tp)
        .await
        .map_err(|e| log_error("reading watermarks", &e))?;
    let start = match (offset, from) {
        (Some(o), _) => o,
        (None, Some(t)) => log
            .offset_for_timestamp(&tp, t.timestamp_millis())
            .await
            .map_err(|e| log_error("finding the offset for a time", &e))?
            .unwrap_or(high),
        (None, None) => low,
    };
    if start < low || start > high {
        return Err(ApiError::invalid(
            "offset",
            format!("{tp} holds offsets {low}..{high}; {start} is outside"),
        ));
    }
    let read = log
        .read(&tp, start, limit)
        .await
        .map_err(|e| log_error("reading records", &e))?;
    let next_offset = read.last().map_or(start, |r| r.offset + 1);
    let records = read
        .into_iter()
        .map(|r| RecordView {
            offset: r.offset,
            timestamp_ms: r.timestamp_ms,
            key: r.key.map(|k| String::from_utf8_lossy(&k).into_owned()),
            headers: r
                .headers
                .into_iter()
                .map(|h| HeaderView {
                    key: h.key,
                    value: String::from_utf8_lossy(&h.value).into_owned(),
                })
                .collect(),
            value: String::from_utf8_lossy(&r.value).into_owned(),
        })
        .collect();
    Ok(Json(Records {
        topic,
        partition,
        records,
        next_offset,
        high,
    }))
}
