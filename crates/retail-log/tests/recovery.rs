//! Recovery after a crash and damage on disk: torn tails are cut back to the last good record,
//! damage anywhere else is reported as `Error::Corrupt` and never returned as data.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{drain, last_segment, open, small_config, to_partition, try_drain};
use retail_log::embedded::EmbeddedConfig;
use retail_log::{ConsumerEvent, Error, Log, TopicPartition};

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

/// Writes `n` records to a one-partition topic and closes the log.
async fn write_and_close(dir: &std::path::Path, n: usize) {
    let log = open(dir, small_config()).await;
    log.ensure_topic("t", 1).await.unwrap();
    let recs = (0..n)
        .map(|i| to_partition("t", 0, &format!("value-{i:04}"), Some(i as i64)))
        .collect();
    log.append(recs).await.unwrap();
    log.close().await.unwrap();
}

/// Reopens after damage and checks the first `intact` records survive and appends go on at
/// `intact`.
async fn assert_recovered(dir: &std::path::Path, intact: i64) {
    let log = open(dir, small_config()).await;
    assert_eq!(log.watermarks(&tp("t", 0)).await.unwrap(), (0, intact));
    let mut consumer = log.consumer("check", &["t"]).await.unwrap();
    let got = drain(consumer.as_mut()).await;
    assert_eq!(got.len() as i64, intact);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.value, format!("value-{i:04}").into_bytes());
    }
    let m = log
        .append(vec![to_partition("t", 0, "next", None)])
        .await
        .unwrap();
    assert_eq!(m[0].offset, intact);
    log.close().await.unwrap();
    // And the repaired log reopens cleanly with the new record.
    let log = open(dir, small_config()).await;
    assert_eq!(log.watermarks(&tp("t", 0)).await.unwrap(), (0, intact + 1));
}

#[tokio::test]
async fn torn_tail_cut_mid_record_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    write_and_close(dir.path(), 50).await;
    let seg = last_segment(dir.path(), "t", 0);
    let len = std::fs::metadata(&seg).unwrap().len();
    // Each record is the same size: cut the last one in half.
    let record_len = len / 50;
    let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    file.set_len(len - record_len / 2).unwrap();
    drop(file);
    {
        let log = open(dir.path(), small_config()).await;
        assert_eq!(log.watermarks(&tp("t", 0)).await.unwrap(), (0, 49));
    }
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        49 * record_len,
        "file cut to the last good record"
    );
    assert_recovered(dir.path(), 49).await;
}

#[tokio::test]
async fn torn_tail_cut_inside_length_field_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    write_and_close(dir.path(), 10).await;
    let seg = last_segment(dir.path(), "t", 0);
    let len = std::fs::metadata(&seg).unwrap().len();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[7, 0]); // two bytes of a next length field
    std::fs::write(&seg, &bytes).unwrap();
    assert_recovered(dir.path(), 10).await;
    assert!(std::fs::metadata(&seg).unwrap().len() > len);
}

#[tokio::test]
async fn garbage_after_the_last_record_is_truncated() {
    for garbage in [
        vec![0u8; 300],
        (0..=255u8).cycle().take(1000).collect(),
        vec![0xff; 64],
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_and_close(dir.path(), 30).await;
        let seg = last_segment(dir.path(), "t", 0);
        let good_len = std::fs::metadata(&seg).unwrap().len();
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes.extend_from_slice(&garbage);
        std::fs::write(&seg, &bytes).unwrap();
        {
            let log = open(dir.path(), small_config()).await;
            assert_eq!(log.watermarks(&tp("t", 0)).await.unwrap(), (0, 30));
        }
        assert_eq!(
            std::fs::metadata(&seg).unwrap().len(),
            good_len,
            "garbage cut off"
        );
        assert_recovered(dir.path(), 30).await;
    }
}

#[tokio::test]
async fn flipped_byte_in_the_last_record_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    write_and_close(dir.path(), 20).await;
    let seg = last_segment(dir.path(), "t", 0);
    let mut bytes = std::fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x20; // inside the last record's value
    std::fs::write(&seg, &bytes).unwrap();
    assert_recovered(dir.path(), 19).await;
}

#[tokio::test]
async fn flipped_byte_in_a_middle_record_is_reported_not_returned() {
    let dir = tempfile::tempdir().unwrap();
    write_and_close(dir.path(), 20).await;
    let seg = last_segment(dir.path(), "t", 0);
    let mut bytes = std::fs::read(&seg).unwrap();
    let record_len = bytes.len() / 20;
    // Offset 10: flip a byte of its value (its length field stays intact).
    bytes[10 * record_len + record_len - 2] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();

    let log = open(dir.path(), small_config()).await;
    // Not a torn tail: nothing after it was cut.
    assert_eq!(log.watermarks(&tp("t", 0)).await.unwrap(), (0, 20));
    let mut consumer = log.consumer("c", &["t"]).await.unwrap();
    let mut seen = Vec::new();
    let err = loop {
        match consumer.poll(3, Duration::from_millis(50)).await {
            Ok(ConsumerEvent::Records(records)) => {
                assert!(!records.is_empty(), "poll must fail before running dry");
                seen.extend(records.into_iter().map(|r| r.offset));
            }
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(
        seen,
        (0..10).collect::<Vec<_>>(),
        "records before the damage are returned"
    );
    match err {
        Error::Corrupt { path, position, .. } => {
            assert!(path.ends_with(".log"), "error names the file: {path}");
            assert_eq!(position, 10 * record_len as u64, "error names the position");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // The error repeats (nothing is skipped silently) until the reader seeks past it.
    assert!(matches!(
        consumer.poll(10, Duration::from_millis(10)).await,
        Err(Error::Corrupt { .. })
    ));
    consumer.seek(&tp("t", 0), 11).unwrap();
    let rest = try_drain(consumer.as_mut()).await.unwrap();
    assert_eq!(
        rest.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (11..20).collect::<Vec<_>>()
    );
    // A fresh reader starting right after it, with no cursor, steps over it too.
    let mut c2 = log.consumer("c2", &["t"]).await.unwrap();
    c2.seek(&tp("t", 0), 12).unwrap();
    assert_eq!(try_drain(c2.as_mut()).await.unwrap().len(), 8);
}

#[tokio::test]
async fn damage_in_a_sealed_segment_is_reported_and_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        segment_bytes: 1024,
        ..small_config()
    };
    {
        let log = open(dir.path(), config.clone()).await;
        log.ensure_topic("t", 1).await.unwrap();
        let recs = (0..100)
            .map(|i| to_partition("t", 0, &format!("value-{i:04}"), Some(i)))
            .collect();
        log.append(recs).await.unwrap();
        assert!(log.segment_count(&tp("t", 0)).unwrap() > 3);
        log.close().await.unwrap();
    }
    let first = dir.path().join("t/0/00000000000000000000.log");
    let mut bytes = std::fs::read(&first).unwrap();
    // The last byte of the third record's value.
    let size = bytes.len() / count_records(&bytes);
    bytes[3 * size - 1] ^= 0x40;
    std::fs::write(&first, &bytes).unwrap();

    let log = open(dir.path(), config).await;
    assert_eq!(
        log.watermarks(&tp("t", 0)).await.unwrap(),
        (0, 100),
        "sealed segments are never cut"
    );
    let mut consumer = log.consumer("c", &["t"]).await.unwrap();
    let got = try_drain(consumer.as_mut()).await;
    assert!(
        matches!(got, Err(Error::Corrupt { position, .. }) if position == 2 * size as u64),
        "{got:?}"
    );
    consumer.seek(&tp("t", 0), 3).unwrap();
    let rest = drain(consumer.as_mut()).await;
    assert_eq!(rest.len(), 97);
    assert_eq!(rest[0].value, b"value-0003".to_vec());
    // Timestamp lookups step over the damaged record.
    assert_eq!(log.offset_for_timestamp(&tp("t", 0), 2).await.unwrap(), Some(3));
}

/// Records in a segment whose records all have the same size (the first length field says it).
fn count_records(bytes: &[u8]) -> usize {
    let len = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize + 4;
    assert_eq!(bytes.len() % len, 0);
    bytes.len() / len
}
