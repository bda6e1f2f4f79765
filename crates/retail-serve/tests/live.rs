//! The dashboard's page and its live stream over real TCP: the page references only assets the
//! binary serves, the stream pushes a snapshot every second that follows the metrics, and a
//! shutdown ends open streams instead of hanging the server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use retail_core::{Health, Metrics, Shutdown};
use retail_serve::access::Access;
use retail_serve::{serve, ServeState};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

mod common;
use common::reader::FakeReader;
use common::FakeSource;

/// A server whose store is not open yet (the store's figures are checked end to end, against
/// the real stores, by retail-etl's dashboard test).
async fn start(
    metrics: &Metrics,
    access: Access,
    shutdown: &Shutdown,
) -> (
    std::net::SocketAddr,
    ServeState,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let state = ServeState::new(metrics.clone(), Health::new(), access);
    state
        .controls
        .register("generator", Arc::new(FakeSource::default()));
    let (addr, task) = serve(
        "127.0.0.1:0".parse().expect("addr"),
        state.clone(),
        shutdown.clone(),
    )
    .await
    .expect("bind");
    (addr, state, task)
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let code = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (code, out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_uses_only_its_own_assets() {
    let (metrics, shutdown) = (Metrics::new(), Shutdown::new());
    let (addr, _, task) = start(&metrics, Access::default(), &shutdown).await;
    let (code, html) = get(addr, "/").await;
    assert_eq!(code, 200);
    let parts: Vec<&str> = html.split('"').collect();
    let refs: Vec<&str> = parts
        .windows(2)
        .filter(|w| w[0].ends_with("src=") || w[0].ends_with("href="))
        .map(|w| w[1])
        .collect();
    assert!(refs.contains(&"/assets/dashboard.js"), "{refs:?}");
    assert!(refs.contains(&"/assets/dashboard.css"), "{refs:?}");
    for url in &refs {
        assert!(
            url.starts_with('/'),
            "the page must not load {url} from elsewhere"
        );
    }
    for asset in ["/assets/dashboard.js", "/assets/dashboard.css"] {
        let (code, body) = get(addr, asset).await;
        assert_eq!(code, 200, "{asset}");
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{asset} loads something from elsewhere"
        );
    }
    shutdown.trigger();
    task.await.expect("join").expect("serve");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_pushes_snapshots_that_follow_the_metrics_and_ends_at_shutdown() {
    let (metrics, shutdown) = (Metrics::new(), Shutdown::new());
    let (addr, state, task) = start(&metrics, Access::default(), &shutdown).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("write");
    let mut lines = BufReader::new(s).lines();
    let mut snapshots = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut content_type = String::new();
    while snapshots.len() < 4 {
        assert!(Instant::now() < deadline, "no snapshots in time: {snapshots:?}");
        let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .expect("a line within 5 s")
            .expect("read")
            .expect("stream open");
        if line.to_ascii_lowercase().starts_with("content-type:") {
            content_type = line.clone();
        }
        if let Some(data) = line.strip_prefix("data: ") {
            let v: serde_json::Value = serde_json::from_str(data).expect("snapshot json");
            snapshots.push(v);
            // Between snapshots, the sources accept 1000 events; then the generator is paused.
            metrics.source_accepted("generator").inc_by(1000);
            if snapshots.len() == 3 {
                state.controls.source("generator").expect("registered").pause();
            }
        }
    }
    assert!(content_type.contains("text/event-stream"), "{content_type}");
    let last = snapshots.last().expect("one");
    assert_eq!(last["accepted"], 3000.0, "{last}");
    assert!(last["in_per_s"].as_f64().expect("rate") > 0.0, "{last}");
    assert!(last["store"].is_null(), "{last}");
    assert_eq!(last["store_error"], "the store is not open yet");
    assert_eq!(last["controls"][0]["name"], "generator");
    assert_eq!(snapshots[0]["controls"][0]["paused"], false);
    assert_eq!(
        last["controls"][0]["paused"], true,
        "a pause shows in the next snapshot"
    );
    assert_eq!(last["latency_objective_ms"], 5000.0);
    let times: Vec<&str> = snapshots.iter().filter_map(|s| s["at"].as_str()).collect();
    assert!(
        times.windows(2).skip(1).all(|w| w[0] < w[1]),
        "a new snapshot each tick: {times:?}"
    );

    shutdown.trigger();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = lines.next_line().await {}
    })
    .await;
    assert!(ended.is_ok(), "an open stream must end at shutdown");
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the server stops")
        .expect("join")
        .expect("serve");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_tokens_the_stream_takes_a_read_token_from_the_query_and_the_page_stays_open() {
    let (metrics, shutdown) = (Metrics::new(), Shutdown::new());
    let access = Access::new(vec!["reader".into()], vec!["admin".into()]);
    let (addr, _, task) = start(&metrics, access, &shutdown).await;
    assert_eq!(get(addr, "/").await.0, 200, "the page carries no data");
    assert_eq!(get(addr, "/api/v1/live/snapshot").await.0, 401);
    assert_eq!(get(addr, "/api/v1/live").await.0, 401);
    assert_eq!(get(addr, "/api/v1/live?access_token=wrong").await.0, 401);
    // Only the stream takes a token in the URL.
    assert_eq!(
        get(addr, "/api/v1/live/snapshot?access_token=reader").await.0,
        401
    );

    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /api/v1/live?access_token=reader HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("write");
    let mut status = String::new();
    BufReader::new(s)
        .read_line(&mut status)
        .await
        .expect("status line");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the server stops")
        .expect("join")
        .expect("serve");
}

/// Live streams are bounded: with room for two, a third is answered 503 naming why, and once a
/// page goes away its place is free again.
#[tokio::test(flavor = "multi_thread")]
async fn live_streams_are_bounded_and_a_closed_one_frees_its_place() {
    let (metrics, shutdown) = (Metrics::new(), Shutdown::new());
    let state = ServeState::new(metrics.clone(), Health::new(), Access::default()).with_max_live_streams(2);
    let (addr, _task) = serve("127.0.0.1:0".parse().expect("addr"), state, shutdown.clone())
        .await
        .expect("bind");
    let open = || async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .expect("write");
        let mut lines = BufReader::new(s).lines();
        let status = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .expect("a status line")
            .expect("read")
            .expect("open");
        (status, lines)
    };
    let (first, first_stream) = open().await;
    let (second, _second_stream) = open().await;
    assert!(
        first.contains(" 200 ") && second.contains(" 200 "),
        "{first} / {second}"
    );
    let (third, _) = open().await;
    assert!(third.contains(" 503 "), "a third stream: {third}");
    drop(first_stream);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (again, _stream) = open().await;
        if again.contains(" 200 ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream's place never came free: {again}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.trigger();
}

/// The page's order panels come with the snapshot: every state in lifecycle order with its
/// count, the latest alerts with the open ones marked, and the stock at risk worst first.
#[tokio::test(flavor = "multi_thread")]
async fn the_snapshot_carries_orders_by_state_and_the_alert_feed() {
    let (metrics, shutdown) = (Metrics::new(), Shutdown::new());
    let (addr, state, task) = start(&metrics, Access::default(), &shutdown).await;
    let fake = Arc::new(FakeReader::default());
    state.set_reader(fake.clone());
    let (code, body) = get(addr, "/api/v1/live/snapshot").await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let store = &v["store"];
    let asked = fake.risk_filters.lock().expect("lock").clone();
    assert!(
        !asked.is_empty()
            && asked
                .iter()
                .all(|f| f.at_risk == Some(true) && f.risk_level.is_none()),
        "{asked:?}"
    );
    let states: Vec<&str> = store["orders_by_state"]
        .as_array()
        .expect("orders_by_state")
        .iter()
        .filter_map(|s| s["state"].as_str())
        .collect();
    assert_eq!(
        states,
        ["created", "paid", "packed", "shipped", "delivered", "cancelled"],
        "{v}"
    );
    assert_eq!(store["orders_by_state"][1]["orders"], 2);
    assert_eq!(store["orders_by_state"][1]["stuck"], 1);
    assert_eq!(store["orders_payment_only"], 1);
    let alerts = store["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 2);
    assert_eq!(
        (alerts[0]["open"].as_bool(), alerts[1]["open"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(alerts[0]["subject"], "O-5");
    // Stock at risk: read with the at-risk filter, as the inventory-risks endpoint would.
    let risks = store["stock_at_risk"].as_array().expect("stock_at_risk");
    assert_eq!(risks[0]["risk_level"], "stockout", "{v}");
    assert_eq!(
        (risks[0]["store_id"].as_i64(), risks[0]["sku"].as_i64()),
        (Some(3), Some(100_001))
    );
    let (_, js) = get(addr, "/assets/dashboard.js").await;
    assert!(
        js.contains("orders_by_state") && js.contains("store.alerts") && js.contains("store.stock_at_risk"),
        "the page draws them"
    );
    let (_, html) = get(addr, "/").await;
    assert!(
        html.contains("id=\"orders-by-state\"")
            && html.contains("id=\"alerts\"")
            && html.contains("id=\"stock-at-risk\""),
        "{html}"
    );
    shutdown.trigger();
    task.await.expect("join").expect("serve");
}
