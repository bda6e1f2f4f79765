//! No secret in any output (issue 18 item 7): a store URL with a password never shows it, not
//! at start-up, not in `check-config`, not in a URL error, not on `/health`, `/metrics`, the
//! status API or the dashboard; and what clients see of a store failure is its kind, with the
//! store's own message only in the log.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{demo_args, free_port, http_call, CuttableProxy, Running, TestStore, BIN};

const PASSWORD: &str = "s3cret";

/// What clients see of a store failure ends with this; the store's message stays in the log.
const SEE_THE_LOG: &str = "the server log has the detail";

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `url` with `PASSWORD` as the user's password (PostgreSQL here trusts loopback, so any
/// password connects).
fn with_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (user, host) = rest.split_once('@').expect("a user in the test PostgreSQL URL");
    let user = user.split(':').next().unwrap_or(user);
    format!("{scheme}://{user}:{PASSWORD}@{host}")
}

fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(PASSWORD), "{what} shows the password:\n{text}");
}

/// Runs `retail-etl args` to its end, killed after `limit`.
fn run(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn retail-etl");
    let deadline = Instant::now() + limit;
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "retail-etl {args:?} did not end within {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn check_config_and_url_errors_mask_the_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pg.toml");
    std::fs::write(
        &file,
        format!(
            "[store]\nurl = \"postgres://postgres:{PASSWORD}@127.0.0.1:5432/retail?password={PASSWORD}\"\n"
        ),
    )
    .expect("write");
    let file = file.display().to_string();
    let out = run(&["check-config", &file], Duration::from_secs(30));
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secret("check-config", &text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("postgres://postgres:***@127.0.0.1:5432/retail?password=***"),
        "check-config shows the URL, masked: {}",
        text(&out)
    );

    // A mistyped scheme is refused naming the key, the file and the URL, masked.
    std::fs::write(
        &file,
        format!("[store]\nurl = \"postgress://postgres:{PASSWORD}@127.0.0.1:5432/retail\"\n"),
    )
    .expect("write");
    let out = run(&["check-config", &file], Duration::from_secs(30));
    assert!(!out.status.success());
    assert_no_secret("an unknown-scheme error", &text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("store.url") && err.contains("pg.toml") && err.contains("postgres:***@"),
        "{err}"
    );

    // A bad port fails at start, naming the option and the URL, masked.
    let data_dir = dir.path().display().to_string();
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:99999/retail");
    let out = run(
        &[
            "demo",
            "--events",
            "10",
            "--store",
            &url,
            "--data-dir",
            &data_dir,
            "--listen",
            "127.0.0.1:0",
        ],
        Duration::from_secs(60),
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert_no_secret("a bad-port error", &text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("port") && err.contains("postgres:***@127.0.0.1:99999"),
        "{err}"
    );
}

#[test]
fn an_unreachable_store_shows_clients_its_kind_and_the_log_its_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store_port, http_port) = (free_port(), free_port());
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{store_port}/retail");
    let listen = format!("127.0.0.1:{http_port}");
    let data_dir = dir.path().display().to_string();
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--rate",
            "10",
            "--store",
            &url,
            "--data-dir",
            &data_dir,
            "--listen",
            &listen,
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn retail-etl");
    let addr = listen.parse().expect("addr");
    // Nothing listens on the store's port: the store is retried, and /health says so.
    let mut health = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !health.contains("\"retrying\"") {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("/health never showed the store retrying: {health}");
        }
        std::thread::sleep(Duration::from_millis(200));
        if std::net::TcpStream::connect(addr).is_ok() {
            health = http_call(addr, "GET", "/health", None, None).1;
        }
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("output");
    assert_no_secret("/health", &health);
    let v: serde_json::Value = serde_json::from_str(&health).expect("health json");
    let detail = v["components"]["store"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(SEE_THE_LOG) && !detail.contains("127.0.0.1") && !detail.contains("refused"),
        "/health gives the kind of failure, not the store's message: {health}"
    );
    // The operator finds the store's message in the log, with the URL masked.
    let all = text(&out);
    assert_no_secret("stdout and stderr", &all);
    assert!(
        all.contains("store unavailable, retrying") && all.contains("postgres:***@127.0.0.1"),
        "{all}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_demo_never_shows_the_password() {
    let store = TestStore::postgres().await;
    let (_, db) = store.pg_parts().expect("postgres");
    // Through a proxy the test can cut, to see what clients get when the store goes away.
    let proxy = CuttableProxy::to("127.0.0.1:5432".parse().expect("addr"));
    let url = with_password(&format!("postgres://postgres@127.0.0.1:{}/{db}", proxy.port));
    let mut args = demo_args(&store, 200, 13);
    let at = args.iter().position(|a| a == "--store").expect("--store") + 1;
    args[at] = url;
    let demo = Running::start_logging(&args, "info");
    wait_until("rows to land", Duration::from_secs(60), || {
        demo.metric("retail_landing_rows_total{table=\"sales_raw\"}") > 0.0
    });
    for path in ["/health", "/metrics", "/api/v1/status", "/api/v1/live/snapshot"] {
        let (code, body) = demo.get(path);
        assert_eq!(code, 200, "GET {path}: {body}");
        assert_no_secret(path, &body);
    }

    proxy.cut();
    let mut landing = serde_json::Value::Null;
    wait_until("the landing to report retrying", Duration::from_secs(60), || {
        let (_, body) = demo.get("/health");
        assert_no_secret("/health", &body);
        landing =
            serde_json::from_str::<serde_json::Value>(&body).expect("json")["components"]["landing"].clone();
        landing["state"] == "retrying"
    });
    let detail = landing["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(SEE_THE_LOG) && !detail.contains("127.0.0.1") && !detail.contains("postgres:"),
        "/health gives the kind of store failure, not its message: {landing}"
    );
    let mut store_error = String::new();
    wait_until(
        "the dashboard to report the store failing",
        Duration::from_secs(60),
        || {
            let (_, body) = demo.get("/api/v1/live/snapshot");
            assert_no_secret("the dashboard's snapshot", &body);
            let v: serde_json::Value = serde_json::from_str(&body).expect("json");
            store_error = v["store_error"].as_str().unwrap_or_default().to_owned();
            !store_error.is_empty() && !store_error.contains("did not answer")
        },
    );
    assert!(
        store_error.contains(SEE_THE_LOG) && !store_error.contains("postgres:"),
        "the dashboard gives the kind of store failure, not its message: {store_error}"
    );

    proxy.restore();
    let out = demo.interrupt();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert_no_secret("stdout and stderr", &all);
    assert!(
        all.contains(&format!("postgres:***@127.0.0.1:{}/{db}", proxy.port)),
        "the start-up line names the store, masked: {all}"
    );
    store.drop().await;
}
