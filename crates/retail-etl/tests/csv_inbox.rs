//! The CSV drop folder through the real binary: files written the way an exporter writes them
//! (partly, then completed), `kill -9` at random moments while a folder of many files is
//! ingested, restarts, and then every good row is in `sales_raw` exactly once and every bad
//! row is exactly one dead letter naming its file and line. Files that cannot be read go to
//! `failed/` with the reason beside them.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Running, TestStore};
use rand::Rng;

fn args(store: &TestStore) -> Vec<String> {
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

const HEADER: &str = "event_id,store_id,sku,qty,unit_price,seller_id,ts\n";

/// A file of `rows` rows: every 50th row is bad (qty "two"), every 7th has no event_id (the
/// source derives it from the file and line). Returns (text, good explicit ids, good rows
/// without id, bad lines).
fn export(file_no: u32, rows: u32) -> (String, Vec<String>, usize, Vec<u64>) {
    let mut text = String::from(HEADER);
    let (mut ids, mut anonymous, mut bad) = (Vec::new(), 0, Vec::new());
    for i in 0..rows {
        let line = u64::from(i) + 2;
        let id = format!("0190f3a4-{file_no:04x}-7000-8000-{i:012x}");
        let ts = 1_723_456_789_000_i64 + i64::from(i);
        if i % 50 == 49 {
            text.push_str(&format!("{id},{},{},two,1.00,7,{ts}\n", i % 9 + 1, 1000 + i));
            bad.push(line);
        } else if i % 7 == 3 {
            text.push_str(&format!(",{},{},1,1.00,7,{ts}\n", i % 9 + 1, 1000 + i));
            anonymous += 1;
        } else {
            text.push_str(&format!("{id},{},{},1,2.50,7,{ts}\n", i % 9 + 1, 1000 + i));
            ids.push(id);
        }
    }
    (text, ids, anonymous, bad)
}

/// Writes `text` to `path` as an exporter does: a first part, a pause, then the rest.
fn write_like_an_exporter(path: &Path, text: &str) {
    let cut = text.len() / 2;
    let mut f = std::fs::File::create(path).expect("create");
    f.write_all(&text.as_bytes()[..cut]).expect("write");
    f.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(300));
    f.write_all(&text.as_bytes()[cut..]).expect("write");
}

fn pending(inbox: &Path) -> usize {
    std::fs::read_dir(inbox)
        .map(|d| d.flatten().filter(|e| e.path().is_file()).count())
        .unwrap_or(0)
}

async fn dead_letter_lines(store: &TestStore) -> Vec<(String, i64)> {
    let TestStore::Sqlite { dir } = store else {
        unreachable!("sqlite only")
    };
    let conn = rusqlite::Connection::open(dir.path().join("retail.db")).expect("open");
    let mut stmt = conn
        .prepare("SELECT file, line FROM dead_letters WHERE file IS NOT NULL")
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_row_lands_exactly_once_across_kill_9() {
    let store = TestStore::sqlite();
    let inbox = store.data_dir().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    let (mut explicit, mut anonymous, mut bad) = (HashSet::new(), 0usize, HashSet::new());
    // 20 files of 5,000 rows = 100,000 rows, written while the binary runs and is killed.
    let files: Vec<(String, String)> = (0..20)
        .map(|n| {
            let (text, ids, anon, bad_lines) = export(n, 5_000);
            explicit.extend(ids);
            anonymous += anon;
            let name = format!("erp-{n:03}.csv");
            bad.extend(bad_lines.into_iter().map(|l| (name.clone(), l as i64)));
            (name, text)
        })
        .collect();
    let writer_dir = inbox.clone();
    let writer = std::thread::spawn(move || {
        for (name, text) in files {
            write_like_an_exporter(&writer_dir.join(name), &text);
        }
    });

    let mut rng = rand::rng();
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let mut demo = Running::start(&args(&store));
        let done = writer.is_finished() && pending(&inbox) == 0;
        if done || kills >= 6 {
            while pending(&inbox) > 0 || !writer.is_finished() {
                assert!(Instant::now() < deadline, "the inbox never emptied");
                std::thread::sleep(Duration::from_millis(200));
            }
            let s = demo.interrupt_to_summary();
            assert!(s.contains_key("landed"), "{s:?}");
            break;
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(300..2_000)));
        demo.child.kill().expect("kill -9");
        let _ = demo.child.wait();
        kills += 1;
    }
    assert!(writer.join().is_ok());
    assert!(
        kills >= 3,
        "the test must really kill the binary mid-ingest ({kills} kills)"
    );

    let landed = store.sales_ids().await; // panics on a duplicate row
    assert!(
        explicit.is_subset(&landed),
        "{} explicit ids missing",
        explicit.difference(&landed).count()
    );
    assert_eq!(
        landed.len(),
        explicit.len() + anonymous,
        "every good row exactly once"
    );
    let letters = dead_letter_lines(&store).await;
    let distinct: HashSet<(String, i64)> = letters.iter().cloned().collect();
    assert_eq!(letters.len(), distinct.len(), "a bad row dead-lettered twice");
    assert_eq!(
        distinct, bad,
        "every bad row exactly one dead letter with its file and line"
    );
    let processed = std::fs::read_dir(inbox.join("processed"))
        .expect("processed")
        .count();
    assert_eq!(processed, 20);
    store.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_files_go_to_failed_with_the_reason_and_a_growing_file_waits() {
    let store = TestStore::sqlite();
    let inbox = store.data_dir().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    let demo = Running::start(&args(&store));
    std::fs::write(inbox.join("empty.csv"), "").expect("write");
    std::fs::write(inbox.join("latin1.csv"), b"store_id,sku,qty,ts\n1,2,1,K\xf6ln\n").expect("write");
    std::fs::write(
        inbox.join("columns.csv"),
        "store,sku,qty,ts\n1,2,1,1723456789000\n",
    )
    .expect("write");
    std::fs::write(
        inbox.join("cut.csv"),
        format!("{HEADER},1,100,1,1.00,7,1723456789000\n,1,1"),
    )
    .expect("write");
    // A file that keeps growing is not taken until it stops.
    let growing = inbox.join("growing.csv");
    let mut f = std::fs::File::create(&growing).expect("create");
    f.write_all(HEADER.as_bytes()).expect("write");
    for i in 0..8 {
        f.write_all(format!(",1,{},1,1.00,7,1723456789000\n", 100 + i).as_bytes())
            .expect("write");
        f.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(400));
        assert!(growing.exists(), "taken while still growing (after {i} appends)");
    }
    drop(f);
    let deadline = Instant::now() + Duration::from_secs(30);
    while pending(&inbox) > 0 {
        assert!(Instant::now() < deadline, "files left in the inbox");
        std::thread::sleep(Duration::from_millis(200));
    }
    let failed = inbox.join("failed");
    let reason = |name: &str| {
        std::fs::read_to_string(failed.join(format!("{name}.error")))
            .unwrap_or_else(|e| panic!("{name}.error: {e}"))
    };
    assert!(reason("empty.csv").contains("empty"));
    assert!(reason("latin1.csv").contains("not UTF-8") && reason("latin1.csv").contains("line 2"));
    assert!(reason("columns.csv").contains("missing column store_id"));
    assert!(reason("cut.csv").contains("truncated"));
    assert!(inbox.join("processed/growing.csv").exists());
    let s = demo.interrupt_to_summary();
    assert_eq!(s["landed"], "8", "{s:?}");
    store.drop().await;
}
