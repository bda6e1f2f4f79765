//! The webhook receiver on a real socket, in front of the real embedded log, driven by real
//! HTTP clients (reqwest, and curl once): every answer the issue lists, and that what was
//! acknowledged is what a consumer reads back from the log.

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use retail_core::{decode, Health, Metrics, Shutdown};
use retail_log::embedded::{EmbeddedConfig, EmbeddedLog};
use retail_log::{ConsumerEvent, Log};
use retail_source::webhook::{auth, WebhookConfig};
use retail_source::{Backlog, BuildSource, Routes, SourceContext, SourceHandle};
use serde_json::Value;

struct Server {
    addr: SocketAddr,
    log: Arc<dyn Log>,
    health: Health,
    handle: SourceHandle,
    backlog: Backlog,
    shutdown: Shutdown,
    _dir: tempfile::TempDir,
}

async fn start(config: WebhookConfig) -> Server {
    start_with(config, EmbeddedConfig::default()).await
}

async fn start_with(config: WebhookConfig, log_config: EmbeddedConfig) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn Log> = Arc::new(
        EmbeddedLog::open(&dir.path().join("log"), log_config)
            .await
            .expect("opens"),
    );
    for topic in retail_core::event::topics::ALL {
        log.ensure_topic(topic, 4).await.expect("topic");
    }
    let shutdown = Shutdown::new();
    let cx = SourceContext {
        log: log.clone(),
        metrics: Metrics::new(),
        health: Health::new(),
        shutdown: shutdown.clone(),
        data_dir: dir.path().to_path_buf(),
        partitions: 4,
        routes: Routes::default(),
        backlog: Backlog::default(),
        loopback: true,
    };
    let built = config.build(&cx).await.expect("builds");
    tokio::spawn(built.task);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = cx.routes.merged();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        addr,
        log,
        health: cx.health,
        handle: built.handle,
        backlog: cx.backlog,
        shutdown,
        _dir: dir,
    }
}

fn sale(id: Option<&str>, store: u32) -> String {
    let id = id.map(|i| format!("\"event_id\":\"{i}\",")).unwrap_or_default();
    format!(
        "{{{id}\"type\":\"sale\",\"store_id\":{store},\"sku\":1234,\"qty\":2,\"unit_price\":\"3.50\",\"seller_id\":7,\"ts\":1723456789000}}"
    )
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn post(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: &str,
        extra: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .post(self.url("/ingest/pos"))
            .header("content-type", content_type)
            .body(body);
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").is_some();
        let mut v: Value = resp.json().await.expect("json answer");
        v["retry_after_header"] = Value::Bool(retry_after);
        (status, v)
    }

    /// Every record on the sales topic: (decoded event id or None, raw value).
    async fn sales(&self) -> Vec<(Option<String>, Vec<u8>)> {
        let mut consumer = self
            .log
            .consumer(&format!("check-{}", uuid::Uuid::now_v7()), &["sales"])
            .await
            .expect("consumer");
        let mut out = Vec::new();
        let mut empty = 0;
        while empty < 3 {
            match consumer
                .poll(10_000, Duration::from_millis(200))
                .await
                .expect("poll")
            {
                ConsumerEvent::Records(r) if r.is_empty() => empty += 1,
                ConsumerEvent::Records(r) => {
                    for rec in r {
                        out.push((decode(&rec.value).ok().map(|e| e.event_id.to_string()), rec.value));
                    }
                }
                _ => {}
            }
        }
        out
    }
}

fn ids(v: &Value) -> Vec<String> {
    v["event_ids"]
        .as_array()
        .expect("event_ids")
        .iter()
        .map(|i| i.as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_arrays_and_ndjson_are_acknowledged_only_once_on_the_log() {
    let s = start(WebhookConfig::named("pos")).await;
    let given = "0190f3a4-0000-7000-8000-000000000001";
    let (code, one) = s.post(sale(Some(given), 1), "application/json", &[]).await;
    assert_eq!((code, one["accepted"].as_u64()), (202, Some(1)), "{one}");
    assert_eq!(ids(&one), vec![given.to_owned()], "a given event_id is kept");

    let array = format!("[{},{}]", sale(None, 2), sale(None, 3));
    let (code, arr) = s.post(array, "application/json; charset=utf-8", &[]).await;
    assert_eq!((code, arr["accepted"].as_u64()), (202, Some(2)), "{arr}");

    let ndjson = format!("{}\n\n{}\n{}\n", sale(None, 4), sale(None, 5), sale(None, 6));
    let (code, nd) = s.post(ndjson, "application/x-ndjson", &[]).await;
    assert_eq!((code, nd["accepted"].as_u64()), (202, Some(3)), "{nd}");

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(sale(None, 7).as_bytes()).expect("gzip");
    let (code, zipped) = s
        .post(
            gz.finish().expect("gzip"),
            "application/json",
            &[("content-encoding", "gzip")],
        )
        .await;
    assert_eq!((code, zipped["accepted"].as_u64()), (202, Some(1)), "{zipped}");

    let acknowledged: HashSet<String> = [&one, &arr, &nd, &zipped].into_iter().flat_map(ids).collect();
    assert_eq!(acknowledged.len(), 7);
    let on_log: Vec<String> = s.sales().await.into_iter().filter_map(|(id, _)| id).collect();
    assert_eq!(on_log.len(), 7, "each acknowledged event once on the log");
    assert_eq!(on_log.into_iter().collect::<HashSet<_>>(), acknowledged);
    let counts = s.handle.counts();
    assert_eq!((counts.received, counts.accepted, counts.rejected), (7, 7, 0));

    // Without an Idempotency-Key, an event without an id gets an id derived from its bytes:
    // sent again, it has the same id, so the landing's ledger lands it once.
    let (_, a) = s.post(sale(None, 9), "application/json", &[]).await;
    let (_, b) = s.post(sale(None, 9), "application/json", &[]).await;
    assert_eq!(ids(&a), ids(&b));
    assert_ne!(ids(&a), ids(&one));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_answer_naming_what_and_where() {
    let s = start(WebhookConfig {
        max_body_bytes: 2000,
        ..WebhookConfig::named("pos")
    })
    .await;
    let (code, v) = s.post(sale(None, 1), "text/plain", &[]).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (415, Some("unsupported_media_type")),
        "{v}"
    );

    let (code, v) = s.post("this is not json", "application/json", &[]).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (400, Some("unreadable_body")),
        "{v}"
    );

    let (code, v) = s
        .post("not gzip", "application/json", &[("content-encoding", "gzip")])
        .await;
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().expect("message").contains("gzip"),
        "{v}"
    );

    let (code, v) = s.post("x".repeat(3000), "application/json", &[]).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (413, Some("too_large")),
        "{v}"
    );

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&[b' '; 100_000]).expect("gzip");
    let (code, v) = s
        .post(
            gz.finish().expect("gzip"),
            "application/json",
            &[("content-encoding", "gzip")],
        )
        .await;
    assert_eq!(code, 413, "a small gzip that inflates past the limit: {v}");

    // Every problem of every line, with its field path; nothing written (partial = false).
    let body = format!(
        "{}\n{{\"type\":\"sale\",\"store_id\":\"x\",\"sku\":1,\"qty\":0,\"ts\":1}}\n{{\"type\":\"teleport\"}}\n{{oops\n",
        sale(None, 1)
    );
    let (code, v) = s.post(body, "application/x-ndjson", &[]).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (422, Some("invalid_events")),
        "{v}"
    );
    let problems = v["problems"].as_array().expect("problems");
    let at = |line: u64, path: &str| {
        problems
            .iter()
            .any(|p| p["line"].as_u64() == Some(line) && p["path"].as_str() == Some(path))
    };
    assert!(
        at(2, "store_id") && at(2, "qty") && at(3, "type") && at(4, ""),
        "{v}"
    );
    assert!(s.sales().await.is_empty(), "a refused batch writes nothing");
    assert_eq!(s.handle.counts().rejected, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_batches_land_the_good_lines_and_carry_the_bad_ones_to_the_dead_letters() {
    let s = start(WebhookConfig {
        partial: true,
        ..WebhookConfig::named("pos")
    })
    .await;
    let body = format!(
        "{}\n{{\"type\":\"sale\",\"qty\":\"two\"}}\n{}\n",
        sale(None, 1),
        sale(None, 2)
    );
    let (code, v) = s.post(body, "application/x-ndjson", &[]).await;
    assert_eq!(
        (
            code,
            v["accepted"].as_u64(),
            v["rejected"].as_u64(),
            v["partial"].as_bool()
        ),
        (202, Some(2), Some(1), Some(true)),
        "{v}"
    );
    assert_eq!(v["problems"][0]["line"].as_u64(), Some(2), "{v}");
    let sales = s.sales().await;
    assert_eq!(sales.iter().filter(|(id, _)| id.is_some()).count(), 2);
    let raw: Vec<&Vec<u8>> = sales
        .iter()
        .filter(|(id, _)| id.is_none())
        .map(|(_, r)| r)
        .collect();
    assert_eq!(
        raw,
        vec![&b"{\"type\":\"sale\",\"qty\":\"two\"}".to_vec()],
        "the bad line as it came, for the landing to dead-letter"
    );
}

/// With `partial = true`, a keyed request retried after its answer was forgotten (as after a
/// crash) appends its bad lines again; each carries an id derived from the key and its line,
/// the same on both copies, so the store keeps one dead letter per bad line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_partial_batch_names_its_bad_lines_the_same_way() {
    let s = start(WebhookConfig {
        partial: true,
        idempotency_ttl_s: 0,
        ..WebhookConfig::named("pos")
    })
    .await;
    let body = format!(
        "{}\n{{\"type\":\"sale\",\"qty\":\"two\"}}\n{{oops\n",
        sale(None, 1)
    );
    let key = [("idempotency-key", "till-3-batch-9")];
    for _ in 0..2 {
        let (code, v) = s.post(body.clone(), "application/x-ndjson", &key).await;
        assert_eq!((code, v["rejected"].as_u64()), (202, Some(2)), "{v}");
    }
    let (code, _) = s.post(body.clone(), "application/x-ndjson", &[]).await;
    assert_eq!(code, 202);
    let mut consumer = s
        .log
        .consumer("check-reject-ids", &["sales"])
        .await
        .expect("consumer");
    let mut named: Vec<(Vec<u8>, String)> = Vec::new();
    let mut unnamed = 0;
    let mut empty = 0;
    while empty < 3 {
        match consumer
            .poll(10_000, Duration::from_millis(200))
            .await
            .expect("poll")
        {
            ConsumerEvent::Records(r) if r.is_empty() => empty += 1,
            ConsumerEvent::Records(r) => {
                for rec in r.into_iter().filter(|r| decode(&r.value).is_err()) {
                    match rec.headers.iter().find(|h| h.key == "reject_id") {
                        Some(h) => named.push((
                            rec.value.clone(),
                            String::from_utf8(h.value.clone()).expect("utf-8"),
                        )),
                        None => unnamed += 1,
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!(unnamed, 2, "without a key, bad lines carry no id");
    named.sort();
    assert_eq!(named.len(), 4, "{named:?}");
    assert_eq!(named[0], named[1], "the same line, the same id: {named:?}");
    assert_eq!(named[2], named[3], "{named:?}");
    assert_ne!(named[0].1, named[2].1, "another line, another id");
    for (_, id) in &named {
        uuid::Uuid::parse_str(id).expect("a UUID");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_signatures_are_checked() {
    let secret = "whsec_0123456789abcdef";
    let s = start(WebhookConfig {
        bearer_tokens: vec!["till-token-0123456789".to_owned()],
        hmac_secret: Some(secret.to_owned()),
        ..WebhookConfig::named("pos")
    })
    .await;
    let body = sale(None, 1);
    let now = chrono::Utc::now().timestamp();
    let good_sig = auth::sign(secret.as_bytes(), body.as_bytes(), now);
    let bearer = ("authorization", "bearer till-token-0123456789");
    let (code, v) = s
        .post(
            body.clone(),
            "application/json",
            &[
                ("authorization", "Bearer wrong-token-0000000"),
                ("retail-signature", &good_sig),
            ],
        )
        .await;
    assert_eq!(code, 401, "{v}");
    let (code, v) = s
        .post(
            body.clone(),
            "application/json",
            &[bearer, ("retail-signature", &good_sig)],
        )
        .await;
    assert_eq!(code, 202, "{v}");
    let old = auth::sign(secret.as_bytes(), body.as_bytes(), now - 3600);
    let (code, v) = s
        .post(
            body.clone(),
            "application/json",
            &[bearer, ("retail-signature", &old)],
        )
        .await;
    assert_eq!(code, 401, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains("replay window"),
        "{v}"
    );
    let (code, v) = s
        .post(
            sale(None, 2),
            "application/json",
            &[bearer, ("retail-signature", &good_sig)],
        )
        .await;
    assert_eq!(code, 401, "a signature of another body: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_lands_a_retried_request_once_with_the_same_answer() {
    let s = start(WebhookConfig::named("pos")).await;
    let body = format!("{}\n{}\n", sale(None, 1), sale(None, 2));
    let key = [("idempotency-key", "order-42-attempt")];
    let (code, first) = s.post(body.clone(), "application/x-ndjson", &key).await;
    assert_eq!(code, 202, "{first}");
    let (code, second) = s.post(body.clone(), "application/x-ndjson", &key).await;
    assert_eq!((code, ids(&second)), (202, ids(&first)), "the same answer");
    assert_eq!(s.sales().await.len(), 2, "a replayed answer appends nothing");
    let (code, v) = s.post(sale(None, 3), "application/json", &key).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_source_and_a_far_behind_store_ask_senders_to_retry_later() {
    let s = start(WebhookConfig {
        max_backlog_records: 1000,
        ..WebhookConfig::named("pos")
    })
    .await;
    s.handle.pause();
    let (code, v) = s.post(sale(None, 1), "application/json", &[]).await;
    assert_eq!(
        (
            code,
            v["error"]["code"].as_str(),
            v["retry_after_header"].as_bool()
        ),
        (503, Some("paused"), Some(true)),
        "{v}"
    );
    s.handle.resume();
    s.backlog.set(5000);
    let (code, v) = s.post(sale(None, 1), "application/json", &[]).await;
    assert_eq!(
        (
            code,
            v["error"]["code"].as_str(),
            v["retry_after_header"].as_bool()
        ),
        (503, Some("backlog"), Some(true)),
        "{v}"
    );
    s.backlog.set(10);
    let (code, _) = s.post(sale(None, 1), "application/json", &[]).await;
    assert_eq!(code, 202);
    s.shutdown.trigger();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (code, v) = s.post(sale(None, 1), "application/json", &[]).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (503, Some("stopping")),
        "{v}"
    );
    let (code, v) = s.post_to("/ingest/nope").await;
    assert_eq!(code, 404, "{v}");
}

/// The log's disk budget reached: 503 `disk_budget` with `Retry-After`, nothing appended,
/// `/health` says why; once a consumer commits past the backlog the same post is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_budget_asks_senders_to_retry_and_health_says_why() {
    let s = start_with(
        WebhookConfig::named("pos"),
        EmbeddedConfig {
            disk_budget_bytes: 8 * 1024,
            ..EmbeddedConfig::default()
        },
    )
    .await;
    let batch = |n: u32| -> String { (0..n).map(|i| sale(None, 1 + i) + "\n").collect() };
    let mut acked = HashSet::new();
    let mut key = 0;
    let refused = loop {
        key += 1;
        let (code, v) = s
            .post(
                batch(10),
                "application/x-ndjson",
                &[("idempotency-key", &format!("k{key}"))],
            )
            .await;
        match code {
            202 => acked.extend(ids(&v)),
            _ => break (code, v),
        }
        assert!(key < 1000, "the budget never held the webhook back");
    };
    let (code, v) = refused;
    assert_eq!(
        (
            code,
            v["error"]["code"].as_str(),
            v["retry_after_header"].as_bool()
        ),
        (503, Some("disk_budget"), Some(true)),
        "{v}"
    );
    let shown = s.health.snapshot()["pos"].clone();
    assert_eq!(shown.state.as_str(), "retrying");
    assert!(
        shown.detail.contains("disk budget") && shown.detail.contains("8192"),
        "{}",
        shown.detail
    );
    assert_eq!(
        s.sales().await.len(),
        acked.len(),
        "nothing of the refused post was appended"
    );

    // A consumer commits everything: the same request is accepted, and the state clears.
    let mut all = Vec::new();
    for p in 0..4 {
        let tp = retail_log::TopicPartition::new("sales", p);
        let (_, high) = s.log.watermarks(&tp).await.expect("watermarks");
        all.push((tp, high));
    }
    s.log.commit_offsets("landing", &all).await.expect("commit");
    let (code, v) = s
        .post(
            batch(10),
            "application/x-ndjson",
            &[("idempotency-key", &format!("k{key}"))],
        )
        .await;
    assert_eq!(code, 202, "{v}");
    acked.extend(ids(&v));
    assert_eq!(s.health.snapshot()["pos"].state.as_str(), "running");
    let read: HashSet<String> = s.sales().await.into_iter().filter_map(|(id, _)| id).collect();
    assert_eq!(
        read, acked,
        "every acknowledged event is on the log, and nothing else"
    );
}

impl Server {
    async fn post_to(&self, path: &str) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(sale(None, 1))
            .send()
            .await
            .expect("send");
        (resp.status().as_u16(), resp.json().await.expect("json"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_posts_ndjson_like_a_till_would() {
    let s = start(WebhookConfig::named("pos")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("batch.ndjson");
    std::fs::write(&file, format!("{}\n{}\n", sale(None, 11), sale(None, 12))).expect("write");
    let url = s.url("/ingest/pos");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "-sS",
                "-w",
                "\n%{http_code}",
                "-H",
                "Content-Type: application/x-ndjson",
                "--data-binary",
            ])
            .arg(format!("@{}", file.display()))
            .arg(url)
            .output()
    })
    .await
    .expect("join")
    .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').expect("status line");
    assert_eq!(code, "202", "{text}");
    let v: Value = serde_json::from_str(body).expect("json");
    assert_eq!(v["accepted"].as_u64(), Some(2), "{v}");
    assert_eq!(s.sales().await.len(), 2);
}

/// A log writer that stopped for good (here a segment that cannot be created: a stray file
/// already has its name) is not "retry later": the answer is 500 saying a restart is needed,
/// and /health shows the source failed with the cause, instead of 503 and `retrying` forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_log_writer_answers_500_and_the_source_shows_failed() {
    let log_config = EmbeddedConfig {
        segment_bytes: 1024,
        ..EmbeddedConfig::default()
    };
    let server = start_with(WebhookConfig::named("pos"), log_config).await;
    let (code, v) = server.post(sale(None, 1), "application/json", &[]).await;
    assert_eq!(code, 202, "{v}");
    let sales_dir = server._dir.path().join("log/sales");
    for partition in 0..4 {
        for base in 1..300 {
            std::fs::write(sales_dir.join(format!("{partition}/{base:020}.log")), b"").expect("stray");
        }
    }
    let batch: Vec<String> = (1..=200).map(|i| sale(None, i)).collect();
    let key = [("idempotency-key", "stopped-writer")];
    let (code, v) = server.post(batch.join("\n"), "application/x-ndjson", &key).await;
    assert_eq!(code, 500, "{v}");
    assert_eq!(v["error"]["code"], "log_writer_stopped", "{v}");
    let message = v["error"]["message"].as_str().expect("message");
    assert!(message.contains("restarted"), "{message}");
    let status = server.health.snapshot();
    let component = status.values().find(|c| c.detail.contains("log writer stopped"));
    let component = component.unwrap_or_else(|| panic!("no component names the stopped writer: {status:?}"));
    assert_eq!(component.state, retail_core::health::State::Failed, "{status:?}");
    assert!(
        component.detail.contains("segment creation") && component.detail.contains(".log"),
        "{component:?}"
    );
}

/// A raw HTTP/1.1 client on a real socket: sends `head` (and `body`, maybe short of what the
/// head declares) and keeps the connection open, as a slow or hostile sender does.
async fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(body).await.expect("body");
    stream.flush().await.expect("flush");
    stream
}

fn head(content_length: usize, extra: &str) -> String {
    format!(
        "POST /ingest/pos HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {content_length}\r\n{extra}\r\n"
    )
}

/// Everything the server sends until it closes the connection, or what came within `within`
/// (then `closed` is false).
async fn answer(stream: &mut tokio::net::TcpStream, within: Duration) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_gets_408_closes_the_connection_and_frees_its_slot() {
    let s = start(WebhookConfig {
        body_timeout_ms: 500,
        max_in_flight: 1,
        ..WebhookConfig::named("pos")
    })
    .await;
    let started = std::time::Instant::now();
    // The head declares 1,000 bytes; two arrive, then nothing.
    let mut slow = raw(s.addr, &head(1000, ""), b"[{").await;
    let (text, closed) = answer(&mut slow, Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
    assert!(
        text.contains("body_timeout_ms"),
        "the answer names the setting: {text}"
    );
    assert!(closed, "the server closes the connection after 408: {text}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "408 at about the body timeout (500 ms), took {took:?}"
    );
    assert_eq!(
        s.handle.counts().rejected,
        1,
        "a timed-out body counts as rejected"
    );
    // The one in-flight slot is free again: a normal post goes through.
    let (code, v) = s.post(sale(None, 1), "application/json", &[]).await;
    assert_eq!(code, 202, "{v}");
    assert_eq!(s.sales().await.len(), 1, "only the normal post is on the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_oversize_body_or_a_missing_token_is_refused_before_the_body_is_sent() {
    let token = "till-token-0123456789";
    let s = start(WebhookConfig {
        max_body_bytes: 2000,
        body_timeout_ms: 60_000,
        bearer_tokens: vec![token.to_owned()],
        ..WebhookConfig::named("pos")
    })
    .await;
    let auth = format!("Authorization: Bearer {token}\r\n");
    let mut big = raw(s.addr, &head(100_000, &auth), b"").await;
    let (text, _) = answer(&mut big, Duration::from_secs(2)).await;
    assert!(
        text.starts_with("HTTP/1.1 413"),
        "413 without the body being sent: {text}"
    );
    assert!(text.contains("too_large") && text.contains("2000"), "{text}");

    let mut anonymous = raw(s.addr, &head(1000, ""), b"").await;
    let (text, _) = answer(&mut anonymous, Duration::from_secs(2)).await;
    assert!(
        text.starts_with("HTTP/1.1 401"),
        "401 without the body being sent: {text}"
    );

    let mut plain = raw(
        s.addr,
        &head(1000, &auth).replace("application/json", "text/plain"),
        b"",
    )
    .await;
    let (text, _) = answer(&mut plain, Duration::from_secs(2)).await;
    assert!(
        text.starts_with("HTTP/1.1 415"),
        "415 without the body being sent: {text}"
    );
    assert!(s.sales().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_slot_held_by_a_slow_body_the_next_request_is_refused_at_once() {
    let s = start(WebhookConfig {
        body_timeout_ms: 60_000,
        max_in_flight: 2,
        ..WebhookConfig::named("pos")
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..2 {
        slow.push(raw(s.addr, &head(1000, ""), b"[").await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let (code, v) = tokio::time::timeout(
        Duration::from_secs(5),
        s.post(sale(None, 1), "application/json", &[]),
    )
    .await
    .expect("an answer, not a wait");
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (429, Some("too_many_requests")),
        "{v}"
    );
    assert!(v["retry_after_header"].as_bool() == Some(true), "{v}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once, took {:?}",
        started.elapsed()
    );
    // A sender that hangs up gives its slot back.
    drop(slow);
    let mut code = 0;
    for _ in 0..50 {
        code = s.post(sale(None, 2), "application/json", &[]).await.0;
        if code == 202 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(code, 202, "the slots come back when the slow senders leave");
    assert_eq!(s.sales().await.len(), 1);
}
