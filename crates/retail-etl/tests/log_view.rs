//! The log view of the API (issue 13, item 5) on a running `demo` with the embedded log: topics
//! with partitions and end offsets, consumer groups with committed offsets and lag, and the
//! record browser by offset and by time, with clear errors for what is not there. The same
//! endpoints over Kafka go through the same `Log` trait methods, tested against a real broker
//! in `crates/retail-log/tests/kafka.rs`.

mod common;

use std::time::{Duration, Instant};

use common::{demo_args, Running, TestStore};
use serde_json::Value;

fn find<'a>(list: &'a Value, key: &str, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|v| v[key] == name)
}

#[test]
fn topics_groups_and_records_of_the_log_are_browsable() {
    let store = TestStore::sqlite();
    let demo = Running::start(&demo_args(&store, 300, 4));

    // Wait until both landings have mirrored their offsets to the log (about once a second).
    let deadline = Instant::now() + Duration::from_secs(30);
    let groups = loop {
        let groups = demo.ok("/api/v1/log/groups");
        let committed = |name: &str| {
            find(&groups["groups"], "group", name)
                .is_some_and(|g| g["partitions"].as_array().is_some_and(|p| !p.is_empty()))
        };
        // The catalog group lands once at start and then idles: its offsets must still reach
        // the log.
        if committed("landing") && committed("landing.catalog") {
            break groups;
        }
        assert!(Instant::now() < deadline, "no landing group in {groups}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let landing = find(&groups["groups"], "group", "landing").expect("landing group");
    for p in landing["partitions"].as_array().expect("partitions") {
        let (committed, high, lag) = (p["committed"].as_i64(), p["high"].as_i64(), p["lag"].as_i64());
        assert!(committed <= high, "{p}");
        assert_eq!(lag, Some(high.unwrap_or(0) - committed.unwrap_or(0)), "{p}");
    }

    let topics = demo.ok("/api/v1/log/topics");
    for name in ["sales", "catalog", "orders", "dead-letters", "alerts"] {
        assert!(
            find(&topics["topics"], "topic", name).is_some(),
            "{name} missing: {topics}"
        );
    }
    let sales = find(&topics["topics"], "topic", "sales").expect("sales");
    let partitions = sales["partitions"].as_array().expect("partitions");
    assert_eq!(partitions.len(), 4, "{sales}");
    assert!(sales["records"].as_i64().is_some_and(|n| n > 0), "{sales}");
    let busiest = partitions
        .iter()
        .max_by_key(|p| p["high"].as_i64())
        .expect("a partition");
    let p = busiest["partition"].as_i64().expect("partition");
    assert!(busiest["high"].as_i64().is_some_and(|h| h >= 3), "{busiest}");

    // By offset: consecutive records with their headers and JSON values.
    let page = demo.ok(&format!(
        "/api/v1/log/records?topic=sales&partition={p}&offset=1&limit=2"
    ));
    let records = page["records"].as_array().expect("records");
    assert_eq!(records.len(), 2, "{page}");
    assert_eq!(records[0]["offset"], 1);
    assert_eq!(records[1]["offset"], 2);
    assert_eq!(page["next_offset"], 3);
    let headers = records[0]["headers"].as_array().expect("headers");
    assert!(headers.iter().any(|h| h["key"] == "event_type"), "{page}");
    let value: Value =
        serde_json::from_str(records[0]["value"].as_str().expect("value")).expect("JSON value");
    assert!(value["type"].is_string(), "{value}");

    // By time: the first record at or after the second record's timestamp.
    let ts = records[1]["timestamp_ms"].as_i64().expect("ts");
    let at = chrono::DateTime::from_timestamp_millis(ts)
        .expect("time")
        .to_rfc3339();
    let page = demo.ok(&format!(
        "/api/v1/log/records?topic=sales&partition={p}&from={}&limit=1",
        at.replace('+', "%2B")
    ));
    let first = &page["records"][0];
    assert!(first["timestamp_ms"].as_i64() >= Some(ts), "{page}");
    assert!(first["offset"].as_i64() <= Some(2), "{page}");

    // What is not there is a clear error naming the parameter.
    for (path, code, parameter) in [
        ("/api/v1/log/records?topic=nope&partition=0", 404, "topic"),
        ("/api/v1/log/records?topic=sales&partition=9", 404, "partition"),
        (
            "/api/v1/log/records?topic=sales&partition=0&offset=999999999",
            400,
            "offset",
        ),
        (
            "/api/v1/log/records?topic=sales&partition=0&offset=0&from=2024-01-01T00:00:00Z",
            400,
            "from",
        ),
        ("/api/v1/log/records?partition=0", 400, "topic"),
        (
            "/api/v1/log/records?topic=sales&partition=0&limit=201",
            400,
            "limit",
        ),
    ] {
        let (status, body) = demo.json("GET", path, None, None);
        assert_eq!(status, code, "{path}: {body}");
        assert_eq!(body["error"]["parameter"], parameter, "{path}: {body}");
    }
    let _ = demo.interrupt();
}
