//! The schema registry with its real peers (issue 16): Confluent's Python client registers its
//! own Avro order schemas with the binary's built-in registry (`/schema-registry`) and produces
//! Avro orders of versions 1 and 2, and plain JSON orders of version 1, to a real Kafka-protocol
//! broker (Tansu), each batch twice. Every order must land in `events_raw` once, in version 2
//! (version 1 upgraded on read: `channel` "web"), with its amount's digits as sent; an
//! incompatible schema is refused with Confluent's 409; a record framed with an unknown schema
//! id and an order of an unknown version are dead letters of their kinds.
//!
//! Built with the `kafka` feature only (`./scripts/test` turns it on); needs Python with
//! `confluent-kafka[avro,schemaregistry]` 2.16.1 (`./scripts/test` installs it),
//! `RETAIL_SCHEMA_PYTHON` names another interpreter.
#![cfg(feature = "kafka")]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::{client_config, count, write_config, Tansu};
use common::{http_call, pg_admin, Running, TestStore};
use retail_log::kafka::KafkaLog;
use retail_log::Log;
use serde_json::{json, Value};

const PARTITIONS: i32 = 4;
const AVRO_V1: usize = 200;
const AVRO_V2: usize = 200;
const JSON_V1: usize = 100;
const UNKNOWN_ID: u32 = 999_999;
const CHANNELS: [&str; 4] = ["web", "app", "store", "marketplace"];

/// One order as the producer is told to send it, and what must land.
struct Order {
    /// `avro1`, `avro2` or `json1`: the wire format and the version it is written in.
    sent_as: &'static str,
    event_id: String,
    /// The amount's digits as sent (Avro `string`; in JSON sometimes a bare number).
    amount: String,
    /// Sent in version 2 only.
    channel: Option<&'static str>,
}

/// Amounts whose digits a pass through `f64` or a normalisation would change.
fn amount(i: usize) -> String {
    match i % 6 {
        0 => "0.10".to_owned(),
        1 => "9999999999.99".to_owned(),
        2 => format!("{}.{:02}", i * 37, i % 100),
        3 => "19.9".to_owned(),
        4 => "100".to_owned(),
        _ => "0.07".to_owned(),
    }
}

fn orders() -> Vec<Order> {
    let mut out = Vec::new();
    for (sent_as, n) in [("avro1", AVRO_V1), ("avro2", AVRO_V2), ("json1", JSON_V1)] {
        for i in 0..n {
            out.push(Order {
                sent_as,
                event_id: uuid::Uuid::now_v7().to_string(),
                amount: amount(i),
                channel: (sent_as == "avro2").then(|| CHANNELS[i % CHANNELS.len()]),
            });
        }
    }
    out
}

/// Runs producer.py; its stdout's last line, as JSON.
fn produce(registry: &str, bootstrap: &str, orders: &[Order], v3_event_id: &str) -> Value {
    let ts = chrono::Utc::now().timestamp_millis();
    let given = json!({
        "orders": orders.iter().enumerate().map(|(i, o)| json!({
            "as": o.sent_as,
            "event_id": o.event_id,
            "order_id": format!("o-{i}"),
            "amount": o.amount,
            // JSON orders: every other amount as a bare number, the others as text.
            "amount_json": if i % 2 == 0 { format!("{:?}", o.amount) } else { o.amount.clone() },
            "channel": o.channel,
            "ts": ts + i as i64,
        })).collect::<Vec<_>>(),
        "v3_event_id": v3_event_id,
    });
    let python = std::env::var("RETAIL_SCHEMA_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemas/producer.py");
    let mut child = Command::new(python)
        .arg(script)
        .args([registry, bootstrap])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(given.to_string().as_bytes())
        .expect("write to the producer");
    let out = child.wait_with_output().expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python producer failed (./scripts/test installs confluent-kafka[avro,schemaregistry]):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().expect("the producer's summary");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("summary {last:?}: {e}"))
}

/// Waits until the registry answers (it opens after the store, so a 503 first is normal).
fn wait_for_registry(run: &Running) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = http_call(run.http, "GET", "/schema-registry/subjects", None, None);
        if code == 200 {
            return serde_json::from_str(&body).unwrap_or_else(|e| panic!("subjects {body}: {e}"));
        }
        assert!(
            Instant::now() < deadline,
            "GET /schema-registry/subjects still answers {code} after 60 s: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluents_python_client_registers_and_produces_avro_orders_that_land_once_in_version_2() {
    let started = Instant::now();
    let tansu = Tansu::start();
    let store = TestStore::postgres().await;
    let work = tempfile::tempdir().expect("tempdir");
    let config = write_config(&work.path().join("a"), &tansu, &store, PARTITIONS, "");
    let log = KafkaLog::open(&tansu.servers(), &client_config())
        .await
        .expect("open kafka");
    for topic in retail_core::event::topics::ALL
        .into_iter()
        .chain(retail_core::event::topics::SIDE)
    {
        log.ensure_topic(topic, PARTITIONS).await.expect("ensure topic");
    }
    let run = Running::start(&[
        "run".to_owned(),
        "--config".to_owned(),
        config.display().to_string(),
    ]);
    let subjects = wait_for_registry(&run);
    assert!(
        subjects
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == "orders-value")),
        "the built-in subjects are registered at start: {subjects}"
    );

    let orders = orders();
    let v3_event_id = uuid::Uuid::now_v7().to_string();
    let registry = format!("http://{}/schema-registry", run.http);
    let summary = produce(&registry, &tansu.servers(), &orders, &v3_event_id);

    // The producer's own spelling of versions 1 and 2 is the registry's built-in schemas: same
    // ids, no new version; the AvroSerializer framed with exactly those ids.
    assert_eq!(
        summary["registered"], summary["builtin"],
        "the producer's schemas get the built-in ids: {summary}"
    );
    assert_ne!(summary["builtin"]["v1"], summary["builtin"]["v2"], "{summary}");
    let mut framed_ids = vec![summary["builtin"]["v1"].clone(), summary["builtin"]["v2"].clone()];
    framed_ids.sort_by_key(|v| v.as_u64());
    assert_eq!(summary["framed_ids"], json!(framed_ids), "{summary}");
    assert_eq!(
        summary["versions"],
        json!([1, 2]),
        "a refused schema adds no version: {summary}"
    );
    // The incompatible change (amount text -> number) is Confluent's 409, naming the field.
    let refusal = &summary["refusal"];
    assert_eq!(refusal["http_status_code"], 409, "{summary}");
    assert_eq!(refusal["error_code"], 409, "{summary}");
    let message = refusal["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`amount`"),
        "the refusal names the field: {message}"
    );

    // Everything lands: every order once, and two dead letters.
    let expected = orders.len() as i64;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let landed = count(
            &store,
            "SELECT count(*) FROM events_raw WHERE event_type = 'order'",
        )
        .await;
        let dead = count(&store, "SELECT count(*) FROM dead_letters").await;
        if landed >= expected && dead >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{landed} of {expected} orders and {dead} of 2 dead letters after 3 min"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The second copy of each order is behind the first in its partition; give any late
    // duplicate the chance to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = run.interrupt();
    assert!(
        out.status.success(),
        "retail-etl run exited with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let db = pg_admin(&store.url()).await;
    let rows = db
        .query(
            "SELECT event_id::text, payload::text FROM events_raw WHERE event_type = 'order'",
            &[],
        )
        .await
        .expect("read events_raw");
    let mut landed: HashMap<String, Value> = HashMap::new();
    for row in &rows {
        let payload: Value = serde_json::from_str(row.get(1)).expect("payload is JSON");
        assert!(
            landed.insert(row.get(0), payload).is_none(),
            "event {} landed twice",
            row.get::<_, String>(0)
        );
    }
    let distinct = count(
        &store,
        "SELECT count(DISTINCT event_id) FROM events_raw WHERE event_type = 'order'",
    )
    .await;
    assert_eq!(distinct, rows.len() as i64, "events_raw holds duplicates");
    assert_eq!(landed.len(), orders.len(), "orders landed vs produced");
    // Amounts are compared as the payload's text: jsonb keeps a number's digits (0.10 stays 0.10).
    let amounts: HashMap<String, String> = db
        .query(
            "SELECT event_id::text, payload->>'amount' FROM events_raw WHERE event_type = 'order'",
            &[],
        )
        .await
        .expect("read amounts")
        .iter()
        .map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default()))
        .collect();
    let mut by_kind: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for o in &orders {
        let payload = landed
            .get(&o.event_id)
            .unwrap_or_else(|| panic!("{} order {} did not land", o.sent_as, o.event_id));
        assert_eq!(
            payload["schema_version"], 2,
            "{} lands in version 2: {payload}",
            o.sent_as
        );
        let channel = payload["channel"]
            .as_str()
            .unwrap_or_else(|| panic!("{} has no channel: {payload}", o.sent_as));
        assert_eq!(
            channel,
            o.channel.unwrap_or("web"),
            "{} order's channel: {payload}",
            o.sent_as
        );
        assert_eq!(
            amounts[&o.event_id], o.amount,
            "{} order's amount, exactly as sent: {payload}",
            o.sent_as
        );
        *by_kind.entry((o.sent_as, channel.to_owned())).or_default() += 1;
    }
    assert_eq!(
        by_kind.get(&("avro1", "web".to_owned())),
        Some(&AVRO_V1),
        "{by_kind:?}"
    );

    // The record with an unknown schema id and the order of version 3: one dead letter each.
    let dead = db
        .query("SELECT kind, reason, topic FROM dead_letters ORDER BY kind", &[])
        .await
        .expect("read dead_letters");
    let dead: Vec<(String, String, Option<String>)> =
        dead.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(dead.len(), 2, "two dead letters: {dead:?}");
    assert_eq!(dead[0].0, "unknown_schema", "{dead:?}");
    assert!(
        dead[0].1.contains(&UNKNOWN_ID.to_string()),
        "names the schema id: {dead:?}"
    );
    assert_eq!(dead[1].0, "unknown_version", "{dead:?}");
    assert!(
        dead[1].1.contains("order version 3"),
        "names type and version: {dead:?}"
    );
    assert!(
        dead.iter().all(|d| d.2.as_deref() == Some("orders")),
        "both from the orders topic: {dead:?}"
    );
    assert_eq!(
        count(
            &store,
            &format!("SELECT count(*) FROM events_raw WHERE event_id = '{v3_event_id}'")
        )
        .await,
        0,
        "the order of version 3 did not land"
    );
    eprintln!(
        "schemas e2e: {} orders landed once, 2 dead letters, in {:.1} s\nproducer: {summary}\ndead letters: {dead:?}",
        orders.len(),
        started.elapsed().as_secs_f64()
    );
    drop(db);
    store.drop().await;
}
