//! Golden-file tests of stream processing. Each folder under `tests/golden/` holds an
//! `input.txt` (batches of events, each on a topic partition, with the processing time of the
//! batch), optionally an `aggregates.toml` (the aggregates to run instead of the built-in four)
//! and an `expected.txt`: the watermarks after each batch, every aggregate row and every late
//! event, as the real engine and the real SQLite store produce them. A mismatch prints a unified
//! diff; `UPDATE_GOLDEN=1 cargo nextest run -p retail-process --test golden` rewrites the files
//! (review the diff before committing).
//!
//! `input.txt` format: `--- batch now=<duration>` starts a batch processed at that time after
//! the start; `p<N> <json>` is an event on sales partition N; `catalog <json>` a catalog event;
//! `#` starts a comment. Events without an `event_id` get one from their position; repeat an
//! `event_id` to send a duplicate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use retail_core::{decode, EventBody, TopicPartition};
use retail_process::aggregate::{self, AggregateSpec, DedupScope, Engine, ProcessingConfig};
use retail_sink::{Derived, LandedEvent, LandedSale, LandingBatch, OffsetRange, StoreUrl};

#[derive(serde::Deserialize)]
struct AggregatesFile {
    aggregates: Vec<AggregateSpec>,
}

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/golden")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    )
}

/// Runs one case and returns its output text.
async fn run_case(case: &Path) -> String {
    let input = std::fs::read_to_string(case.join("input.txt")).expect("input.txt");
    let specs = match std::fs::read_to_string(case.join("aggregates.toml")) {
        Ok(text) => {
            toml::from_str::<AggregatesFile>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", case.join("aggregates.toml").display()))
                .aggregates
        }
        Err(_) => aggregate::spec::builtin(),
    };
    let compiled = aggregate::compile(&specs).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
    let config = ProcessingConfig {
        max_out_of_orderness_ms: 5_000,
        idle_timeout_ms: 30_000,
        ..ProcessingConfig::default()
    };
    let mut engine = Engine::new(compiled, &config, DedupScope::Batch);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("golden.db");
    let store = retail_sink::open(&StoreUrl::Sqlite(db.clone()))
        .await
        .expect("open store");
    store.prepare_aggregates(&engine.tables()).await.expect("prepare");

    let start = Instant::now();
    let mut out = String::new();
    let mut offsets: HashMap<TopicPartition, i64> = HashMap::new();
    let mut batches: Vec<(Duration, Vec<(TopicPartition, String)>)> = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("--- batch now=") {
            let now = humantime::parse_duration(rest.trim())
                .unwrap_or_else(|e| panic!("input.txt line {}: {e}", n + 1));
            batches.push((now, Vec::new()));
            continue;
        }
        let (place, json) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("input.txt line {}: expected `p<N> <json>`", n + 1));
        let tp = match place {
            "catalog" => TopicPartition::new("catalog", 0),
            p => TopicPartition::new(
                "sales",
                p.trim_start_matches('p')
                    .parse()
                    .unwrap_or_else(|_| panic!("input.txt line {}: bad partition {p:?}", n + 1)),
            ),
        };
        batches
            .last_mut()
            .unwrap_or_else(|| panic!("input.txt line {}: an event before the first `--- batch`", n + 1))
            .1
            .push((tp, json.to_owned()));
    }

    for (i, (now, lines)) in batches.into_iter().enumerate() {
        let at = start + now;
        let mut batch = LandingBatch {
            group: "golden".into(),
            ..LandingBatch::default()
        };
        let mut derived = Derived::default();
        let mut ranges: HashMap<TopicPartition, OffsetRange> = HashMap::new();
        for (tp, json) in lines {
            let offset = *offsets.entry(tp.clone()).or_insert(0);
            offsets.insert(tp.clone(), offset + 1);
            let range = ranges.entry(tp.clone()).or_insert(OffsetRange {
                tp: tp.clone(),
                first: offset,
                next: offset,
            });
            range.next = offset + 1;
            let mut value: serde_json::Value = serde_json::from_str(&json).expect("event JSON");
            if value.get("event_id").is_none() {
                let id = uuid::Uuid::from_u128(((tp.partition as u128 + 1) << 64) | offset as u128);
                value["event_id"] = id.to_string().into();
            }
            let event = decode(value.to_string().as_bytes()).expect("valid event");
            engine.process(&tp, offset, &event, at, &mut derived);
            let (event_type, key) = (event.type_name(), event.partition_key());
            match event.body {
                EventBody::Sale(sale) => batch.sales.push(LandedSale {
                    event_id: event.event_id,
                    ts: event.ts,
                    source: event.source,
                    sale,
                }),
                _ => batch.events.push(LandedEvent {
                    event_id: event.event_id,
                    ts: event.ts,
                    source: event.source,
                    event_type,
                    key,
                    payload: json,
                }),
            }
        }
        engine.end_batch(&mut derived);
        batch.offsets = ranges.into_values().collect();
        batch.derived = Arc::new(derived);
        store.write_batch(&batch).await.expect("write batch");
        let parts: Vec<String> = (0..4)
            .filter_map(|p| {
                let tp = TopicPartition::new("sales", p);
                engine.watermark(&tp).map(|w| format!("p{p}={}", iso(w)))
            })
            .collect();
        out.push_str(&format!(
            "after batch {} (now={}): combined watermark {}; partitions {}\n",
            i + 1,
            humantime::format_duration(now),
            engine
                .combined_watermark(at, Duration::from_millis(config.idle_timeout_ms))
                .map_or_else(|| "none".to_owned(), iso),
            parts.join(" ")
        ));
    }
    drop(store);

    let conn = rusqlite::Connection::open(&db).expect("open db");
    for t in engine.tables() {
        let cols: Vec<String> = {
            let mut stmt = conn
                .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
                .expect("pragma");
            let rows = stmt
                .query_map([&t.name], |r| r.get::<_, String>(0))
                .expect("query");
            rows.map(|r| r.expect("row"))
                .filter(|c| c != "updated_at" && !c.ends_with("__sum") && !c.ends_with("__n"))
                .collect()
        };
        out.push_str(&format!("\n# {}\n{}\n", t.name, cols.join("|")));
        let order: Vec<String> = std::iter::once("window_start".to_owned())
            .chain(t.keys.iter().map(|k| k.name.clone()))
            .collect();
        // Money is integer cents in SQLite (ADR 0020): shown as the exact decimal it stands for.
        let money = |c: &str| {
            t.measures
                .iter()
                .any(|m| m.name == c && m.stored() == retail_sink::derived::StoredType::Decimal)
                || t.keys
                    .iter()
                    .any(|k| k.name == c && k.ty == retail_sink::derived::ColumnType::Decimal)
        };
        let sql = format!(
            "SELECT {} FROM \"{}\" ORDER BY {}",
            cols.iter()
                .map(|c| {
                    if money(c) {
                        format!(
                            "(CASE WHEN \"{c}\" IS NULL THEN 'NULL' ELSE printf('%s%d.%02d', \
                             CASE WHEN \"{c}\" < 0 THEN '-' ELSE '' END, abs(\"{c}\") / 100, abs(\"{c}\") % 100) END)"
                        )
                    } else {
                        format!("quote(\"{c}\")")
                    }
                })
                .collect::<Vec<_>>()
                .join(" || '|' || "),
            t.name,
            order.join(", ")
        );
        let mut stmt = conn.prepare(&sql).expect("select");
        for row in stmt.query_map([], |r| r.get::<_, String>(0)).expect("query") {
            out.push_str(&row.expect("row"));
            out.push('\n');
        }
        if let Some(rank) = &t.rank {
            let keys: Vec<String> = order.iter().map(|k| format!("quote(\"{k}\")")).collect();
            out.push_str(&format!(
                "\n# {}_ranked (by {})\n{}|rank\n",
                t.name,
                rank.by,
                order.join("|")
            ));
            let sql = format!(
                "SELECT {} || '|' || rank FROM \"{}_ranked\" ORDER BY window_start, rank, {}",
                keys.join(" || '|' || "),
                t.name,
                order.join(", ")
            );
            let mut stmt = conn.prepare(&sql).expect("select ranked");
            for row in stmt.query_map([], |r| r.get::<_, String>(0)).expect("query") {
                out.push_str(&row.expect("row"));
                out.push('\n');
            }
        }
    }
    out.push_str("\n# late_events\naggregate|event_id|window_start|window_end|event_ts|watermark|topic|partition|offset\n");
    let mut stmt = conn
        .prepare(
            "SELECT aggregate || '|' || event_id || '|' || window_start || '|' || window_end || '|' || event_ts \
             || '|' || watermark || '|' || topic || '|' || \"partition\" || '|' || \"offset\" FROM late_events \
             ORDER BY aggregate, event_ts, event_id",
        )
        .expect("late");
    for row in stmt.query_map([], |r| r.get::<_, String>(0)).expect("query") {
        out.push_str(&row.expect("row"));
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    let cases = cases();
    assert!(!cases.is_empty(), "no golden cases");
    for case in cases {
        let actual = run_case(&case).await;
        let path = case.join("expected.txt");
        if update {
            std::fs::write(&path, &actual).expect("write expected.txt");
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != actual {
            let diff = similar::TextDiff::from_lines(&expected, &actual)
                .unified_diff()
                .header("expected.txt", "actual")
                .to_string();
            failures.push(format!("{}:\n{diff}", case.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "golden files differ (UPDATE_GOLDEN=1 rewrites them):\n{}",
        failures.join("\n")
    );
}
