//! Data lineage end to end: `demo` emits OpenLineage run events to an NDJSON file and to an
//! HTTP endpoint (a small server here records every POSTed body), every real event is loaded
//! with the typed models of the OpenLineage Python client (PyPI `openlineage-python`, which
//! scripts/test installs) and must serialize back to exactly what was sent, each job's run goes
//! START, RUNNING..., COMPLETE with counts that grow, and `/api/v1/lineage` serves the graph.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{demo_args, Run, Running, TestStore, BIN};
use serde_json::Value;

/// Loads each event (one JSON per stdin line) into `openlineage.client.event_v2.RunEvent` with
/// the client's own facet classes: no key the model lacks, every key it requires, each facet's
/// `_schemaURL` the one its class declares, the client's validators run (UUID run id, ISO
/// time, event type), and the model serialized by the client's `Serde` equals what was sent.
/// The package ships no JSON schema, only these attrs models, so this is the check.
const CHECK_PY: &str = r#"
import json, sys
import attr
from openlineage.client import event_v2
from openlineage.client.serde import Serde
from openlineage.client.generated import (
    datasource_dataset, error_message_run, input_statistics_input_dataset,
    job_type_job, output_statistics_output_dataset, processing_engine_run,
)

FACETS = {
    "run": {"processing_engine": processing_engine_run.ProcessingEngineRunFacet,
            "errorMessage": error_message_run.ErrorMessageRunFacet},
    "job": {"jobType": job_type_job.JobTypeJobFacet},
    "dataset": {"dataSource": datasource_dataset.DatasourceDatasetFacet},
    "input": {"inputStatistics": input_statistics_input_dataset.InputStatisticsInputDatasetFacet},
    "output": {"outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet},
}

def keys(cls, data, path, allowed_extra=()):
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object, got {data!r}")
    names = {f.name for f in attr.fields(cls)} | set(allowed_extra)
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{path}: {sorted(unknown)} are not fields of {cls.__name__}")

def facet(cls, data, path):
    keys(cls, data, path)
    if data.get("_schemaURL") != cls._get_schema():
        raise ValueError(f"{path}: _schemaURL {data.get('_schemaURL')!r} is not {cls._get_schema()!r}")
    kwargs = {}
    for f in attr.fields(cls):
        if f.init and f.name in data:
            kwargs[f.alias] = data[f.name]
    return cls(**kwargs)

def facets(kind, data, path):
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object")
    out = {}
    for k, v in data.items():
        if k not in FACETS[kind]:
            raise ValueError(f"{path}.{k}: not a facet this check knows")
        out[k] = facet(FACETS[kind][k], v, f"{path}.{k}")
    return out

def dataset(cls, io, d, path):
    keys(cls, d, path)
    return cls(namespace=d["namespace"], name=d["name"],
               facets=facets("dataset", d.get("facets", {}), path + ".facets"),
               **{io + "Facets": facets(io, d.get(io + "Facets", {}), f"{path}.{io}Facets")})

def event(d):
    keys(event_v2.RunEvent, d, "event")
    if d.get("schemaURL") != event_v2.RunEvent._get_schema():
        raise ValueError(f"schemaURL {d.get('schemaURL')!r} is not {event_v2.RunEvent._get_schema()!r}")
    keys(event_v2.Run, d["run"], "run")
    keys(event_v2.Job, d["job"], "job")
    return event_v2.RunEvent(
        eventType=event_v2.RunState(d["eventType"]),
        eventTime=d["eventTime"],
        producer=d["producer"],
        run=event_v2.Run(runId=d["run"]["runId"], facets=facets("run", d["run"].get("facets", {}), "run.facets")),
        job=event_v2.Job(namespace=d["job"]["namespace"], name=d["job"]["name"],
                         facets=facets("job", d["job"].get("facets", {}), "job.facets")),
        inputs=[dataset(event_v2.InputDataset, "input", x, f"inputs[{i}]") for i, x in enumerate(d.get("inputs", []))],
        outputs=[dataset(event_v2.OutputDataset, "output", x, f"outputs[{i}]") for i, x in enumerate(d.get("outputs", []))],
    )

n = 0
for line_no, line in enumerate(sys.stdin, 1):
    if not line.strip():
        continue
    sent = json.loads(line)
    try:
        model = event(sent)
        back = Serde.to_dict(model)
        if back != sent:
            raise ValueError(f"the model serializes differently:\n sent {json.dumps(sent, sort_keys=True)}\n back {json.dumps(back, sort_keys=True)}")
    except Exception as e:
        print(f"event {line_no}: {type(e).__name__}: {e}\n{line}", file=sys.stderr)
        sys.exit(1)
    n += 1
print(f"ok {n}")
"#;

/// Every event through [`CHECK_PY`]; returns how many passed.
fn check_with_openlineage_client(events: &[Value]) -> usize {
    let mut child = Command::new("python3")
        .args(["-c", CHECK_PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test needs it for the Kafka tests too)");
    let mut input = String::new();
    for e in events {
        input.push_str(&e.to_string());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("python3");
    writer.join().expect("writer").expect("write events");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'openlineage'"),
        "the OpenLineage Python client is not installed; scripts/test installs it \
         (python3 -m pip install openlineage-python)"
    );
    assert!(
        out.status.success(),
        "OpenLineage's models refused an event:\n{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .trim()
        .strip_prefix("ok ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected checker output: {stdout}"))
}

/// Each job's events in the order they were sent.
fn by_job(events: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut jobs: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in events {
        let name = e["job"]["name"].as_str().expect("job name").to_owned();
        jobs.entry(name).or_default().push(e.clone());
    }
    jobs
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or("?"))
        .collect()
}

/// The `rowCount` of dataset `name` in `side` (`inputs`/`outputs`) of an event.
fn row_count(event: &Value, side: &str, name: &str) -> Option<u64> {
    let facets = if side == "inputs" {
        "inputFacets"
    } else {
        "outputFacets"
    };
    let stats = if side == "inputs" {
        "inputStatistics"
    } else {
        "outputStatistics"
    };
    event[side]
        .as_array()?
        .iter()
        .find(|d| d["name"] == name)
        .and_then(|d| d[facets][stats]["rowCount"].as_u64())
}

fn names(event: &Value, side: &str) -> Vec<String> {
    event[side]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| d["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

const AGGREGATES: [&str; 4] = [
    "sales_agg_minute",
    "sales_agg_hour",
    "top_sales_by_city",
    "top_salesman_by_country",
];

/// What every run must show, wherever its events went: START first, COMPLETE last, RUNNING in
/// between, one run id per job; the datasets of each job; no secret anywhere.
fn check_runs(
    events: &[Value],
    log_ns: &str,
    store_ns: &str,
    table: &dyn Fn(&str) -> String,
    secret: Option<&str>,
) {
    if let Some(secret) = secret {
        for e in events {
            assert!(!e.to_string().contains(secret), "a secret reached an event: {e}");
        }
    }
    let jobs = by_job(events);
    let mut expected: Vec<String> = ["source.generator", "source.pos", "source.inbox", "landing"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    expected.extend(AGGREGATES.iter().map(|a| format!("aggregate.{a}")));
    for name in &expected {
        let run = jobs
            .get(name)
            .unwrap_or_else(|| panic!("no events for job {name}; jobs: {:?}", jobs.keys()));
        let t = types(run);
        assert_eq!(t.first(), Some(&"START"), "{name}: {t:?}");
        assert_eq!(t.last(), Some(&"COMPLETE"), "{name}: {t:?}");
        assert!(t[1..t.len() - 1].iter().all(|x| *x == "RUNNING"), "{name}: {t:?}");
        let ids: std::collections::HashSet<&str> =
            run.iter().filter_map(|e| e["run"]["runId"].as_str()).collect();
        assert_eq!(ids.len(), 1, "{name}: one run per process");
        assert!(
            run.iter().all(|e| e["job"]["namespace"] == "retail-etl"),
            "{name}"
        );
    }
    let last = |job: &str| jobs[job].last().expect("events").clone();
    let landing = last("landing");
    assert!(
        names(&landing, "inputs").contains(&"sales".to_owned()),
        "{landing}"
    );
    assert!(
        names(&landing, "outputs").contains(&table("sales_raw")),
        "{landing}"
    );
    for d in landing["inputs"].as_array().expect("inputs") {
        assert_eq!(d["namespace"], log_ns, "{d}");
    }
    let sales_raw = landing["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|d| d["name"] == table("sales_raw").as_str()))
        .expect("sales_raw");
    assert_eq!(sales_raw["namespace"], store_ns);
    for a in AGGREGATES {
        let e = last(&format!("aggregate.{a}"));
        assert_eq!(names(&e, "outputs")[0], table(a), "{e}");
        assert!(names(&e, "inputs").contains(&"sales".to_owned()), "{e}");
        assert!(
            row_count(&e, "outputs", &table(a)).is_some_and(|n| n > 0),
            "{a} wrote no rows: {e}"
        );
        assert!(
            row_count(&e, "inputs", "sales").is_some_and(|n| n > 0),
            "{a} read nothing: {e}"
        );
    }
    // The city ranking joins the store dimension, and says so.
    assert!(
        names(&last("aggregate.top_sales_by_city"), "inputs").contains(&table("store_dim")),
        "{}",
        last("aggregate.top_sales_by_city")
    );
    let generator = last("source.generator");
    assert!(
        row_count(&generator, "outputs", "sales").is_some_and(|n| n > 0),
        "{generator}"
    );
}

/// Counts on RUNNING and COMPLETE events never go down, and went up during the run.
fn check_counts_grow(events: &[Value], table: &dyn Fn(&str) -> String) {
    let jobs = by_job(events);
    let series = |job: &str, side: &str, name: &str| -> Vec<u64> {
        jobs[job]
            .iter()
            .filter(|e| e["eventType"] != "START")
            .filter_map(|e| row_count(e, side, name))
            .collect()
    };
    for (job, side, name) in [
        ("landing".to_owned(), "outputs", table("sales_raw")),
        ("landing".to_owned(), "inputs", "sales".to_owned()),
        ("source.generator".to_owned(), "outputs", "sales".to_owned()),
        (
            "aggregate.sales_agg_minute".to_owned(),
            "outputs",
            table("sales_agg_minute"),
        ),
    ] {
        let s = series(&job, side, &name);
        assert!(s.len() >= 3, "{job} {name}: too few reports {s:?}");
        assert!(s.windows(2).all(|w| w[0] <= w[1]), "{job} {name}: {s:?}");
        assert!(s.first() < s.last(), "{job} {name} did not grow: {s:?}");
    }
}

fn read_ndjson(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn write_config(dir: &Path, lineage: &str) -> String {
    let path = dir.join("lineage.toml");
    std::fs::write(&path, format!("[lineage]\n{lineage}")).expect("write config");
    path.display().to_string()
}

/// A running `demo` with lineage to a file: events on the file and the graph on the API agree,
/// RUNNING reports grow, and Ctrl-C completes every run.
#[test]
fn demo_writes_valid_openlineage_events_to_a_file_and_serves_the_graph() {
    let store = TestStore::sqlite();
    let file = store.data_dir().join("lineage").join("events.ndjson");
    let config = write_config(
        store.data_dir(),
        &format!("file = {:?}\ninterval_s = 1\n", file.display().to_string()),
    );
    let mut args = demo_args(&store, 300, 7);
    args.extend(["--config".to_owned(), config]);
    let demo = Running::start(&args);
    std::thread::sleep(Duration::from_millis(4_500));

    let graph = demo.ok("/api/v1/lineage");
    assert_eq!(graph["namespace"], "retail-etl");
    let job_ids: Vec<&str> = graph["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(|j| j["id"].as_str())
        .collect();
    assert!(job_ids.contains(&"job:retail-etl:landing"), "{graph}");
    let landing = graph["jobs"]
        .as_array()
        .and_then(|j| j.iter().find(|j| j["name"] == "landing"))
        .expect("landing job");
    assert_eq!(landing["run"]["state"], "RUNNING", "{landing}");
    let db = std::path::absolute(store.data_dir().join("retail.db")).expect("absolute");
    let sales_raw_id = format!("dataset:sqlite://{}:sales_raw", db.display());
    let edge = graph["edges"]
        .as_array()
        .and_then(|e| {
            e.iter()
                .find(|e| e["from"] == "job:retail-etl:landing" && e["to"] == sales_raw_id.as_str())
        })
        .unwrap_or_else(|| panic!("no landing -> {sales_raw_id} edge: {graph}"));
    assert!(edge["records"].as_u64().is_some_and(|n| n > 0), "{edge}");
    for a in AGGREGATES {
        let to = format!("dataset:sqlite://{}:{a}", db.display());
        assert!(
            graph["edges"].as_array().is_some_and(|e| e
                .iter()
                .any(|e| e["from"] == format!("job:retail-etl:aggregate.{a}") && e["to"] == to.as_str())),
            "no edge to {a}: {graph}"
        );
    }
    let log_ns = format!(
        "embedded://{}",
        std::path::absolute(store.data_dir().join("log"))
            .expect("absolute")
            .display()
    );
    let sales_id = format!("dataset:{log_ns}:sales");
    assert!(
        graph["datasets"].as_array().is_some_and(|d| d
            .iter()
            .any(|d| d["id"] == sales_id.as_str() && d["kind"] == "topic")),
        "{graph}"
    );

    let summary = demo.interrupt_to_summary();
    let events = read_ndjson(&file);
    assert_eq!(check_with_openlineage_client(&events), events.len());
    let store_ns = format!("sqlite://{}", db.display());
    check_runs(&events, &log_ns, &store_ns, &|t: &str| t.to_owned(), None);
    check_counts_grow(&events, &|t: &str| t.to_owned());
    // The final report of the landing is what the summary line says landed.
    let jobs = by_job(&events);
    let done = jobs["landing"].last().expect("COMPLETE");
    assert_eq!(
        row_count(done, "outputs", "sales_raw").map(|n| n.to_string()),
        summary.get("landed").cloned(),
        "{done}"
    );
}

/// Bodies POSTed to a tiny HTTP/1.1 server, and the paths they were posted to.
#[derive(Clone, Default)]
struct Recorder {
    posts: Arc<Mutex<Vec<(String, String)>>>,
}

impl Recorder {
    /// Serves on a loopback port until the test ends; answers 201 to every POST, as Marquez.
    fn start() -> (Self, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let rec = Self::default();
        let posts = rec.posts.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let posts = posts.clone();
                std::thread::spawn(move || serve(stream, &posts));
            }
        });
        (rec, port)
    }

    fn bodies(&self) -> Vec<(String, String)> {
        self.posts.lock().expect("lock").clone()
    }
}

/// Answers requests on one keep-alive connection.
fn serve(mut stream: std::net::TcpStream, posts: &Mutex<Vec<(String, String)>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        // One request: the head, then Content-Length bytes.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
        let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
        if head.starts_with("POST ") {
            posts.lock().expect("lock").push((path, body));
        }
        buf.drain(..head_end + length);
        let answer = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
        if stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// A `demo --events N` on PostgreSQL (with a password in its URL, which trust auth ignores)
/// posting to an HTTP endpoint: the generator's run completes when it is done, every run
/// completes at the end, the table names follow OpenLineage's PostgreSQL convention, and the
/// password appears nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_posts_valid_openlineage_events_to_an_http_endpoint() {
    let store = TestStore::postgres().await;
    let (admin, db) = store.pg_parts().expect("postgres");
    let secret = "hunter2-pw-51";
    let url = admin
        .rsplit_once('/')
        .map_or(admin.to_owned(), |(base, _)| format!("{base}/{db}"))
        .replacen("://postgres@", &format!("://postgres:{secret}@"), 1);
    assert!(
        url.contains(secret),
        "the test store's URL has no user to add a password to: {url}"
    );
    let (recorder, port) = Recorder::start();
    let config = write_config(
        store.data_dir(),
        &format!("url = \"http://127.0.0.1:{port}\"\ninterval_s = 1\nnamespace = \"retail-etl\"\n"),
    );
    let run = Run {
        seed: 11,
        events: 40_000,
        rate: 8_000.0,
        duplicate_fraction: 0.01,
        malformed_fraction: 0.01,
    };
    let mut args = run.args(&store);
    let at = args.iter().position(|a| a == "--store").expect("--store") + 1;
    args[at] = url.clone();
    args.extend(["--config".to_owned(), config]);
    let out = Command::new(BIN)
        .args(&args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run retail-etl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // (The start line still prints the store URL as configured; that is not lineage's.)
    for line in stderr.lines().filter(|l| l.contains("lineage")) {
        assert!(
            !line.contains(secret),
            "the password reached a lineage log line: {line}"
        );
    }

    let posts = recorder.bodies();
    assert!(!posts.is_empty(), "nothing was POSTed; stderr: {stderr}");
    assert!(
        posts.iter().all(|(path, _)| path == "/api/v1/lineage"),
        "{:?}",
        posts.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    let events: Vec<Value> = posts
        .iter()
        .map(|(_, b)| serde_json::from_str(b).unwrap_or_else(|e| panic!("not JSON ({e}): {b}")))
        .collect();
    assert_eq!(check_with_openlineage_client(&events), events.len());
    let host = admin
        .split("://")
        .nth(1)
        .and_then(|r| r.split('@').next_back())
        .and_then(|r| r.split('/').next())
        .expect("host:port");
    let store_ns = format!("postgres://{host}");
    let log_ns = format!(
        "embedded://{}",
        std::path::absolute(store.data_dir().join("log"))
            .expect("absolute")
            .display()
    );
    let table = |t: &str| format!("{db}.public.{t}");
    check_runs(&events, &log_ns, &store_ns, &table, Some(secret));
    check_counts_grow(&events, &table);
    // The generator ended by itself after N events: its run completed with all of them.
    let jobs = by_job(&events);
    let generated = jobs["source.generator"].last().expect("COMPLETE");
    let appended: u64 = generated["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .filter_map(|d| d["outputFacets"]["outputStatistics"]["rowCount"].as_u64())
        .sum();
    assert!(appended >= run.events, "{generated}");
    store.drop().await;
}

/// An endpoint that is down costs the pipeline nothing: it runs, lands and stops cleanly, and
/// the lost events are counted.
#[test]
fn a_dead_endpoint_is_counted_and_never_stops_the_pipeline() {
    let store = TestStore::sqlite();
    let port = common::free_port();
    let config = write_config(
        store.data_dir(),
        &format!("url = \"http://127.0.0.1:{port}\"\ninterval_s = 1\ntimeout_ms = 500\n"),
    );
    let mut args = demo_args(&store, 200, 3);
    args.extend(["--config".to_owned(), config]);
    let demo = Running::start(&args);
    let deadline = Instant::now() + Duration::from_secs(20);
    while demo.metric("retail_lineage_failures_total{reason=\"transport\"}") < 1.0 {
        assert!(Instant::now() < deadline, "no transport failure counted");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, metrics) = demo.get("/metrics");
    assert!(
        metrics.contains("# HELP retail_lineage_failures_total "),
        "{metrics}"
    );
    assert!(
        metrics.contains("# HELP retail_lineage_events_total "),
        "{metrics}"
    );
    let summary = demo.interrupt_to_summary();
    assert!(
        summary["landed"].parse::<u64>().is_ok_and(|n| n > 0),
        "{summary:?}"
    );
}
