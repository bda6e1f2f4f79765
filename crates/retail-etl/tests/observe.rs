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
