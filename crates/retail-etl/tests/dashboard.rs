//! The live dashboard in a real browser: headless Chromium (driven by Selenium through
//! chromedriver, tests/browser/dashboard.py) opens the page while `demo` lands into PostgreSQL,
//! sees the sales numbers grow, pauses the generator with the page's button and sees the ingest
//! rate drop to zero, resumes it, throttles it from the page, reads the log's topics, groups
//! and sales records in the log view, and saves screenshots at a laptop
//! and a phone width.
//! `./scripts/test` installs chromium, chromium-driver and python3-selenium.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{demo_args, Running, TestStore};

const PYTHON: &str = "/usr/bin/python3";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn require_browser() {
    assert!(
        Path::new(CHROMEDRIVER).exists() && Path::new("/usr/bin/chromium").exists(),
        "MISSING: chromium and chromedriver (apt-get install chromium chromium-driver; ./scripts/test does it)"
    );
    let selenium = Command::new(PYTHON)
        .args(["-c", "import selenium"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        selenium,
        "MISSING: Selenium for {PYTHON} (apt-get install python3-selenium; ./scripts/test does it)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_watches_sales_and_pauses_the_generator_in_a_real_browser() {
    require_browser();
    let store = TestStore::postgres().await;
    let demo = Running::start(&demo_args(&store, 400, 21));
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let shot = shots.join("dashboard.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.py");

    let out = Command::new(PYTHON)
        .arg(&script)
        .args(["--url", &format!("http://{}/", demo.http)])
        .args(["--screenshot", &shot.display().to_string()])
        .arg("--expect-store")
        .output()
        .expect("run the browser script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("the script's JSON line");
    eprintln!("browser saw: {seen}");
    assert!(seen["sales_landed_later"].as_f64() > seen["sales_landed_first"].as_f64());
    assert!(seen["sales_today"].as_f64().is_some_and(|n| n > 0.0), "{seen}");
    assert_eq!(seen["phone_horizontal_overflow_px"], 0);
    let topics = seen["log_topics"].as_array().expect("log_topics");
    for topic in ["sales", "catalog", "dead-letters"] {
        assert!(topics.iter().any(|t| t == topic), "log view topics: {seen}");
    }
    assert!(seen["browsed_records"].as_u64().is_some_and(|n| n > 0), "{seen}");

    for name in ["dashboard.png", "dashboard-paused.png", "dashboard-phone.png"] {
        let png = std::fs::read(shots.join(name)).expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    }

    // The page's buttons reached the generator: after Resume it accepts events again, at the
    // rate set on the page.
    let (_, controls) = demo.get("/api/v1/control");
    let controls: serde_json::Value =
        serde_json::from_str(&controls).unwrap_or_else(|e| panic!("{e}: {controls}"));
    let generator = &controls["controls"][0];
    assert_eq!(generator["name"], "generator", "{controls}");
    assert_eq!(generator["paused"], false, "{controls}");
    assert_eq!(generator["rate"], 150.0, "{controls}");
    let before = demo.metric("retail_source_accepted_events_total{source=\"generator\"}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while demo.metric("retail_source_accepted_events_total{source=\"generator\"}") <= before {
        assert!(Instant::now() < deadline, "the generator did not resume");
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = demo.interrupt_to_summary();
    assert_eq!(s["landed"], s["generated"], "{s:?}");
    store.drop().await;
}
