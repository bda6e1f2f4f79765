//! The webhook through the real binary: `demo --rate 0` takes sales only from
//! `POST /ingest/pos`; the binary is killed with `kill -9` right after a 202, restarted, and
//! the client retries with the same `Idempotency-Key`: every acknowledged event lands exactly
//! once, and the retry gets the same event ids.

mod common;

use std::collections::HashSet;

use common::{demo_args, Running, TestStore};
use serde_json::Value;

/// `demo --rate 0`: the generator off, only what the test sends lands.
fn args(store: &TestStore) -> Vec<String> {
    demo_args(store, 0, 1)
}

/// NDJSON sales without event ids: the receiver derives them.
fn batch(first_store: u32, n: u32) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"type\":\"sale\",\"store_id\":{},\"sku\":{},\"qty\":1,\"unit_price\":\"2.00\",\"seller_id\":3,\"ts\":{}}}\n",
                first_store + i % 5,
                1000 + i,
                1_723_456_789_000_i64 + i64::from(i)
            )
        })
        .collect()
}

async fn post(demo: &Running, body: &str, key: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{}/ingest/pos", demo.http))
        .header("content-type", "application/x-ndjson")
        .body(body.to_owned());
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let resp = req.send().await.expect("post");
    let code = resp.status().as_u16();
    (code, resp.json().await.expect("json"))
}

fn ids(v: &Value) -> Vec<String> {
    v["event_ids"]
        .as_array()
        .expect("event_ids")
        .iter()
        .map(|i| i.as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_after_a_202_then_a_retry_with_the_same_key_lands_once() {
    let store = TestStore::sqlite();
    let body = batch(1, 50);

    let mut first = Running::start(&args(&store));
    let (code, acked) = post(&first, &body, Some("till-7-batch-1")).await;
    assert_eq!(code, 202, "{acked}");
    let acked_ids = ids(&acked);
    assert_eq!(acked_ids.len(), 50);
    first.child.kill().expect("kill -9");
    let _ = first.child.wait();

    let second = Running::start(&args(&store));
    let (code, retried) = post(&second, &body, Some("till-7-batch-1")).await;
    assert_eq!(code, 202, "{retried}");
    assert_eq!(ids(&retried), acked_ids, "the retry gets the same answer");
    let (code, more) = post(&second, &batch(100, 30), None).await;
    assert_eq!(code, 202, "{more}");
    let s = second.interrupt_to_summary();
    assert_eq!(s["dead_letters"], "0", "{s:?}");

    let expected: HashSet<String> = acked_ids.into_iter().chain(ids(&more)).collect();
    assert_eq!(expected.len(), 80);
    assert_eq!(
        store.sales_ids().await,
        expected,
        "every acknowledged event exactly once"
    );
    store.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_says_where_to_post() {
    let store = TestStore::sqlite();
    let demo = Running::start(&args(&store));
    let health = demo.ok("/health");
    assert!(health["components"]["pos"]["state"].is_string(), "{health}");
    assert!(
        health["components"].get("generator").is_none(),
        "--rate 0 switches the generator off: {health}"
    );
    let (code, v) = post(&demo, &batch(1, 3), None).await;
    assert_eq!(code, 202, "{v}");
    let controls = demo.ok("/api/v1/control");
    let pos = controls["controls"]
        .as_array()
        .expect("controls")
        .iter()
        .find(|c| c["name"] == "pos")
        .expect("pos listed")
        .clone();
    assert_eq!(
        (
            pos["type"].as_str(),
            pos["received"].as_u64(),
            pos["accepted"].as_u64()
        ),
        (Some("webhook"), Some(3), Some(3)),
        "{pos}"
    );
    let out = demo.interrupt();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/ingest/pos"), "{stderr}");
    store.drop().await;
}
