//! The server answers /health and /metrics over real TCP on a port the OS picks.

use retail_core::health::State;
use retail_core::{Health, Metrics, Shutdown};
use retail_serve::{serve, ServeState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
        .expect("status line");
    (code, out)
}

#[tokio::test]
async fn health_reports_components_and_turns_503_on_failure() {
    let (metrics, health, shutdown) = (Metrics::new(), Health::new(), Shutdown::new());
    health.set("landing", State::Running, "");
    let state = ServeState::new(metrics.clone(), health.clone(), retail_serve::Access::default());
    let (addr, task) = serve("127.0.0.1:0".parse().expect("addr"), state, shutdown.clone())
        .await
        .expect("bind");

    let (code, body) = get(addr, "/health").await;
    assert_eq!(code, 200);
    assert!(body.contains(r#""landing":{"state":"running"}"#), "{body}");

    health.set("store", State::Failed, "connection refused");
    let (code, body) = get(addr, "/health").await;
    assert_eq!(code, 503);
    let json: serde_json::Value =
        serde_json::from_str(body.split("\r\n\r\n").nth(1).expect("body")).expect("json");
    assert_eq!(json["status"], "failed");
    assert_eq!(json["components"]["store"]["state"], "failed");
    assert_eq!(json["components"]["store"]["detail"], "connection refused");

    metrics.landing_rows("sales_raw").inc_by(5);
    let (code, body) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        body.contains("retail_landing_rows_total{table=\"sales_raw\"} 5"),
        "{body}"
    );
    assert!(body.contains("retail_uptime_seconds"), "{body}");

    shutdown.trigger();
    task.await.expect("join").expect("serve");
}
