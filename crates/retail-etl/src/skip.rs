//! `retail-etl log skip`: moves the landing past a damaged record of the embedded log, and
//! records what it skipped (issue 18, ADR 0018).
//!
//! A damaged record stops the landing at it, every time, with an error naming topic, partition
//! and offset: nothing is passed over on its own. This command is the operator's decision to
//! pass over it. It opens the log (whose directory lock refuses a live pipeline on the same
//! data directory) and the store, checks that the landing's stored next offset for the
//! partition is exactly the damaged offset, and then, in ONE store transaction (the landing's
//! own [`Store::write_batch`](retail_sink::Store::write_batch), whose offset fencing repeats the
//! check inside the transaction), writes one dead letter per skipped offset (reason
//! [`REASON`], kind [`KIND`], topic, partition, offset, the segment file and byte, and the
//! record's bytes as they are on disk) and moves the stored offset to the next record the log
//! can read. The landing's next start resumes there.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use retail_core::event::topics;
use retail_core::{DeadLetter, Origin, TopicPartition};
use retail_log::embedded::EmbeddedLog;
use retail_log::{Log, LogUrl};
use retail_process::StartAt;
use retail_sink::{LandingBatch, OffsetRange};

use crate::config::Config;

/// The dead letter's reason starts with this.
pub const REASON: &str = "damaged log record skipped by operator";
/// The dead letter's kind.
pub const KIND: &str = "damaged_log_record";
/// Bytes of a damaged record kept in its dead letter; a damaged length field can make the
/// span up to the next good record as long as the rest of the segment.
const MAX_RAW: usize = 1 << 20;

/// Flags of `log skip`.
#[derive(Debug, clap::Args)]
pub struct SkipArgs {
    /// Configuration file (its log, store and landing group).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the configuration).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Store URL (overrides the configuration).
    #[arg(long)]
    pub store: Option<String>,
    /// Log URL (overrides the configuration); must be embedded://<dir>.
    #[arg(long)]
    pub log: Option<String>,
    /// Topic of the damaged record.
    #[arg(long)]
    pub topic: String,
    /// Partition of the damaged record.
    #[arg(long)]
    pub partition: i32,
    /// Offset of the damaged record: the one the landing stopped at.
    #[arg(long)]
    pub offset: i64,
    /// Consumer group whose stored offset moves. Default: the landing's group, or its
    /// `.catalog` group for the catalog topic.
    #[arg(long)]
    pub group: Option<String>,
    /// Where that group's landing started when it had stored no offset yet: the `--from` its
    /// `replay` ran with (an offset, or an RFC 3339 time). Default: the partition's first offset,
    /// where `run` and `demo` start.
    #[arg(long)]
    pub from: Option<String>,
}

/// What a skip did.
#[derive(Debug)]
pub struct Skipped {
    /// Offsets passed over, `first..next`.
    pub first: i64,
    /// Where the landing resumes.
    pub next: i64,
}

/// Runs `log skip` and prints what it did.
pub async fn run(args: SkipArgs) -> Result<()> {
    let config = Config::load_with_overrides(
        args.config.as_deref(),
        args.data_dir.as_deref(),
        args.store.as_deref(),
        args.log.as_deref(),
    )?;
    let tp = TopicPartition::new(args.topic.clone(), args.partition);
    let group = args.group.clone().unwrap_or_else(|| {
        if args.topic == topics::CATALOG {
            format!("{}.catalog", config.landing.group)
        } else {
            config.landing.group.clone()
        }
    });
    let start = crate::replay::parse_from(args.from.as_deref())?;
    let skipped = skip(&config, &tp, args.offset, &group, start).await?;
    println!(
        "skipped topic {} partition {} offsets {}..{} for group {group}: recorded in dead_letters \
         (reason \"{REASON}\"); the landing resumes at offset {}",
        tp.topic,
        tp.partition,
        skipped.first,
        skipped.next - 1,
        skipped.next
    );
    Ok(())
}

/// Checks and skips the damaged record at `offset` of `tp` for `group`, whose landing starts at
/// `start` where it has stored no offset (as [`retail_process::Landing`] assigns it).
pub async fn skip(
    config: &Config,
    tp: &TopicPartition,
    offset: i64,
    group: &str,
    start: Option<StartAt>,
) -> Result<Skipped> {
    let dir = match config.log_url()? {
        LogUrl::Embedded(dir) => dir,
        LogUrl::Kafka(_) => bail!(
            "log skip works on the embedded log only; {} is a Kafka log (a damaged record there is \
             the broker's to repair)",
            config.shown_log_url()
        ),
    };
    if !dir.is_dir() {
        bail!("log directory {} does not exist", dir.display());
    }
    // Takes the directory lock: a pipeline running on this log makes this fail, naming it.
    let log = EmbeddedLog::open(&dir, config.log.embedded.clone())
        .await
        .with_context(|| format!("opening log {}", config.shown_log_url()))?;
    let result = skip_in(config, &log, tp, offset, group, start).await;
    after_close(result, log.close().await)
}

/// The skip's outcome, whatever closing the log did: a skip committed to the store is done
/// (re-running it would be refused, the landing no longer stands there), so a failure to close
/// the log afterwards is a warning, not an error that hides the outcome.
fn after_close(result: Result<Skipped>, closed: retail_log::Result<()>) -> Result<Skipped> {
    if let Err(e) = closed {
        tracing::warn!(message = "could not close the log cleanly after the skip", error = %e);
    }
    result
}

/// Where the landing of a group with no stored offset for `tp` starts, as its assignment
/// computes it ([`StartAt::first_offset`]).
async fn landing_start(log: &EmbeddedLog, tp: &TopicPartition, start: Option<StartAt>) -> Result<i64> {
    let (low, _) = log.watermarks(tp).await?;
    Ok(StartAt::first_offset(start, log, tp, low).await?)
}

async fn skip_in(
    config: &Config,
    log: &EmbeddedLog,
    tp: &TopicPartition,
    offset: i64,
    group: &str,
    start: Option<StartAt>,
) -> Result<Skipped> {
    let shown = format!("topic {} partition {} offset {offset}", tp.topic, tp.partition);
    let (_, high) = log
        .watermarks(tp)
        .await
        .with_context(|| format!("topic {} partition {}", tp.topic, tp.partition))?;
    let url = config.store_url()?;
    // Opening an SQLite store creates the file: a mistyped path must not become a fresh store
    // that "has landed nothing" and so accepts a skip.
    if let retail_sink::StoreUrl::Sqlite(path) = &url {
        if !path.is_file() {
            bail!("store {url} does not exist; point --store (or --config) at the landing's store");
        }
    }
    let store = retail_sink::open_with(&url, config.store_options())
        .await
        .with_context(|| format!("opening store {url}"))?;
    let stored = store
        .offsets(group)
        .await
        .with_context(|| format!("reading the stored offsets of group {group}"))?
        .into_iter()
        .find_map(|(t, next)| (t == *tp).then_some(next));
    match stored {
        Some(next) if next == offset => {}
        Some(next) => bail!(
            "refusing to skip {shown}: the landing (group {group}) stands at offset {next} of this \
             partition, not {offset}; only the record the landing stopped at can be skipped"
        ),
        None => {
            let first = landing_start(log, tp, start)
                .await
                .with_context(|| format!("where group {group} starts in {shown}"))?;
            if first != offset {
                let from = if start.is_some() {
                    "where its --from puts it"
                } else {
                    "at the partition's first offset (a replay's group: pass its --from)"
                };
                bail!(
                    "refusing to skip {shown}: the landing (group {group}) has landed nothing from \
                     this partition yet, so it starts {from}, offset {first}, not {offset}"
                );
            }
        }
    }
    let Some(span) = log
        .damaged_span(tp, offset, MAX_RAW)
        .await
        .with_context(|| format!("reading {shown}"))?
    else {
        if offset >= high {
            bail!("refusing to skip {shown}: the partition ends there (next offset {high}); nothing to skip");
        }
        bail!("refusing to skip {shown}: that record reads fine; nothing to skip");
    };
    let rejected_at = Utc::now();
    let dead_letters = (span.offset..span.next)
        .map(|skipped| {
            let first = skipped == span.offset;
            let reason = if span.next - span.offset == 1 {
                format!(
                    "{REASON}: segment {} byte {}: {}",
                    span.path, span.position, span.reason
                )
            } else {
                format!(
                    "{REASON}: one of offsets {}..{} that cannot be read, from segment {} byte {}: {}",
                    span.offset,
                    span.next - 1,
                    span.path,
                    span.position,
                    span.reason
                )
            };
            DeadLetter {
                // The bytes once, with the first offset of the span.
                raw: if first { span.raw.clone() } else { Vec::new() },
                reason,
                kind: KIND,
                origin: Origin {
                    file: Some(span.path.clone()),
                    ..Origin::log("log", tp, skipped)
                },
                rejected_at,
                id: None,
            }
        })
        .collect();
    let batch = LandingBatch {
        group: group.to_owned(),
        dead_letters,
        offsets: vec![OffsetRange {
            tp: tp.clone(),
            first: offset,
            next: span.next,
        }],
        ..LandingBatch::default()
    };
    // One transaction; its fencing refuses it if the stored offset moved since the check above.
    store
        .write_batch(&batch)
        .await
        .with_context(|| format!("recording the skip of {shown}"))?;
    // Lag tools and the log's retention floor follow the store (the landing mirrors it too).
    if let Err(e) = log.commit_offsets(group, &[(tp.clone(), span.next)]).await {
        tracing::warn!(message = "could not mirror the new offset to the log", error = %e);
    }
    tracing::warn!(
        message = "damaged log record skipped by operator",
        topic = %tp.topic,
        partition = tp.partition,
        offsets = %format!("{}..{}", span.offset, span.next - 1),
        file = %span.path,
        position = span.position,
        reason = %span.reason,
        group,
    );
    Ok(Skipped {
        first: span.offset,
        next: span.next,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use retail_log::embedded::EmbeddedConfig;
    use retail_log::ProducerRecord;

    use super::*;

    /// A replay group that landed nothing stands where its `--from` put it, not at the first
    /// offset: the skip must compute that start as the landing's assignment does (issue 18
    /// review).
    #[tokio::test]
    async fn the_start_of_a_group_without_offsets_is_the_landings() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default())
            .await
            .unwrap();
        log.ensure_topic("sales", 1).await.unwrap();
        let records = (0..10)
            .map(|i| ProducerRecord {
                topic: "sales".to_owned(),
                partition: Some(0),
                key: None,
                value: format!("v{i}").into_bytes(),
                headers: Vec::new(),
                timestamp_ms: Some(1_000 + i * 100),
            })
            .collect();
        log.append(records).await.unwrap();
        let tp = TopicPartition::new("sales", 0);
        assert_eq!(landing_start(&log, &tp, None).await.unwrap(), 0);
        assert_eq!(
            landing_start(&log, &tp, Some(StartAt::Offset(4))).await.unwrap(),
            4
        );
        assert_eq!(
            landing_start(&log, &tp, Some(StartAt::Timestamp(1_450)))
                .await
                .unwrap(),
            5
        );
        assert_eq!(
            landing_start(&log, &tp, Some(StartAt::Timestamp(9_999)))
                .await
                .unwrap(),
            10,
            "after the last record: the end"
        );
        log.close().await.unwrap();
    }

    /// Damage covering the tail of record 3 (landed) and the head of record 4: the landing
    /// stands at 4, and `log skip --offset 4` passes over 4 alone (not the landed 3), after
    /// which reading goes on at 5 (issue 18 review: it was refused, the read naming 3).
    #[tokio::test]
    async fn a_damaged_run_starting_below_the_landing_is_skipped_from_the_landing() {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().join("log");
        let small = EmbeddedConfig {
            segment_bytes: 1024,
            ..EmbeddedConfig::default()
        };
        let log = EmbeddedLog::open(&log_dir, small.clone()).await.unwrap();
        log.ensure_topic("sales", 1).await.unwrap();
        let records = (0..100)
            .map(|i| ProducerRecord {
                topic: "sales".to_owned(),
                partition: Some(0),
                key: None,
                value: format!("value-{i:04}").into_bytes(),
                headers: Vec::new(),
                timestamp_ms: Some(1_000),
            })
            .collect();
        log.append(records).await.unwrap();
        log.close().await.unwrap();
        // Every record has the same size: break 3's length field and 4's checksum.
        let first = log_dir.join("sales/0/00000000000000000000.log");
        let mut bytes = std::fs::read(&first).unwrap();
        let size = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize + 4;
        bytes[3 * size..3 * size + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        bytes[5 * size - 2] ^= 0x10;
        std::fs::write(&first, &bytes).unwrap();

        let store_url = format!("sqlite://{}", dir.path().join("store.db").display());
        let config = Config::load_with_overrides(None, Some(dir.path()), Some(&store_url), None).unwrap();
        let tp = TopicPartition::new("sales", 0);
        let store = retail_sink::open(&config.store_url().unwrap()).await.unwrap();
        // The landing landed 0..=3 and stands at 4.
        let landed = LandingBatch {
            group: "g".to_owned(),
            offsets: vec![OffsetRange {
                tp: tp.clone(),
                first: 0,
                next: 4,
            }],
            ..LandingBatch::default()
        };
        store.write_batch(&landed).await.unwrap();

        let skipped = skip(&config, &tp, 4, "g", None).await.unwrap();
        assert_eq!((skipped.first, skipped.next), (4, 5));
        assert_eq!(store.offsets("g").await.unwrap(), vec![(tp.clone(), 5)]);
        assert_eq!(store.count(retail_sink::Table::DeadLetters).await.unwrap(), 1);

        let log = EmbeddedLog::open(&log_dir, small).await.unwrap();
        let mut consumer = log.consumer("check", &["sales"]).await.unwrap();
        consumer
            .poll(1, std::time::Duration::from_millis(1))
            .await
            .unwrap();
        consumer.seek(&tp, 5).unwrap();
        let mut read = Vec::new();
        while read.len() < 95 {
            match consumer
                .poll(100, std::time::Duration::from_millis(100))
                .await
                .unwrap()
            {
                retail_log::ConsumerEvent::Records(r) if r.is_empty() => break,
                retail_log::ConsumerEvent::Records(r) => read.extend(r.into_iter().map(|r| r.offset)),
                _ => {}
            }
        }
        assert_eq!(read, (5..100).collect::<Vec<_>>());
        log.close().await.unwrap();
    }

    /// A skip committed to the store is reported as done even when closing the log fails:
    /// re-running it would be refused, so an error there would leave the operator guessing.
    #[test]
    fn a_failed_close_after_a_committed_skip_keeps_the_outcome() {
        let closed = Err(retail_log::Error::Closed);
        let skipped = after_close(Ok(Skipped { first: 3, next: 4 }), closed).unwrap();
        assert_eq!((skipped.first, skipped.next), (3, 4));
        let failed = after_close(Err(anyhow::anyhow!("refused")), Err(retail_log::Error::Closed));
        assert_eq!(failed.unwrap_err().to_string(), "refused");
    }
}
