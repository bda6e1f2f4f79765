//! Scale-out on Kafka (issue 12), against a real Kafka-protocol broker (Tansu, see
//! `common/kafka.rs`) and the real PostgreSQL: two `retail-etl run` processes share one consumer
//! group; one is killed with `kill -9` mid-stream and restarted later. Every sale must land
//! exactly once, every aggregate must equal its SQL recomputation, and Kafka's committed offsets
//! must equal the offsets of record in the store.
//!
//! Built with the `kafka` feature only (`./scripts/test` turns it on).
#![cfg(feature = "kafka")]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::kafka::{client_config, count, write_config, Tansu};
use common::{oracle, pg_admin, TestStore, BIN};
use retail_core::{decode, EventBody, TopicPartition};
use retail_log::kafka::KafkaLog;
use retail_log::{Log, ProducerRecord};
use retail_source::generator::{EventGenerator, GeneratorConfig};

const PARTITIONS: i32 = 8;
/// The catalog join waits this long for a store it has not seen (the instances start together).
const JOIN_WAIT: &str = "\n[processing]\njoin_wait_ms = 30000\n";

fn events() -> u64 {
    std::env::var("RETAIL_TEST_SCALE_OUT_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn spawn_run(config: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn retail-etl run")
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(status.success(), "retail-etl run exited with {status}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "retail-etl run did not stop within 60 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn store_offsets(store: &TestStore, group: &str) -> BTreeMap<TopicPartition, i64> {
    pg_admin(&store.url())
        .await
        .query(
            "SELECT topic, \"partition\", next_offset FROM consumer_offsets WHERE group_id = $1",
            &[&group],
        )
        .await
        .expect("read consumer_offsets")
        .iter()
        .map(|r| (TopicPartition::new(r.get::<_, String>(0), r.get(1)), r.get(2)))
        .collect()
}

fn stderr_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_partitions_and_land_exactly_once_across_kill_9() {
    let tansu = Tansu::start();
    let store = TestStore::postgres().await;
    let work = tempfile::tempdir().expect("tempdir");
    let (dir_a, dir_b) = (work.path().join("a"), work.path().join("b"));
    let (config_a, config_b) = (
        write_config(&dir_a, &tansu, &store, PARTITIONS, JOIN_WAIT),
        write_config(&dir_b, &tansu, &store, PARTITIONS, JOIN_WAIT),
    );
    let (log_a, log_b) = (work.path().join("a.log"), work.path().join("b.log"));

    // The records: the generator's, as a source would append them (catalog first).
    let gen_config = GeneratorConfig {
        seed: 5,
        events: Some(events()),
        duplicate_fraction: 0.01,
        malformed_fraction: 0.001,
        ..GeneratorConfig::default()
    };
    let generated: Vec<_> = EventGenerator::new(&gen_config).expect("generator").collect();
    let mut expected = HashSet::new();
    let mut malformed = 0i64;
    for g in generated.iter().filter(|g| !g.catalog) {
        match decode(&g.record.value) {
            Ok(e) if matches!(e.body, EventBody::Sale(_)) => {
                expected.insert(e.event_id.to_string());
            }
            Ok(_) => {}
            Err(_) => malformed += 1,
        }
    }
    let (catalog, records): (Vec<_>, Vec<_>) = generated.into_iter().partition(|g| g.catalog);
    let catalog: Vec<ProducerRecord> = catalog.into_iter().map(|g| g.record).collect();
    let records: Vec<ProducerRecord> = records.into_iter().map(|g| g.record).collect();
    let total = records.len();

    // The topics exist before the instances start, as an operator's would.
    let log: Arc<dyn Log> = Arc::new(
        KafkaLog::open(&tansu.servers(), &client_config())
            .await
            .expect("open kafka"),
    );
    for topic in retail_core::event::topics::ALL
        .into_iter()
        .chain(retail_core::event::topics::SIDE)
    {
        log.ensure_topic(topic, PARTITIONS).await.expect("ensure topic");
    }

    let mut a = spawn_run(&config_a, &log_a);
    let mut b = spawn_run(&config_b, &log_b);

    // The catalog first, landed before the data comes, so no sale waits for its store or
    // seller (the join's bounded wait would aggregate it under "unknown").
    let catalog_len = catalog.len() as i64;
    log.append(catalog).await.expect("append the catalog");
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(
        &store,
        "SELECT (SELECT count(*) FROM store_dim) + (SELECT count(*) FROM seller_dim) + (SELECT count(*) FROM product_dim)",
    )
    .await
        < catalog_len
    {
        assert!(Instant::now() < deadline, "the catalog did not land in 2 min\nA: {}\nB: {}", stderr_of(&log_a), stderr_of(&log_b));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Produce while both land: 10k-record appends, each acknowledged by the broker.
    let producer = {
        let log = log.clone();
        tokio::spawn(async move {
            for chunk in records.chunks(10_000) {
                log.append(chunk.to_vec()).await.expect("append to kafka");
            }
        })
    };

    // Kill B once about a third has landed.
    let deadline = Instant::now() + Duration::from_secs(600);
    while count(&store, "SELECT count(*) FROM sales_raw").await < expected.len() as i64 / 3 {
        assert!(
            Instant::now() < deadline,
            "a third did not land in 10 min\nA: {}\nB: {}",
            stderr_of(&log_a),
            stderr_of(&log_b)
        );
        assert!(
            a.try_wait().expect("wait").is_none(),
            "A exited early: {}",
            stderr_of(&log_a)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.kill().expect("SIGKILL B");
    let _ = b.wait();
    eprintln!(
        "B killed with SIGKILL at {} sales",
        count(&store, "SELECT count(*) FROM sales_raw").await
    );
    producer.await.expect("producer");
    eprintln!("{total} records produced");

    // A takes over B's partitions after the session timeout; B comes back later and the
    // group rebalances again.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut b = spawn_run(&config_b, &log_b);

    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let landed = count(&store, "SELECT count(*) FROM sales_raw").await;
        let dead = count(&store, "SELECT count(*) FROM dead_letters").await;
        if landed >= expected.len() as i64 && dead >= malformed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {landed} of {} sales and {dead} of {malformed} dead letters landed in 10 min\nA: {}\nB: {}",
            expected.len(),
            stderr_of(&log_a),
            stderr_of(&log_b)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let the group settle (B's join moves partitions), then stop both.
    tokio::time::sleep(Duration::from_secs(10)).await;
    terminate(&mut a);
    terminate(&mut b);

    // No loss, no duplicate.
    let landed = store.sales_ids().await;
    assert_eq!(landed.len(), expected.len(), "distinct sales landed vs generated");
    assert!(
        landed == expected,
        "the landed sale ids differ from the generated ones"
    );
    let (dead, distinct) = store.dead_letters().await;
    assert_eq!(dead, distinct, "a record was dead-lettered twice");
    assert_eq!(dead, malformed, "dead letters vs malformed records");

    // Every aggregate equals its SQL recomputation.
    let rows = oracle::assert_aggregates_match_sql(&store).await;
    eprintln!("{rows} aggregate rows equal their SQL recomputation");

    // Kafka's committed offsets equal the store's, for every data partition.
    let stored = store_offsets(&store, "landing").await;
    let tps: Vec<TopicPartition> = stored.keys().cloned().collect();
    assert!(!tps.is_empty(), "no offsets in the store");
    let committed = log
        .committed_offsets("landing", &tps)
        .await
        .expect("committed offsets");
    for (tp, kafka) in tps.iter().zip(committed) {
        assert_eq!(
            kafka,
            Some(stored[tp]),
            "{tp}: Kafka's committed offset vs the store's"
        );
    }
    store.drop().await;
}

/// Debian's `kcat` with the librdkafka this build compiled (`LD_LIBRARY_PATH`): Debian 12's own
/// librdkafka 2.0.2 cannot parse Tansu's ApiVersions reply and never connects.
fn kcat(args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let release = Path::new(BIN).parent().expect("target/release");
    let lib = std::fs::read_dir(release.join("build"))
        .expect("target/release/build")
        .filter_map(Result::ok)
        .map(|e| e.path().join("out/src"))
        .find(|p| p.join("librdkafka.so.1").exists())
        .expect("librdkafka.so.1 built by rdkafka-sys under target/release/build");
    let mut child = Command::new("kcat")
        .args(args)
        .env("LD_LIBRARY_PATH", lib)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat (Debian package kcat; ./scripts/test installs it)");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write to kcat");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("kcat");
    assert!(
        out.status.success(),
        "kcat {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn sale_json(id: &str, store_id: u32, sku: u32) -> String {
    format!(
        "{{\"event_id\":\"{id}\",\"type\":\"sale\",\"store_id\":{store_id},\"sku\":{sku},\"qty\":1,\"unit_price\":\"2.00\",\"seller_id\":3,\"ts\":1723456789000}}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_and_a_python_client_produce_events_that_land_once_and_kcat_reads_the_dead_letters() {
    let tansu = Tansu::start();
    let store = TestStore::postgres().await;
    let work = tempfile::tempdir().expect("tempdir");
    let config = write_config(&work.path().join("a"), &tansu, &store, PARTITIONS, JOIN_WAIT);
    let log = KafkaLog::open(&tansu.servers(), &client_config())
        .await
        .expect("open kafka");
    for topic in retail_core::event::topics::ALL
        .into_iter()
        .chain(retail_core::event::topics::SIDE)
    {
        log.ensure_topic(topic, PARTITIONS).await.expect("ensure topic");
    }
    let stderr = work.path().join("run.log");
    let mut run = spawn_run(&config, &stderr);

    // kcat: 100 keyed sales with the Java client's partitioner, and one record that is not JSON.
    let mut expected = HashSet::new();
    let mut lines = String::new();
    for i in 0..100u32 {
        let id = uuid::Uuid::now_v7().to_string();
        lines.push_str(&format!(
            "store-{}\t{}\n",
            i % 9,
            sale_json(&id, i % 9 + 1, 1000 + i)
        ));
        expected.insert(id);
    }
    lines.push_str("store-bad\tthis is not json\n");
    let brokers = tansu.servers();
    kcat(
        &[
            "-P",
            "-b",
            &brokers,
            "-t",
            "sales",
            "-K",
            "\t",
            "-X",
            "partitioner=murmur2_random",
        ],
        Some(&lines),
    );

    // confluent-kafka for Python (its own librdkafka), murmur2 like the Java client; it sends
    // its batch twice, as a client retrying after a timeout would.
    let mut py_records = Vec::new();
    for i in 0..100u32 {
        let id = uuid::Uuid::now_v7().to_string();
        py_records.push((format!("order-{i}"), sale_json(&id, i % 5 + 1, 2000 + i)));
        expected.insert(id);
    }
    let payload = serde_json::to_string(&py_records).expect("json");
    let script = r#"
import json, sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "partitioner": "murmur2_random", "enable.idempotence": True})
failed = []
def done(err, msg):
    if err is not None:
        failed.append(str(err))
records = json.loads(sys.stdin.read())
for _ in range(2):
    for key, value in records:
        p.produce("sales", key=key.encode(), value=value.encode(), on_delivery=done)
left = p.flush(30)
if failed or left:
    sys.exit(f"delivery failed: {failed[:3]}, {left} left")
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, &brokers])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(payload.as_bytes())
            .expect("write");
    }
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "the Python producer failed (./scripts/test installs confluent-kafka from PyPI): {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Everything lands once; the bad record is one dead letter.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let landed = count(&store, "SELECT count(*) FROM sales_raw").await;
        let dead = count(&store, "SELECT count(*) FROM dead_letters").await;
        if landed >= expected.len() as i64 && dead >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{landed} of {} sales and {dead} dead letters after 2 min: {}",
            expected.len(),
            stderr_of(&stderr)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    terminate(&mut run);
    assert!(
        store.sales_ids().await == expected,
        "landed sale ids differ from those produced"
    );
    assert_eq!(store.dead_letters().await, (1, 1), "one dead letter, once");

    // Where the other clients put each key is where we would have.
    let placed = kcat(
        &["-C", "-b", &brokers, "-t", "sales", "-e", "-q", "-f", "%k\t%p\n"],
        None,
    );
    let mut checked = 0;
    for line in placed.lines() {
        let (key, partition) = line.split_once('\t').expect("key\tpartition");
        let partition: i32 = partition.parse().expect("partition");
        assert_eq!(
            partition,
            retail_log::partition_for_key(key.as_bytes(), PARTITIONS),
            "key {key:?}: placed by the other client vs ours"
        );
        checked += 1;
    }
    assert_eq!(checked, 100 + 1 + 200, "records read back from sales");

    // The dead letter is on the dead-letter topic, with its reason and origin.
    let dead = kcat(
        &[
            "-C",
            "-b",
            &brokers,
            "-t",
            "dead-letters",
            "-e",
            "-q",
            "-f",
            "%h\t%s\n",
        ],
        None,
    );
    let lines: Vec<&str> = dead.lines().collect();
    assert_eq!(lines.len(), 1, "dead-letters topic: {dead}");
    assert!(
        lines[0].contains("reject_reason=") && lines[0].contains("origin="),
        "{dead}"
    );
    assert!(lines[0].ends_with("this is not json"), "{dead}");
    store.drop().await;
}
