//! The Kafka backend against a real Kafka-protocol broker (Tansu, started per test on a free
//! loopback port; `./scripts/test` fetches it): topics created and checked, idempotent appends
//! that keep keys, headers and timestamps and partition like the Java client, group members that
//! start where the caller seeks and split the partitions between them, commits, and clear
//! errors for an unreachable broker and an unset secret.
#![cfg(feature = "kafka")]

#[path = "support/tansu.rs"]
mod tansu;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use retail_log::kafka::KafkaLog;
use retail_log::{
    partition_for_key, Consumer, ConsumerEvent, Error, Header, KafkaConfig, Log, ProducerRecord,
    TopicPartition,
};
use tansu::{Tansu, GROUP_PROPERTIES};

fn config() -> KafkaConfig {
    let mut c = KafkaConfig::default();
    for (k, v) in GROUP_PROPERTIES {
        c.properties.insert((*k).to_owned(), (*v).to_owned());
    }
    c
}

fn record(topic: &str, key: &str, n: usize) -> ProducerRecord {
    ProducerRecord {
        topic: topic.to_owned(),
        partition: None,
        key: Some(key.as_bytes().to_vec()),
        value: format!("{{\"n\":{n}}}").into_bytes(),
        headers: vec![Header {
            key: "event_type".into(),
            value: b"sale".to_vec(),
        }],
        timestamp_ms: Some(1_700_000_000_000 + n as i64),
    }
}

/// Polls until an assignment arrives; seeks nothing (the group's committed offsets or the
/// beginning apply).
async fn assigned(c: &mut Box<dyn Consumer>) -> Vec<TopicPartition> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no assignment within 60 s");
        if let ConsumerEvent::Assigned(tps) = c.poll(100, Duration::from_millis(500)).await.expect("poll") {
            return tps;
        }
    }
}

/// Reads until `n` records came (or 60 s passed).
async fn read(c: &mut Box<dyn Consumer>, n: usize) -> Vec<retail_log::ConsumedRecord> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < n && Instant::now() < deadline {
        if let ConsumerEvent::Records(r) = c.poll(1000, Duration::from_millis(500)).await.expect("poll") {
            out.extend(r);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_then_checked_and_a_different_count_is_refused() {
    let broker = Tansu::start();
    let log = KafkaLog::open(&broker.servers(), &config()).await.expect("open");
    log.ensure_topic("sales", 4).await.expect("create");
    log.ensure_topic("sales", 4)
        .await
        .expect("existing topic with the same count");
    assert_eq!(log.partitions("sales").await.expect("partitions"), 4);
    match log.ensure_topic("sales", 8).await {
        Err(Error::PartitionMismatch {
            expected: 8,
            actual: 4,
            ..
        }) => {}
        other => panic!("expected a partition mismatch, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_round_trip_with_java_partitioning_and_a_seek_sets_the_start() {
    let broker = Tansu::start();
    let log = KafkaLog::open(&broker.servers(), &config()).await.expect("open");
    log.ensure_topic("sales", 4).await.expect("create");
    let records: Vec<ProducerRecord> = (0..200)
        .map(|n| record("sales", &format!("store-{}", n % 7), n))
        .collect();
    let meta = log.append(records.clone()).await.expect("append");
    assert_eq!(meta.len(), 200);
    for (m, r) in meta.iter().zip(&records) {
        let key = r.key.as_deref().expect("key");
        assert_eq!(
            m.partition,
            partition_for_key(key, 4),
            "murmur2 partition of {key:?}"
        );
    }
    // Where the 100th record of partition 0 count lands: seek there and read from it.
    let in_p0: Vec<i64> = meta
        .iter()
        .filter(|m| m.partition == 0)
        .map(|m| m.offset)
        .collect();
    assert!(in_p0.len() > 10);
    let start = in_p0[5];

    let mut c = log.consumer("readers", &["sales"]).await.expect("consumer");
    let tps = assigned(&mut c).await;
    assert_eq!(tps.len(), 4, "a lone member gets every partition");
    c.seek(&TopicPartition::new("sales", 0), start).expect("seek");
    let expected = 200 - 5;
    let got = read(&mut c, expected).await;
    assert_eq!(got.len(), expected, "records read after the seek");
    let p0: Vec<i64> = got
        .iter()
        .filter(|r| r.partition == 0)
        .map(|r| r.offset)
        .collect();
    assert_eq!(
        p0.first(),
        Some(&start),
        "partition 0 starts where the caller sought"
    );
    let by_value: HashMap<Vec<u8>, &ProducerRecord> = records.iter().map(|r| (r.value.clone(), r)).collect();
    for r in &got {
        let sent = by_value[&r.value];
        assert_eq!(r.key, sent.key);
        assert_eq!(r.headers, sent.headers);
        assert_eq!(Some(r.timestamp_ms), sent.timestamp_ms);
    }

    // Commits go through the live member and read back.
    let tp = TopicPartition::new("sales", 1);
    log.commit_offsets("readers", &[(tp.clone(), 3)])
        .await
        .expect("commit");
    assert_eq!(
        log.committed_offsets("readers", &[tp]).await.expect("committed"),
        vec![Some(3)]
    );

    // The operator's view: topics, groups, and records read outside any group.
    let topics = log.topics().await.expect("topics");
    assert!(topics.contains(&("sales".to_owned(), 4)), "{topics:?}");
    let groups = log.groups().await.expect("groups");
    assert!(groups.contains(&"readers".to_owned()), "{groups:?}");
    let p0 = TopicPartition::new("sales", 0);
    let browsed = log.read(&p0, start, 3).await.expect("read");
    let offsets: Vec<i64> = browsed.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, in_p0[5..8].to_vec(), "records browsed from {start}");
    // At the end nothing; past it no silent jump. The end is counted from what
    // was appended: Tansu's high watermark is the base offset of the last batch.
    let end = in_p0.last().expect("records in partition 0") + 1;
    assert!(log.read(&p0, end, 3).await.expect("read at the end").is_empty());
    // Past the end: an error or nothing, never records from elsewhere in the partition (Kafka
    // answers OFFSET_OUT_OF_RANGE; Tansu answers an empty fetch).
    let past = log.read(&p0, end + 5, 3).await;
    assert!(
        past.as_ref().map_or(true, Vec::is_empty),
        "reading past the end: {past:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_the_partitions_and_a_leaver_hands_them_over() {
    let broker = Tansu::start();
    let log = KafkaLog::open(&broker.servers(), &config()).await.expect("open");
    log.ensure_topic("orders", 6).await.expect("create");
    let mut a = log.consumer("pair", &["orders"]).await.expect("a");
    let first = assigned(&mut a).await;
    assert_eq!(first.len(), 6);
    let mut b = log.consumer("pair", &["orders"]).await.expect("b");
    // B's join rebalances: A must give up (Revoked) and both get a share. Poll both until the
    // shares are disjoint and cover the topic.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        assert!(
            Instant::now() < deadline,
            "no split within 90 s: a={:?} b={:?}",
            a.assignment(),
            b.assignment()
        );
        let (ea, eb) = tokio::join!(
            a.poll(10, Duration::from_millis(300)),
            b.poll(10, Duration::from_millis(300))
        );
        ea.expect("poll a");
        eb.expect("poll b");
        let (sa, sb): (BTreeSet<_>, BTreeSet<_>) = (
            a.assignment().into_iter().collect(),
            b.assignment().into_iter().collect(),
        );
        if !sa.is_empty() && !sb.is_empty() && sa.is_disjoint(&sb) && sa.len() + sb.len() == 6 {
            break;
        }
    }
    // A leaves: B ends up with all six.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(90);
    while b.assignment().len() < 6 {
        assert!(
            Instant::now() < deadline,
            "B did not take over within 90 s: {:?}",
            b.assignment()
        );
        b.poll(10, Duration::from_millis(300)).await.expect("poll b");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_and_an_unset_secret_are_clear_errors() {
    let mut c = config();
    c.request_timeout_ms = 2_000;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let err = KafkaLog::open(&format!("127.0.0.1:{port}"), &c)
        .await
        .expect_err("nobody listens");
    let text = err.to_string();
    assert!(text.contains(&format!("kafka://127.0.0.1:{port}")), "{text}");
    assert!(err.is_retryable(), "an unreachable broker may come back: {text}");

    let mut c = config();
    c.properties.insert(
        "sasl.password".into(),
        "${RETAIL_TEST_UNSET_KAFKA_PASSWORD}".into(),
    );
    let err = KafkaLog::open("127.0.0.1:9", &c)
        .await
        .expect_err("unset variable");
    let text = err.to_string();
    assert!(
        text.contains("sasl.password") && text.contains("RETAIL_TEST_UNSET_KAFKA_PASSWORD"),
        "{text}"
    );
}

/// A poll's byte limit holds on Kafka too: records until their bytes reach it, the one that
/// reaches it included; every record still read once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_stops_at_its_byte_limit() {
    let broker = Tansu::start();
    let log = KafkaLog::open(&broker.servers(), &config()).await.expect("open");
    log.ensure_topic("orders", 1).await.expect("create");
    let records: Vec<ProducerRecord> = (0..30)
        .map(|n| ProducerRecord {
            value: format!("{n:04}{}", "x".repeat(10 * 1024 - 4)).into_bytes(),
            key: None,
            ..record("orders", "k", n)
        })
        .collect();
    log.append(records).await.expect("append");
    let mut c = log.consumer("limited", &["orders"]).await.expect("consumer");
    assigned(&mut c).await;
    let limit = retail_log::PollLimit {
        records: 1000,
        bytes: 25 * 1024,
    };
    let (mut sizes, mut offsets) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while offsets.len() < 30 && Instant::now() < deadline {
        if let ConsumerEvent::Records(r) = c
            .poll_limited(limit, Duration::from_millis(500))
            .await
            .expect("poll")
        {
            if !r.is_empty() {
                sizes.push(r.len());
                offsets.extend(r.iter().map(|x| x.offset));
            }
        }
    }
    assert_eq!(
        offsets,
        (0..30).collect::<Vec<i64>>(),
        "every record once, in order"
    );
    assert!(
        sizes.iter().all(|&n| n <= 3),
        "10 KiB records, 25 KiB limit: at most three a poll: {sizes:?}"
    );
    assert!(sizes.len() >= 10, "{sizes:?}");
}
