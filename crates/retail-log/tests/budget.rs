//! The disk budget (issue 18, item 11): once the bytes no consumer group has consumed reach
//! `disk_budget_bytes`, appends are refused with a retryable error naming backlog and budget;
//! a commit past the backlog lets them in again without a restart, and nothing acknowledged is
//! lost on the way.
#![allow(clippy::unwrap_used)]

mod common;

use common::{drain, open, to_partition};
use retail_log::embedded::{EmbeddedConfig, EmbeddedLog};
use retail_log::{Error, Log, TopicPartition, OFFSET_BEGINNING};

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

const BUDGET: u64 = 16 * 1024;

fn config() -> EmbeddedConfig {
    EmbeddedConfig {
        segment_bytes: 4096,
        disk_budget_bytes: BUDGET,
        ..EmbeddedConfig::default()
    }
}

/// Appends batches of ten ~200-byte records across two partitions until the log refuses one;
/// returns the values acknowledged and the refusal.
async fn fill_until_refused(log: &EmbeddedLog, tag: &str) -> (Vec<String>, Error) {
    let mut acked = Vec::new();
    for batch in 0..10_000 {
        let values: Vec<String> = (0..10)
            .map(|i| format!("{tag}-{batch:05}-{i}-{}", "x".repeat(180)))
            .collect();
        let records = values
            .iter()
            .enumerate()
            .map(|(i, v)| to_partition("t", (i % 2) as i32, v, None))
            .collect();
        match log.append(records).await {
            Ok(_) => acked.extend(values),
            Err(e) => return (acked, e),
        }
    }
    panic!("the log never refused an append: the budget is not enforced");
}

/// Every value readable from the beginning of both partitions, in partition then offset order.
async fn everything(log: &EmbeddedLog) -> Vec<String> {
    let mut consumer = log.consumer("auditor", &["t"]).await.unwrap();
    for p in 0..2 {
        consumer.seek(&tp("t", p), OFFSET_BEGINNING).unwrap();
    }
    drain(consumer.as_mut())
        .await
        .into_iter()
        .map(|r| String::from_utf8(r.value).unwrap())
        .collect()
}

/// Bytes of the segment files under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dir_bytes(&e.path())
            } else if e.path().extension().is_some_and(|x| x == "log") {
                meta.len()
            } else {
                0
            }
        })
        .sum()
}

#[tokio::test]
async fn the_budget_holds_appends_back_until_a_commit_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config()).await;
    log.ensure_topic("t", 2).await.unwrap();
    log.ensure_topic("dead-letters", 1).await.unwrap();

    // Nothing consumed: the whole log counts, and appends stop at the budget.
    let (first, refused) = fill_until_refused(&log, "a").await;
    assert!(refused.is_retryable(), "{refused}");
    let text = refused.to_string();
    assert!(
        text.contains("disk budget")
            && text.contains(&BUDGET.to_string())
            && text.contains("disk_budget_bytes"),
        "the error names the budget: {text}"
    );
    let Error::DiskBudget { backlog, budget, .. } = refused else {
        panic!("not the budget error: {refused:?}");
    };
    assert_eq!(budget, BUDGET);
    assert!(backlog >= BUDGET, "backlog {backlog} refused under the budget");
    // Stopped at the budget, give or take one append (the one that crossed it).
    let on_disk = dir_bytes(&dir.path().join("t"));
    assert!(
        (BUDGET..BUDGET + 4096).contains(&on_disk),
        "the log holds {on_disk} bytes for a {BUDGET}-byte budget"
    );
    assert_eq!(
        log.backlog_bytes(),
        on_disk,
        "the counter equals the bytes on disk"
    );
    // Still refused on a retry, and the side topics the landing writes are never held back.
    assert!(matches!(
        log.append(vec![to_partition("t", 0, "again", None)]).await,
        Err(Error::DiskBudget { .. })
    ));
    log.append(vec![to_partition("dead-letters", 0, "a dead letter", None)])
        .await
        .unwrap();

    // A group commits part of partition 0: still over. Then past all of it: accepted again.
    let (_, high0) = log.watermarks(&tp("t", 0)).await.unwrap();
    let (_, high1) = log.watermarks(&tp("t", 1)).await.unwrap();
    log.commit_offsets("landing", &[(tp("t", 0), 1), (tp("t", 1), 1)])
        .await
        .unwrap();
    assert!(log.append(vec![to_partition("t", 0, "x", None)]).await.is_err());
    log.commit_offsets("landing", &[(tp("t", 0), high0), (tp("t", 1), high1)])
        .await
        .unwrap();
    // Only the never-consumed dead letter is left unconsumed.
    assert!(
        log.backlog_bytes() < 512,
        "backlog after committing everything: {}",
        log.backlog_bytes()
    );
    let (second, refused) = fill_until_refused(&log, "b").await;
    assert!(!second.is_empty(), "appends accepted again after the commit");
    assert!(matches!(refused, Error::DiskBudget { .. }), "{refused}");

    // Every acknowledged record is readable, once, in order; nothing refused was written.
    let mut expected: Vec<String> = first.iter().chain(&second).cloned().collect();
    let mut read = everything(&log).await;
    expected.sort();
    read.sort();
    assert_eq!(read.len(), expected.len());
    assert_eq!(read, expected);
}

#[tokio::test]
async fn the_backlog_is_recounted_at_open_from_the_committed_offsets() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), config()).await;
        log.ensure_topic("t", 2).await.unwrap();
        let (acked, _) = fill_until_refused(&log, "a").await;
        assert!(!acked.is_empty());
        let (_, high0) = log.watermarks(&tp("t", 0)).await.unwrap();
        log.commit_offsets("landing", &[(tp("t", 0), high0)])
            .await
            .unwrap();
        log.close().await.unwrap();
    }
    let log = open(dir.path(), config()).await;
    let p1 = log.partition_bytes(&tp("t", 1)).unwrap();
    assert_eq!(log.backlog_bytes(), p1, "partition 0 consumed, partition 1 whole");
    log.append(vec![to_partition("t", 0, "after the restart", None)])
        .await
        .unwrap();
}

#[tokio::test]
async fn no_budget_when_it_is_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        EmbeddedConfig {
            disk_budget_bytes: 0,
            ..config()
        },
    )
    .await;
    log.ensure_topic("t", 2).await.unwrap();
    for i in 0..200 {
        log.append(vec![to_partition(
            "t",
            0,
            &format!("{i}-{}", "x".repeat(200)),
            None,
        )])
        .await
        .unwrap();
    }
    assert!(log.backlog_bytes() > BUDGET);
}

/// The side topics are written by the landing and consumed by nobody: counted, a burst of dead
/// letters would hold every source back for good while the landing is caught up.
#[tokio::test]
async fn side_topics_bigger_than_the_budget_do_not_hold_the_sources_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config()).await;
    log.ensure_topic("t", 2).await.unwrap();
    log.ensure_topic("dead-letters", 1).await.unwrap();
    log.ensure_topic("alerts", 1).await.unwrap();
    for i in 0..200 {
        for topic in ["dead-letters", "alerts"] {
            log.append(vec![to_partition(
                topic,
                0,
                &format!("{i}-{}", "x".repeat(200)),
                None,
            )])
            .await
            .unwrap();
        }
    }
    assert!(
        dir_bytes(&dir.path().join("dead-letters")) > BUDGET,
        "the dead letters alone exceed the budget"
    );
    assert_eq!(log.backlog_bytes(), 0, "side topics are not counted");
    log.append(vec![to_partition("t", 0, "a sale", None)])
        .await
        .unwrap();
    // Still so after a recount (a commit) and at open.
    let (_, high) = log.watermarks(&tp("t", 0)).await.unwrap();
    log.commit_offsets("landing", &[(tp("t", 0), high)])
        .await
        .unwrap();
    assert_eq!(log.backlog_bytes(), 0);
    log.close().await.unwrap();
    let log = open(dir.path(), config()).await;
    assert_eq!(log.backlog_bytes(), 0, "not counted at open either");
    log.append(vec![to_partition("t", 1, "another sale", None)])
        .await
        .unwrap();
}
