//! The API's own behaviour over real TCP, before and without a store: parameter checks (which
//! run before any query), tokens, 503 while the store is not open, the control API against a
//! registered control, and the OpenAPI document against the routes. The same endpoints with
//! data, on PostgreSQL and SQLite, are tested through the binary (`retail-etl/tests/api.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use retail_core::{Health, Metrics, Shutdown};
use retail_serve::{serve, Access, Controllable, ServeState};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::reader::{t, FakeReader};
use common::{FakeLanding, FakeReceiver, FakeSource};
use retail_sink::read::orders::{AlertFilter, OrderFilter};

const READ: &str = "read-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

struct Server {
    addr: SocketAddr,
    state: ServeState,
    shutdown: Shutdown,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn start(access: Access) -> Server {
    let shutdown = Shutdown::new();
    let state = ServeState::new(Metrics::new(), Health::new(), access);
    let (addr, _task) = serve(
        "127.0.0.1:0".parse().expect("addr"),
        state.clone(),
        shutdown.clone(),
    )
    .await
    .expect("bind");
    Server {
        addr,
        state,
        shutdown,
    }
}

/// One request; returns the status, the content type and the body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    req.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").expect("head and body");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_owned();
    (code, content_type, body.to_owned())
}

/// A JSON call.
async fn json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let (code, content_type, body) = call(addr, method, path, token, body).await;
    assert!(
        content_type.starts_with("application/json"),
        "{method} {path}: {content_type} {body}"
    );
    (
        code,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}")),
    )
}

/// Asserts the error body: status, code and the parameter named.
fn error(got: &(u16, Value), status: u16, code: &str, parameter: Option<&str>) {
    let (s, v) = got;
    assert_eq!(*s, status, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    match parameter {
        Some(p) => assert_eq!(v["error"]["parameter"], p, "{v}"),
        None => assert!(v["error"].get("parameter").is_none(), "{v}"),
    }
}

#[tokio::test]
async fn every_bad_parameter_is_a_400_naming_it() {
    let s = start(Access::default()).await;
    let cases: &[(&str, &str)] = &[
        ("/api/v1/top-sales/by-city?day=2026-13-01", "day"),
        ("/api/v1/top-sales/by-city?day=21.11.2026", "day"),
        ("/api/v1/top-sales/by-city?limit=0", "limit"),
        ("/api/v1/top-sales/by-city?limit=101", "limit"),
        ("/api/v1/top-sales/by-city?limit=ten", "limit"),
        ("/api/v1/top-sales/by-city?limit=-1", "limit"),
        ("/api/v1/top-sales/by-city?dya=2026-11-21", "dya"),
        ("/api/v1/top-sales/by-city?day=2026-11-21&day=2026-11-22", "day"),
        ("/api/v1/top-salesmen/by-country?country=de", "country"),
        ("/api/v1/top-salesmen/by-country?country=DEU", "country"),
        ("/api/v1/top-salesmen/by-country?country=", "country"),
        (
            "/api/v1/top-salesmen/by-country?window_start=yesterday",
            "window_start",
        ),
        (
            "/api/v1/top-salesmen/by-country?window_start=2026-11-21",
            "window_start",
        ),
        ("/api/v1/top-salesmen/by-country?limit=1000", "limit"),
        (
            "/api/v1/sales/per-minute?from=2026-11-21T10:00:00Z&to=2026-11-21T09:00:00Z",
            "from",
        ),
        (
            "/api/v1/sales/per-minute?from=2026-11-21T10:00:00Z&to=2026-11-21T10:00:00Z",
            "from",
        ),
        (
            "/api/v1/sales/per-minute?from=2026-11-01T00:00:00Z&to=2026-11-21T00:00:00Z",
            "to",
        ),
        ("/api/v1/sales/per-minute?from=now", "from"),
        ("/api/v1/sales/per-minute?to=2026-11-21%2010:00", "to"),
        ("/api/v1/sales/per-minute?store_id=abc", "store_id"),
        ("/api/v1/sales/per-minute?store_id=0", "store_id"),
        (
            "/api/v1/sales/per-hour?from=2026-01-01T00:00:00Z&to=2026-11-21T00:00:00Z",
            "to",
        ),
        ("/api/v1/sales/per-hour?store=1", "store"),
        (
            "/api/v1/sales/totals?from=2026-11-22T00:00:00Z&to=2026-11-21T00:00:00Z",
            "from",
        ),
        ("/api/v1/stores?limit=501", "limit"),
        ("/api/v1/stores?offset=-5", "offset"),
        ("/api/v1/stores?offset=99999999999", "offset"),
        ("/api/v1/stores/abc", "store_id"),
        ("/api/v1/stores/-3", "store_id"),
        ("/api/v1/late-events?aggregate=Robert');DROP", "aggregate"),
        ("/api/v1/late-events?aggregate=1abc", "aggregate"),
        ("/api/v1/late-events?limit=0", "limit"),
        ("/api/v1/dead-letters?limit=9999", "limit"),
        ("/api/v1/dead-letters?offset=x", "offset"),
        ("/api/v1/dead-letters/abc", "id"),
        ("/api/v1/dead-letters/0", "id"),
        ("/api/v1/dead-letters/99999999999999999999", "id"),
        ("/api/v1/status?verbose=1", "verbose"),
        ("/api/v1/control?x=1", "x"),
        ("/api/v1/top-sales/by-city?day=%ZZ", "day"),
        ("/api/v1/orders?state=lost", "state"),
        ("/api/v1/orders?state=PAID", "state"),
        ("/api/v1/orders?stuck=yes", "stuck"),
        ("/api/v1/orders?payment_timeout=1", "payment_timeout"),
        ("/api/v1/orders?store_id=0", "store_id"),
        ("/api/v1/orders?customer_id=", "customer_id"),
        ("/api/v1/orders?customer_id=C%01", "customer_id"),
        (
            "/api/v1/orders?from=2026-11-21T10:00:00Z&to=2026-11-21T09:00:00Z",
            "from",
        ),
        ("/api/v1/orders?to=tomorrow", "to"),
        ("/api/v1/orders?limit=0", "limit"),
        ("/api/v1/orders?offset=1000001", "offset"),
        ("/api/v1/orders?status=paid", "status"),
        ("/api/v1/orders/by-state?state=paid", "state"),
        ("/api/v1/orders/O%0A1", "order_id"),
        ("/api/v1/alerts?severity=high", "severity"),
        ("/api/v1/alerts?kind=Order-Stuck", "kind"),
        ("/api/v1/alerts?open=maybe", "open"),
        ("/api/v1/alerts?subject=", "subject"),
        (
            "/api/v1/alerts?from=2026-11-21T10:00:00Z&to=2026-11-21T10:00:00Z",
            "from",
        ),
        ("/api/v1/alerts?limit=501", "limit"),
        ("/api/v1/notifications/deliveries?state=failed", "state"),
        ("/api/v1/notifications/deliveries?state=SENT", "state"),
        ("/api/v1/notifications/deliveries?alert_id=O-5", "alert_id"),
        ("/api/v1/notifications/deliveries?channel=", "channel"),
        ("/api/v1/notifications/deliveries?limit=0", "limit"),
        ("/api/v1/notifications/deliveries?kind=fraud", "kind"),
    ];
    for (path, parameter) in cases {
        let got = json(s.addr, "GET", path, None, None).await;
        error(&got, 400, "invalid_parameter", Some(parameter));
        let message = got.1["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(
            message.contains(parameter) || *parameter == "query",
            "{path}: the message must name {parameter}: {message}"
        );
    }
    let got = json(
        s.addr,
        "POST",
        "/api/v1/dead-letters/x/resubmit",
        None,
        Some("{}"),
    )
    .await;
    error(&got, 400, "invalid_parameter", Some("id"));
    let long = format!("/api/v1/orders/{}", "x".repeat(257));
    let got = json(s.addr, "GET", &long, None, None).await;
    error(&got, 400, "invalid_parameter", Some("order_id"));
    let fine = format!("/api/v1/orders/{}", "x".repeat(256));
    error(
        &json(s.addr, "GET", &fine, None, None).await,
        503,
        "unavailable",
        None,
    );
}

#[tokio::test]
async fn the_api_is_503_until_the_store_is_open_and_404_off_the_map() {
    let s = start(Access::default()).await;
    for path in [
        "/api/v1/top-sales/by-city",
        "/api/v1/top-salesmen/by-country?country=DE",
        "/api/v1/sales/per-minute",
        "/api/v1/sales/per-hour?store_id=1",
        "/api/v1/sales/totals",
        "/api/v1/stores",
        "/api/v1/stores/1",
        "/api/v1/late-events",
        "/api/v1/dead-letters",
        "/api/v1/dead-letters/1",
        "/api/v1/orders",
        "/api/v1/orders/O-1",
        "/api/v1/orders/by-state",
        "/api/v1/alerts?open=true",
    ] {
        let got = json(s.addr, "GET", path, None, None).await;
        error(&got, 503, "unavailable", None);
        assert!(
            got.1["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("store is not open"),
            "{path}: {}",
            got.1
        );
    }
    let got = json(
        s.addr,
        "POST",
        "/api/v1/dead-letters/1/resubmit",
        None,
        Some("{}"),
    )
    .await;
    error(&got, 503, "unavailable", None);
    let got = json(s.addr, "POST", "/api/v1/control/landing/pause", None, None).await;
    error(&got, 503, "unavailable", None);
    // Status answers while the pipeline opens, and says what is missing.
    let (code, status) = json(s.addr, "GET", "/api/v1/status", None, None).await;
    assert_eq!(code, 200);
    assert_eq!(status["store"]["open"], false);
    assert!(status["landing"].is_null() && status["log"].is_null(), "{status}");
    for path in ["/api/v1/nope", "/api/v2/top-sales/by-city", "/api"] {
        let got = json(s.addr, "GET", path, None, None).await;
        error(&got, 404, "not_found", None);
    }
}

#[tokio::test]
async fn tokens_guard_reads_and_admin_routes_but_not_health_metrics_or_docs() {
    let s = start(Access::new(vec![READ.into()], vec![ADMIN.into()])).await;
    let read_route = "/api/v1/status";
    let admin_route = "/api/v1/control/landing/pause";
    let got = json(s.addr, "GET", read_route, None, None).await;
    error(&got, 401, "unauthorized", None);
    let got = json(s.addr, "GET", read_route, Some("wrong-token-0123456789"), None).await;
    error(&got, 401, "unauthorized", None);
    assert_eq!(json(s.addr, "GET", read_route, Some(READ), None).await.0, 200);
    assert_eq!(json(s.addr, "GET", read_route, Some(ADMIN), None).await.0, 200);
    let got = json(s.addr, "POST", admin_route, None, None).await;
    error(&got, 401, "unauthorized", None);
    let got = json(s.addr, "POST", admin_route, Some(READ), None).await;
    error(&got, 403, "forbidden", None);
    let got = json(
        s.addr,
        "POST",
        "/api/v1/dead-letters/1/resubmit",
        Some(READ),
        Some("{}"),
    )
    .await;
    error(&got, 403, "forbidden", None);
    let got = json(
        s.addr,
        "PUT",
        "/api/v1/control/sources/g/rate",
        Some(READ),
        Some("{\"rate\": 1}"),
    )
    .await;
    error(&got, 403, "forbidden", None);
    // Past the token check, the admin route answers for itself (no landing registered yet).
    let got = json(s.addr, "POST", admin_route, Some(ADMIN), None).await;
    error(&got, 503, "unavailable", None);
    for path in ["/health", "/metrics", "/api/openapi.json", "/docs"] {
        assert_eq!(
            call(s.addr, "GET", path, None, None).await.0,
            200,
            "{path} must stay open"
        );
    }
}

#[tokio::test]
async fn control_acts_on_the_registered_controls() {
    let s = start(Access::default()).await;
    let source = Arc::new(FakeSource::default());
    let landing = Arc::new(FakeLanding::default());
    s.state.controls.register("pos", source.clone());
    s.state.controls.register("landing", landing.clone());

    let (code, list) = json(s.addr, "GET", "/api/v1/control", None, None).await;
    assert_eq!(code, 200);
    assert_eq!(list["controls"][0]["name"], "pos");
    assert_eq!(list["controls"][0]["kind"], "source");
    assert_eq!(list["controls"][1]["kind"], "landing");
    assert!(list["controls"][1]["rate"].is_null());

    let (code, st) = json(s.addr, "POST", "/api/v1/control/sources/pos/pause", None, None).await;
    assert_eq!((code, &st["paused"]), (200, &Value::Bool(true)));
    assert!(source.is_paused());
    let (_, st) = json(s.addr, "POST", "/api/v1/control/sources/pos/resume", None, None).await;
    assert_eq!(st["paused"], false);
    assert!(!source.is_paused());
    let (code, st) = json(
        s.addr,
        "PUT",
        "/api/v1/control/sources/pos/rate",
        None,
        Some("{\"rate\": 250.5}"),
    )
    .await;
    assert_eq!((code, st["rate"].as_f64()), (200, Some(250.5)));
    assert_eq!(source.rate(), Some(250.5));
    let (_, list) = json(s.addr, "GET", "/api/v1/control", None, None).await;
    assert_eq!(list["controls"][0]["rate"].as_f64(), Some(250.5));
    let (_, st) = json(s.addr, "POST", "/api/v1/control/landing/pause", None, None).await;
    assert_eq!(
        (st["name"].as_str(), st["paused"].as_bool()),
        (Some("landing"), Some(true))
    );
    assert!(landing.is_paused());
    json(s.addr, "POST", "/api/v1/control/landing/resume", None, None).await;
    assert!(!landing.is_paused());

    let got = json(s.addr, "POST", "/api/v1/control/sources/nope/pause", None, None).await;
    error(&got, 404, "not_found", Some("name"));
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("pos"),
        "lists the sources: {}",
        got.1
    );
    let got = json(
        s.addr,
        "POST",
        "/api/v1/control/sources/landing/pause",
        None,
        None,
    )
    .await;
    error(&got, 404, "not_found", Some("name"));
    for bad in [
        "{\"rate\": -1}",
        "{\"rate\": \"fast\"}",
        "{\"rate\": 1e12}",
        "{}",
        "rate=5",
        "",
        "{\"rate\": 5, \"burst\": 1}",
        "{\"rate\": 5, \"unlimited\": true}",
        "{\"unlimited\": false}",
    ] {
        let got = json(s.addr, "PUT", "/api/v1/control/sources/pos/rate", None, Some(bad)).await;
        error(&got, 400, "invalid_parameter", Some("rate"));
    }
    assert_eq!(source.rate(), Some(250.5), "a refused rate changes nothing");
    // What the document's oneOf allows besides the plain forms is accepted.
    for fine in [
        "{\"rate\": 7, \"unlimited\": false}",
        "{\"unlimited\": true, \"rate\": null}",
    ] {
        let got = json(
            s.addr,
            "PUT",
            "/api/v1/control/sources/pos/rate",
            None,
            Some(fine),
        )
        .await;
        assert_eq!(got.0, 200, "{fine}: {}", got.1);
    }
    let got = json(
        s.addr,
        "PUT",
        "/api/v1/control/sources/pos/rate",
        None,
        Some("{\"rate\": 250.5}"),
    )
    .await;
    assert_eq!(got.0, 200);
    // A well-formed rate for a source without one conflicts with its state: 409, not 400 (the
    // OpenAPI document declares the body valid).
    s.state
        .controls
        .register("hook", Arc::new(FakeReceiver::default()));
    let got = json(
        s.addr,
        "PUT",
        "/api/v1/control/sources/hook/rate",
        None,
        Some("{\"rate\": 5}"),
    )
    .await;
    error(&got, 409, "conflict", None);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("has no rate")),
        "{}",
        got.1
    );
    let got = json(
        s.addr,
        "PUT",
        "/api/v1/control/sources/nope/rate",
        None,
        Some("{\"rate\": 5}"),
    )
    .await;
    error(&got, 404, "not_found", Some("name"));
    // Wrong method on a known path: 405, not a silent success.
    assert_eq!(
        call(s.addr, "GET", "/api/v1/control/sources/pos/pause", None, None)
            .await
            .0,
        405
    );
}

/// Every operation in the document answers (none is a dead entry), the router is built only
/// from documented handlers (`routes!`), and the issue's endpoints are all there.
#[tokio::test]
async fn the_openapi_document_covers_every_route() {
    let s = start(Access::default()).await;
    let (code, doc) = json(s.addr, "GET", "/api/openapi.json", None, None).await;
    assert_eq!(code, 200);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        assert!(path.starts_with("/api/v1/"), "{path}");
        for (method, op) in item.as_object().expect("path item") {
            if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            for key in ["summary", "responses", "tags"] {
                assert!(op.get(key).is_some(), "{method} {path} has no {key}");
            }
            assert!(
                op["responses"].get("400").is_some()
                    || op["responses"].get("404").is_some()
                    || op["responses"].get("503").is_some(),
                "{method} {path} documents no error response"
            );
            // Fill path parameters with something the handler will refuse or not find.
            let concrete = path
                .replace("{id}", "1")
                .replace("{store_id}", "1")
                .replace("{name}", "x")
                .replace("{order_id}", "O-1");
            if concrete == retail_serve::api::LIVE_STREAM_PATH {
                // A stream that does not end: routed is all this test can ask of it
                // (tests/live.rs reads it).
                continue;
            }
            let (code, _, body) = call(s.addr, &method.to_uppercase(), &concrete, None, Some("{}")).await;
            assert!(
                code != 405 && !body.contains("no API endpoint"),
                "{method} {path} is documented but not routed: {code} {body}"
            );
        }
    }
    // The router is made only of `routes!(handler)` entries, one per operation.
    let source = include_str!("../src/api/mod.rs");
    assert_eq!(
        source.matches(".routes(routes!(").count(),
        operations,
        "one routes!() per documented operation"
    );
    assert!(
        !source.contains(".route(\""),
        "an API route added with .route() would be missing from the document"
    );
    for expected in [
        "/api/v1/top-sales/by-city",
        "/api/v1/top-salesmen/by-country",
        "/api/v1/sales/per-minute",
        "/api/v1/sales/per-hour",
        "/api/v1/stores",
        "/api/v1/late-events",
        "/api/v1/dead-letters",
        "/api/v1/dead-letters/{id}",
        "/api/v1/dead-letters/{id}/resubmit",
        "/api/v1/status",
        "/api/v1/live",
        "/api/v1/live/snapshot",
        "/api/v1/control",
        "/api/v1/control/sources/{name}/pause",
        "/api/v1/control/sources/{name}/resume",
        "/api/v1/control/sources/{name}/rate",
        "/api/v1/control/landing/pause",
        "/api/v1/control/landing/resume",
        "/api/v1/lineage",
        "/api/v1/orders",
        "/api/v1/orders/{order_id}",
        "/api/v1/orders/by-state",
        "/api/v1/alerts",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }
}

/// `/docs` is Swagger UI from the binary: every asset the page names is local and served.
#[tokio::test]
async fn the_docs_page_uses_only_local_assets() {
    let s = start(Access::default()).await;
    let (code, content_type, html) = call(s.addr, "GET", "/docs", None, None).await;
    assert_eq!(code, 200);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let url = part.split('"').next().unwrap_or_default();
            assert!(url.starts_with("/docs/"), "the page loads {url} from elsewhere");
            assets.push(url.to_owned());
        }
    }
    assert!(
        assets.iter().any(|a| a.ends_with("swagger-ui-bundle.js")),
        "{assets:?}"
    );
    assert!(assets.iter().any(|a| a.ends_with("swagger-ui.css")), "{assets:?}");
    assert!(!html.contains("http://") && !html.contains("https://"), "{html}");
    for asset in &assets {
        let (code, _, body) = call(s.addr, "GET", asset, None, None).await;
        assert_eq!(code, 200, "{asset}");
        assert!(!body.is_empty(), "{asset}");
    }
    let (_, _, init) = call(s.addr, "GET", "/docs/init.js", None, None).await;
    assert!(init.contains("\"/api/openapi.json\""), "{init}");
    assert!(
        init.contains("validatorUrl: null"),
        "the online validator badge must be off: {init}"
    );
}

#[derive(Debug)]
struct FakeLineage;

impl retail_serve::LineageView for FakeLineage {
    fn graph(&self) -> retail_serve::LineageGraph {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        retail_serve::LineageGraph {
            namespace: "retail-etl".into(),
            jobs: vec![retail_serve::LineageJob {
                id: "job:retail-etl:landing".into(),
                name: "landing".into(),
                kind: "landing".into(),
                source_type: None,
                run: retail_serve::LineageRun {
                    id: "019acd7e-1b2c-7d3e-8f40-123456789abc".into(),
                    state: "RUNNING".into(),
                    started_at: at,
                    updated_at: at,
                    error: None,
                },
            }],
            datasets: vec![retail_serve::LineageDataset {
                id: "dataset:sqlite:///x.db:sales_raw".into(),
                namespace: "sqlite:///x.db".into(),
                name: "sales_raw".into(),
                kind: "table".into(),
            }],
            edges: vec![retail_serve::LineageEdge {
                from: "job:retail-etl:landing".into(),
                to: "dataset:sqlite:///x.db:sales_raw".into(),
                records: Some(3),
            }],
        }
    }
}

/// The lineage graph is a read endpoint: 503 until the pipeline provides it, then the graph,
/// with the same token rules as the other reads.
#[tokio::test]
async fn the_lineage_graph_is_a_read_endpoint() {
    let s = start(Access::new(vec![READ.into()], vec![ADMIN.into()])).await;
    let (code, _, body) = call(s.addr, "GET", "/api/v1/lineage", Some(READ), None).await;
    assert_eq!(code, 503, "{body}");
    s.state.set_lineage(Arc::new(FakeLineage));
    let (code, _, _) = call(s.addr, "GET", "/api/v1/lineage", None, None).await;
    assert_eq!(code, 401);
    let (code, _, _) = call(s.addr, "GET", "/api/v1/lineage?x=1", Some(READ), None).await;
    assert_eq!(code, 400);
    for token in [READ, ADMIN] {
        let (code, _, body) = call(s.addr, "GET", "/api/v1/lineage", Some(token), None).await;
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["jobs"][0]["run"]["state"], "RUNNING", "{v}");
        assert_eq!(v["edges"][0]["records"], 3, "{v}");
        assert_eq!(v["jobs"][0]["run"]["started_at"], "2023-11-14T22:13:20Z", "{v}");
    }
}

/// The event types with their versions and Avro schemas, and the schema registry under
/// `/schema-registry`: 503 until the registry is open, reads with a read token, registering with
/// an admin token only, Confluent's answers (issue 16).
#[tokio::test]
async fn event_types_and_the_schema_registry_follow_the_api_rules() {
    use retail_schema::{builtin, MemoryStore, SchemaRegistry};
    let s = start(Access::new(vec![READ.into()], vec![ADMIN.into()])).await;
    let (code, _, body) = call(s.addr, "GET", "/schema-registry/subjects", Some(READ), None).await;
    assert_eq!(code, 503, "{body}");
    let registry = SchemaRegistry::open(Arc::new(MemoryStore::new()), &builtin::subjects())
        .await
        .expect("registry");
    s.state.set_schemas(Arc::new(registry));

    let (code, v) = json(s.addr, "GET", "/api/v1/event-types", Some(READ), None).await;
    assert_eq!(code, 200, "{v}");
    let order = v
        .as_array()
        .expect("a list")
        .iter()
        .find(|t| t["type"] == "order")
        .expect("order");
    assert_eq!(order["current_version"], 2, "{order}");
    let versions = order["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2);
    assert!(versions[0]["changes"].is_null());
    assert!(
        versions[1]["changes"]
            .as_str()
            .is_some_and(|c| c.contains("channel")),
        "{order}"
    );
    assert_eq!(versions[1]["avro"]["subject"], "orders-value");
    assert_eq!(versions[1]["avro"]["subject_version"], 2);
    let v2_id = versions[1]["avro"]["id"].as_u64().expect("an id");
    let catalog = v
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["type"] == "store")
        .expect("store");
    assert!(
        catalog["versions"][0]["avro"].is_null(),
        "the catalog stays JSON: {catalog}"
    );
    let (code, _, _) = call(s.addr, "GET", "/api/v1/event-types", None, None).await;
    assert_eq!(code, 401);

    let (code, _, body) = call(s.addr, "GET", "/schema-registry/subjects", Some(READ), None).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("orders-value"), "{body}");
    let (code, _, body) = call(
        s.addr,
        "GET",
        &format!("/schema-registry/schemas/ids/{v2_id}"),
        Some(READ),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("channel"), "{body}");
    let (code, _, _) = call(s.addr, "GET", "/schema-registry/subjects", None, None).await;
    assert_eq!(code, 401, "reads need a token");
    let schema = r#"{"schema": "{\"type\":\"record\",\"name\":\"Order\",\"namespace\":\"retail.events\",\"fields\":[{\"name\":\"order_id\",\"type\":\"long\"}]}"}"#;
    let path = "/schema-registry/subjects/orders-value/versions";
    let (code, _, body) = call(s.addr, "POST", path, Some(READ), Some(schema)).await;
    assert_eq!(code, 403, "registering needs an admin token: {body}");
    let (code, _, body) = call(s.addr, "POST", path, Some(ADMIN), Some(schema)).await;
    assert_eq!(code, 409, "{body}");
    let refused: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(refused["error_code"], 409);
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("`order_id`")),
        "{refused}"
    );
}

/// An open API (no tokens) cannot be driven by a web page the operator visits: a cross-site
/// POST to a control route and a request to a rebound host name are refused with 403, while
/// curl (no `Origin`) and the dashboard (its own origin) get through to the handler.
#[tokio::test]
async fn an_open_api_refuses_cross_site_control_and_foreign_host_names() {
    let s = start(Access::default()).await;
    let raw = |request: String| async move {
        let mut c = tokio::net::TcpStream::connect(s.addr).await.expect("connect");
        c.write_all(request.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        c.read_to_end(&mut out).await.expect("read");
        let out = String::from_utf8_lossy(&out).into_owned();
        let code: u16 = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status");
        (code, out)
    };
    let pause = |host: &str, extra: &str| {
        format!(
            "POST /api/v1/control/landing/pause HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    };
    let (code, out) = raw(pause("127.0.0.1", "Origin: http://evil.example\r\n")).await;
    assert_eq!(code, 403, "{out}");
    assert!(out.contains("cross-site request refused"), "{out}");
    let (code, out) = raw(pause("127.0.0.1", "Sec-Fetch-Site: cross-site\r\n")).await;
    assert_eq!(code, 403, "{out}");
    let (code, out) = raw(pause("evil.example", "Origin: http://evil.example\r\n")).await;
    assert_eq!(code, 403, "a rebound name: {out}");
    let (code, out) = raw(format!(
        "GET /api/v1/status HTTP/1.1\r\nHost: rebound.example:{}\r\nConnection: close\r\n\r\n",
        s.addr.port()
    ))
    .await;
    assert_eq!(code, 403, "reads through a rebound name too: {out}");
    assert!(out.contains("loopback host"), "{out}");
    // Past the check, the handler answers for itself (no landing registered: 503).
    let (code, out) = raw(pause("127.0.0.1", "")).await;
    assert_eq!(code, 503, "curl: {out}");
    let own = format!("Origin: http://127.0.0.1:{}\r\n", s.addr.port());
    let (code, out) = raw(pause(&format!("127.0.0.1:{}", s.addr.port()), &own)).await;
    assert_eq!(code, 503, "the dashboard's own origin: {out}");
}

fn keys(v: &Value) -> std::collections::BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

/// The properties the OpenAPI document declares for a schema.
fn schema_keys(doc: &Value, name: &str) -> std::collections::BTreeSet<String> {
    keys(&doc["components"]["schemas"][name]["properties"])
}

/// Orders: the query parameters become the reader's filter, the page has the document's
/// shape, money is a JSON number, time in state is pipeline time minus `state_since`, and an
/// order's events keep their payload's own digits; an unknown order is a 404 naming it.
#[tokio::test]
async fn orders_answer_with_the_filters_shapes_and_pipeline_time() {
    let s = start(Access::default()).await;
    let fake = Arc::new(FakeReader::default());
    s.state.set_reader(fake.clone());
    s.state.set_landing_group("landing");
    let (_, doc) = json(s.addr, "GET", "/api/openapi.json", None, None).await;

    let (code, page) = json(
        s.addr,
        "GET",
        "/api/v1/orders?state=paid&customer_id=C-2&store_id=3&stuck=true&payment_timeout=false\
         &from=2026-11-21T00:00:00Z&to=2026-11-22T01:00:00%2B01:00&limit=1",
        None,
        None,
    )
    .await;
    assert_eq!(code, 200, "{page}");
    assert_eq!(
        fake.order_filters.lock().expect("lock").last(),
        Some(&OrderFilter {
            state: Some("paid".into()),
            customer_id: Some("C-2".into()),
            store_id: Some(3),
            stuck: Some(true),
            payment_timeout: Some(false),
            from: Some(t("2026-11-21T00:00:00Z")),
            to: Some(t("2026-11-22T00:00:00Z")),
        })
    );
    assert_eq!(keys(&page), schema_keys(&doc, "OrderPage"));
    assert_eq!(page["pipeline_time"], "2026-11-22T00:00:00Z");
    assert_eq!(
        (
            page["limit"].as_u64(),
            page["offset"].as_u64(),
            page["next_offset"].as_u64()
        ),
        (Some(1), Some(0), Some(1))
    );
    let o = &page["items"][0];
    assert_eq!(keys(o), schema_keys(&doc, "Order"), "{o}");
    assert_eq!(o["order_id"], "O-5");
    assert!(
        o["amount"].is_number() && o["amount"].as_f64() == Some(19.99),
        "{o}"
    );
    assert_eq!(o["created_at"], "2026-11-21T10:01:00Z");
    assert_eq!(o["state_since"], "2026-11-21T10:01:00Z");
    assert_eq!(o["packed_at"], Value::Null);
    assert_eq!(o["stuck_state"], "paid");
    assert_eq!(o["payment_timeout"], false);
    // 2026-11-22T00:00 (pipeline time) - 2026-11-21T10:01 = 13 h 59 min.
    assert_eq!(o["time_in_state_ms"].as_i64(), Some((13 * 60 + 59) * 60_000));

    let (code, last) = json(s.addr, "GET", "/api/v1/orders?limit=1&offset=1", None, None).await;
    assert_eq!(code, 200, "{last}");
    assert_eq!(
        fake.order_filters.lock().expect("lock").last(),
        Some(&OrderFilter::default()),
        "no parameter, no filter"
    );
    let o = &last["items"][0];
    assert_eq!(
        (o["order_id"].as_str(), o["state"].is_null()),
        (Some("O-3"), true)
    );
    assert!(o["time_in_state_ms"].is_null(), "no state, no time in it: {o}");
    assert!(last["next_offset"].is_null(), "{last}");

    let (code, content_type, body) = call(s.addr, "GET", "/api/v1/orders/O%2D5", None, None).await;
    assert_eq!(code, 200, "{body}");
    assert!(content_type.starts_with("application/json"), "{content_type}");
    assert!(
        body.contains(r#""amount":19.990"#),
        "the payload keeps its digits: {body}"
    );
    let detail: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(detail["order_id"], "O-5");
    assert_eq!(detail["pipeline_time"], "2026-11-22T00:00:00Z");
    assert_eq!(detail["time_in_state_ms"].as_i64(), Some((13 * 60 + 59) * 60_000));
    let events = detail["events"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(keys(&events[0]), schema_keys(&doc, "OrderEvent"));
    assert_eq!(
        (events[0]["type"].as_str(), events[1]["type"].as_str()),
        (Some("order"), Some("payment"))
    );
    assert_eq!(events[1]["payload"]["status"], "captured");
    assert_eq!(events[0]["ts"], "2026-11-21T10:01:00Z");

    let got = json(s.addr, "GET", "/api/v1/orders/O-9", None, None).await;
    error(&got, 404, "not_found", Some("order_id"));
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("O-9")),
        "{}",
        got.1
    );

    let (code, by_state) = json(s.addr, "GET", "/api/v1/orders/by-state", None, None).await;
    assert_eq!(code, 200, "{by_state}");
    assert_eq!(keys(&by_state), schema_keys(&doc, "OrdersByState"));
    let states: Vec<(&str, i64, i64)> = by_state["states"]
        .as_array()
        .expect("states")
        .iter()
        .map(|s| {
            (
                s["state"].as_str().unwrap_or_default(),
                s["orders"].as_i64().unwrap_or(-1),
                s["stuck"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("created", 4, 0),
            ("paid", 2, 1),
            ("packed", 0, 0),
            ("shipped", 0, 0),
            ("delivered", 0, 0),
            ("cancelled", 0, 0),
        ],
        "every state in lifecycle order, zero included"
    );
    assert_eq!(
        (by_state["payment_only"].as_i64(), by_state["total"].as_i64()),
        (Some(1), Some(7))
    );
    assert!(fake
        .clock_asks
        .lock()
        .expect("lock")
        .iter()
        .all(|(g, p)| g == "landing" && p == "orders"));
}

/// Before the binary says which group's pipeline clock to read, orders still answer, without
/// a time in state.
#[tokio::test]
async fn without_the_landing_group_there_is_no_time_in_state() {
    let s = start(Access::default()).await;
    s.state.set_reader(Arc::new(FakeReader::default()));
    let (code, page) = json(s.addr, "GET", "/api/v1/orders", None, None).await;
    assert_eq!(code, 200, "{page}");
    assert!(page["pipeline_time"].is_null(), "{page}");
    assert!(page["items"][0]["time_in_state_ms"].is_null(), "{page}");
    assert_eq!(page["items"][0]["state"], "paid");
}

/// Alerts: filters reach the reader, `open` says whether `resolved_at` is null, the shape is
/// the document's.
#[tokio::test]
async fn alerts_answer_with_the_filters_and_shapes() {
    let s = start(Access::new(vec![READ.into()], vec![ADMIN.into()])).await;
    let fake = Arc::new(FakeReader::default());
    s.state.set_reader(fake.clone());
    let (_, doc) = json(s.addr, "GET", "/api/openapi.json", None, None).await;
    let path = "/api/v1/alerts?kind=order_stuck&severity=warning&subject=O-5&open=true\
                &from=2026-11-21T00:00:00Z&to=2026-11-22T00:00:00Z&limit=5&offset=0";
    error(
        &json(s.addr, "GET", path, None, None).await,
        401,
        "unauthorized",
        None,
    );
    let (code, page) = json(s.addr, "GET", path, Some(READ), None).await;
    assert_eq!(code, 200, "{page}");
    assert_eq!(
        fake.alert_filters.lock().expect("lock").last(),
        Some(&AlertFilter {
            kind: Some("order_stuck".into()),
            severity: Some("warning".into()),
            subject: Some("O-5".into()),
            open: Some(true),
            from: Some(t("2026-11-21T00:00:00Z")),
            to: Some(t("2026-11-22T00:00:00Z")),
        })
    );
    assert_eq!(keys(&page), schema_keys(&doc, "AlertPage"));
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(keys(&items[0]), schema_keys(&doc, "Alert"));
    assert_eq!(
        (items[0]["open"].as_bool(), items[0]["resolved_at"].is_null()),
        (Some(true), true)
    );
    assert_eq!(items[0]["at"], "2026-11-21T22:01:00Z");
    assert_eq!(
        (items[1]["open"].as_bool(), items[1]["resolved_at"].as_str()),
        (Some(false), Some("2026-11-21T10:40:00Z"))
    );
    assert!(page["next_offset"].is_null(), "{page}");
    let (code, _) = json(s.addr, "GET", "/api/v1/alerts?open=false", Some(READ), None).await;
    assert_eq!(code, 200);
    assert_eq!(
        fake.alert_filters
            .lock()
            .expect("lock")
            .last()
            .and_then(|f| f.open),
        Some(false)
    );
}

/// `GET /api/v1/inventory-risks`: read access, every filter handed to the reader, a bad level or
/// flag a 400 naming the parameter, and the shape of the OpenAPI schema (a series that sells
/// nothing has `days_of_cover: null`, not 0).
#[tokio::test]
async fn inventory_risks_answer_with_the_filters_and_shapes() {
    use retail_sink::read::orders::RiskFilter;

    let s = start(Access::new(vec![READ.into()], vec![ADMIN.into()])).await;
    let fake = Arc::new(FakeReader::default());
    s.state.set_reader(fake.clone());
    let (_, doc) = json(s.addr, "GET", "/api/openapi.json", None, None).await;
    let path = "/api/v1/inventory-risks?risk_level=stockout&store_id=3&at_risk=true&limit=5";
    error(
        &json(s.addr, "GET", path, None, None).await,
        401,
        "unauthorized",
        None,
    );
    let (code, page) = json(s.addr, "GET", path, Some(READ), None).await;
    assert_eq!(code, 200, "{page}");
    assert_eq!(
        fake.risk_filters.lock().expect("lock").last(),
        Some(&RiskFilter {
            risk_level: Some("stockout".into()),
            store_id: Some(3),
            at_risk: Some(true),
        })
    );
    assert_eq!(keys(&page), schema_keys(&doc, "RiskPage"));
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(keys(&items[0]), schema_keys(&doc, "InventoryRisk"));
    assert_eq!(items[0]["risk_level"], "stockout");
    assert_eq!(items[0]["projected_on_hand"], 0);
    assert!(items[1]["days_of_cover"].is_null(), "{page}");
    let (code, body) = json(
        s.addr,
        "GET",
        "/api/v1/inventory-risks?risk_level=dire",
        Some(READ),
        None,
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.to_string().contains("risk_level"), "{body}");
    let (code, body) = json(
        s.addr,
        "GET",
        "/api/v1/inventory-risks?at_risk=maybe",
        Some(READ),
        None,
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.to_string().contains("at_risk"), "{body}");
}

/// `GET /api/v1/fraud-alerts`: read access, the filters handed to the reader, the payment ids
/// as a JSON array, the OpenAPI schema's shape, a bad rule name a 400 naming it.
#[tokio::test]
async fn fraud_alerts_answer_with_their_payments() {
    use retail_sink::read::orders::FraudAlertFilter;

    let s = start(Access::new(vec![READ.into()], vec![ADMIN.into()])).await;
    let fake = Arc::new(FakeReader::default());
    s.state.set_reader(fake.clone());
    let (_, doc) = json(s.addr, "GET", "/api/openapi.json", None, None).await;
    let path = "/api/v1/fraud-alerts?rule=tiny_then_large&key=card-7f3a&from=2026-11-21T00:00:00Z&limit=5";
    error(
        &json(s.addr, "GET", path, None, None).await,
        401,
        "unauthorized",
        None,
    );
    let (code, page) = json(s.addr, "GET", path, Some(READ), None).await;
    assert_eq!(code, 200, "{page}");
    assert_eq!(
        fake.fraud_filters.lock().expect("lock").last(),
        Some(&FraudAlertFilter {
            rule: Some("tiny_then_large".into()),
            key: Some("card-7f3a".into()),
            from: Some(t("2026-11-21T00:00:00Z")),
            to: None,
        })
    );
    assert_eq!(keys(&page), schema_keys(&doc, "FraudAlertPage"));
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(keys(&items[0]), schema_keys(&doc, "FraudAlert"));
    assert_eq!(
        items[0]["payment_ids"],
        serde_json::json!(["P-000101-1", "P-000102-1"])
    );
    let (code, body) = json(
        s.addr,
        "GET",
        "/api/v1/fraud-alerts?rule=Bad-Rule",
        Some(READ),
        None,
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.to_string().contains("rule"), "{body}");
}

/// `GET /api/v1/notifications/deliveries`: read access, every filter handed to the reader (the
/// alert id in lower case), the OpenAPI schema's shape with its nulls, the documented
/// `alert_id` pattern the one the server checks, and a bad state or alert id a 400 naming it.
#[tokio::test]
async fn notification_deliveries_answer_with_the_filters_and_shapes() {
    use retail_serve::api::params::UUID_PATTERN;
    use retail_sink::read::notifications::DeliveryFilter;

    let s = start(Access::new(vec![READ.into()], vec![ADMIN.into()])).await;
    let fake = Arc::new(FakeReader::default());
    s.state.set_reader(fake.clone());
    let (_, doc) = json(s.addr, "GET", "/api/openapi.json", None, None).await;
    let path = "/api/v1/notifications/deliveries?channel=hook&state=pending\
                &alert_id=0B7E6C3A-52B8-5A3C-9D55-0D1E2F3A4B5C&limit=2";
    error(
        &json(s.addr, "GET", path, None, None).await,
        401,
        "unauthorized",
        None,
    );
    let (code, page) = json(s.addr, "GET", path, Some(READ), None).await;
    assert_eq!(code, 200, "{page}");
    assert_eq!(
        fake.delivery_filters.lock().expect("lock").last(),
        Some(&DeliveryFilter {
            channel: Some("hook".into()),
            state: Some("pending".into()),
            alert_id: Some("0b7e6c3a-52b8-5a3c-9d55-0d1e2f3a4b5c".into()),
        })
    );
    assert_eq!(keys(&page), schema_keys(&doc, "DeliveryPage"));
    assert_eq!(
        (
            page["limit"].as_u64(),
            page["offset"].as_u64(),
            page["next_offset"].as_u64()
        ),
        (Some(2), Some(0), Some(2))
    );
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(keys(&items[0]), schema_keys(&doc, "Delivery"), "{}", items[0]);
    let pending = &items[0];
    assert_eq!(
        (pending["state"].as_str(), pending["attempts"].as_i64()),
        (Some("pending"), Some(2))
    );
    assert_eq!(
        (pending["kind"].as_str(), pending["subject"].as_str()),
        (Some("order_stuck"), Some("O-5"))
    );
    assert_eq!(pending["alert_at"], "2026-11-21T22:01:00Z");
    assert_eq!(pending["next_attempt_at"], "2026-11-21T23:00:30Z");
    assert!(pending["finished_at"].is_null(), "{pending}");
    assert!(pending["duplicate_of"].is_null(), "{pending}");
    let dead = &items[1];
    assert_eq!(dead["state"], "dead");
    assert_eq!(dead["last_error"], "SMTP 550 mailbox unavailable");
    assert!(dead["next_attempt_at"].is_null(), "{dead}");
    assert_eq!(dead["finished_at"], "2026-11-21T23:20:00Z");

    let (code, last) = json(
        s.addr,
        "GET",
        "/api/v1/notifications/deliveries?offset=2",
        Some(READ),
        None,
    )
    .await;
    assert_eq!(code, 200, "{last}");
    assert_eq!(
        fake.delivery_filters.lock().expect("lock").last(),
        Some(&DeliveryFilter::default()),
        "no parameter, no filter"
    );
    let suppressed = &last["items"][0];
    assert_eq!(suppressed["state"], "suppressed");
    assert_eq!(suppressed["duplicate_of"], "2d9a8e5c-74da-5c5e-9f77-2f3a4b5c6d7e");
    assert!(last["next_offset"].is_null(), "{last}");

    let op = &doc["paths"]["/api/v1/notifications/deliveries"]["get"];
    let documented = |name: &str| {
        op["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["schema"]["pattern"].as_str())
            .map(str::to_owned)
    };
    assert_eq!(documented("alert_id").as_deref(), Some(UUID_PATTERN));
    assert_eq!(
        documented("state").as_deref(),
        Some("^(pending|sent|dead|suppressed)$")
    );

    for (query, parameter) in [
        ("state=retrying", "state"),
        ("alert_id=not-a-uuid", "alert_id"),
        ("alert_id=0b7e6c3a52b85a3c9d550d1e2f3a4b5c", "alert_id"),
        ("alert_id=%7B0b7e6c3a-52b8-5a3c-9d55-0d1e2f3a4b5c%7D", "alert_id"),
        ("channel=a%00b", "channel"),
    ] {
        let got = json(
            s.addr,
            "GET",
            &format!("/api/v1/notifications/deliveries?{query}"),
            Some(READ),
            None,
        )
        .await;
        error(&got, 400, "invalid_parameter", Some(parameter));
        assert!(
            got.1["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(parameter)),
            "{query}: {}",
            got.1
        );
    }
}
