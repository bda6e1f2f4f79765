//! Recovery after a crash and damage on disk: torn tails are cut back to the last good record,
//! damage anywhere else is reported as `Error::DamagedRecord` (topic, partition, offset, file,
//! byte) and never returned as data. A reader asked to start past a damaged record resyncs on
//! the next good one, also when the damaged record's length field is what was hit (issue 18).
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
        Error::DamagedRecord {
            tp: at,
            offset,
            path,
            position,
            ..
        } => {
            assert_eq!(at, tp("t", 0), "error names the partition");
            assert_eq!(offset, 10, "error names the offset");
            assert!(path.ends_with(".log"), "error names the file: {path}");
            assert_eq!(position, 10 * record_len as u64, "error names the position");
        }
        other => panic!("expected DamagedRecord, got {other:?}"),
    }
    // The error repeats (nothing is skipped silently) until the reader seeks past it.
    assert!(matches!(
        consumer.poll(10, Duration::from_millis(10)).await,
        Err(Error::DamagedRecord { offset: 10, .. })
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
        matches!(got, Err(Error::DamagedRecord { offset: 2, position, .. }) if position == 2 * size as u64),
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

/// How a test damages one record.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Its length field becomes impossible: a reader cannot tell where the next record starts.
    Length,
    /// Its length field says it is 9 bytes longer: it plausibly reaches into the next record.
    LongerLength,
    /// One byte of its value: the checksum fails, the length is intact.
    Checksum,
}

/// A one-partition topic of 100 records in several sealed segments of 1 KiB (plus an active
/// one), closed; returns the first segment's path and the size of one record.
async fn sealed_segments(dir: &std::path::Path) -> (std::path::PathBuf, usize) {
    let log = open(dir, sealed_config()).await;
    log.ensure_topic("t", 1).await.unwrap();
    let recs = (0..100)
        .map(|i| to_partition("t", 0, &format!("value-{i:04}"), Some(i)))
        .collect();
    log.append(recs).await.unwrap();
    assert!(log.segment_count(&tp("t", 0)).unwrap() > 3);
    log.close().await.unwrap();
    let first = dir.join("t/0/00000000000000000000.log");
    let size = {
        let bytes = std::fs::read(&first).unwrap();
        bytes.len() / count_records(&bytes)
    };
    (first, size)
}

fn sealed_config() -> EmbeddedConfig {
    EmbeddedConfig {
        segment_bytes: 1024,
        ..small_config()
    }
}

/// Damages record `index` of the segment at `path` (records of `size` bytes each).
fn damage(path: &std::path::Path, index: usize, size: usize, how: Damage) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = index * size;
    match how {
        Damage::Length => bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes()),
        Damage::LongerLength => {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) + 9;
            bytes[at..at + 4].copy_from_slice(&len.to_le_bytes());
        }
        Damage::Checksum => bytes[at + size - 2] ^= 0x10,
    }
    std::fs::write(path, &bytes).unwrap();
}

/// Reads from `from` to the end with a fresh consumer.
async fn read_from(
    log: &retail_log::embedded::EmbeddedLog,
    group: &str,
    from: i64,
) -> retail_log::Result<Vec<i64>> {
    let mut consumer = log.consumer(group, &["t"]).await.unwrap();
    consumer.poll(1, Duration::from_millis(1)).await.unwrap(); // the assignment
    consumer.seek(&tp("t", 0), from).unwrap();
    Ok(try_drain(consumer.as_mut())
        .await?
        .iter()
        .map(|r| r.offset)
        .collect())
}

/// The damaged record stops a reader at it, names itself, and a reader asked to start right
/// after it gets every later record, once, in order; `damaged_span` names where to resume.
async fn resync_case(index: usize, how: Damage) {
    let dir = tempfile::tempdir().unwrap();
    let (first, size) = sealed_segments(dir.path()).await;
    let records_in_first = std::fs::metadata(&first).unwrap().len() as usize / size;
    assert!(
        index < records_in_first,
        "damage stays in the first (sealed) segment"
    );
    damage(&first, index, size, how);
    let log = open(dir.path(), sealed_config()).await;
    assert_eq!(
        log.watermarks(&tp("t", 0)).await.unwrap(),
        (0, 100),
        "{how:?}: sealed data is never cut"
    );
    let damaged = index as i64;

    // From the start: the records before it, then the error naming it, every time.
    let mut consumer = log.consumer("c", &["t"]).await.unwrap();
    let mut seen = Vec::new();
    let err = loop {
        match consumer.poll(7, Duration::from_millis(20)).await {
            Ok(ConsumerEvent::Records(records)) => {
                assert!(!records.is_empty(), "{how:?}: poll must fail before running dry");
                seen.extend(records.into_iter().map(|r| r.offset));
            }
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(seen, (0..damaged).collect::<Vec<_>>(), "{how:?}");
    assert!(
        matches!(&err, Error::DamagedRecord { tp: t, offset, position, .. }
            if *t == tp("t", 0) && *offset == damaged && *position == (index * size) as u64),
        "{how:?}: {err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("topic \"t\" partition 0 offset") && text.contains(&format!("offset {damaged} ")),
        "{text}"
    );
    assert!(matches!(
        consumer.poll(7, Duration::from_millis(20)).await,
        Err(Error::DamagedRecord { offset, .. }) if offset == damaged
    ));
    // Reading the damaged offset itself never steps over it.
    assert!(matches!(
        read_from(&log, "d", damaged).await,
        Err(Error::DamagedRecord { offset, .. }) if offset == damaged
    ));

    // Where a skip resumes, and what it keeps of the record.
    let span = log
        .damaged_span(&tp("t", 0), damaged, 1 << 20)
        .await
        .unwrap()
        .expect("damaged");
    assert_eq!((span.offset, span.next), (damaged, damaged + 1), "{how:?}");
    assert_eq!(span.position, (index * size) as u64);
    assert!(span.path.ends_with("00000000000000000000.log"), "{}", span.path);
    assert_eq!(
        span.raw.len(),
        size,
        "{how:?}: the damaged record's bytes, up to the next record"
    );
    assert!(log
        .damaged_span(&tp("t", 0), damaged + 1, 1024)
        .await
        .unwrap()
        .is_none());

    // A reader asked to start past it, with no cursor: every later record, once, in order.
    consumer.seek(&tp("t", 0), damaged + 1).unwrap();
    let rest: Vec<i64> = try_drain(consumer.as_mut())
        .await
        .unwrap()
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(rest, (damaged + 1..100).collect::<Vec<_>>(), "{how:?}");
    // And one starting further on, whose index lookup lands before the damage.
    assert_eq!(
        read_from(&log, "e", damaged + 2).await.unwrap(),
        (damaged + 2..100).collect::<Vec<_>>(),
        "{how:?}"
    );
}

#[tokio::test]
async fn damaged_length_in_a_middle_record_of_a_sealed_segment_is_stepped_over_only_when_asked() {
    resync_case(5, Damage::Length).await;
    resync_case(5, Damage::LongerLength).await;
}

#[tokio::test]
async fn damaged_checksum_in_a_middle_record_of_a_sealed_segment_is_stepped_over_only_when_asked() {
    resync_case(5, Damage::Checksum).await;
}

#[tokio::test]
async fn damage_in_the_first_record_of_a_sealed_segment_is_stepped_over_only_when_asked() {
    for how in [Damage::Length, Damage::LongerLength, Damage::Checksum] {
        resync_case(0, how).await;
    }
}

/// The last record of a sealed segment: nothing follows it in its file, so reading resumes at
/// the next segment's base.
#[tokio::test]
async fn damage_in_the_last_record_of_a_sealed_segment_resumes_at_the_next_segment() {
    for how in [Damage::Length, Damage::Checksum] {
        let dir = tempfile::tempdir().unwrap();
        let (first, size) = sealed_segments(dir.path()).await;
        let last = std::fs::metadata(&first).unwrap().len() as usize / size - 1;
        resync_case_in(dir.path(), &first, last, size, how).await;
    }
}

async fn resync_case_in(
    dir: &std::path::Path,
    seg: &std::path::Path,
    index: usize,
    size: usize,
    how: Damage,
) {
    damage(seg, index, size, how);
    let log = open(dir, sealed_config()).await;
    let damaged = index as i64;
    assert!(matches!(
        read_from(&log, "c", 0).await,
        Err(Error::DamagedRecord { offset, .. }) if offset == damaged
    ));
    let span = log
        .damaged_span(&tp("t", 0), damaged, 1 << 20)
        .await
        .unwrap()
        .expect("damaged");
    assert_eq!(span.next, damaged + 1, "{how:?}: the next segment's base");
    assert_eq!(span.raw.len(), size, "{how:?}");
    assert_eq!(
        read_from(&log, "d", damaged + 1).await.unwrap(),
        (damaged + 1..100).collect::<Vec<_>>(),
        "{how:?}"
    );
}

/// Two neighbouring records damaged: a reader asked to start at the second (still unreadable)
/// is refused, never moved further than it asked; `damaged_span` of the first says where
/// reading resumes.
#[tokio::test]
async fn a_start_inside_a_damaged_run_is_refused_not_moved_forward() {
    let dir = tempfile::tempdir().unwrap();
    let (first, size) = sealed_segments(dir.path()).await;
    damage(&first, 3, size, Damage::Length);
    damage(&first, 4, size, Damage::Checksum);
    let log = open(dir.path(), sealed_config()).await;
    // Reported as the offset asked for (what the reader's owner can skip), at the byte where
    // the unreadable run starts, naming the whole run.
    let got = read_from(&log, "c", 4).await;
    assert!(
        matches!(&got, Err(Error::DamagedRecord { offset: 4, position, reason, .. })
            if *position == 3 * size as u64 && reason.contains("offsets 3..4 cannot be read")),
        "{got:?}"
    );
    assert!(matches!(
        read_from(&log, "c2", 4).await,
        Err(Error::DamagedRecord { offset: 4, .. })
    ));
    let span = log
        .damaged_span(&tp("t", 0), 3, 1 << 20)
        .await
        .unwrap()
        .expect("damaged");
    assert_eq!((span.offset, span.next), (3, 5));
    assert_eq!(span.raw.len(), 2 * size);
    assert_eq!(
        read_from(&log, "d", 5).await.unwrap(),
        (5..100).collect::<Vec<_>>()
    );
}

/// A reader that landed record 3 (whose tail is damaged together with the head of 4) stands at
/// 4: the span from 4 is what a skip passes over, and reading goes on at 5 (issue 18 review).
#[tokio::test]
async fn a_damaged_run_starting_below_the_reader_is_skipped_from_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (first, size) = sealed_segments(dir.path()).await;
    damage(&first, 3, size, Damage::Length);
    damage(&first, 4, size, Damage::Checksum);
    let log = open(dir.path(), sealed_config()).await;
    let span = log
        .damaged_span(&tp("t", 0), 4, 1 << 20)
        .await
        .unwrap()
        .expect("damaged");
    assert_eq!((span.offset, span.next), (4, 5), "{span:?}");
    assert_eq!(span.position, 3 * size as u64);
    assert!(span.reason.contains("offsets 3..4"), "{}", span.reason);
    assert_eq!(
        read_from(&log, "d", span.next).await.unwrap(),
        (5..100).collect::<Vec<_>>()
    );
}

/// Record `index` of the segment at `path` cut out: the next record sits where it belonged.
fn delete_record(path: &std::path::Path, index: usize, size: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes.drain(index * size..(index + 1) * size);
    std::fs::write(path, &bytes).unwrap();
}

/// A copy of record `index` inserted right after it, before the record that belongs there.
fn duplicate_record(path: &std::path::Path, index: usize, size: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let copy = bytes[index * size..(index + 1) * size].to_vec();
    let at = (index + 1) * size;
    bytes.splice(at..at, copy);
    std::fs::write(path, &bytes).unwrap();
}

/// A record missing from a sealed segment: the good record after it, at its place, is where a
/// skip resumes, never dead-lettered with it, and every reader from there (with or without an
/// index entry before the gap) reads on (issue 18 review).
#[tokio::test]
async fn a_missing_record_is_skipped_alone_and_the_record_at_its_place_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (first, size) = sealed_segments(dir.path()).await;
    delete_record(&first, 3, size);
    let log = open(dir.path(), sealed_config()).await;
    let got = read_from(&log, "c", 0).await;
    assert!(
        matches!(&got, Err(Error::DamagedRecord { offset: 3, position, reason, .. })
            if *position == 3 * size as u64 && reason.contains("offset 4 where 3 belongs")),
        "{got:?}"
    );
    let span = log
        .damaged_span(&tp("t", 0), 3, 1 << 20)
        .await
        .unwrap()
        .expect("damaged");
    assert_eq!(
        (span.offset, span.next),
        (3, 4),
        "only the missing offset is skipped: {span:?}"
    );
    assert!(span.raw.is_empty(), "nothing of it is on disk: {:?}", span.raw);
    // Where the skip leaves the reader, and a restart from there, and a reader further on.
    for (group, from) in [("d", 4), ("e", 4), ("f", 6)] {
        assert_eq!(
            read_from(&log, group, from).await.unwrap(),
            (from..100).collect::<Vec<_>>(),
            "from {from}"
        );
    }
    assert!(log.damaged_span(&tp("t", 0), 4, 1024).await.unwrap().is_none());
}

/// A stale copy of a record in front of the record that belongs there loses no offset: readers
/// pass over it, every record once, in order, and there is nothing to skip.
#[tokio::test]
async fn a_duplicated_record_is_passed_over_without_losing_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let (first, size) = sealed_segments(dir.path()).await;
    duplicate_record(&first, 2, size);
    let log = open(dir.path(), sealed_config()).await;
    assert_eq!(
        read_from(&log, "c", 0).await.unwrap(),
        (0..100).collect::<Vec<_>>()
    );
    assert_eq!(
        read_from(&log, "d", 3).await.unwrap(),
        (3..100).collect::<Vec<_>>()
    );
    assert!(log.damaged_span(&tp("t", 0), 3, 1024).await.unwrap().is_none());
}
