//! The order-lifecycle pipeline through the real binary (ADR 0023): order and payment events
//! posted to `demo`'s webhook fill `order_lifecycle`; on a quiet stream the pipeline time
//! advances with the wall clock once the partitions are idle, so an unpaid order's timeout
//! still falls due, once; a late payment resolves it; `kill -9`, a restart and the same events
//! re-sent change nothing.

mod common;

use std::time::{Duration, Instant};

use common::{demo_args, Running, TestStore};

/// Small windows so a quiet stream decides within seconds.
const CONFIG: &str = "\
[processing]
max_out_of_orderness_ms = 500
idle_timeout_ms = 500

[processing.orders]
payment_window_ms = 3000
grace_ms = 500
stuck_paid_ms = 0
stuck_packed_ms = 0
stuck_shipped_ms = 0
";

fn args(store: &TestStore) -> Vec<String> {
    let config = store.data_dir().join("orders.toml");
    std::fs::write(&config, CONFIG).expect("write config");
    let mut a = demo_args(store, 0, 1);
    a.extend(["--config".into(), config.display().to_string()]);
    a
}

fn order(id: &str, order: &str, status: &str, ts: i64) -> String {
    format!(
        "{{\"type\":\"order\",\"event_id\":\"{id}\",\"ts\":{ts},\"order_id\":\"{order}\",\"status\":\"{status}\",\
         \"amount\":\"42.50\",\"currency\":\"EUR\",\"customer_id\":\"C-1\",\"store_id\":3}}\n"
    )
}

fn payment(id: &str, order: &str, ts: i64) -> String {
    format!(
        "{{\"type\":\"payment\",\"event_id\":\"{id}\",\"ts\":{ts},\"payment_id\":\"P-{order}\",\"order_id\":\"{order}\",\
         \"amount\":\"42.50\",\"currency\":\"EUR\",\"status\":\"captured\",\"card_id\":\"card-1\"}}\n"
    )
}

async fn post(demo: &Running, body: &str) {
    let resp = reqwest::Client::new()
        .post(format!("http://{}/ingest/pos", demo.http))
        .header("content-type", "application/x-ndjson")
        .body(body.to_owned())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 202, "{:?}", resp.text().await);
}

const ROWS: &str = "SELECT order_id || ':' || coalesce(state, '-') || ':' || \
    CASE WHEN payment_timeout THEN 'timeout' ELSE 'ok' END || ':' || \
    CASE WHEN payment_late THEN 'late' ELSE 'on-time' END FROM order_lifecycle";
const ALERTS: &str = "SELECT kind || ':' || subject || ':' || \
    CASE WHEN resolved_at IS NULL THEN 'open' ELSE 'resolved' END FROM alerts";

async fn wait_for(store: &TestStore, sql: &str, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = store.texts(sql).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: waited for {want:?}, have {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn quiet_stream_times_out_once_and_survives_kill_9(store: TestStore) {
    let now = chrono::Utc::now().timestamp_millis();
    let events = [
        order(
            "01937c40-0000-7000-8000-000000000001",
            "O-PAID",
            "created",
            now - 2_000,
        ),
        payment("01937c40-0000-7000-8000-000000000002", "O-PAID", now - 1_000),
        order(
            "01937c40-0000-7000-8000-000000000003",
            "O-UNPAID",
            "created",
            now - 2_000,
        ),
    ]
    .concat();
    let mut demo = Running::start(&args(&store));
    post(&demo, &events).await;
    wait_for(
        &store,
        ROWS,
        &["O-PAID:created:ok:on-time", "O-UNPAID:created:ok:on-time"],
    )
    .await;
    // Nothing more arrives: the partitions go idle and the pipeline time moves on with the
    // wall clock until O-UNPAID's window (3 s) and grace (0.5 s) are past.
    wait_for(&store, ALERTS, &["payment_timeout:O-UNPAID:open"]).await;
    wait_for(
        &store,
        ROWS,
        &["O-PAID:created:ok:on-time", "O-UNPAID:created:timeout:on-time"],
    )
    .await;

    // kill -9, restart, the same events again: nothing changes, no second alert.
    demo.child.kill().expect("kill -9");
    let _ = demo.child.wait();
    drop(demo);
    let demo = Running::start(&args(&store));
    post(&demo, &events).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(store.texts(ALERTS).await, ["payment_timeout:O-UNPAID:open"]);
    // The payment comes after all, after its window: resolved, and late.
    post(
        &demo,
        &payment("01937c40-0000-7000-8000-000000000004", "O-UNPAID", now + 2_000),
    )
    .await;
    wait_for(
        &store,
        ROWS,
        &["O-PAID:created:ok:on-time", "O-UNPAID:created:timeout:late"],
    )
    .await;
    wait_for(&store, ALERTS, &["payment_timeout:O-UNPAID:resolved"]).await;
    drop(demo);
    store.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_quiet_stream_times_out_once_and_survives_kill_9() {
    quiet_stream_times_out_once_and_survives_kill_9(TestStore::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_quiet_stream_times_out_once_and_survives_kill_9() {
    quiet_stream_times_out_once_and_survives_kill_9(TestStore::postgres().await).await;
}

/// The real SOAP payment service of the SOAP poller's tests (node-soap, installed by
/// `./scripts/test`, which names it in `RETAIL_TEST_SOAP_SERVICE`); killed when dropped.
struct SoapService {
    child: std::process::Child,
    port: u16,
}

impl SoapService {
    fn start() -> Self {
        use std::io::BufRead;
        let dir = std::env::var("RETAIL_TEST_SOAP_SERVICE")
            .expect("RETAIL_TEST_SOAP_SERVICE is not set: run the tests with ./scripts/test, which installs the SOAP service");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../retail-source/tests/soap_service/server.js"
        );
        let mut child = std::process::Command::new("node")
            .arg(script)
            .env("NODE_PATH", std::path::Path::new(&dir).join("node_modules"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("node server.js");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the service's first line");
        let port = line
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the SOAP service did not start: {line:?}"));
        Self { child, port }
    }
}

impl Drop for SoapService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 15: the SOAP payment confirmations feed the same order-payment join. A payment polled
/// from the SOAP service pays an order posted to the webhook (no timeout, its payment id on the
/// row); the order nobody pays times out.
#[tokio::test(flavor = "multi_thread")]
async fn soap_payment_confirmations_feed_the_order_payment_join() {
    let store = TestStore::sqlite();
    let soap = SoapService::start();
    let now = chrono::Utc::now().timestamp_millis();
    let paid_at = chrono::DateTime::from_timestamp_millis(now - 1_000)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let added = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/control/payments", soap.port))
        .json(&serde_json::json!([{
            "PaymentId": "P-SOAP-1", "OrderId": "O-SOAP", "Amount": "42.50", "Currency": "EUR",
            "Status": "captured", "Timestamp": paid_at
        }]))
        .send()
        .await
        .expect("control");
    assert!(added.status().is_success());
    let config = store.data_dir().join("orders-soap.toml");
    std::fs::write(
        &config,
        format!(
            "{CONFIG}\n[[sources]]\ntype = \"soap\"\nname = \"payments\"\nendpoint = \"http://127.0.0.1:{}/soap11\"\n\
             soap_version = \"1.1\"\nsoap_action = \"urn:retail:payments/GetPayments\"\ninterval_ms = 200\n\
             backoff_initial_ms = 100\nbackoff_max_ms = 500\nrequest = \"\"\"\n\
             <soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:p=\"urn:retail:payments\">\n\
             <soap:Body><p:GetPayments><p:AfterTimestamp>{{cursor_ts}}</p:AfterTimestamp>\n\
             <p:AfterPaymentId>{{cursor_id}}</p:AfterPaymentId><p:Limit>{{limit}}</p:Limit></p:GetPayments></soap:Body>\n\
             </soap:Envelope>\n\"\"\"\n",
            soap.port
        ),
    )
    .expect("write config");
    let mut a = demo_args(&store, 0, 1);
    a.extend(["--config".into(), config.display().to_string()]);
    let demo = Running::start(&a);
    post(
        &demo,
        &[
            order(
                "01937c40-0000-7000-8000-000000000011",
                "O-SOAP",
                "created",
                now - 2_000,
            ),
            order(
                "01937c40-0000-7000-8000-000000000012",
                "O-NONE",
                "created",
                now - 2_000,
            ),
        ]
        .concat(),
    )
    .await;
    wait_for(
        &store,
        ROWS,
        &["O-NONE:created:timeout:on-time", "O-SOAP:created:ok:on-time"],
    )
    .await;
    assert_eq!(
        store
            .texts("SELECT order_id || ':' || coalesce(payment_id, '-') FROM order_lifecycle")
            .await,
        ["O-NONE:-", "O-SOAP:P-SOAP-1"]
    );
    wait_for(&store, ALERTS, &["payment_timeout:O-NONE:open"]).await;
    drop(demo);
    store.drop().await;
}
