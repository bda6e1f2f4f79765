//! Behaviour of the embedded log through the public `Log` and `Consumer` traits: round trips,
//! reopening, torn tails, corruption, retention, timestamps, concurrency.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{drain, open, record, small_config, to_partition};
use retail_log::embedded::{EmbeddedConfig, FsyncPolicy};
use retail_log::{
    partition_for_key, ConsumerEvent, Error, Header, Log, ProducerRecord, TopicPartition, OFFSET_BEGINNING,
    OFFSET_END,
};

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

#[tokio::test]
async fn round_trip_keeps_keys_headers_and_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await;
    log.ensure_topic("sales", 4).await.unwrap();
    let mut records = Vec::new();
    for i in 0..40 {
        let mut r = record(
            "sales",
            Some(&format!("store-{}", i % 7)),
            &format!("{{\"n\":{i}}}"),
        );
        r.headers.push(Header {
            key: "seq".into(),
            value: i.to_string().into_bytes(),
        });
        r.timestamp_ms = Some(1_700_000_000_000 + i);
        records.push(r);
    }
    let mut untimed = record("sales", None, "no timestamp");
    untimed.key = None;
    records.push(untimed);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let meta = log.append(records.clone()).await.unwrap();
    assert_eq!(meta.len(), records.len());

    // Keys pick the Kafka partition, and offsets are consecutive per partition.
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for (r, m) in records.iter().zip(&meta) {
        if let Some(key) = &r.key {
            assert_eq!(m.partition, partition_for_key(key, 4));
        }
        let expected = next.entry(m.partition).or_insert(0);
        assert_eq!(
            m.offset, *expected,
            "offsets consecutive in partition {}",
            m.partition
        );
        *expected += 1;
    }
    assert!(
        meta[40].timestamp_ms >= before,
        "missing timestamp means append time"
    );

    let mut consumer = log.consumer("g", &["sales"]).await.unwrap();
    let got = drain(consumer.as_mut()).await;
    assert_eq!(got.len(), records.len());
    for (r, m) in records.iter().zip(&meta) {
        let c = got
            .iter()
            .find(|c| c.partition == m.partition && c.offset == m.offset)
            .expect("record read back");
        assert_eq!(c.topic, "sales");
        assert_eq!(c.key, r.key);
        assert_eq!(c.value, r.value);
        assert_eq!(c.headers, r.headers);
        assert_eq!(c.timestamp_ms, m.timestamp_ms);
    }
    for p in 0..4 {
        assert_eq!(
            log.watermarks(&tp("sales", p)).await.unwrap(),
            (0, next.get(&p).copied().unwrap_or(0))
        );
    }
}

#[tokio::test]
async fn routing_round_robin_explicit_partitions_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        EmbeddedConfig {
            max_record_bytes: 100,
            ..small_config()
        },
    )
    .await;
    log.ensure_topic("t", 3).await.unwrap();
    let unkeyed: Vec<_> = (0..9)
        .map(|i| to_partition("t", 0, &i.to_string(), None))
        .map(|mut r| {
            r.partition = None;
            r
        })
        .collect();
    let meta = log.append(unkeyed).await.unwrap();
    let mut per: BTreeMap<i32, usize> = BTreeMap::new();
    for m in &meta {
        *per.entry(m.partition).or_default() += 1;
    }
    assert_eq!(
        per.values().copied().collect::<Vec<_>>(),
        vec![3, 3, 3],
        "round robin spreads evenly"
    );

    let m = log
        .append(vec![to_partition("t", 2, "x", Some(5))])
        .await
        .unwrap();
    assert_eq!((m[0].partition, m[0].offset, m[0].timestamp_ms), (2, 3, 5));

    assert!(matches!(
        log.append(vec![to_partition("t", 3, "x", None)]).await,
        Err(Error::UnknownPartition { partition: 3, .. })
    ));
    assert!(matches!(
        log.append(vec![to_partition("nope", 0, "x", None)]).await,
        Err(Error::UnknownTopic(_))
    ));
    // Too large: nothing of the batch is appended.
    let big = to_partition("t", 0, &"x".repeat(101), None);
    let ok = to_partition("t", 0, "fine", None);
    assert!(matches!(
        log.append(vec![ok, big]).await,
        Err(Error::RecordTooLarge {
            size: 101,
            max: 100,
            ..
        })
    ));
    assert_eq!(log.watermarks(&tp("t", 0)).await.unwrap(), (0, 3));
    assert!(matches!(
        log.watermarks(&tp("t", 7)).await,
        Err(Error::UnknownPartition { .. })
    ));
    assert!(log.append(Vec::new()).await.unwrap().is_empty());
}

#[tokio::test]
async fn ensure_topic_checks_names_and_partition_counts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), small_config()).await;
        log.ensure_topic("orders", 3).await.unwrap();
        log.ensure_topic("orders", 3).await.unwrap();
        assert!(matches!(
            log.ensure_topic("orders", 4).await,
            Err(Error::PartitionMismatch {
                expected: 4,
                actual: 3,
                ..
            })
        ));
        for bad in ["../escape", "a/b", "..", "", "__consumer_offsets"] {
            assert!(
                matches!(log.ensure_topic(bad, 1).await, Err(Error::Config(_))),
                "{bad:?}"
            );
        }
        assert!(log.ensure_topic("zero", 0).await.is_err());
        assert!(!dir.path().join("zero").exists());
        log.close().await.unwrap();
    }
    let log = open(dir.path(), small_config()).await;
    assert_eq!(log.partitions("orders").await.unwrap(), 3);
    assert!(matches!(
        log.ensure_topic("orders", 2).await,
        Err(Error::PartitionMismatch { actual: 3, .. })
    ));
    assert!(matches!(
        log.partitions("missing").await,
        Err(Error::UnknownTopic(_))
    ));
}

#[tokio::test]
async fn reopen_after_close_keeps_records_and_group_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        segment_bytes: 2048,
        ..small_config()
    };
    {
        let log = open(dir.path(), config.clone()).await;
        log.ensure_topic("t", 2).await.unwrap();
        for batch in 0..10 {
            let recs = (0..20)
                .map(|i| to_partition("t", i % 2, &format!("{batch}-{i}"), Some(i as i64)))
                .collect();
            log.append(recs).await.unwrap();
        }
        log.commit_offsets("landing", &[(tp("t", 0), 42), (tp("t", 1), 7)])
            .await
            .unwrap();
        log.commit_offsets("landing", &[(tp("t", 1), 9)]).await.unwrap();
        assert!(log.segment_count(&tp("t", 0)).unwrap() > 1, "small segments roll");
        log.close().await.unwrap();
        assert!(matches!(
            log.append(vec![to_partition("t", 0, "late", None)]).await,
            Err(Error::Closed)
        ));
    }
    let log = open(dir.path(), config).await;
    assert_eq!(log.watermarks(&tp("t", 0)).await.unwrap(), (0, 100));
    assert_eq!(log.watermarks(&tp("t", 1)).await.unwrap(), (0, 100));
    assert_eq!(
        log.committed_offsets("landing", &[tp("t", 0), tp("t", 1)])
            .await
            .unwrap(),
        vec![Some(42), Some(9)]
    );
    assert_eq!(
        log.committed_offsets("other", &[tp("t", 0)]).await.unwrap(),
        vec![None]
    );

    // A new consumer of the group starts at the committed offsets.
    let mut consumer = log.consumer("landing", &["t"]).await.unwrap();
    let got = drain(consumer.as_mut()).await;
    assert_eq!(got.iter().filter(|r| r.partition == 0).count(), 100 - 42);
    assert_eq!(got.iter().find(|r| r.partition == 0).unwrap().offset, 42);
    assert_eq!(got.iter().filter(|r| r.partition == 1).count(), 100 - 9);

    // Every record reads back in order after the reopen (sealed segments indexed lazily).
    let mut consumer = log.consumer("fresh", &["t"]).await.unwrap();
    let got = drain(consumer.as_mut()).await;
    for p in 0..2 {
        let offsets: Vec<i64> = got
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect();
        assert_eq!(offsets, (0..100).collect::<Vec<_>>());
    }
    let value = |p: i32, o: i64| {
        got.iter()
            .find(|r| r.partition == p && r.offset == o)
            .unwrap()
            .value
            .clone()
    };
    assert_eq!(value(1, 99), b"9-19".to_vec());
    assert_eq!(value(0, 0), b"0-0".to_vec());

    // Appends continue after the last offset.
    let m = log
        .append(vec![to_partition("t", 0, "after", None)])
        .await
        .unwrap();
    assert_eq!(m[0].offset, 100);
}

#[tokio::test]
async fn retention_by_size_moves_the_low_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        segment_bytes: 4096,
        retention_bytes: 10_000,
        ..small_config()
    };
    let log = open(dir.path(), config).await;
    log.ensure_topic("t", 1).await.unwrap();
    for batch in 0..20 {
        let recs = (0..10)
            .map(|i| to_partition("t", 0, &format!("{batch:03}-{i:03}-{}", "x".repeat(80)), None))
            .collect();
        log.append(recs).await.unwrap();
    }
    log.enforce_retention().await.unwrap();
    let (low, high) = log.watermarks(&tp("t", 0)).await.unwrap();
    assert_eq!(high, 200);
    assert!(low > 0, "old segments deleted");
    assert!(log.partition_bytes(&tp("t", 0)).unwrap() <= 10_000 + 4096);
    assert!(log.segment_count(&tp("t", 0)).unwrap() <= 4);

    let mut consumer = log.consumer("g", &["t"]).await.unwrap();
    assert!(matches!(
        consumer.seek(&tp("t", 0), low - 1),
        Err(Error::OffsetOutOfRange { offset, low: l, high: 200, .. }) if offset == low - 1 && l == low
    ));
    assert!(matches!(
        consumer.seek(&tp("t", 0), 201),
        Err(Error::OffsetOutOfRange { .. })
    ));
    consumer.seek(&tp("t", 0), OFFSET_BEGINNING).unwrap();
    let got = drain(consumer.as_mut()).await;
    assert_eq!(got.first().unwrap().offset, low);
    assert_eq!(got.len() as i64, high - low);

    // Reopening applies the same limits and keeps the same low watermark.
    drop(consumer);
    log.close().await.unwrap();
    drop(log);
    let log = open(
        dir.path(),
        EmbeddedConfig {
            segment_bytes: 4096,
            retention_bytes: 10_000,
            ..small_config()
        },
    )
    .await;
    assert_eq!(log.watermarks(&tp("t", 0)).await.unwrap(), (low, 200));
}

#[tokio::test]
async fn retention_by_age_deletes_segments_last_appended_long_ago() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        segment_bytes: 1024,
        retention_ms: 60_000,
        ..EmbeddedConfig::default()
    };
    {
        let log = open(dir.path(), config.clone()).await;
        log.ensure_topic("t", 1).await.unwrap();
        let old: Vec<_> = (0..30)
            .map(|i| to_partition("t", 0, &format!("old-{i}-{}", "x".repeat(60)), None))
            .collect();
        log.append(old).await.unwrap();
        log.close().await.unwrap();
    }
    // Age goes by the last append, which the file's modification time keeps across restarts.
    common::backdate_segments(dir.path(), "t", 0, Duration::from_secs(3600));
    let log = open(dir.path(), config).await;
    let new: Vec<_> = (0..30)
        .map(|i| to_partition("t", 0, &format!("new-{i}-{}", "x".repeat(60)), None))
        .collect();
    let meta = log.append(new).await.unwrap();
    log.enforce_retention().await.unwrap();
    let (low, high) = log.watermarks(&tp("t", 0)).await.unwrap();
    assert_eq!(high, 60);
    assert!(
        low > 0 && low <= 30,
        "old segments gone, new records kept: low {low}"
    );
    // The segment holding the first new record may also hold old ones; nothing new is gone.
    assert!(low <= meta[0].offset);
    let mut consumer = log.consumer("g", &["t"]).await.unwrap();
    assert!(matches!(
        consumer.seek(&tp("t", 0), 0),
        Err(Error::OffsetOutOfRange { .. })
    ));
}

#[tokio::test]
async fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        EmbeddedConfig {
            segment_bytes: 512,
            ..small_config()
        },
    )
    .await;
    log.ensure_topic("t", 1).await.unwrap();
    // Mostly increasing, with a few late records.
    let ts: Vec<i64> = (0..100)
        .map(|i| if i % 10 == 5 { i * 100 - 900 } else { i * 100 })
        .collect();
    let recs = ts
        .iter()
        .enumerate()
        .map(|(i, &t)| to_partition("t", 0, &format!("r{i}"), Some(t)))
        .collect();
    log.append(recs).await.unwrap();
    assert!(log.segment_count(&tp("t", 0)).unwrap() > 3);
    let p = tp("t", 0);
    for target in [-5, 0, 1, 150, 4000, 4050, 9899, 9900] {
        let expected = ts.iter().position(|&t| t >= target).map(|i| i as i64);
        assert_eq!(
            log.offset_for_timestamp(&p, target).await.unwrap(),
            expected,
            "target {target}"
        );
    }
    assert_eq!(log.offset_for_timestamp(&p, 9901).await.unwrap(), None);
}

#[tokio::test]
async fn seek_uses_the_sparse_index_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        segment_bytes: 64 * 1024,
        ..small_config()
    };
    let p = tp("t", 0);
    {
        let log = open(dir.path(), config.clone()).await;
        log.ensure_topic("t", 1).await.unwrap();
        for b in 0..10 {
            let recs = (0..300)
                .map(|i| to_partition("t", 0, &format!("v{}", b * 300 + i), None))
                .collect();
            log.append(recs).await.unwrap();
        }
        check_seeks(&log, &p).await;
    }
    // After a reopen the sealed segments are indexed on first use.
    let log = open(dir.path(), config).await;
    check_seeks(&log, &p).await;
}

async fn check_seeks(log: &dyn Log, p: &TopicPartition) {
    let mut consumer = log.consumer("g", &["t"]).await.unwrap();
    let _ = consumer.poll(1, Duration::ZERO).await.unwrap(); // assignment
    for target in [0i64, 1, 57, 299, 300, 1234, 2048, 2999, 3000] {
        consumer.seek(p, target).unwrap();
        match consumer.poll(2, Duration::from_millis(10)).await.unwrap() {
            ConsumerEvent::Records(r) if target == 3000 => assert!(r.is_empty()),
            ConsumerEvent::Records(r) => {
                assert_eq!(r[0].offset, target);
                assert_eq!(r[0].value, format!("v{target}").into_bytes());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    consumer.seek(p, OFFSET_END).unwrap();
    assert!(
        matches!(consumer.poll(10, Duration::from_millis(10)).await.unwrap(), ConsumerEvent::Records(r) if r.is_empty())
    );
}

#[tokio::test]
async fn poll_waits_for_data_and_times_out_empty() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), small_config()).await);
    log.ensure_topic("t", 2).await.unwrap();
    let mut consumer = log.consumer("g", &["t"]).await.unwrap();
    match consumer.poll(10, Duration::from_millis(10)).await.unwrap() {
        ConsumerEvent::Assigned(tps) => assert_eq!(tps, vec![tp("t", 0), tp("t", 1)]),
        other => panic!("first poll must report the assignment, got {other:?}"),
    }
    let started = Instant::now();
    assert!(
        matches!(consumer.poll(10, Duration::from_millis(100)).await.unwrap(), ConsumerEvent::Records(r) if r.is_empty())
    );
    assert!(started.elapsed() >= Duration::from_millis(90));

    let writer = Arc::clone(&log);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer
            .append(vec![to_partition("t", 1, "wake", None)])
            .await
            .unwrap();
    });
    let started = Instant::now();
    match consumer.poll(10, Duration::from_secs(10)).await.unwrap() {
        ConsumerEvent::Records(r) => assert_eq!(r[0].value, b"wake".to_vec()),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken by the append, not the timeout"
    );
}

#[tokio::test]
async fn a_busy_partition_does_not_starve_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await;
    log.ensure_topic("t", 3).await.unwrap();
    log.append(
        (0..5000)
            .map(|i| to_partition("t", 0, &i.to_string(), None))
            .collect(),
    )
    .await
    .unwrap();
    log.append(
        (0..10)
            .map(|i| to_partition("t", 1, &i.to_string(), None))
            .collect(),
    )
    .await
    .unwrap();
    log.append(
        (0..400)
            .map(|i| to_partition("t", 2, &i.to_string(), None))
            .collect(),
    )
    .await
    .unwrap();
    let mut consumer = log.consumer("g", &["t"]).await.unwrap();
    let _ = consumer.poll(1, Duration::ZERO).await.unwrap();
    let ConsumerEvent::Records(records) = consumer.poll(600, Duration::from_millis(10)).await.unwrap() else {
        panic!("records expected")
    };
    assert_eq!(records.len(), 600, "unused shares go to partitions with more");
    let count = |p| records.iter().filter(|r| r.partition == p).count();
    assert_eq!(count(1), 10);
    assert!(count(0) >= 200 && count(2) >= 200, "{} / {}", count(0), count(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_read_exactly_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        open(
            dir.path(),
            EmbeddedConfig {
                segment_bytes: 256 * 1024,
                ..small_config()
            },
        )
        .await,
    );
    log.ensure_topic("t", 4).await.unwrap();
    let (tasks, batches, per_batch) = (8, 40, 50);
    let total = tasks * batches * per_batch;

    let reader = {
        let log = Arc::clone(&log);
        tokio::spawn(async move {
            let mut consumer = log.consumer("g", &["t"]).await.unwrap();
            let mut got = Vec::with_capacity(total);
            let deadline = Instant::now() + Duration::from_secs(60);
            while got.len() < total && Instant::now() < deadline {
                if let ConsumerEvent::Records(r) =
                    consumer.poll(700, Duration::from_millis(500)).await.unwrap()
                {
                    got.extend(r);
                }
            }
            got
        })
    };
    let mut writers = Vec::new();
    for t in 0..tasks {
        let log = Arc::clone(&log);
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for b in 0..batches {
                let recs: Vec<ProducerRecord> = (0..per_batch)
                    .map(|i| {
                        record(
                            "t",
                            Some(&format!("k{}", (t * 7 + b + i) % 13)),
                            &format!("{t}-{b}-{i}"),
                        )
                    })
                    .collect();
                let meta = log.append(recs).await.unwrap();
                acked.extend(meta.into_iter().map(|m| (m.partition, m.offset)));
            }
            acked
        }));
    }
    let mut acked = HashSet::new();
    for w in writers {
        for a in w.await.unwrap() {
            assert!(acked.insert(a), "offset {a:?} handed out twice");
        }
    }
    let got = reader.await.unwrap();
    assert_eq!(got.len(), total, "every record exactly once");
    let values: HashSet<_> = got.iter().map(|r| r.value.clone()).collect();
    assert_eq!(values.len(), total, "no duplicates");
    for p in 0..4 {
        let offsets: Vec<i64> = got
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect();
        assert_eq!(
            offsets,
            (0..offsets.len() as i64).collect::<Vec<_>>(),
            "partition {p} in order"
        );
        for r in got.iter().filter(|r| r.partition == p) {
            assert!(acked.contains(&(p, r.offset)));
            assert_eq!(partition_for_key(r.key.as_ref().unwrap(), 4), p);
        }
    }
}

#[tokio::test]
async fn interval_policy_round_trip_and_flush() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        fsync: FsyncPolicy::Interval,
        fsync_interval_ms: 2,
        ..small_config()
    };
    {
        let log = open(dir.path(), config.clone()).await;
        log.ensure_topic("t", 2).await.unwrap();
        for b in 0..20 {
            log.append(
                (0..50)
                    .map(|i| to_partition("t", i % 2, &format!("{b}-{i}"), None))
                    .collect(),
            )
            .await
            .unwrap();
        }
        log.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = open(dir.path(), config).await;
    assert_eq!(log.watermarks(&tp("t", 0)).await.unwrap(), (0, 500));
    let mut consumer = log.consumer("g", &["t"]).await.unwrap();
    assert_eq!(drain(consumer.as_mut()).await.len(), 1000);
}

#[tokio::test]
async fn consumer_commit_and_seek_rules() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await;
    log.ensure_topic("a", 1).await.unwrap();
    log.ensure_topic("b", 1).await.unwrap();
    log.append(
        (0..10)
            .map(|i| to_partition("a", 0, &i.to_string(), None))
            .collect(),
    )
    .await
    .unwrap();
    let mut consumer = log.consumer("g", &["a", "b"]).await.unwrap();
    assert_eq!(consumer.assignment(), vec![tp("a", 0), tp("b", 0)]);
    consumer.commit(&[(tp("a", 0), 4)]).await.unwrap();
    assert_eq!(
        log.committed_offsets("g", &[tp("a", 0), tp("b", 0)])
            .await
            .unwrap(),
        vec![Some(4), None]
    );
    assert!(matches!(
        consumer.seek(&tp("c", 0), 0),
        Err(Error::UnknownPartition { .. })
    ));
    assert!(matches!(
        consumer.seek(&tp("a", 0), 11),
        Err(Error::OffsetOutOfRange { high: 10, .. })
    ));
    consumer.seek(&tp("a", 0), 10).unwrap();
    assert!(drain(consumer.as_mut()).await.is_empty());
    consumer.seek(&tp("a", 0), 8).unwrap();
    assert_eq!(
        drain(consumer.as_mut())
            .await
            .iter()
            .map(|r| r.offset)
            .collect::<Vec<_>>(),
        vec![8, 9]
    );
    // A new consumer of the group starts at the committed offset.
    let mut again = log.consumer("g", &["a"]).await.unwrap();
    assert_eq!(drain(again.as_mut()).await.first().unwrap().offset, 4);
    assert!(log.commit_offsets("../evil", &[(tp("a", 0), 1)]).await.is_err());
    assert!(log.commit_offsets("g", &[(tp("zz", 0), 1)]).await.is_err());
    assert!(log.consumer("g", &["zz"]).await.is_err());
}

/// A segment that cannot be created (here: a stray file already has its name, so the writer's
/// `create_new` fails for real) stops the writer for good. Its appends then fail with
/// `WriterStopped`, not retryable, naming what failed and the file: retrying cannot help,
/// only a restart does, so a source shows `failed` and a webhook answers 500 (issue 18 review).
#[tokio::test]
async fn a_stopped_writer_is_not_retryable_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        segment_bytes: 1024,
        ..small_config()
    };
    let log = open(dir.path(), config.clone()).await;
    log.ensure_topic("t", 1).await.unwrap();
    let first: Vec<_> = (0..3)
        .map(|i| to_partition("t", 0, &format!("v{i}"), None))
        .collect();
    log.append(first).await.unwrap();
    let part_dir = dir.path().join("t/0");
    let strays: Vec<_> = (1..400)
        .map(|base| part_dir.join(format!("{base:020}.log")))
        .collect();
    for stray in &strays {
        std::fs::write(stray, b"").unwrap();
    }
    let many: Vec<_> = (0..300)
        .map(|i| to_partition("t", 0, &format!("value-{i:06}"), None))
        .collect();
    let err = log.append(many).await.unwrap_err();
    let check = |err: &Error| {
        assert!(
            matches!(err, Error::WriterStopped { op, path, .. }
                if op == "segment creation" && path.starts_with(&part_dir.display().to_string())),
            "{err:?}"
        );
        assert!(!err.is_retryable() && err.needs_restart(), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("restart") && text.contains(".log"), "{text}");
    };
    check(&err);
    // And every later append, however small: the writer does not come back on its own.
    let again = log
        .append(vec![to_partition("t", 0, "later", None)])
        .await
        .unwrap_err();
    check(&again);
    let _ = log.close().await;
    for stray in &strays {
        let _ = std::fs::remove_file(stray);
    }
    // A restart recovers: what was acknowledged is there, and appends work again.
    let log = open(dir.path(), config).await;
    let (_, high) = log.watermarks(&TopicPartition::new("t", 0)).await.unwrap();
    assert!(high >= 3, "acknowledged records survive: high {high}");
    log.append(vec![to_partition("t", 0, "after restart", None)])
        .await
        .unwrap();
}

/// A poll's byte limit (what bounds a landing batch in memory): records are returned until
/// their bytes reach the limit, the one that reaches it included, across partitions; a record
/// larger than the limit comes alone; every record is still read once, in order.
#[tokio::test]
async fn a_poll_stops_at_its_byte_limit_and_a_larger_record_comes_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config()).await;
    log.ensure_topic("orders", 2).await.unwrap();
    let kb = |n: usize, p: i32, i: usize| {
        to_partition("orders", p, &format!("{i:04}{}", "x".repeat(n * 1024 - 4)), None)
    };
    // 12 records of 10 KiB over two partitions, then one of 100 KiB.
    let mut records: Vec<_> = (0..12).map(|i| kb(10, (i % 2) as i32, i)).collect();
    records.push(kb(100, 0, 12));
    log.append(records).await.unwrap();

    let mut consumer = log.consumer("g", &["orders"]).await.unwrap();
    let limit = retail_log::PollLimit {
        records: 1000,
        bytes: 25 * 1024,
    };
    let mut polls = Vec::new();
    let mut seen = Vec::new();
    for _ in 0..50 {
        match consumer
            .poll_limited(limit, Duration::from_millis(20))
            .await
            .unwrap()
        {
            ConsumerEvent::Records(r) if r.is_empty() => break,
            ConsumerEvent::Records(r) => {
                polls.push(r.iter().map(|c| c.value.len() / 1024).collect::<Vec<_>>());
                seen.extend(r.iter().map(|c| (c.partition, c.offset, c.value[..4].to_vec())));
            }
            ConsumerEvent::Assigned(_) | ConsumerEvent::Revoked(_) => {}
        }
    }
    // 25 KiB: two 10 KiB records leave 5 KiB, the third reaches it; nothing is added after.
    for sizes in &polls {
        let before_last: usize = sizes[..sizes.len() - 1].iter().sum();
        assert!(before_last < 25, "a poll went on past its limit: {polls:?}");
    }
    assert!(polls.iter().any(|s| s == &vec![10, 10, 10]), "{polls:?}");
    assert!(
        polls.len() >= 5,
        "13 records in polls of at most three: {polls:?}"
    );
    // Every record once, each partition in offset order.
    assert_eq!(seen.len(), 13, "{polls:?}");
    let distinct: HashSet<_> = seen.iter().map(|(p, o, _)| (*p, *o)).collect();
    assert_eq!(distinct.len(), 13);
    for p in 0..2 {
        let offsets: Vec<i64> = seen.iter().filter(|s| s.0 == p).map(|s| s.1).collect();
        assert!(
            offsets.windows(2).all(|w| w[1] == w[0] + 1),
            "partition {p}: {offsets:?}"
        );
    }

    // A limit below one record: every poll still returns one record, so reading goes on.
    let mut small = log.consumer("h", &["orders"]).await.unwrap();
    let one = retail_log::PollLimit {
        records: 1000,
        bytes: 1,
    };
    let mut read = 0;
    for _ in 0..50 {
        match small.poll_limited(one, Duration::from_millis(20)).await.unwrap() {
            ConsumerEvent::Records(r) if r.is_empty() => break,
            ConsumerEvent::Records(r) => {
                assert_eq!(r.len(), 1, "one record per poll under a 1-byte limit");
                read += 1;
            }
            ConsumerEvent::Assigned(_) | ConsumerEvent::Revoked(_) => {}
        }
    }
    assert_eq!(read, 13);

    // Without a byte limit, every record comes in one poll.
    let mut other = log.consumer("i", &["orders"]).await.unwrap();
    let all = drain(other.as_mut()).await;
    assert_eq!(all.len(), 13);
}
