//! A damaged record in a sealed segment of the embedded log (issue 18, item 1; fault-suite case
//! "a damaged record in a sealed segment"), end to end with the real binary: the landing stops
//! at it with a message naming topic, partition and offset and the command that moves past it;
//! that command (`retail-etl log skip`) refuses a live pipeline and any other offset, records the skipped record in
//! `dead_letters` and moves the stored offset; the next start lands every other event exactly
//! once. The damage hits the record's length field, so the reader has to resync on the next
//! good record. The same body runs against SQLite and the real PostgreSQL.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{pg_exec, summary, Run, Running, TestStore, BIN};

/// Small segments, so the partitions roll and the damage sits in a sealed one.
const SEGMENT_BYTES: &str = "16384";

fn retail_etl(args: &[String]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .env("RETAIL__LOG__EMBEDDED__SEGMENT_BYTES", SEGMENT_BYTES);
    cmd
}

/// Runs to its own exit (at most two minutes) and returns what it printed.
fn run_to_exit(args: &[String]) -> Output {
    let mut child = retail_etl(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn retail-etl");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("retail-etl {args:?} did not exit within two minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// `demo` with the generator off: it only lands what the log holds.
fn landing_only(store: &TestStore) -> Vec<String> {
    [
        "demo",
        "--rate",
        "0",
        "--store",
        &store.url(),
        "--data-dir",
        &store.data_dir().display().to_string(),
        "--listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// A fresh, empty store at the same URL: the log stays, nothing of it has landed.
async fn empty_the_store(store: &TestStore) {
    match store.pg_parts() {
        Some((admin, db)) => {
            pg_exec(admin, &format!("DROP DATABASE {db} WITH (FORCE)")).await;
            pg_exec(admin, &format!("CREATE DATABASE {db}")).await;
        }
        None => {
            for suffix in ["", "-wal", "-shm"] {
                let path = store.data_dir().join(format!("retail.db{suffix}"));
                if path.exists() {
                    std::fs::remove_file(&path).expect("remove sqlite file");
                }
            }
        }
    }
}

/// One record of a segment file: where it starts, its offset and its value.
struct Rec {
    position: usize,
    offset: i64,
    value: Vec<u8>,
}

/// Walks a segment file record by record (layout: `len u32, crc u32, offset i64, ts i64,
/// key_len i32, key, value_len u32, value, ...`, little-endian).
fn records(bytes: &[u8]) -> Vec<Rec> {
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let total = 4 + u32_at(pos) as usize;
        let body = pos + 8;
        let offset = i64::from_le_bytes(bytes[body..body + 8].try_into().expect("8 bytes"));
        let key_len = i32::from_le_bytes(bytes[body + 16..body + 20].try_into().expect("4 bytes"));
        let value_at = body + 20 + usize::try_from(key_len).unwrap_or(0);
        let value_len = u32_at(value_at) as usize;
        out.push(Rec {
            position: pos,
            offset,
            value: bytes[value_at + 4..value_at + 4 + value_len].to_vec(),
        });
        pos += total;
    }
    out
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("partition dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// Breaks the length field of a sale in the middle of the first (sealed) segment of sales/0;
/// returns its offset and event id.
fn damage_a_sale(data_dir: &Path) -> (i64, String) {
    let segs = segments(&data_dir.join("log/sales/0"));
    assert!(segs.len() >= 2, "sales/0 must have a sealed segment: {segs:?}");
    let mut bytes = std::fs::read(&segs[0]).expect("read segment");
    let recs = records(&bytes);
    let rec = recs[recs.len() / 2..]
        .iter()
        .find_map(|r| match retail_core::decode(&r.value) {
            Ok(e) if matches!(e.body, retail_core::EventBody::Sale(_)) => Some((r, e.event_id.to_string())),
            _ => None,
        })
        .expect("a sale in the second half of the segment");
    let (r, id) = rec;
    bytes[r.position..r.position + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&segs[0], &bytes).expect("write segment");
    (r.offset, id)
}

/// `(topic, partition, offset, reason, kind, raw length)` of every dead letter.
async fn dead_letter_rows(store: &TestStore) -> Vec<(String, i64, i64, String, String, i64)> {
    let sql =
        "SELECT topic, \"partition\", \"offset\", reason, kind, length(raw) FROM dead_letters ORDER BY id";
    match store.pg_parts() {
        None => {
            let conn = rusqlite::Connection::open(store.data_dir().join("retail.db")).expect("open sqlite");
            let mut stmt = conn.prepare(sql).expect("prepare");
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                })
                .expect("query");
            rows.map(|r| r.expect("row")).collect()
        }
        Some(_) => {
            let sql = "SELECT topic, \"partition\"::bigint, \"offset\", reason, kind, length(raw)::bigint \
                       FROM dead_letters ORDER BY id";
            let client = common::pg_admin(&store.url()).await;
            let rows = client.query(sql, &[]).await.expect("query");
            rows.iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
                .collect()
        }
    }
}

async fn damaged_record_is_skipped_by_the_operator_and_the_rest_lands_once(store: TestStore) {
    let run = Run {
        seed: 23,
        events: 4_000,
        rate: 0.0,
        duplicate_fraction: 0.0,
        malformed_fraction: 0.0,
    };
    // The generator writes the log (and lands it into a store the test then throws away).
    let out = run_to_exit(&run.args(&store));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    empty_the_store(&store).await;
    let (damaged, damaged_id) = damage_a_sale(store.data_dir());
    let expected: HashSet<String> = run.expected_sale_ids();
    assert!(expected.contains(&damaged_id));

    // The landing stops at the damaged record, naming it and the command that moves past it.
    let out = run_to_exit(&landing_only(&store));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "the landing must stop at the damage: {stderr}"
    );
    assert!(
        stderr.contains(&format!("topic \"sales\" partition 0 offset {damaged} (segment ")),
        "the error names topic, partition and offset: {stderr}"
    );
    let command = stderr
        .split("run: retail-etl ")
        .nth(1)
        .and_then(|rest| rest.split(": damaged log record").next())
        .unwrap_or_else(|| panic!("no skip command in: {stderr}"));
    let skip: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
    assert_eq!(skip[..2], ["log", "skip"], "{command}");
    assert!(
        command.ends_with(&format!("--topic sales --partition 0 --offset {damaged}")),
        "{command}"
    );
    // Everything before the damage landed; nothing after it in that partition.
    let before = store.sales_ids().await;
    assert!(!before.contains(&damaged_id));

    // Any other offset is refused, naming where the landing stands.
    let mut wrong = skip.clone();
    let n = wrong.len();
    wrong[n - 1] = (damaged + 1).to_string();
    let out = run_to_exit(&wrong);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "skipping another offset must be refused");
    assert!(text.contains(&format!("stands at offset {damaged} ")), "{text}");
    assert!(
        dead_letter_rows(&store).await.is_empty(),
        "a refused skip records nothing"
    );

    // A mistyped store is refused, not created empty (an empty store "has landed nothing").
    if store.pg_parts().is_none() {
        let mut elsewhere = skip.clone();
        let at = elsewhere
            .iter()
            .position(|a| a == "--store")
            .expect("--store in the command")
            + 1;
        let missing = store.data_dir().join("typo.db");
        elsewhere[at] = format!("sqlite://{}", missing.display());
        let out = run_to_exit(&elsewhere);
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && text.contains("does not exist"), "{text}");
        assert!(!missing.exists());
    }

    // The printed command skips it.
    let out = run_to_exit(&skip);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains(&format!("offsets {damaged}..{damaged} "))
            && text.contains(&format!("resumes at offset {}", damaged + 1)),
        "{text}"
    );
    // Done once; the same command again is refused (the landing stands past it now).
    let again = run_to_exit(&skip);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains(&format!("stands at offset {} ", damaged + 1)),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // The next start lands every other event, exactly once (`sales_ids` panics on a duplicate).
    let running = Running::start(&landing_only(&store));
    // Never beside a live pipeline: the log's directory lock refuses it.
    let beside = run_to_exit(&skip);
    let text = String::from_utf8_lossy(&beside.stderr);
    assert!(!beside.status.success(), "log skip must refuse a live pipeline");
    assert!(text.contains("in use by another process"), "{text}");
    let s = running.interrupt_to_summary();
    assert!(s.contains_key("landed"), "{s:?}");
    let landed = store.sales_ids().await;
    let mut want = expected.clone();
    want.remove(&damaged_id);
    let missing: Vec<_> = want.difference(&landed).take(3).collect();
    let extra: Vec<_> = landed.difference(&want).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "landed ids differ: missing {missing:?}, unexpected {extra:?}"
    );
    assert_eq!(landed.len(), expected.len() - 1);

    // The skipped record is the one dead letter, with where it was and its bytes.
    let rows = dead_letter_rows(&store).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (topic, partition, offset, reason, kind, raw) = &rows[0];
    assert_eq!((topic.as_str(), *partition, *offset), ("sales", 0, damaged));
    assert!(
        reason.starts_with("damaged log record skipped by operator: segment ")
            && reason.contains("00000000000000000000.log byte "),
        "{reason}"
    );
    assert_eq!(kind, "damaged_log_record");
    assert!(*raw > 0, "the damaged record's bytes are kept");

    // And a further start lands nothing new.
    let s = summary(&run_to_exit_interrupted(&store));
    assert_eq!(s["landed"], "0", "{s:?}");
    assert_eq!(store.sales_ids().await.len(), expected.len() - 1);
    store.drop().await;
}

fn run_to_exit_interrupted(store: &TestStore) -> Output {
    let out = Running::start(&landing_only(store)).interrupt();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_damaged_record_in_a_sealed_segment_is_skipped_by_the_operator() {
    damaged_record_is_skipped_by_the_operator_and_the_rest_lands_once(TestStore::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_damaged_record_in_a_sealed_segment_is_skipped_by_the_operator() {
    damaged_record_is_skipped_by_the_operator_and_the_rest_lands_once(TestStore::postgres().await).await;
}
