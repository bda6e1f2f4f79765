//! The SOAP payments poller against a real SOAP service (node-soap, npm `soap` 1.13.0, in
//! `tests/soap_service/`, installed by `scripts/test` and named in `RETAIL_TEST_SOAP_SERVICE`)
//! and the real embedded log: paging, both SOAP versions, faults and broken answers on
//! `/health`, bad elements as reject records, restarts with and without the cursor write, a
//! torn cursor file, pause and resume.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use retail_core::event::topics;
use retail_core::health::State;
use retail_core::{decode, EventBody, Health, Metrics, Shutdown};
use retail_log::embedded::{EmbeddedConfig, EmbeddedLog};
use retail_log::{ConsumedRecord, ConsumerEvent, Log};
use retail_source::soap::{SoapConfig, SoapVersion};
use retail_source::{Backlog, BuildSource, Routes, SourceContext, SourceHandle};
use rust_decimal::Decimal;
use serde_json::{json, Value};

/// The SOAP service, killed on drop.
struct Service {
    child: Child,
    port: u16,
    http: reqwest::Client,
}

impl Service {
    fn start() -> Self {
        let dir = std::env::var("RETAIL_TEST_SOAP_SERVICE").unwrap_or_else(|_| {
            panic!(
                "RETAIL_TEST_SOAP_SERVICE is not set: run the tests with ./scripts/test, which \
                 installs the SOAP test service (npm soap 1.13.0 under the target directory) and sets it"
            )
        });
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/soap_service/server.js");
        let mut child = Command::new("node")
            .arg(script)
            .env("NODE_PATH", Path::new(&dir).join("node_modules"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node {script}: {e}"));
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the service's first line");
        let port = line
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the SOAP service did not start: {line:?}"));
        Self {
            child,
            port,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn add(&self, payments: &[Value]) {
        let r = self
            .http
            .post(self.url("/control/payments"))
            .json(payments)
            .send()
            .await
            .expect("add payments");
        assert!(r.status().is_success());
    }

    async fn mode(&self, mode: &str) {
        let r = self
            .http
            .post(self.url("/control/mode"))
            .json(&json!({ "mode": mode }))
            .send()
            .await
            .expect("set mode");
        assert!(r.status().is_success());
    }

    async fn stats(&self) -> Value {
        self.http
            .get(self.url("/control/stats"))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON")
    }

    async fn requests(&self) -> u64 {
        self.stats().await["requests"].as_u64().expect("requests")
    }

    /// A source config for this service.
    fn config(&self, version: SoapVersion) -> SoapConfig {
        let (path, ns) = match version {
            SoapVersion::V11 => ("/soap11", "http://schemas.xmlsoap.org/soap/envelope/"),
            SoapVersion::V12 => ("/soap12", "http://www.w3.org/2003/05/soap-envelope"),
        };
        SoapConfig {
            name: "payments".to_owned(),
            endpoint: self.url(path),
            soap_version: version,
            soap_action: Some("urn:retail:payments/GetPayments".to_owned()),
            request: format!(
                r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="{ns}" xmlns:p="urn:retail:payments">
  <soap:Body>
    <p:GetPayments>
      <p:AfterTimestamp>{{cursor_ts}}</p:AfterTimestamp>
      <p:AfterPaymentId>{{cursor_id}}</p:AfterPaymentId>
      <p:Limit>{{limit}}</p:Limit>
    </p:GetPayments>
  </soap:Body>
</soap:Envelope>"#
            ),
            interval_ms: 50,
            page_size: 50,
            timeout_ms: 5_000,
            backoff_initial_ms: 50,
            backoff_max_ms: 200,
            ..SoapConfig::default()
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A payment as the service holds it.
fn payment(id: &str, amount: &str, status: &str, ts: &str) -> Value {
    json!({
        "PaymentId": id, "OrderId": format!("o-{id}"), "Amount": amount,
        "Currency": "EUR", "Status": status, "Timestamp": ts,
    })
}

/// The log and a data directory, kept across runs of the source.
struct Pipeline {
    dir: tempfile::TempDir,
    log: Arc<dyn Log>,
    health: Health,
}

/// One run of the source.
struct Run {
    handle: SourceHandle,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<retail_source::Result<()>>,
}

impl Pipeline {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log: Arc<dyn Log> = Arc::new(
            EmbeddedLog::open(&dir.path().join("log"), EmbeddedConfig::default())
                .await
                .expect("opens"),
        );
        Self {
            dir,
            log,
            health: Health::new(),
        }
    }

    async fn start(&self, config: &SoapConfig) -> Run {
        config.validate().expect("valid config");
        let shutdown = Shutdown::new();
        let cx = SourceContext {
            log: self.log.clone(),
            metrics: Metrics::new(),
            health: self.health.clone(),
            shutdown: shutdown.clone(),
            data_dir: self.dir.path().to_path_buf(),
            partitions: 4,
            routes: Routes::default(),
            backlog: Backlog::default(),
            loopback: true,
        };
        let built = config.build(&cx).await.expect("builds");
        Run {
            handle: built.handle,
            shutdown,
            task: tokio::spawn(built.task),
        }
    }

    fn cursor_path(&self, name: &str) -> PathBuf {
        self.dir.path().join("sources").join(name).join("cursor.json")
    }

    /// Every record on the payments topic.
    async fn records(&self) -> Vec<ConsumedRecord> {
        let group = format!("check-{}", uuid::Uuid::now_v7());
        let mut consumer = self
            .log
            .consumer(&group, &[topics::PAYMENTS])
            .await
            .expect("consumer");
        let mut out = Vec::new();
        let mut empty = 0;
        while empty < 3 {
            match consumer
                .poll(10_000, Duration::from_millis(150))
                .await
                .expect("poll")
            {
                ConsumerEvent::Records(r) if r.is_empty() => empty += 1,
                ConsumerEvent::Records(r) => out.extend(r),
                _ => {}
            }
        }
        out
    }

    fn state(&self, name: &str) -> (State, String) {
        self.health
            .snapshot()
            .get(name)
            .map(|s| (s.state, s.detail.clone()))
            .unwrap_or((State::Starting, String::new()))
    }
}

impl Run {
    async fn stop(self) {
        self.shutdown.trigger();
        let r = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the source stops on shutdown")
            .expect("joins");
        r.expect("the source ends cleanly");
    }

    /// Ends the task wherever it is, as a kill would (between pages, or between an append and
    /// its cursor write).
    async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut cond: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Payment events on the log by payment id: (event ids seen, amount, status).
fn payments_on_log(records: &[ConsumedRecord]) -> BTreeMap<String, (HashSet<String>, Decimal, usize)> {
    let mut out: BTreeMap<String, (HashSet<String>, Decimal, usize)> = BTreeMap::new();
    for r in records {
        assert_eq!(r.topic, topics::PAYMENTS);
        if r.headers.iter().any(|h| h.key == "reject_reason") {
            continue;
        }
        let e = decode(&r.value).expect("a payment event");
        let EventBody::Payment(p) = e.body else {
            panic!("not a payment: {e:?}");
        };
        let entry = out
            .entry(p.payment_id.clone())
            .or_insert_with(|| (HashSet::new(), p.amount, 0));
        entry.0.insert(e.event_id.to_string());
        assert_eq!(entry.1, p.amount);
        entry.2 += 1;
    }
    out
}

fn ts_of(i: usize) -> String {
    // 120 payments share one millisecond; the others are a second apart.
    if i < 120 {
        "2026-11-30T09:00:00.000Z".to_owned()
    } else {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-30T09:00:00Z").expect("ts")
            + chrono::Duration::seconds(i as i64);
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

/// 250 payments, 120 of them with one timestamp, through pages of 50: each lands once with its
/// exact amount; then the poll-to-log latency at a 100 ms interval.
async fn lands_every_payment_exactly(version: SoapVersion) {
    let service = Service::start();
    let amounts = ["0.01", "12.30", "9999999999.99", "1234567.891", "0"];
    let payments: Vec<Value> = (0..250)
        .map(|i| {
            payment(
                &format!("p{i:04}"),
                amounts[i % amounts.len()],
                "CAPTURED",
                &ts_of(i),
            )
        })
        .collect();
    service.add(&payments).await;
    let pipeline = Pipeline::new().await;
    let config = service.config(version);
    let run = pipeline.start(&config).await;
    let h = run.handle.clone();
    wait_until("250 payments are accepted", Duration::from_secs(30), || {
        let h = h.clone();
        async move { h.counts().accepted >= 250 }
    })
    .await;
    let counts = run.handle.counts();
    assert_eq!((counts.received, counts.accepted, counts.rejected), (250, 250, 0));
    assert_eq!(pipeline.state("payments").0, State::Running);

    let on_log = payments_on_log(&pipeline.records().await);
    assert_eq!(on_log.len(), 250, "every payment, once");
    for (i, p) in payments.iter().enumerate() {
        let (ids, amount, n) = &on_log[p["PaymentId"].as_str().expect("id")];
        assert_eq!((ids.len(), *n), (1, 1), "payment {i} once");
        let want: Decimal = amounts[i % amounts.len()].parse().expect("decimal");
        assert_eq!(*amount, want, "exact amount of payment {i}");
    }
    let stats = service.stats().await;
    let last = &stats["last"];
    match version {
        SoapVersion::V11 => {
            assert_eq!(last["content_type"], "text/xml; charset=utf-8");
            assert_eq!(last["soapaction"], "\"urn:retail:payments/GetPayments\"");
        }
        SoapVersion::V12 => assert_eq!(
            last["content_type"],
            "application/soap+xml; charset=utf-8; action=\"urn:retail:payments/GetPayments\""
        ),
    }
    assert!(
        last["body"]
            .as_str()
            .expect("body")
            .contains("<p:AfterPaymentId>p0249</p:AfterPaymentId>"),
        "the cursor is the last payment: {last}"
    );
    run.stop().await;

    // Poll-to-log latency: a payment added to the service until the log acknowledged it.
    let config = SoapConfig {
        interval_ms: 100,
        ..config
    };
    let run = pipeline.start(&config).await;
    let mut samples = Vec::new();
    for i in 0..10 {
        let before = run.handle.counts().accepted;
        let started = Instant::now();
        service
            .add(&[payment(
                &format!("q{i}"),
                "1.00",
                "authorized",
                "2026-11-30T12:00:00.000Z",
            )])
            .await;
        let h = run.handle.clone();
        wait_until("the new payment is on the log", Duration::from_secs(10), || {
            let h = h.clone();
            async move { h.counts().accepted > before }
        })
        .await;
        samples.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(37)).await; // vary the phase against the interval
    }
    samples.sort();
    eprintln!(
        "SOAP {} poll-to-log latency at interval_ms = 100 over 10 payments: median {} ms, max {} ms",
        version.as_str(),
        samples[5].as_millis(),
        samples[9].as_millis()
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap11_pages_across_equal_timestamps_and_lands_exact_amounts() {
    lands_every_payment_exactly(SoapVersion::V11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap12_pages_across_equal_timestamps_and_lands_exact_amounts() {
    lands_every_payment_exactly(SoapVersion::V12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_broken_answers_show_on_health_and_polling_recovers() {
    let service = Service::start();
    let cases: [(SoapVersion, &str, &[&str]); 5] = [
        (
            SoapVersion::V11,
            "fault",
            &[
                "SOAP 1.1 Fault",
                "soap:Server",
                "payment ledger unavailable",
                "HTTP 500",
            ],
        ),
        (
            SoapVersion::V12,
            "fault",
            &[
                "SOAP 1.2 Fault",
                "soap:Receiver/tns:LedgerDown",
                "payment ledger unavailable",
            ],
        ),
        (
            SoapVersion::V11,
            "not_xml",
            &[
                "not a SOAP envelope",
                "not XML",
                "HTTP 200 OK",
                "text/plain",
                "Service temporarily unavailable",
            ],
        ),
        (
            SoapVersion::V12,
            "http500",
            &["HTTP 500 Internal Server Error", "text/html", "upstream died"],
        ),
        (
            SoapVersion::V11,
            "deep_fault",
            &["HTTP 500 Internal Server Error", "elements nested deeper than 64"],
        ),
    ];
    for (i, (version, mode, expected)) in cases.into_iter().enumerate() {
        let pipeline = Pipeline::new().await;
        let config = service.config(version);
        service.mode(mode).await;
        let run = pipeline.start(&config).await;
        wait_until(
            &format!("{mode} shows on health"),
            Duration::from_secs(10),
            || async { pipeline.state("payments").0 == State::Retrying },
        )
        .await;
        let (_, detail) = pipeline.state("payments");
        assert!(detail.contains("soap source \"payments\""), "{detail}");
        assert!(detail.contains(&config.endpoint), "{detail}");
        for e in expected {
            assert!(
                detail.contains(e),
                "{mode} (SOAP {}): {e:?} not in {detail:?}",
                version.as_str()
            );
        }
        // It keeps trying, with backoff, without ending.
        let before = service.requests().await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(service.requests().await > before, "{mode}: still polling");
        assert!(!run.task.is_finished(), "{mode}: the source goes on");

        service.mode("ok").await;
        service
            .add(&[payment(
                &format!("r{i}"),
                "5.55",
                "captured",
                "2026-11-30T10:00:00.000Z",
            )])
            .await;
        let h = run.handle.clone();
        wait_until(
            &format!("the payment lands after {mode}"),
            Duration::from_secs(10),
            || {
                let h = h.clone();
                async move { h.counts().accepted == (i + 1) as u64 }
            },
        )
        .await;
        wait_until("running again", Duration::from_secs(5), || async {
            pipeline.state("payments").0 == State::Running
        })
        .await;
        run.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_element_is_a_reject_record_with_reason_and_position() {
    let service = Service::start();
    let ts = "2026-11-30T10:00:00.000Z";
    let mut missing_order = payment("b3", "3.00", "captured", ts);
    missing_order.as_object_mut().expect("object").remove("OrderId");
    service
        .add(&[
            payment("b1", "1.00", "captured", ts),
            payment("b2", "abc", "captured", ts),
            missing_order,
            payment("b4", "4.00", "pending", ts),
            payment("b5", "5.00", "REFUNDED", ts),
        ])
        .await;
    let pipeline = Pipeline::new().await;
    let config = service.config(SoapVersion::V11);
    let run = pipeline.start(&config).await;
    let h = run.handle.clone();
    wait_until("5 elements are taken", Duration::from_secs(10), || {
        let h = h.clone();
        async move { h.counts().received == 5 && h.counts().accepted == 2 }
    })
    .await;
    assert_eq!(run.handle.counts().rejected, 3);

    let records = pipeline.records().await;
    assert_eq!(records.len(), 5);
    let header = |r: &ConsumedRecord, k: &str| {
        r.headers
            .iter()
            .find(|h| h.key == k)
            .map(|h| String::from_utf8_lossy(&h.value).into_owned())
    };
    let rejects: HashMap<String, &ConsumedRecord> = records
        .iter()
        .filter_map(|r| header(r, "origin_line").map(|l| (l, r)))
        .collect();
    assert_eq!(rejects.len(), 3, "three reject records");
    for (line, id, why) in [
        (
            "2",
            "b2",
            "Amount: must be a non-negative decimal number, got \"abc\"",
        ),
        ("3", "b3", "OrderId: is required"),
        ("4", "b4", "Status: must be one of"),
    ] {
        let r = rejects[line];
        let reason = header(r, "reject_reason").expect("reason");
        assert!(reason.contains(why), "{reason}");
        assert!(
            reason.contains(&format!("Payment element {line} of the page after cursor")),
            "{reason}"
        );
        assert_eq!(header(r, "reject_kind").as_deref(), Some("soap_payment"));
        assert_eq!(header(r, "source").as_deref(), Some("payments"));
        let origin = header(r, "origin_file").expect("origin");
        assert!(
            origin.starts_with(&config.endpoint) && origin.contains("page after cursor"),
            "{origin}"
        );
        assert!(header(r, "reject_id").is_some_and(|id| uuid::Uuid::parse_str(&id).is_ok()));
        let raw = String::from_utf8_lossy(&r.value);
        assert!(
            raw.starts_with("<Payment>") && raw.contains(&format!("<PaymentId>{id}</PaymentId>")),
            "{raw}"
        );
    }
    let good = payments_on_log(&records);
    assert_eq!(good.keys().cloned().collect::<Vec<_>>(), ["b1", "b5"]);

    // Polling goes on past the bad elements.
    service
        .add(&[payment("b6", "6.00", "captured", "2026-11-30T10:00:01.000Z")])
        .await;
    wait_until("the next payment lands", Duration::from_secs(10), || {
        let h = h.clone();
        async move { h.counts().accepted == 3 }
    })
    .await;
    assert_eq!(pipeline.state("payments").0, State::Running);
    run.stop().await;
}

/// Asserts every payment is on the log under one event id (duplicates share it) and returns the
/// number of records.
fn assert_once_by_id(records: &[ConsumedRecord], payments: usize) -> usize {
    let on_log = payments_on_log(records);
    assert_eq!(on_log.len(), payments, "every payment is on the log");
    let mut ids = HashSet::new();
    for (id, (event_ids, _, _)) in &on_log {
        assert_eq!(
            event_ids.len(),
            1,
            "payment {id}: every copy has the same event id"
        );
        ids.extend(event_ids.iter().cloned());
    }
    assert_eq!(ids.len(), payments, "distinct event ids == payments");
    on_log.values().map(|(_, _, n)| n).sum()
}

async fn cursor_id(path: &Path) -> Option<String> {
    let bytes = tokio::fs::read(path).await.ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v["id"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_mid_stream_land_every_payment_once_by_id() {
    let service = Service::start();
    let payments: Vec<Value> = (0..300)
        .map(|i| payment(&format!("k{i:04}"), "2.50", "captured", &ts_of(i)))
        .collect();
    service.add(&payments).await;
    let pipeline = Pipeline::new().await;
    let config = SoapConfig {
        page_size: 20,
        ..service.config(SoapVersion::V11)
    };
    let cursor = pipeline.cursor_path("payments");
    // Three runs ended mid-stream at different depths, wherever the task is at that moment
    // (between pages, or between an append and its cursor write).
    for target in [20, 27, 41] {
        let run = pipeline.start(&config).await;
        let started = Instant::now();
        while run.handle.counts().accepted < target {
            assert!(started.elapsed() < Duration::from_secs(20), "no progress");
            tokio::task::yield_now().await;
        }
        run.abort().await;
        let on_log = payments_on_log(&pipeline.records().await).len();
        assert!(on_log < 300, "stopped mid-stream ({on_log} on the log)");
    }
    let run = pipeline.start(&config).await;
    wait_until(
        "the cursor reaches the last payment",
        Duration::from_secs(30),
        || {
            let cursor = cursor.clone();
            async move { cursor_id(&cursor).await.as_deref() == Some("k0299") }
        },
    )
    .await;
    run.stop().await;
    let records = pipeline.records().await;
    let total = assert_once_by_id(&records, 300);
    eprintln!("after 3 aborted runs: {total} payment records for 300 payments (duplicates share their id)");
    assert!(
        total <= 300 + 3 * 20,
        "at most one page again per abort, got {total}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_append_before_the_cursor_write_lands_once_by_id() {
    let service = Service::start();
    let payments: Vec<Value> = (0..100)
        .map(|i| payment(&format!("c{i:03}"), "7.77", "authorized", &ts_of(i + 100)))
        .collect();
    service.add(&payments).await;
    let pipeline = Pipeline::new().await;
    let config = SoapConfig {
        page_size: 20,
        ..service.config(SoapVersion::V11)
    };
    let cursor = pipeline.cursor_path("payments");
    let run = pipeline.start(&config).await;
    wait_until("all on the log", Duration::from_secs(20), || {
        let cursor = cursor.clone();
        async move { cursor_id(&cursor).await.as_deref() == Some("c099") }
    })
    .await;
    run.stop().await;
    // The cursor writes of the last three pages were lost: the file still holds the key of the
    // 40th payment (as after a crash right after an append, repeated).
    let kept = json!({ "ts": payments[39]["Timestamp"], "id": payments[39]["PaymentId"] });
    std::fs::write(&cursor, serde_json::to_vec(&kept).expect("json")).expect("rewind");

    let run = pipeline.start(&config).await;
    wait_until("polled again to the end", Duration::from_secs(20), || {
        let cursor = cursor.clone();
        async move { cursor_id(&cursor).await.as_deref() == Some("c099") }
    })
    .await;
    run.stop().await;
    let total = assert_once_by_id(&pipeline.records().await, 100);
    assert_eq!(
        total, 160,
        "the 60 payments after the kept cursor are on the log twice, same ids"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_cursor_write_is_ignored_and_the_cursor_survives() {
    let service = Service::start();
    let payments: Vec<Value> = (0..30)
        .map(|i| payment(&format!("t{i:02}"), "1.10", "captured", &ts_of(i + 200)))
        .collect();
    service.add(&payments).await;
    let pipeline = Pipeline::new().await;
    let config = SoapConfig {
        page_size: 10,
        ..service.config(SoapVersion::V11)
    };
    let cursor = pipeline.cursor_path("payments");
    let run = pipeline.start(&config).await;
    wait_until("all on the log", Duration::from_secs(20), || {
        let cursor = cursor.clone();
        async move { cursor_id(&cursor).await.as_deref() == Some("t29") }
    })
    .await;
    run.abort().await;
    // kill -9 in the middle of the next cursor write: half a temporary file beside the cursor.
    let tmp = cursor.with_extension("json.tmp");
    std::fs::write(&tmp, b"{\"ts\":\"2000-01-01T00:00:00Z\",\"i").expect("torn write");

    let run = pipeline.start(&config).await;
    let before = service.requests().await;
    wait_until("a few polls", Duration::from_secs(10), || async {
        service.requests().await >= before + 3
    })
    .await;
    assert_eq!(pipeline.state("payments").0, State::Running);
    let last = service.stats().await["last"]["body"]
        .as_str()
        .expect("body")
        .to_owned();
    assert!(
        last.contains("<p:AfterPaymentId>t29</p:AfterPaymentId>"),
        "polls from the saved cursor: {last}"
    );
    assert!(!tmp.exists(), "the torn file is removed");
    service
        .add(&[payment("t30", "1.10", "captured", &ts_of(230))])
        .await;
    wait_until(
        "the next payment moves the cursor",
        Duration::from_secs(10),
        || {
            let cursor = cursor.clone();
            async move { cursor_id(&cursor).await.as_deref() == Some("t30") }
        },
    )
    .await;
    run.stop().await;
    assert_eq!(
        assert_once_by_id(&pipeline.records().await, 31),
        31,
        "nothing twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_polling_and_resume_continues() {
    let service = Service::start();
    let pipeline = Pipeline::new().await;
    let config = SoapConfig {
        interval_ms: 30,
        ..service.config(SoapVersion::V12)
    };
    let run = pipeline.start(&config).await;
    wait_until("polling", Duration::from_secs(10), || async {
        service.requests().await >= 3
    })
    .await;
    run.handle.pause();
    tokio::time::sleep(Duration::from_millis(200)).await; // a request in flight finishes
    let paused_at = service.requests().await;
    service
        .add(&[payment("z1", "9.99", "captured", "2026-11-30T11:00:00.000Z")])
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(service.requests().await, paused_at, "no request while paused");
    assert_eq!(run.handle.counts().accepted, 0);
    assert_eq!(pipeline.state("payments").0, State::Paused);

    run.handle.resume();
    let h = run.handle.clone();
    wait_until("the payment lands after resume", Duration::from_secs(10), || {
        let h = h.clone();
        async move { h.counts().accepted == 1 }
    })
    .await;
    assert!(service.requests().await > paused_at);
    assert_eq!(pipeline.state("payments").0, State::Running);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_pages_by_timestamp_only_is_reported_and_repeats_are_skipped() {
    let service = Service::start();
    service.mode("inclusive").await;
    let ts = "2026-11-30T08:00:00.000Z";
    let payments: Vec<Value> = (0..12)
        .map(|i| payment(&format!("i{i:02}"), "3.00", "captured", ts))
        .collect();
    service.add(&payments).await;
    let pipeline = Pipeline::new().await;
    // A page smaller than the payments of one timestamp cannot get past it: said on /health.
    let config = SoapConfig {
        page_size: 5,
        ..service.config(SoapVersion::V11)
    };
    let run = pipeline.start(&config).await;
    wait_until("no progress shows on health", Duration::from_secs(10), || async {
        pipeline.state("payments").1.contains("did not move the cursor")
    })
    .await;
    assert_eq!(pipeline.state("payments").0, State::Retrying);
    run.stop().await;
    // A page larger than that gets past it; the boundary payment the service repeats at every
    // poll is skipped, not appended again.
    let config = SoapConfig {
        page_size: 50,
        ..config
    };
    let run = pipeline.start(&config).await;
    let before = service.requests().await;
    wait_until("several polls", Duration::from_secs(10), || async {
        service.requests().await >= before + 5
    })
    .await;
    assert_eq!(pipeline.state("payments").0, State::Running);
    run.stop().await;
    let records = pipeline.records().await;
    let on_log = payments_on_log(&records);
    assert_eq!(on_log.len(), 12);
    // The restart knows only the boundary payment (i04) of the first run's page: i00..i03 go on
    // the log once more, under the same ids; the polls after that add nothing.
    assert_eq!(
        assert_once_by_id(&records, 12),
        5 + 11,
        "each payment once by id, the first page at most twice on the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_orders_ids_numerically_loses_nothing_at_a_page_boundary() {
    let service = Service::start();
    service.mode("numeric").await;
    let ts = "2026-11-30T07:00:00.000Z";
    // Ids 1..=12 at one timestamp, 13 a second later; the service answers 9 before 10.
    let mut payments: Vec<Value> = (1..=12)
        .map(|i| payment(&i.to_string(), "4.00", "captured", ts))
        .collect();
    payments.push(payment("13", "4.00", "captured", "2026-11-30T07:00:01.000Z"));
    service.add(&payments).await;
    let pipeline = Pipeline::new().await;
    let config = SoapConfig {
        page_size: 3,
        ..service.config(SoapVersion::V11)
    };
    let cursor = pipeline.cursor_path("payments");
    let run = pipeline.start(&config).await;
    wait_until("the cursor reaches 13", Duration::from_secs(10), || {
        let cursor = cursor.clone();
        async move { cursor_id(&cursor).await.as_deref() == Some("13") }
    })
    .await;
    let h = run.handle.clone();
    wait_until("13 payments are accepted", Duration::from_secs(5), || {
        let h = h.clone();
        async move { h.counts().accepted == 13 }
    })
    .await;
    // A few more polls change nothing.
    let before = service.requests().await;
    wait_until("a few polls", Duration::from_secs(10), || async {
        service.requests().await >= before + 3
    })
    .await;
    assert_eq!(pipeline.state("payments").0, State::Running);
    assert_eq!(run.handle.counts().accepted, 13);
    run.stop().await;
    assert_eq!(
        assert_once_by_id(&pipeline.records().await, 13),
        13,
        "10, 11 and 12 land, each once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_sent_but_never_shown() {
    let service = Service::start();
    service.mode("auth").await;
    service
        .add(&[payment("a1", "1.00", "captured", "2026-11-30T06:00:00.000Z")])
        .await;
    // This test runs in a process of its own (nextest): setting variables is safe here.
    std::env::set_var("RETAIL_TEST_SOAP_PASSWORD", "pw-0123");
    std::env::set_var("RETAIL_TEST_SOAP_WSS", "wss-secret-987&");
    let pipeline = Pipeline::new().await;
    let base = service.config(SoapVersion::V11);
    // Basic auth from `username` and a `password` from the environment; a WS-Security token in
    // the template from the environment, XML-escaped.
    let config = SoapConfig {
        username: Some("retail".to_owned()),
        password: Some("${RETAIL_TEST_SOAP_PASSWORD}".to_owned()),
        request: base.request.replace(
            "<soap:Body>",
            "<soap:Header><p:Token>${RETAIL_TEST_SOAP_WSS}</p:Token></soap:Header>\n  <soap:Body>",
        ),
        ..base.clone()
    };
    let run = pipeline.start(&config).await;
    let h = run.handle.clone();
    wait_until("the payment lands with auth", Duration::from_secs(10), || {
        let h = h.clone();
        async move { h.counts().accepted == 1 }
    })
    .await;
    let last = service.stats().await["last"]["body"]
        .as_str()
        .expect("body")
        .to_owned();
    assert!(
        last.contains("<p:Token>wss-secret-987&amp;</p:Token>"),
        "the token is sent: {last}"
    );
    let shown = format!("{} {}", pipeline.state("payments").1, run.handle.describe());
    assert!(
        !shown.contains("wss-secret") && !shown.contains("pw-0123"),
        "{shown}"
    );
    run.stop().await;

    // A password in the endpoint (a wrong one here): masked on /health and in the description.
    let endpoint = base.endpoint.replace("http://", "http://retail:bad-pass-777@");
    let config = SoapConfig { endpoint, ..base };
    let run = pipeline.start(&config).await;
    wait_until("401 shows on health", Duration::from_secs(10), || async {
        pipeline.state("payments").0 == State::Retrying
    })
    .await;
    let (_, detail) = pipeline.state("payments");
    assert!(
        detail.contains("401") && detail.contains("retail:***@127.0.0.1"),
        "{detail}"
    );
    let shown = format!("{detail} {}", run.handle.describe());
    assert!(!shown.contains("bad-pass-777"), "{shown}");
    assert!(run.handle.describe().contains("retail:***@127.0.0.1"));
    run.stop().await;
}
