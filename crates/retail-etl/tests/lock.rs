//! One process per data directory (issue 18, item 2), with two real processes: a second
//! `retail-etl` on the data directory of a running one exits with an error naming the
//! directory and the first one's pid, and the first keeps running.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{demo_args, Running, TestStore, BIN};

#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_on_one_data_dir_is_refused() {
    let store = TestStore::sqlite();
    let first = Running::start(&demo_args(&store, 200, 3));
    let mut second = Command::new(BIN)
        .args(demo_args(&store, 200, 4))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the second retail-etl");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!("the second retail-etl on the same data directory kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert!(!status.success(), "second process exited {status}: {stderr}");
    let dir = store.data_dir().display().to_string();
    assert!(stderr.contains(&dir), "error does not name {dir}: {stderr}");
    assert!(
        stderr.contains(&format!("pid {}", first.child.id())),
        "error does not name the first process (pid {}): {stderr}",
        first.child.id()
    );
    let (code, body) = first.get("/health");
    assert_eq!(code, 200, "the first process is still healthy: {body}");
    first.interrupt_to_summary();
    store.drop().await;
}

/// With the log elsewhere (Kafka, or an embedded log outside the data directory) the log's lock
/// does not meet the second process; the lock on the sources' state (CSV ledger, MQTT journal,
/// SOAP cursor, CDC state) does, naming the directory and the holder.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_on_one_data_dir_is_refused_even_with_its_log_elsewhere() {
    let store = TestStore::sqlite();
    let first = Running::start(&demo_args(&store, 200, 3));
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let mut args = demo_args(&store, 200, 4);
    args.extend([
        "--log".to_owned(),
        format!("embedded://{}", elsewhere.path().join("log").display()),
    ]);
    let out = Command::new(BIN)
        .args(&args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the second retail-etl")
        .wait_with_output()
        .expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second process ran: {stderr}");
    let sources = store.data_dir().join("sources").display().to_string();
    assert!(
        stderr.contains(&sources),
        "error does not name {sources}: {stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {}", first.child.id())),
        "error does not name the first process: {stderr}"
    );
    let (code, body) = first.get("/health");
    assert_eq!(code, 200, "the first process is still healthy: {body}");
    first.interrupt_to_summary();
    store.drop().await;
}
