//! Retention never takes what a consumer has not read: committed group offsets hold segments
//! back (until a group stays idle past its expiry), age goes by append time rather than event
//! time, and a consumer whose position was deleted anyway is told so instead of being moved
//! forward.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{drain, open, small_config, to_partition, try_drain};
use retail_log::embedded::{EmbeddedConfig, EmbeddedLog};
use retail_log::{ConsumerEvent, Error, Log, TopicPartition, OFFSET_BEGINNING};

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

/// 2020-01-01T00:00:00Z: an event time from a back-fill.
const YEAR_2020_MS: i64 = 1_577_836_800_000;

/// Appends `n` records of about 120 bytes to each of `partitions`, ten per call, so 1 KiB
/// segments roll every few records.
async fn fill(log: &EmbeddedLog, partitions: i32, n: usize, ts: Option<i64>) {
    for batch in 0..n / 10 {
        let recs = (0..partitions)
            .flat_map(|p| (0..10).map(move |i| (p, i)))
            .map(|(p, i)| to_partition("t", p, &format!("{batch:03}-{i:03}-{}", "x".repeat(100)), ts))
            .collect();
        log.append(recs).await.unwrap();
    }
}

/// The offsets a fresh consumer (no group offsets) reads from the beginning of partition `p`.
async fn readable(log: &EmbeddedLog, p: i32) -> Vec<i64> {
    let mut consumer = log.consumer("auditor", &["t"]).await.unwrap();
    consumer.seek(&tp("t", p), OFFSET_BEGINNING).unwrap();
    drain(consumer.as_mut())
        .await
        .into_iter()
        .filter(|r| r.partition == p)
        .map(|r| r.offset)
        .collect()
}

/// Runs retention after the age limit (1 ms when set) has surely passed.
async fn retention_now(log: &EmbeddedLog) {
    tokio::time::sleep(Duration::from_millis(20)).await;
    log.enforce_retention().await.unwrap();
}

#[tokio::test]
async fn committed_group_offsets_hold_back_retention_until_committed_past() {
    let limits = [("size", 2048, 0), ("age", 0, 1), ("size and age", 2048, 1)];
    for (name, retention_bytes, retention_ms) in limits {
        let dir = tempfile::tempdir().unwrap();
        let config = EmbeddedConfig {
            segment_bytes: 1024,
            retention_bytes,
            retention_ms,
            ..EmbeddedConfig::default()
        };
        let log = open(dir.path(), config.clone()).await;
        log.ensure_topic("t", 2).await.unwrap();
        // Committed before the appends: retention running on every roll must already respect it.
        log.commit_offsets("slow", &[(tp("t", 0), 0)]).await.unwrap();
        fill(&log, 2, 200, None).await;
        log.commit_offsets("slow", &[(tp("t", 0), 40)]).await.unwrap();
        log.commit_offsets("fast", &[(tp("t", 0), 150)]).await.unwrap();
        retention_now(&log).await;

        // Partition 0: the smallest committed offset (40) is the floor, whatever the limits say.
        let (low, high) = log.watermarks(&tp("t", 0)).await.unwrap();
        assert_eq!(high, 200, "{name}");
        assert!(
            low > 0 && low <= 40,
            "{name}: segments wholly below 40 deleted, 40 kept: low {low}"
        );
        assert_eq!(readable(&log, 0).await, (low..200).collect::<Vec<_>>(), "{name}");
        if retention_bytes > 0 {
            assert!(
                log.partition_bytes(&tp("t", 0)).unwrap() > retention_bytes,
                "{name}: held over the limit"
            );
        }
        // Partition 1: no group ever committed for it, so the limits apply as configured.
        let (low1, _) = log.watermarks(&tp("t", 1)).await.unwrap();
        assert!(
            low1 > 150,
            "{name}: uncommitted partition cut to the limits: low {low1}"
        );

        // The floor survives a restart: it is read from the group files at open, before the
        // retention that open applies.
        log.close().await.unwrap();
        drop(log);
        let log = open(dir.path(), config.clone()).await;
        retention_now(&log).await;
        assert_eq!(
            log.watermarks(&tp("t", 0)).await.unwrap(),
            (low, 200),
            "{name}: after reopen"
        );

        // The slowest group moves on: the next one (150) holds the floor.
        log.commit_offsets("slow", &[(tp("t", 0), 200)]).await.unwrap();
        retention_now(&log).await;
        let (low, _) = log.watermarks(&tp("t", 0)).await.unwrap();
        assert!(low > 40 && low <= 150, "{name}: floor now 150: low {low}");
        assert_eq!(readable(&log, 0).await, (low..200).collect::<Vec<_>>(), "{name}");

        // Every group consumed everything: the limits apply again.
        log.commit_offsets("fast", &[(tp("t", 0), 200)]).await.unwrap();
        retention_now(&log).await;
        let (low, _) = log.watermarks(&tp("t", 0)).await.unwrap();
        assert!(low > 150, "{name}: consumed segments deleted: low {low}");
        if retention_ms > 0 {
            assert_eq!(
                log.segment_count(&tp("t", 0)).unwrap(),
                1,
                "{name}: only the active segment"
            );
        }
        if retention_bytes > 0 {
            assert!(
                log.partition_bytes(&tp("t", 0)).unwrap() <= retention_bytes + 1024,
                "{name}"
            );
        }
    }
}

#[tokio::test]
async fn back_filled_event_times_do_not_age_out_fresh_appends() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        segment_bytes: 1024,
        retention_ms: 60_000,
        ..EmbeddedConfig::default()
    };
    let log = open(dir.path(), config.clone()).await;
    log.ensure_topic("t", 1).await.unwrap();
    fill(&log, 1, 100, Some(YEAR_2020_MS)).await;
    let segments = log.segment_count(&tp("t", 0)).unwrap();
    assert!(segments > 5, "small segments roll: {segments}");
    log.enforce_retention().await.unwrap();
    assert_eq!(log.watermarks(&tp("t", 0)).await.unwrap(), (0, 100));
    assert_eq!(log.segment_count(&tp("t", 0)).unwrap(), segments);

    // Nor across a restart, where the age comes from the files' modification times.
    log.close().await.unwrap();
    drop(log);
    let log = open(dir.path(), config).await;
    log.enforce_retention().await.unwrap();
    assert_eq!(log.watermarks(&tp("t", 0)).await.unwrap(), (0, 100));
    let mut consumer = log.consumer("landing", &["t"]).await.unwrap();
    let got = drain(consumer.as_mut()).await;
    assert_eq!(got.len(), 100);
    assert!(got.iter().all(|r| r.timestamp_ms == YEAR_2020_MS));
}

#[tokio::test]
async fn poll_reports_a_position_deleted_by_retention_instead_of_skipping() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        segment_bytes: 1024,
        retention_bytes: 2048,
        ..small_config()
    };
    let log = open(dir.path(), config).await;
    log.ensure_topic("t", 1).await.unwrap();
    // A consumer whose group never commits: nothing protects its position.
    let mut consumer = log.consumer("reader", &["t"]).await.unwrap();
    assert!(matches!(
        consumer.poll(5, Duration::from_millis(10)).await.unwrap(),
        ConsumerEvent::Assigned(_)
    ));
    fill(&log, 1, 10, None).await;
    let ConsumerEvent::Records(first) = consumer.poll(5, Duration::from_millis(10)).await.unwrap() else {
        panic!("records expected");
    };
    assert_eq!(
        first.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );

    fill(&log, 1, 190, None).await;
    log.enforce_retention().await.unwrap();
    let (low, high) = log.watermarks(&tp("t", 0)).await.unwrap();
    assert!(low > 5, "retention deleted the reader's position: low {low}");

    // Reported, not retryable, and repeated until the caller decides: never a silent skip.
    for _ in 0..2 {
        match consumer.poll(100, Duration::from_millis(10)).await {
            Err(e @ Error::OffsetOutOfRange { .. }) => {
                assert!(!e.is_retryable());
                let Error::OffsetOutOfRange {
                    tp: at,
                    offset,
                    low: l,
                    high: h,
                } = e
                else {
                    unreachable!()
                };
                assert_eq!((at, offset, l, h), (tp("t", 0), 5, low, high));
            }
            other => panic!("expected OffsetOutOfRange, got {other:?}"),
        }
    }
    // The caller accepts the gap explicitly.
    consumer.seek(&tp("t", 0), OFFSET_BEGINNING).unwrap();
    let got = drain(consumer.as_mut()).await;
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (low..high).collect::<Vec<_>>()
    );

    // A group whose committed offset is already gone starts there and is told on its first poll.
    log.commit_offsets("late", &[(tp("t", 0), 3)]).await.unwrap();
    let mut late = log.consumer("late", &["t"]).await.unwrap();
    assert!(matches!(
        try_drain(late.as_mut()).await,
        Err(Error::OffsetOutOfRange { offset: 3, .. })
    ));
}

#[tokio::test]
async fn unreadable_group_offsets_pause_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        segment_bytes: 1024,
        retention_bytes: 2048,
        ..small_config()
    };
    {
        let unlimited = EmbeddedConfig {
            segment_bytes: 1024,
            ..small_config()
        };
        let log = open(dir.path(), unlimited).await;
        log.ensure_topic("t", 1).await.unwrap();
        fill(&log, 1, 100, None).await;
        log.close().await.unwrap();
    }
    // Its floor is unknown, so nothing may be deleted anywhere until it reads.
    let bad = dir.path().join("__consumer_offsets").join("broken.json");
    std::fs::write(&bad, b"{ not json").unwrap();
    let log = open(dir.path(), config).await;
    log.enforce_retention().await.unwrap();
    assert_eq!(log.watermarks(&tp("t", 0)).await.unwrap().0, 0);

    // Repaired (here: removed), retention goes on without a restart.
    std::fs::remove_file(&bad).unwrap();
    log.enforce_retention().await.unwrap();
    assert!(log.watermarks(&tp("t", 0)).await.unwrap().0 > 0);
}

/// Idle time after which a group expires in the tests below: long enough that a commit followed
/// at once by a retention pass is never idle, even on a loaded machine.
const IDLE_MS: u64 = 1_000;

/// Waits until a group that committed now has been idle past [`IDLE_MS`].
async fn go_idle() {
    tokio::time::sleep(Duration::from_millis(IDLE_MS + 200)).await;
}

#[tokio::test]
async fn an_idle_group_expires_while_an_open_or_recently_committing_one_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        segment_bytes: 1024,
        retention_bytes: 2048,
        group_idle_expiry_ms: IDLE_MS,
        ..small_config()
    };
    // A replay that read from the beginning and ended: its group holds every partition at 0.
    // The landing has committed 20 on partition 1. The records are written without limits (so
    // how long that takes cannot matter), then the log reopens with them.
    let all: Vec<_> = (0..3).map(|p| (tp("t", p), 0)).collect();
    {
        let unlimited = EmbeddedConfig {
            segment_bytes: 1024,
            ..small_config()
        };
        let log = open(dir.path(), unlimited).await;
        log.ensure_topic("t", 3).await.unwrap();
        fill(&log, 3, 200, None).await;
        log.commit_offsets("replay_x", &all).await.unwrap();
        log.close().await.unwrap();
    }
    let log = open(dir.path(), config).await;
    // The landing runs (its consumer is open); both groups committed a moment ago.
    let landing = log.consumer("landing", &["t"]).await.unwrap();
    log.commit_offsets("replay_x", &all).await.unwrap();
    log.commit_offsets("landing", &[(tp("t", 1), 20)]).await.unwrap();

    // Not idle long enough yet: the replay's group holds everything.
    log.enforce_retention().await.unwrap();
    for p in 0..3 {
        assert_eq!(log.watermarks(&tp("t", p)).await.unwrap().0, 0, "partition {p}");
    }

    go_idle().await;
    // Another group committed just now: idle time counts from the last commit.
    log.commit_offsets("fresh", &[(tp("t", 2), 30)]).await.unwrap();
    log.enforce_retention().await.unwrap();
    // Partition 0: only the expired replay group committed for it, so the limits apply.
    let (low0, _) = log.watermarks(&tp("t", 0)).await.unwrap();
    assert!(
        low0 > 150,
        "the expired group no longer holds retention: low {low0}"
    );
    // Partition 1: the landing's consumer is open, so its offset (20) is the floor.
    let (low1, _) = log.watermarks(&tp("t", 1)).await.unwrap();
    assert!(low1 > 0 && low1 <= 20, "an open group's floor holds: low {low1}");
    // Partition 2: a recent commit (30) holds.
    let (low2, _) = log.watermarks(&tp("t", 2)).await.unwrap();
    assert!(
        low2 > 0 && low2 <= 30,
        "a recently committed floor holds: low {low2}"
    );

    // The expired group's offsets are kept: a consumer of it is told its position is gone.
    assert_eq!(
        log.committed_offsets("replay_x", &[tp("t", 0)]).await.unwrap(),
        vec![Some(0)]
    );
    let mut comeback = log.consumer("replay_x", &["t"]).await.unwrap();
    assert!(matches!(
        try_drain(comeback.as_mut()).await,
        Err(Error::OffsetOutOfRange { offset: 0, .. })
    ));
    drop(comeback);

    // The landing stops and stays idle: then it expires too.
    drop(landing);
    go_idle().await;
    log.enforce_retention().await.unwrap();
    let (low1, _) = log.watermarks(&tp("t", 1)).await.unwrap();
    assert!(low1 > 150, "a closed, idle group expires: low {low1}");
}

#[tokio::test]
async fn idle_time_survives_a_restart_but_the_pass_at_open_lets_every_group_hold() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        segment_bytes: 1024,
        retention_bytes: 2048,
        group_idle_expiry_ms: IDLE_MS,
        ..small_config()
    };
    let kept = {
        let log = open(dir.path(), config.clone()).await;
        log.ensure_topic("t", 1).await.unwrap();
        // The landing's consumer is open while the records come.
        let landing = log.consumer("landing", &["t"]).await.unwrap();
        log.commit_offsets("landing", &[(tp("t", 0), 10)]).await.unwrap();
        fill(&log, 1, 200, None).await;
        log.commit_offsets("landing", &[(tp("t", 0), 10)]).await.unwrap();
        drop(landing);
        let kept = log.watermarks(&tp("t", 0)).await.unwrap().0;
        assert!(kept <= 10, "the landing's floor held: low {kept}");
        log.close().await.unwrap();
        kept
    };
    // The process was down for longer than the expiry.
    go_idle().await;
    let log = open(dir.path(), config).await;
    // Opening does not expire anything: the landing gets the chance to come back first.
    assert_eq!(log.watermarks(&tp("t", 0)).await.unwrap().0, kept);
    // It comes back and resumes where it was: still protected.
    let landing = log.consumer("landing", &["t"]).await.unwrap();
    log.enforce_retention().await.unwrap();
    let (low, _) = log.watermarks(&tp("t", 0)).await.unwrap();
    assert!(low <= 10, "the returning landing's floor holds: low {low}");
    // Had it not come back, the idle time from before the restart (the group file's age) counts.
    drop(landing);
    log.enforce_retention().await.unwrap();
    let (low, _) = log.watermarks(&tp("t", 0)).await.unwrap();
    assert!(low > 150, "idle since before the restart: expired: low {low}");
}
