//! The MQTT source through the real binary and the real Mosquitto broker: `mosquitto_pub`
//! publishes a stream of device messages (with ids, without ids, without ids and times, and
//! some that are not JSON) while the binary is killed with `kill -9` at random moments and
//! restarted; messages published while it is down wait in its persistent session. In the end
//! every good message is exactly one row of `events_raw` and every bad one exactly one dead
//! letter naming its topic.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{demo_args, Running, TestStore};
use rand::Rng;

fn mqtt_port() -> String {
    std::env::var("RETAIL_TEST_MQTT_PORT").unwrap_or_else(|_| "1883".to_owned())
}

/// Message `i`: a third with their own id and time, a third with a time only, a third with
/// neither; every 97th is not JSON.
fn message(i: u32) -> String {
    if i % 97 == 13 {
        return format!("lane {i} is open");
    }
    match i % 3 {
        0 => format!(
            r#"{{"status":"m{i}","event_id":"01900000-0000-7000-8000-{i:012x}","ts":{}}}"#,
            1_764_496_800_000_i64 + i64::from(i)
        ),
        1 => format!(
            r#"{{"status":"m{i}","ts":{}}}"#,
            1_764_496_800_000_i64 + i64::from(i)
        ),
        _ => format!(r#"{{"status":"m{i}"}}"#),
    }
}

fn is_bad(i: u32) -> bool {
    i % 97 == 13
}

fn source_state(demo: &Running, name: &str) -> String {
    let (_, body) = demo.get("/health");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    format!(
        "{} {}",
        v["components"][name]["state"].as_str().unwrap_or("absent"),
        v["components"][name]["detail"].as_str().unwrap_or("")
    )
}

fn wait_subscribed(demo: &Running) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = source_state(demo, "devices");
        if state.starts_with("running") && state.contains("subscribed") {
            return;
        }
        assert!(Instant::now() < deadline, "never subscribed: {state}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_message_lands_exactly_once_across_kill_9_and_while_down() {
    let store = TestStore::sqlite();
    let run = format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple());
    let client_id = format!("retail-etl-test-{run}");
    let topic_root = format!("it/{run}");
    let config = store.data_dir().join("mqtt.toml");
    std::fs::write(
        &config,
        format!(
            "[[sources]]\ntype = \"mqtt\"\nname = \"devices\"\nport = {}\nclient_id = \"{client_id}\"\n\
             reconnect_ms = [50, 500]\n[[sources.topics]]\npattern = \"{topic_root}/stores/{{store_id}}/lanes/{{device_id}}/status\"\n",
            mqtt_port()
        ),
    )
    .expect("config");
    let mut args = demo_args(&store, 0, 1);
    args.extend(["--config".to_owned(), config.display().to_string()]);

    // The session (and its subscription) exists before anything is published.
    let first = Running::start(&args);
    wait_subscribed(&first);
    drop(first.interrupt());

    let total: u32 = 2_400;
    let topic = format!("{topic_root}/stores/5/lanes/2/status");
    let publisher = std::thread::spawn(move || {
        // 200 messages every 0.25 s, in 12 runs of mosquitto_pub at QoS 1: about 3 s, spread
        // over the kills below, some while the binary is down.
        for chunk in (0..total).collect::<Vec<_>>().chunks(200) {
            let mut child = Command::new("mosquitto_pub")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &mqtt_port(),
                    "-q",
                    "1",
                    "-t",
                    &topic,
                    "-l",
                ])
                .stdin(Stdio::piped())
                .spawn()
                .expect("mosquitto_pub (Debian mosquitto-clients; ./scripts/test installs it)");
            let mut stdin = child.stdin.take().expect("stdin");
            for i in chunk {
                writeln!(stdin, "{}", message(*i)).expect("writes");
            }
            drop(stdin);
            assert!(child.wait().expect("waits").success(), "mosquitto_pub failed");
            std::thread::sleep(Duration::from_millis(250));
        }
    });

    let mut rng = rand::rng();
    let mut kills = 0;
    while !publisher.is_finished() || kills < 3 {
        let mut demo = Running::start(&args);
        std::thread::sleep(Duration::from_millis(rng.random_range(200..1_200)));
        demo.child.kill().expect("kill -9");
        let _ = demo.child.wait();
        kills += 1;
        // Down for a while: the broker keeps what is published meanwhile.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..600)));
        assert!(kills < 40, "the publisher never finished");
    }
    assert!(publisher.join().is_ok());

    let good = (0..total).filter(|i| !is_bad(*i)).count();
    let bad = total as usize - good;
    let demo = Running::start(&args);
    let db = store.data_dir().join("retail.db");
    let count = |sql: &str| -> usize {
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.query_row(sql, [], |r| r.get::<_, i64>(0)).expect("count") as usize
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let landed = count("SELECT count(*) FROM events_raw WHERE source = 'devices'");
        let letters = count("SELECT count(*) FROM dead_letters WHERE source = 'devices'");
        if landed >= good && letters >= bad {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "landed {landed} of {good}, dead letters {letters} of {bad}; source: {}",
            source_state(&demo, "devices")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Anything that would land twice has had time to.
    std::thread::sleep(Duration::from_secs(2));
    let s = demo.interrupt_to_summary();
    assert!(s.contains_key("landed"), "{s:?}");

    let conn = rusqlite::Connection::open(&db).expect("open");
    let mut stmt = conn
        .prepare("SELECT json_extract(payload, '$.status') FROM events_raw WHERE source = 'devices'")
        .expect("prepare");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for status in stmt.query_map([], |r| r.get::<_, String>(0)).expect("query") {
        *seen.entry(status.expect("row")).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "landed twice: {twice:?}");
    let missing: Vec<u32> = (0..total)
        .filter(|i| !is_bad(*i) && !seen.contains_key(&format!("m{i}")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} messages lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(seen.len(), good);
    let mut stmt = conn
        .prepare("SELECT reason, file FROM dead_letters WHERE source = 'devices'")
        .expect("prepare");
    let letters: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(letters.len(), bad, "every bad message exactly one dead letter");
    for (reason, file) in &letters {
        assert!(reason.contains("payload is not JSON"), "{reason}");
        assert!(
            file.ends_with("/lanes/2/status") && file.starts_with("mqtt://"),
            "{file}"
        );
    }
    assert!(kills >= 3, "the binary must really be killed ({kills} kills)");
    let _ = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &mqtt_port(),
            "-i",
            &client_id,
            "-t",
            "x/none",
            "-E",
        ])
        .output();
    store.drop().await;
}
