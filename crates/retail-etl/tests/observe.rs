//! Observability against the real peers: promtool on the shipped rules and on a real scrape,
//! a real Prometheus scraping a running `demo` with the alert rules loaded, every dashboard
//! PromQL query evaluated by that Prometheus, and every SQL panel run against a PostgreSQL
//! database a `demo` filled. Prometheus and promtool come from the Debian package
//! `prometheus`, which scripts/test installs.

mod common;
#[path = "common/observe.rs"]
mod observe;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Running, TestStore};
use observe::{deploy, get_with, promtool};

/// `name{labels}` -> value of every sample in a text exposition.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Sum of every sample whose series starts with `prefix`.
fn sum(s: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    s.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

fn scrape(demo: &Running) -> String {
    let (code, head, body) = get_with(demo.http, "/metrics", &[]);
    assert_eq!(code, 200, "{body}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body
}

#[test]
fn promtool_accepts_the_shipped_config_rules_and_rule_unit_tests() {
    let dir = deploy("prometheus");
    let path = |f: &str| dir.join(f).display().to_string();
    promtool(&["check", "config", &path("prometheus.yml")], None);
    let out = promtool(&["check", "rules", &path("alerts.yml")], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 6 rules found"));
    promtool(&["test", "rules", &path("alerts_test.yml")], None);

    // Every rule has a runbook line and unit tests: one where it fires, one near miss.
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).expect("alerts.yml");
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).expect("alerts_test.yml");
    let names: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert_eq!(rules.matches("runbook: ").count(), names.len());
    for name in names {
        // YAML quotes a test name that holds ": ".
        let cases: Vec<&str> = tests
            .split("- name: ")
            .filter(|t| t.trim_start_matches(['\'', '"']).starts_with(name))
            .collect();
        assert!(
            cases
                .iter()
                .any(|c| c.contains("exp_alerts:\n") && c.contains("exp_labels:")),
            "{name} has no firing test"
        );
        assert!(
            cases
                .iter()
                .any(|c| c.contains("near miss") && c.contains("exp_alerts: []")),
            "{name} has no near-miss test"
        );
    }
}

#[test]
fn every_component_counter_moves_and_promtool_lints_a_real_scrape() {
    let store = TestStore::sqlite();
    let mut args = common::demo_args(&store, 2000, 7);
    args.extend(
        [
            "--malformed-fraction",
            "0.02",
            "--duplicate-fraction",
            "0.05",
            "--late-fraction",
            "0.02",
        ]
        .map(str::to_owned),
    );
    let demo = Running::start(&args);
    std::thread::sleep(Duration::from_secs(3));
    let before = samples(&scrape(&demo));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(demo.get("/no/such/page").0, 404);
    let text = scrape(&demo);
    let after = samples(&text);

    // Each component counts its work: these grow while the demo runs.
    for series in [
        "retail_source_received_events_total{source=\"generator\"}",
        "retail_source_accepted_events_total{source=\"generator\"}",
        "retail_log_appended_records_total{topic=\"sales\"}",
        "retail_landing_batches_total",
        "retail_landing_rows_total{table=\"sales_raw\"}",
        "retail_landing_transaction_seconds_count",
        "retail_event_to_store_latency_seconds_count{table=\"sales_raw\",source=",
        "retail_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"}",
        "retail_uptime_seconds",
    ] {
        let (b, a) = (sum(&before, series), sum(&after, series));
        assert!(a > b, "{series} did not grow: {b} -> {a}\n{text}");
    }
    for series in [
        "retail_dead_letters_total{stage=\"landing\"",
        "retail_landing_duplicates_total{table=\"sales_raw\"}",
        "retail_late_events_total{aggregate=\"sales_agg_minute\"",
        "retail_log_end_offset{topic=\"sales\"",
        "retail_consumer_lag_records{group=",
        "retail_process_resident_memory_bytes",
        "retail_component_state{component=\"generator\",kind=\"source\",state=\"running\"}",
        "retail_component_state{component=\"landing\",kind=\"landing\",state=\"running\"}",
        "retail_build_info{version=",
        "retail_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}",
    ] {
        assert!(
            after.keys().any(|k| k.starts_with(series)),
            "no {series} in the scrape\n{text}"
        );
    }
    assert!(sum(&after, "retail_dead_letters_total") > 0.0, "{text}");
    assert!(sum(&after, "retail_landing_duplicates_total") > 0.0, "{text}");
    assert!(sum(&after, "retail_late_events_total") > 0.0, "{text}");
    assert!(
        sum(&after, "retail_process_resident_memory_bytes") > 1e6,
        "{text}"
    );
    assert_eq!(
        sum(
            &after,
            "retail_component_state{component=\"generator\",kind=\"source\",state=\"running\"}"
        ),
        1.0
    );
    // The log's appended records are the sum of its end offsets.
    assert_eq!(
        sum(&after, "retail_log_appended_records_total{topic=\"sales\"}"),
        sum(&after, "retail_log_end_offset{topic=\"sales\"")
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let started = sum(&after, "retail_process_start_time_seconds");
    assert!(
        now - started > 0.0 && now - started < 120.0,
        "start time {started}, now {now}"
    );

    // Every family has HELP and TYPE, and a name of the form retail_<name>_<unit>[_total].
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line.split(' ').skip(2);
        let (name, kind) = (parts.next().expect("name"), parts.next().expect("type"));
        assert!(text.contains(&format!("# HELP {name} ")), "{name} has no HELP");
        assert!(name.starts_with("retail_"), "{name}");
        assert_eq!(kind == "counter", name.ends_with("_total"), "{name} is a {kind}");
    }
    // promtool's linter on the real scrape: exit 0 and nothing to say.
    let out = promtool(&["check", "metrics"], Some(&text));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.trim().is_empty(), "promtool check metrics: {said}");

    // Prometheus asks for OpenMetrics and gets it.
    let (code, head, body) = get_with(
        demo.http,
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
    );
    assert_eq!(code, 200);
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    drop(demo);
}

#[test]
fn dashboards_are_well_formed_and_use_the_provisioned_data_sources() {
    let datasources = std::fs::read_to_string(deploy("grafana/provisioning/datasources/retail-etl.yml"))
        .expect("datasources");
    let provider = std::fs::read_to_string(deploy("grafana/provisioning/dashboards/retail-etl.yml"))
        .expect("dashboard provider");
    assert!(provider.contains("path: /var/lib/grafana/dashboards"));
    for (path, d) in observe::dashboards() {
        assert!(d["uid"].is_string() && d["title"].is_string(), "{path}");
        let mut ids = std::collections::HashSet::new();
        for p in observe::panels(&d) {
            assert!(
                ids.insert(p["id"].as_i64().expect("panel id")),
                "{path}: duplicate id {}",
                p["id"]
            );
            assert!(
                p["gridPos"]["w"].as_i64().is_some(),
                "{path}: {} without gridPos",
                p["title"]
            );
            if p["type"] == "row" {
                continue;
            }
            let uid = p["datasource"]["uid"].as_str().expect("panel datasource uid");
            assert!(
                datasources.contains(&format!("uid: {uid}\n")),
                "{path}: unknown datasource {uid}"
            );
            assert!(
                !p["targets"].as_array().expect("targets").is_empty(),
                "{path}: {} has no query",
                p["title"]
            );
        }
    }
    // What the issue lists is there.
    let titles: Vec<String> = observe::dashboards()
        .iter()
        .flat_map(|(_, d)| observe::panels(d))
        .filter_map(|p| p["title"].as_str().map(str::to_owned))
        .collect();
    for wanted in [
        "Events in",
        "Rows out",
        "Consumer lag",
        "Event-to-store latency against the 5 s objective",
        "Dead letters",
        "Late events",
        "Sales per minute, per store",
        "Top cities",
        "Top sellers",
    ] {
        assert!(
            titles.iter().any(|t| t.starts_with(wanted)),
            "no panel {wanted:?} in {titles:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sql_panel_runs_against_a_store_the_demo_filled() {
    let store = TestStore::postgres().await;
    common::Run {
        seed: 5,
        events: 4000,
        rate: 0.0,
        duplicate_fraction: 0.02,
        malformed_fraction: 0.02,
    }
    .run_to_end(&store);
    let (client, conn) = tokio_postgres::connect(&store.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    // Whatever event times the generator used: the range covers them all.
    let row = client
        .query_one(
            "SELECT (min(ts) - interval '1 day')::text, (max(ts) + interval '1 day')::text FROM sales_raw",
            &[],
        )
        .await
        .expect("range");
    let (from, to): (String, String) = (row.get(0), row.get(1));
    let queries = observe::queries("grafana-postgresql-datasource");
    assert!(queries.len() >= 5, "{queries:?}");
    for (title, q) in queries {
        let sql = observe::expand_sql(&q, &from, &to);
        let rows = client
            .query(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("panel {title:?}: {sql}: {e}"));
        let must_have_rows = [
            "Sales per minute",
            "Revenue per minute",
            "Sales lines",
            "Top cities",
            "Top sellers",
            "Dead letters",
        ];
        if must_have_rows.iter().any(|t| title.starts_with(t)) {
            assert!(!rows.is_empty(), "panel {title:?} returned no rows: {sql}");
        }
    }
    drop(client);
    store.drop().await;
}
