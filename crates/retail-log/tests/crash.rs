//! `kill -9` at random moments loses no acknowledged record and leaves nothing corrupt.
//!
//! The test binary re-executes itself as the child (`crash_child`, selected by `--exact` and
//! told so by an environment variable): it appends forever from several tasks and prints every
//! acknowledged `(partition, offset, id)`. The parent kills it at a random moment, several times
//! over the same directory (alternating the fsync policies; each child also recovers what the
//! previous one left), then reopens the log and checks every acknowledged record.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use retail_log::embedded::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};
use retail_log::{ConsumerEvent, Log, ProducerRecord, TopicPartition};

const CHILD_DIR: &str = "RETAIL_LOG_CRASH_CHILD_DIR";
const CHILD_RUN: &str = "RETAIL_LOG_CRASH_CHILD_RUN";
const PARTITIONS: i32 = 3;

fn config(run: u32) -> EmbeddedConfig {
    EmbeddedConfig {
        fsync: [FsyncPolicy::EveryBatch, FsyncPolicy::Interval][run as usize % 2],
        // Small segments, so kills also land around segment rolls.
        segment_bytes: 64 * 1024,
        retention_ms: 0,
        ..EmbeddedConfig::default()
    }
}

/// The child: appends until killed. A no-op in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let run: u32 = std::env::var(CHILD_RUN).unwrap().parse().unwrap();
    let log = Arc::new(EmbeddedLog::open(dir.as_ref(), config(run)).await.unwrap());
    log.ensure_topic("crash", PARTITIONS).await.unwrap();
    let mut tasks = Vec::new();
    for task in 0..3u64 {
        let log = Arc::clone(&log);
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9 ^ (u64::from(run) << 8) ^ task);
            for seq in 0u64.. {
                let n = 1 + rng.below(60) as usize;
                let ids: Vec<String> = (0..n).map(|i| format!("{run}.{task}.{seq}.{i}")).collect();
                let records = ids
                    .iter()
                    .map(|id| ProducerRecord {
                        topic: "crash".into(),
                        partition: None,
                        key: (rng.below(4) != 0).then(|| format!("k{}", rng.below(100)).into_bytes()),
                        value: format!("{id}|{}", "p".repeat(rng.below(300) as usize)).into_bytes(),
                        headers: Vec::new(),
                        timestamp_ms: None,
                    })
                    .collect();
                let meta = log.append(records).await.unwrap();
                let mut lines = String::new();
                for (m, id) in meta.iter().zip(&ids) {
                    lines.push_str(&format!("ACK {} {} {id}\n", m.partition, m.offset));
                }
                std::io::stdout().lock().write_all(lines.as_bytes()).unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn acknowledged_records_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64);
    let mut acked: Vec<(i32, i64, String)> = Vec::new();
    let started = Instant::now();
    for run in 0..8u32 {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_RUN, run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                // A line cut by the kill has no newline: the ack was never fully reported.
                if let (Some(rest), true) = (line.strip_prefix("ACK "), line.ends_with('\n')) {
                    let mut parts = rest.split_whitespace();
                    let p = parts.next().unwrap().parse().unwrap();
                    let o = parts.next().unwrap().parse().unwrap();
                    acks.push((p, o, parts.next().unwrap().to_owned()));
                }
                line.clear();
            }
            acks
        });
        // Random moments, from during recovery/open to deep into appending.
        std::thread::sleep(Duration::from_millis(20 + rng.below(450)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        eprintln!("run {run}: {} acknowledged before kill -9", acks.len());
        acked.extend(acks);
    }
    assert!(
        acked.len() > 1000,
        "the children made progress: {} acks",
        acked.len()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let log = EmbeddedLog::open(dir.path(), config(0)).await.unwrap();
        let mut stored: HashMap<(i32, i64), String> = HashMap::new();
        let mut consumer = log.consumer("verify", &["crash"]).await.unwrap();
        loop {
            match consumer
                .poll(5000, Duration::from_millis(50))
                .await
                .expect("no corrupt data")
            {
                ConsumerEvent::Records(r) if r.is_empty() => break,
                ConsumerEvent::Records(records) => {
                    for r in records {
                        let value = String::from_utf8(r.value).unwrap();
                        let id = value.split('|').next().unwrap().to_owned();
                        assert!(
                            stored.insert((r.partition, r.offset), id).is_none(),
                            "offset read twice"
                        );
                    }
                }
                _ => {}
            }
        }
        for p in 0..PARTITIONS {
            let (low, high) = log.watermarks(&TopicPartition::new("crash", p)).await.unwrap();
            assert_eq!(low, 0);
            for o in 0..high {
                assert!(
                    stored.contains_key(&(p, o)),
                    "offset {o} of partition {p} missing below high {high}"
                );
            }
        }
        for (p, o, id) in &acked {
            assert_eq!(
                stored.get(&(*p, *o)),
                Some(id),
                "acknowledged record {id} at {p}/{o}"
            );
        }
        eprintln!(
            "{} acknowledged records verified, {} stored, in {:?}",
            acked.len(),
            stored.len(),
            started.elapsed()
        );
    });
}

/// A tiny xorshift generator: enough randomness for kill timing without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}
