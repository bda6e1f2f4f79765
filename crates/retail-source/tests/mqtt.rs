//! The MQTT source against the real Mosquitto broker (127.0.0.1:1883, or
//! `RETAIL_TEST_MQTT_PORT`), with `mosquitto_pub` as the independent publisher, in front of the
//! real embedded log: topic fields, every kind of bad message, messages published while the
//! source is down, and crashes before and after the append, each landing once.
//!
//! Every test uses its own client id and topic prefix, so they run beside each other on the
//! shared broker, and ends by clearing its session.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use retail_core::health::State;
use retail_core::{Health, Metrics, Shutdown, TopicPartition};
use retail_log::embedded::{EmbeddedConfig, EmbeddedLog};
use retail_log::{ConsumedRecord, Consumer, Log, ProducerRecord, RecordMetadata};
use retail_source::mqtt::{MqttConfig, TopicConfig};
use retail_source::{Backlog, BuildSource, Routes, SourceContext, SourceHandle};
use serde_json::Value;

const PARTITIONS: i32 = 2;

fn port() -> u16 {
    std::env::var("RETAIL_TEST_MQTT_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1883)
}

/// A prefix no other test run uses.
fn unique(test: &str) -> String {
    format!("{test}-{}-{}", std::process::id(), uuid::Uuid::now_v7().simple())
}

fn config(run: &str, port: u16) -> MqttConfig {
    MqttConfig {
        name: "lanes".to_owned(),
        port,
        client_id: Some(format!("retail-test-{run}")),
        linger_ms: 5,
        reconnect_ms: (50, 500),
        max_payload_bytes: 1024,
        topics: vec![TopicConfig {
            pattern: format!("t/{run}/stores/{{store_id}}/lanes/{{device_id}}/status"),
            event_type: "device_status".to_owned(),
        }],
        ..MqttConfig::default()
    }
}

/// `mosquitto_pub` publishing one message at QoS 1.
fn publish(topic: &str, payload: &str) {
    let out = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port().to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            payload,
        ])
        .output()
        .expect("mosquitto_pub runs (Debian package mosquitto-clients; ./scripts/test installs it)");
    assert!(
        out.status.success(),
        "mosquitto_pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Many messages in one `mosquitto_pub` run (one per line of stdin).
fn publish_lines(topic: &str, lines: &[String]) {
    use std::io::Write;
    let mut child = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port().to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-l",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_pub runs");
    let mut stdin = child.stdin.take().expect("stdin");
    for l in lines {
        writeln!(stdin, "{l}").expect("writes");
    }
    drop(stdin);
    assert!(child.wait().expect("waits").success());
}

/// Ends the test's persistent session on the broker (a clean-session connect with its id).
fn clear_session(client_id: &str) {
    let _ = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port().to_string(),
            "-i",
            client_id,
            "-t",
            "x/none",
            "-E",
        ])
        .output();
}

/// What the embedded log is wrapped in to play a crash around the append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hang {
    /// The append never starts (the process died between receipt and append).
    BeforeAppend,
    /// The append is done but never returns (the process died before its PUBACKs).
    AfterAppend,
}

#[derive(Debug)]
struct CrashingLog {
    inner: Arc<dyn Log>,
    hang: Hang,
    appends: AtomicUsize,
    hung: AtomicBool,
}

#[async_trait]
impl Log for CrashingLog {
    async fn ensure_topic(&self, topic: &str, partitions: i32) -> retail_log::Result<()> {
        self.inner.ensure_topic(topic, partitions).await
    }
    async fn partitions(&self, topic: &str) -> retail_log::Result<i32> {
        self.inner.partitions(topic).await
    }
    async fn append(&self, records: Vec<ProducerRecord>) -> retail_log::Result<Vec<RecordMetadata>> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        match self.hang {
            Hang::BeforeAppend => {
                self.hung.store(true, Ordering::SeqCst);
                std::future::pending().await
            }
            Hang::AfterAppend => {
                self.inner.append(records).await?;
                self.hung.store(true, Ordering::SeqCst);
                std::future::pending().await
            }
        }
    }
    async fn watermarks(&self, tp: &TopicPartition) -> retail_log::Result<(i64, i64)> {
        self.inner.watermarks(tp).await
    }
    async fn offset_for_timestamp(&self, tp: &TopicPartition, ts: i64) -> retail_log::Result<Option<i64>> {
        self.inner.offset_for_timestamp(tp, ts).await
    }
    async fn commit_offsets(&self, group: &str, offsets: &[(TopicPartition, i64)]) -> retail_log::Result<()> {
        self.inner.commit_offsets(group, offsets).await
    }
    async fn committed_offsets(
        &self,
        group: &str,
        tps: &[TopicPartition],
    ) -> retail_log::Result<Vec<Option<i64>>> {
        self.inner.committed_offsets(group, tps).await
    }
    async fn consumer(&self, group: &str, topics: &[&str]) -> retail_log::Result<Box<dyn Consumer>> {
        self.inner.consumer(group, topics).await
    }
}

/// A running source over `log`, with its state directory under `dir`.
struct Running {
    handle: SourceHandle,
    health: Health,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<retail_source::Result<()>>,
}

async fn start(config: &MqttConfig, log: Arc<dyn Log>, dir: &std::path::Path) -> Running {
    let shutdown = Shutdown::new();
    let health = Health::new();
    let cx = SourceContext {
        log,
        metrics: Metrics::new(),
        health: health.clone(),
        shutdown: shutdown.clone(),
        data_dir: dir.to_path_buf(),
        partitions: PARTITIONS,
        routes: Routes::default(),
        backlog: Backlog::default(),
        loopback: true,
    };
    let built = config.build(&cx).await.expect("builds");
    let task = tokio::spawn(built.task);
    Running {
        handle: built.handle,
        health,
        shutdown,
        task,
    }
}

impl Running {
    fn state(&self) -> (State, String) {
        let s = self.health.snapshot();
        let s = s.get("lanes").expect("on health");
        (s.state, s.detail.clone())
    }

    async fn wait_for(&self, what: &str, ok: impl Fn(State, &str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (state, detail) = self.state();
            if ok(state, &detail) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waiting for {what}: health says {state:?} {detail}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn subscribed(&self) {
        self.wait_for("the subscription", |s, d| {
            s == State::Running && d.contains("subscribed")
        })
        .await;
    }

    /// Stops as a crash would: the task is dropped where it is, no DISCONNECT is sent.
    async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.expect("joins").expect("ends cleanly");
    }
}

async fn open_log(dir: &std::path::Path) -> Arc<dyn Log> {
    Arc::new(
        EmbeddedLog::open(&dir.join("log"), EmbeddedConfig::default())
            .await
            .expect("opens"),
    )
}

/// Every record on the `devices` topic.
async fn devices(log: &Arc<dyn Log>) -> Vec<ConsumedRecord> {
    let mut all = Vec::new();
    for p in 0..PARTITIONS {
        let tp = TopicPartition::new("devices", p);
        let (low, high) = log.watermarks(&tp).await.expect("watermarks");
        if high > low {
            all.extend(log.read(&tp, low, 100_000).await.expect("reads"));
        }
    }
    all
}

async fn wait_records(log: &Arc<dyn Log>, n: usize) -> Vec<ConsumedRecord> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let records = devices(log).await;
        if records.len() >= n || Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn header<'a>(r: &'a ConsumedRecord, key: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| std::str::from_utf8(&h.value).ok())
}

fn json(r: &ConsumedRecord) -> Value {
    serde_json::from_slice(&r.value).expect("an event record is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_levels_become_fields_and_every_bad_message_is_a_dead_letter_naming_its_topic() {
    let run = unique("fields");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(dir.path()).await;
    let config = config(&run, port());
    let source = start(&config, log.clone(), dir.path()).await;
    source.subscribed().await;

    let lane = |store: &str, lane: &str| format!("t/{run}/stores/{store}/lanes/{lane}/status");
    publish(&lane("42", "3"), r#"{"status":"open"}"#);
    publish(
        &lane("42", "4"),
        r#"{"status":"closed","detail":"end of day","event_id":"01900000-0000-7000-8000-000000000001","ts":1723456789000}"#,
    );
    publish(&lane("42", "5"), "lane is open");
    publish(&lane("42", "6"), r#"["open"]"#);
    publish(&lane("x7", "1"), r#"{"status":"open"}"#);
    publish(&lane("42", "7"), r#"{"status":"open","store_id":43}"#);
    publish(
        &lane("42", "8"),
        &format!(r#"{{"status":"{}"}}"#, "x".repeat(2000)),
    );
    publish(&lane("42", "9"), r#"{"detail":"no status"}"#);

    let records = wait_records(&log, 8).await;
    assert_eq!(records.len(), 8, "every message is one record");
    let (events, rejects): (Vec<_>, Vec<_>) =
        records.iter().partition(|r| header(r, "reject_reason").is_none());
    assert_eq!(events.len(), 2);
    let by_device: BTreeMap<String, Value> = events
        .iter()
        .map(|r| {
            let v = json(r);
            (v["device_id"].as_str().expect("device_id").to_owned(), v)
        })
        .collect();
    let open = &by_device["3"];
    assert_eq!(open["store_id"], 42);
    assert_eq!(open["type"], "device_status");
    assert_eq!(open["status"], "open");
    assert_eq!(open["source"], "lanes");
    assert!(
        open["event_id"].is_string() && open["ts"].is_number(),
        "given an identity: {open}"
    );
    assert_eq!(
        by_device["4"]["event_id"], "01900000-0000-7000-8000-000000000001",
        "its own id is kept"
    );

    let reasons: Vec<String> = rejects
        .iter()
        .map(|r| header(r, "reject_reason").expect("reason").to_owned())
        .collect();
    for (lane, says) in [
        ("5", "payload is not JSON"),
        ("6", "payload is JSON an array, not an object"),
        ("1", "store_id"),
        ("7", "field store_id: the topic"),
        ("8", "over max_payload_bytes = 1024"),
        ("9", "status"),
    ] {
        let topic = if lane == "1" {
            format!("stores/x7/lanes/{lane}/")
        } else {
            format!("lanes/{lane}/status")
        };
        assert!(
            reasons
                .iter()
                .any(|r| r.contains(&topic) && r.contains(says) && r.contains("mqtt source \"lanes\"")),
            "a dead letter for lane {lane} saying {says:?}: {reasons:#?}"
        );
    }
    for r in &rejects {
        assert!(header(r, "origin_file")
            .expect("origin")
            .starts_with("mqtt://127.0.0.1:"));
        assert!(header(r, "reject_id").is_some());
    }
    let counts = source.handle.counts();
    assert_eq!((counts.received, counts.accepted, counts.rejected), (8, 2, 6));
    assert_eq!(
        source.state().0,
        State::Running,
        "bad messages do not stop the source"
    );
    source.stop().await;
    clear_session(&config.client_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_published_while_the_source_is_down_arrive_after_it_restarts_once_each() {
    let run = unique("offline");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(dir.path()).await;
    let config = config(&run, port());
    let topic = format!("t/{run}/stores/7/lanes/1/status");

    let first = start(&config, log.clone(), dir.path()).await;
    first.subscribed().await;
    publish_lines(
        &topic,
        &(0..50)
            .map(|i| format!(r#"{{"status":"s{i}"}}"#))
            .collect::<Vec<_>>(),
    );
    assert_eq!(wait_records(&log, 50).await.len(), 50);
    first.stop().await;

    // Published while nobody is connected: the broker keeps them in our session.
    publish_lines(
        &topic,
        &(50..250)
            .map(|i| format!(r#"{{"status":"s{i}"}}"#))
            .collect::<Vec<_>>(),
    );

    let second = start(&config, log.clone(), dir.path()).await;
    wait_records(&log, 250).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let records = devices(&log).await;
    let statuses: Vec<String> = records
        .iter()
        .map(|r| json(r)["status"].as_str().expect("status").to_owned())
        .collect();
    let mut sorted = statuses.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 250, "every message once");
    assert_eq!(statuses.len(), 250, "and none twice");
    second
        .wait_for("the resumed session", |s, d| {
            s == State::Running && d.contains("session resumed")
        })
        .await;
    second.stop().await;
    clear_session(&config.client_id());
}

/// A crash at `hang`: the first source takes the messages and dies there; a second one on the
/// same state directory and session gets the broker's redelivery. Returns the records on the
/// log and the number of messages.
async fn crash_and_restart(test: &str, hang: Hang) -> (Vec<ConsumedRecord>, usize) {
    let run = unique(test);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(dir.path()).await;
    let config = config(&run, port());
    let topic = format!("t/{run}/stores/9/lanes/2/status");
    let n = 20;

    // The session and its subscription exist before the messages.
    let setup = start(&config, log.clone(), dir.path()).await;
    setup.subscribed().await;
    setup.stop().await;

    let crashing = Arc::new(CrashingLog {
        inner: log.clone(),
        hang,
        appends: AtomicUsize::new(0),
        hung: AtomicBool::new(false),
    });
    let doomed = start(&config, crashing.clone(), dir.path()).await;
    // No event_id, no ts: only the journal can give a redelivery its identity back.
    publish_lines(
        &topic,
        &(0..n)
            .map(|i| format!(r#"{{"status":"m{i}"}}"#))
            .collect::<Vec<_>>(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !crashing.hung.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the source never tried to append");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let every message reach the doomed source (unacknowledged), then crash it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    doomed.crash().await;

    let again = start(&config, log.clone(), dir.path()).await;
    let expected = if hang == Hang::AfterAppend { n } else { 0 };
    wait_records(&log, expected + n).await;
    // Wait a little longer for anything that should not be there.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let records = devices(&log).await;
    again.stop().await;
    clear_session(&config.client_id());
    (records, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_receipt_and_append_gets_the_messages_redelivered_and_landed_once() {
    let (records, n) = crash_and_restart("before", Hang::BeforeAppend).await;
    let mut ids: Vec<String> = records
        .iter()
        .map(|r| json(r)["event_id"].as_str().expect("id").to_owned())
        .collect();
    assert!(
        records.len() >= n,
        "every message landed: {} of {n}",
        records.len()
    );
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "one event id per message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_append_before_the_acks_gives_the_redelivery_the_same_identity() {
    let (records, n) = crash_and_restart("after", Hang::AfterAppend).await;
    // Each message is on the log twice (appended, then redelivered and appended again), under
    // one identity: the landing's event ledger takes it once.
    let mut by_status: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for r in &records {
        let v = json(r);
        by_status
            .entry(v["status"].as_str().expect("status").to_owned())
            .or_default()
            .push((
                v["event_id"].as_str().expect("id").to_owned(),
                v["ts"].to_string(),
            ));
    }
    assert_eq!(by_status.len(), n, "every message is on the log");
    for (status, copies) in &by_status {
        assert!(copies.len() <= 2, "{status}: {copies:?}");
        assert!(
            copies.windows(2).all(|w| w[0] == w[1]),
            "{status}: one identity, got {copies:?}"
        );
    }
    assert!(
        by_status.values().any(|c| c.len() == 2),
        "the broker redelivered what was appended but not acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_shows_retrying_then_running_once_it_listens() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let run = unique("unreachable");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(dir.path()).await;
    let config = config(&run, port);
    let source = start(&config, log, dir.path()).await;
    source
        .wait_for("retrying", |s, d| {
            s == State::Retrying && d.contains(&format!("127.0.0.1:{port}")) && d.contains("reconnecting in")
        })
        .await;

    // A broker of our own on that port: the source connects without being restarted.
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .expect("conf");
    let mut broker = Command::new(mosquitto())
        .args(["-c", conf.to_str().expect("utf-8")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts mosquitto");
    source.subscribed().await;
    source.stop().await;
    let _ = broker.kill();
    let _ = broker.wait();
}

fn mosquitto() -> &'static str {
    if std::path::Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_source_takes_nothing_until_resumed() {
    let run = unique("pause");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(dir.path()).await;
    let config = config(&run, port());
    let source = start(&config, log.clone(), dir.path()).await;
    source.subscribed().await;
    source.handle.pause();
    publish(
        &format!("t/{run}/stores/1/lanes/1/status"),
        r#"{"status":"open"}"#,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(devices(&log).await.is_empty(), "nothing appended while paused");
    assert_eq!(source.state().0, State::Paused);
    source.handle.resume();
    assert_eq!(wait_records(&log, 1).await.len(), 1);
    source.stop().await;
    clear_session(&config.client_id());
}
