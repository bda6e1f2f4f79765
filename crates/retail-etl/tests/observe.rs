//! Observability against the real peers: promtool on the shipped rules and on a real scrape,
//! a real Prometheus scraping a running `demo` with the alert rules loaded, every dashboard
//! PromQL query evaluated by that Prometheus, and every SQL panel run against a PostgreSQL
//! database a `demo` filled. Prometheus and promtool come from the Debian package
//! `prometheus`, which scripts/test installs.

mod common;
#[path = "common/observe.rs"]
mod observe;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Running, TestStore};
use observe::{deploy, get_with, promtool, Prometheus};

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
        "retail_log_appended_bytes_total{topic=\"sales\"}",
        "retail_log_size_bytes{topic=\"sales\"}",
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
    // Every record appended carries at least its value's bytes.
    assert!(
        sum(&after, "retail_log_appended_bytes_total{topic=\"sales\"}")
            >= sum(&after, "retail_log_appended_records_total{topic=\"sales\"}"),
        "{text}"
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
fn prometheus_scrapes_a_running_demo_and_agrees_with_its_own_counters() {
    let store = TestStore::sqlite();
    let demo = Running::start(&common::demo_args(&store, 1000, 11));
    let prom = Prometheus::scraping(demo.http);
    let landed = "retail_landing_rows_total{table=\"sales_raw\"}";

    prom.wait_for(
        Duration::from_secs(60),
        "the target up and a landed-rows rate above 0",
        |p| {
            p.scalar("up{job=\"retail-etl\"}") == Some(1.0)
                && p.scalar(&format!("rate({landed}[10s])")).is_some_and(|r| r > 0.0)
        },
    );

    // A sample Prometheus took after we read the service lies between our two readings.
    let read_service = || {
        let (_, _, body) = get_with(demo.http, "/metrics", &[]);
        sum(&samples(&body), landed)
    };
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let ours_before = read_service();
    prom.wait_for(Duration::from_secs(20), "a scrape after our reading", |p| {
        p.scalar(&format!("timestamp({landed})"))
            .is_some_and(|t| t > t0 + 0.5)
    });
    let theirs = prom.scalar(landed).expect("landed rows in Prometheus");
    let ours_after = read_service();
    assert!(
        ours_before <= theirs && theirs <= ours_after,
        "Prometheus says {theirs}, the service said {ours_before} before and {ours_after} after"
    );

    // The rate Prometheus computes agrees with the one we measure on the service itself.
    let started = Instant::now();
    let a = read_service();
    std::thread::sleep(Duration::from_secs(10));
    let ours = (read_service() - a) / started.elapsed().as_secs_f64();
    let theirs = prom.scalar(&format!("rate({landed}[10s])")).expect("rate");
    assert!(
        ours > 0.0 && (theirs - ours).abs() <= 0.5 * ours,
        "landed rows/s: Prometheus {theirs}, service {ours}"
    );

    // Every rule loaded, evaluated without error and not firing.
    prom.wait_for(Duration::from_secs(20), "every rule evaluated", |p| {
        let rules = p.api("rules");
        let all: Vec<_> = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        all.len() == 6
            && all.iter().all(|r| {
                r["lastEvaluation"]
                    .as_str()
                    .is_some_and(|t| !t.starts_with("0001"))
            })
    });
    let rules = prom.api("rules");
    for group in rules["data"]["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            assert_eq!(rule["health"], "ok", "{rule}");
            assert_eq!(rule["state"], "inactive", "{rule}");
        }
    }
    let alerts = prom.api("alerts");
    assert_eq!(
        alerts["data"]["alerts"].as_array().map(Vec::len),
        Some(0),
        "{alerts}"
    );

    // Every dashboard PromQL query evaluates; the throughput and latency ones return data.
    for (title, q) in observe::queries("prometheus") {
        let q = observe::expand_promql(&q);
        let answer = prom.query(&q);
        assert_eq!(answer["status"], "success", "panel {title:?}: {q}: {answer}");
        let must_have_data = [
            "Events in",
            "Rows out",
            "Log appends",
            "Consumer lag",
            "Event-to-store latency",
            "Resident memory",
            "Version",
            "HTTP requests",
        ];
        if must_have_data.iter().any(|t| title.starts_with(t)) {
            let n = answer["data"]["result"].as_array().map_or(0, Vec::len);
            assert!(n > 0, "panel {title:?}: {q} returned nothing");
        }
    }
    drop(prom);
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
