//! The dashboard's page and its live stream over real TCP: the page references only assets the
//! binary serves, the stream pushes a snapshot every second that follows the metrics, and a
//! shutdown ends open streams instead of hanging the server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use retail_core::{Health, Metrics, Shutdown};
use retail_serve::live::{LiveInputs, MinutePoint, StoreFigures};
use retail_serve::{serve, ServeState};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A store that always answers with the same figures: this test is about the stream, the real
/// stores' figures are checked end to end by retail-etl's dashboard test.
#[derive(Debug)]
struct FixedStore;

#[async_trait]
impl LiveInputs for FixedStore {
    async fn store_figures(&self, _now: DateTime<Utc>) -> Option<Result<StoreFigures, String>> {
        Some(Ok(StoreFigures {
            revenue_today: 12.5,
            sales_today: 3,
            per_minute: vec![MinutePoint {
                t: 60_000,
                revenue: 12.5,
                sales: 3,
            }],
            ..StoreFigures::default()
        }))
    }

    fn controls(&self) -> serde_json::Value {
        serde_json::json!([{"name": "generator", "kind": "source", "paused": false, "rate": 10.0}])
    }
}

async fn start(
    metrics: &Metrics,
    shutdown: &Shutdown,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
    let state = ServeState {
        metrics: metrics.clone(),
        health: Health::new(),
        started: Instant::now(),
    };
    serve(
        "127.0.0.1:0".parse().expect("addr"),
        state,
        Arc::new(FixedStore),
        shutdown.clone(),
    )
    .await
    .expect("bind")
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
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
    let (addr, task) = start(&metrics, &shutdown).await;
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
    let (addr, task) = start(&metrics, &shutdown).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /api/v1/live HTTP/1.1\r\nHost: x\r\n\r\n")
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
            // Between snapshots, the sources accept 1000 events.
            metrics.source_accepted("generator").inc_by(1000);
        }
    }
    assert!(content_type.contains("text/event-stream"), "{content_type}");
    let last = snapshots.last().expect("one");
    assert_eq!(last["accepted"], 3000.0, "{last}");
    assert!(last["in_per_s"].as_f64().expect("rate") > 0.0, "{last}");
    assert_eq!(last["store"]["sales_today"], 3);
    assert_eq!(last["controls"][0]["name"], "generator");
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
