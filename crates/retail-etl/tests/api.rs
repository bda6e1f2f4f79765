//! The REST API of the running binary, on SQLite and on PostgreSQL: every endpoint answers with
//! the data the generator produced, bad parameters are 400s naming them, a dead letter fixed
//! and resubmitted through the API lands exactly once, the control API pauses, resumes and
//! re-rates the generator, tokens guard the API, and an open API refuses to leave loopback.
//! The parameter checks in full are in `retail-serve/tests/api.rs`; here they run once more
//! against a real store.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{demo_args, free_port, http_call, Running, TestStore, BIN};
use serde_json::{json, Value};

fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn args(store: &TestStore, extra: &[&str]) -> Vec<String> {
    let mut a = demo_args(store, 300, 11);
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    a
}

fn items(v: &Value) -> &Vec<Value> {
    v["items"].as_array().unwrap_or_else(|| panic!("no items in {v}"))
}

fn bad(demo: &Running, path: &str, parameter: &str) {
    let (code, v) = demo.json("GET", path, None, None);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (400, Some("invalid_parameter")),
        "{path}: {v}"
    );
    assert_eq!(v["error"]["parameter"], parameter, "{path}: {v}");
}

/// Every read endpoint against data the generator made, and the bad parameters of each.
async fn read_endpoints(store: TestStore) {
    let demo = Running::start(&args(
        &store,
        &["--malformed-fraction", "0.05", "--late-fraction", "0.05"],
    ));
    wait_for("sales in the aggregates", Duration::from_secs(60), || {
        let v = demo.ok("/api/v1/sales/totals");
        (v["sales"].as_i64() > Some(20)).then_some(())
    });

    let cities = demo.ok("/api/v1/top-sales/by-city?limit=5");
    let list = items(&cities);
    assert!(!list.is_empty() && list.len() <= 5, "{cities}");
    assert_eq!(list[0]["rank"], 1);
    let revenues: Vec<f64> = list
        .iter()
        .map(|c| c["revenue"].as_f64().expect("revenue"))
        .collect();
    assert!(
        revenues.windows(2).all(|w| w[0] >= w[1]),
        "ranked by revenue: {revenues:?}"
    );
    let day = cities["day"].as_str().expect("day").to_owned();
    assert_eq!(
        items(&demo.ok(&format!("/api/v1/top-sales/by-city?day={day}&limit=1"))).len(),
        1
    );
    assert!(items(&demo.ok("/api/v1/top-sales/by-city?day=2001-01-01")).is_empty());

    let sellers = demo.ok("/api/v1/top-salesmen/by-country?limit=3");
    let country = items(&sellers)[0]["country"]
        .as_str()
        .expect("country")
        .to_owned();
    let one = demo.ok(&format!(
        "/api/v1/top-salesmen/by-country?country={country}&limit=2"
    ));
    assert!(
        items(&one)
            .iter()
            .all(|s| s["country"] == country.as_str() && s["rank"].as_i64() <= Some(2)),
        "{one}"
    );
    let window = one["window_start"].as_str().expect("window").to_owned();
    let again = demo.ok(&format!(
        "/api/v1/top-salesmen/by-country?country={country}&window_start={}",
        window.replace('+', "%2B")
    ));
    assert_eq!(again["window_start"], window.as_str(), "{again}");
    assert!(
        items(&again).iter().all(|s| s["country"] == country.as_str()),
        "{again}"
    );
    assert!(items(&demo.ok("/api/v1/top-salesmen/by-country?country=ZZ")).is_empty());

    let minutes = demo.ok("/api/v1/sales/per-minute");
    let buckets = items(&minutes);
    assert!(
        !buckets.is_empty() && buckets.iter().all(|b| b["store_id"].is_null()),
        "{minutes}"
    );
    let starts: Vec<&str> = buckets
        .iter()
        .map(|b| b["window_start"].as_str().expect("start"))
        .collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "ordered: {starts:?}");
    let store1 = demo.ok("/api/v1/sales/per-minute?store_id=1");
    assert!(items(&store1).iter().all(|b| b["store_id"] == 1), "{store1}");
    let hours = demo.ok("/api/v1/sales/per-hour?store_id=1");
    assert_eq!(hours["grain"], "hour");
    let (code, v) = demo.json("GET", "/api/v1/sales/per-minute?store_id=99999", None, None);
    assert_eq!(
        (code, v["error"]["parameter"].as_str()),
        (404, Some("store_id")),
        "{v}"
    );

    let stores = demo.ok("/api/v1/stores?limit=2");
    assert_eq!(items(&stores).len(), 2);
    assert_eq!(stores["next_offset"], 2);
    let next = demo.ok("/api/v1/stores?limit=2&offset=2");
    assert_ne!(items(&next)[0]["store_id"], items(&stores)[0]["store_id"]);
    let first = demo.ok("/api/v1/stores/1");
    assert_eq!(first["store_id"], 1);
    assert!(
        first["city"].is_string() && first["revenue"].is_number(),
        "{first}"
    );
    let (code, _) = demo.json("GET", "/api/v1/stores/99999", None, None);
    assert_eq!(code, 404);

    let dead = wait_for("dead letters", Duration::from_secs(30), || {
        let v = demo.ok("/api/v1/dead-letters?limit=1");
        (!items(&v).is_empty()).then_some(v)
    });
    let id = items(&dead)[0]["id"].as_i64().expect("id");
    let detail = demo.ok(&format!("/api/v1/dead-letters/{id}"));
    assert!(
        detail["raw"].is_string() && detail["reason"].is_string(),
        "{detail}"
    );
    let (code, v) = demo.json("GET", "/api/v1/dead-letters/987654321", None, None);
    assert_eq!((code, v["error"]["parameter"].as_str()), (404, Some("id")), "{v}");

    let late = wait_for("late events", Duration::from_secs(60), || {
        let v = demo.ok("/api/v1/late-events?aggregate=sales_agg_minute&limit=5");
        (!items(&v).is_empty()).then_some(v)
    });
    assert!(
        items(&late).iter().all(|e| e["aggregate"] == "sales_agg_minute"),
        "{late}"
    );

    let status = demo.ok("/api/v1/status");
    assert_eq!(status["store"]["open"], true);
    let kind = if store.pg_parts().is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(status["store"]["kind"], kind);
    assert!(
        status["store"]["counts"]["dead_letters"].as_i64() > Some(0),
        "{status}"
    );
    assert_eq!(status["sources"][0]["name"], "generator");
    assert!(status["landing"]["records"].as_u64() > Some(0), "{status}");
    assert!(
        status["log"]["partitions"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{status}"
    );
    assert_eq!(status["landing"]["latency_objective_ms"], 5000.0);

    bad(&demo, "/api/v1/top-sales/by-city?day=2026-02-30", "day");
    bad(&demo, "/api/v1/top-sales/by-city?limit=1000", "limit");
    bad(
        &demo,
        "/api/v1/top-salesmen/by-country?country=germany",
        "country",
    );
    bad(
        &demo,
        "/api/v1/top-salesmen/by-country?window_start=last-week",
        "window_start",
    );
    bad(
        &demo,
        "/api/v1/sales/per-hour?from=2026-11-21T10:00:00Z&to=2026-11-21T09:00:00Z",
        "from",
    );
    bad(&demo, "/api/v1/dead-letters?limit=501", "limit");
    bad(&demo, "/api/v1/late-events?aggregate=x;y", "aggregate");

    let out = demo.interrupt();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no API tokens configured") && stderr.contains("loopback only"),
        "{stderr}"
    );
    store.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_read_endpoints() {
    read_endpoints(TestStore::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_read_endpoints() {
    read_endpoints(TestStore::postgres().await).await;
}

/// A malformed sale lands as a dead letter; its fixed payload, POSTed back, lands in
/// `sales_raw` exactly once, and the dead letter shows it was resubmitted.
async fn resubmit_a_fixed_dead_letter(store: TestStore) {
    let demo = Running::start(&args(&store, &["--malformed-fraction", "0.2"]));
    // A dead letter of a sale with its store_id missing or its qty mistyped: fixable JSON.
    let (id, mut fixed) = wait_for("a fixable dead letter", Duration::from_secs(60), || {
        let page = demo.ok("/api/v1/dead-letters?limit=100");
        items(&page).iter().find_map(|d| {
            let reason = d["reason"].as_str()?;
            if !(reason.starts_with("store_id:") || reason.starts_with("qty:")) {
                return None;
            }
            let id = d["id"].as_i64()?;
            let detail = demo.ok(&format!("/api/v1/dead-letters/{id}"));
            let raw: Value = serde_json::from_str(detail["raw"].as_str()?).ok()?;
            Some((id, raw))
        })
    });
    fixed["store_id"] = json!(1);
    fixed["qty"] = json!(2);
    let event_id = fixed["event_id"].as_str().expect("event_id").to_owned();
    assert!(
        !store.sales_ids().await.contains(&event_id),
        "the broken sale must not have landed"
    );
    let path = format!("/api/v1/dead-letters/{id}/resubmit");

    // Still broken, or not JSON: refused, naming what is wrong; nothing is marked.
    let mut still_broken = fixed.clone();
    still_broken["qty"] = json!("two");
    let (code, v) = demo.json("POST", &path, None, Some(&still_broken.to_string()));
    assert_eq!(
        (code, v["error"]["parameter"].as_str()),
        (400, Some("body.qty")),
        "{v}"
    );
    let (code, v) = demo.json("POST", &path, None, Some("{\"type\": \"sale\", "));
    assert_eq!(
        (code, v["error"]["parameter"].as_str()),
        (400, Some("body")),
        "{v}"
    );
    assert!(demo.ok(&format!("/api/v1/dead-letters/{id}"))["resubmitted_at"].is_null());

    let (code, v) = demo.json("POST", &path, None, Some(&fixed.to_string()));
    assert_eq!(code, 202, "{v}");
    assert_eq!(
        (v["event_id"].as_str(), v["topic"].as_str()),
        (Some(event_id.as_str()), Some("sales"))
    );
    wait_for("the fixed sale in sales_raw", Duration::from_secs(30), || {
        block_on(store.sales_ids()).contains(&event_id).then_some(())
    });
    let detail = demo.ok(&format!("/api/v1/dead-letters/{id}"));
    assert!(detail["resubmitted_at"].is_string(), "{detail}");
    // A second resubmit is refused: the event cannot be appended twice by mistake.
    let (code, v) = demo.json("POST", &path, None, Some(&fixed.to_string()));
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{v}"
    );
    let (code, _) = demo.json(
        "POST",
        "/api/v1/dead-letters/987654321/resubmit",
        None,
        Some(&fixed.to_string()),
    );
    assert_eq!(code, 404);

    demo.interrupt_to_summary();
    // `sales_ids` fails on any duplicate row; the fixed sale is there once.
    assert!(store.sales_ids().await.contains(&event_id));
    store.drop().await;
}

/// Runs a future to completion from inside a blocking probe (the tests' runtime is
/// multi-threaded, so blocking one worker here is fine).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_resubmit_a_fixed_dead_letter() {
    resubmit_a_fixed_dead_letter(TestStore::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_resubmit_a_fixed_dead_letter() {
    resubmit_a_fixed_dead_letter(TestStore::postgres().await).await;
}

/// A resubmit whose process died after the append but before the dead letter was marked
/// (the state is made by clearing the mark in the store): the operator's retry is taken, and
/// a fixed event without an `event_id` gets the same derived id both times, so it lands once.
#[tokio::test(flavor = "multi_thread")]
async fn a_resubmit_retried_after_a_crash_before_its_mark_lands_once() {
    let store = TestStore::sqlite();
    let demo = Running::start(&args(&store, &["--malformed-fraction", "0.2"]));
    let (id, mut fixed) = wait_for("a fixable dead letter", Duration::from_secs(60), || {
        let page = demo.ok("/api/v1/dead-letters?limit=100");
        items(&page).iter().find_map(|d| {
            let reason = d["reason"].as_str()?;
            if !(reason.starts_with("store_id:") || reason.starts_with("qty:")) {
                return None;
            }
            let id = d["id"].as_i64()?;
            let detail = demo.ok(&format!("/api/v1/dead-letters/{id}"));
            let raw: Value = serde_json::from_str(detail["raw"].as_str()?).ok()?;
            Some((id, raw))
        })
    });
    fixed["store_id"] = json!(1);
    fixed["qty"] = json!(2);
    fixed.as_object_mut().expect("object").remove("event_id");
    let path = format!("/api/v1/dead-letters/{id}/resubmit");
    let (code, first) = demo.json("POST", &path, None, Some(&fixed.to_string()));
    assert_eq!(code, 202, "{first}");
    let event_id = first["event_id"].as_str().expect("event_id").to_owned();
    wait_for("the fixed sale in sales_raw", Duration::from_secs(30), || {
        block_on(store.sales_ids()).contains(&event_id).then_some(())
    });
    let TestStore::Sqlite { dir } = &store else {
        unreachable!("sqlite")
    };
    rusqlite::Connection::open(dir.path().join("retail.db"))
        .expect("open")
        .execute(
            "UPDATE dead_letters SET resubmitted_at = NULL WHERE id = ?1",
            [id],
        )
        .expect("clears the mark");
    let (code, again) = demo.json("POST", &path, None, Some(&fixed.to_string()));
    assert_eq!(code, 202, "the retry is taken: {again}");
    assert_eq!(
        again["event_id"].as_str(),
        Some(event_id.as_str()),
        "the same derived id"
    );
    std::thread::sleep(Duration::from_secs(2));
    let conn = rusqlite::Connection::open(dir.path().join("retail.db")).expect("open");
    let rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM sales_raw WHERE event_id = ?1",
            [&event_id],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(rows, 1, "landed once");
    assert!(demo.ok(&format!("/api/v1/dead-letters/{id}"))["resubmitted_at"].is_string());
    drop(demo);
    store.drop().await;
}

fn generator(demo: &Running) -> Value {
    let list = demo.ok("/api/v1/control");
    list["controls"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "generator"))
        .cloned()
        .unwrap_or_else(|| panic!("no generator in {list}"))
}

/// Pausing the generator through the API stops its accepted counter; resuming starts it
/// again; a new rate shows in the list; the landing pauses and resumes too.
#[tokio::test(flavor = "multi_thread")]
async fn control_pauses_resumes_and_rerates_the_generator() {
    let store = TestStore::sqlite();
    let demo = Running::start(&args(&store, &[]));
    let accepted = |d: &Running| generator(d)["accepted"].as_u64().expect("accepted");
    wait_for("the generator to run", Duration::from_secs(30), || {
        (accepted(&demo) > 0).then_some(())
    });

    let (code, v) = demo.json("POST", "/api/v1/control/sources/generator/pause", None, None);
    assert_eq!((code, v["paused"].as_bool()), (200, Some(true)), "{v}");
    // An append in flight when the pause came may still count; after that, nothing moves.
    std::thread::sleep(Duration::from_millis(500));
    let paused_at = accepted(&demo);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(accepted(&demo), paused_at, "a paused generator must not append");
    assert_eq!(generator(&demo)["paused"], true);

    let (code, v) = demo.json("POST", "/api/v1/control/sources/generator/resume", None, None);
    assert_eq!((code, v["paused"].as_bool()), (200, Some(false)), "{v}");
    wait_for("the generator to append again", Duration::from_secs(30), || {
        (accepted(&demo) > paused_at).then_some(())
    });

    let (code, v) = demo.json(
        "PUT",
        "/api/v1/control/sources/generator/rate",
        None,
        Some("{\"rate\": 37}"),
    );
    assert_eq!((code, v["rate"].as_f64()), (200, Some(37.0)), "{v}");
    assert_eq!(generator(&demo)["rate"].as_f64(), Some(37.0));

    // Rate 0 means no events (not "unlimited"); unlimited is asked for explicitly.
    let (code, v) = demo.json(
        "PUT",
        "/api/v1/control/sources/generator/rate",
        None,
        Some("{\"rate\": 0}"),
    );
    assert_eq!((code, v["rate"].as_f64()), (200, Some(0.0)), "{v}");
    std::thread::sleep(Duration::from_millis(300));
    let stopped_at = accepted(&demo);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(accepted(&demo), stopped_at, "rate 0 must append nothing");
    let (code, v) = demo.json(
        "PUT",
        "/api/v1/control/sources/generator/rate",
        None,
        Some("{\"unlimited\": true}"),
    );
    assert_eq!(
        (code, v["unlimited"].as_bool(), v["rate"].is_null()),
        (200, Some(true), true),
        "{v}"
    );
    let (code, _) = demo.json(
        "PUT",
        "/api/v1/control/sources/generator/rate",
        None,
        Some("{\"rate\": 37}"),
    );
    assert_eq!(code, 200);
    let (code, v) = demo.json(
        "PUT",
        "/api/v1/control/sources/generator/rate",
        None,
        Some("{\"rate\": -3}"),
    );
    assert_eq!(
        (code, v["error"]["parameter"].as_str()),
        (400, Some("rate")),
        "{v}"
    );
    let (code, v) = demo.json("POST", "/api/v1/control/sources/pos-7/pause", None, None);
    assert_eq!(
        (code, v["error"]["parameter"].as_str()),
        (404, Some("name")),
        "{v}"
    );

    let (code, v) = demo.json("POST", "/api/v1/control/landing/pause", None, None);
    assert_eq!((code, v["paused"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(demo.ok("/api/v1/status")["landing"]["paused"], true);
    std::thread::sleep(Duration::from_millis(500));
    let landed = demo.ok("/api/v1/status")["landing"]["records"].as_u64();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        demo.ok("/api/v1/status")["landing"]["records"].as_u64(),
        landed,
        "a paused landing must not land"
    );
    demo.json("POST", "/api/v1/control/landing/resume", None, None);
    wait_for("the landing to land again", Duration::from_secs(30), || {
        (demo.ok("/api/v1/status")["landing"]["records"].as_u64() > landed).then_some(())
    });
    demo.interrupt_to_summary();
    store.drop().await;
}

/// With tokens configured: no token 401, a read token reads but cannot act (403), an admin
/// token acts; nothing says the API is open.
#[tokio::test(flavor = "multi_thread")]
async fn tokens_from_the_configuration_guard_the_api() {
    let store = TestStore::sqlite();
    let config = store.data_dir().join("tokens.toml");
    std::fs::write(
        &config,
        "[serve]\nread_tokens = [\"reader-0123456789abcdef\"]\nadmin_tokens = [\"admin-0123456789abcdef\"]\n",
    )
    .expect("write config");
    let demo = Running::start(&args(&store, &["--config", &config.display().to_string()]));
    let (code, v) = demo.json("GET", "/api/v1/status", None, None);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{v}"
    );
    let (code, _) = demo.json("GET", "/api/v1/status", Some("reader-0123456789abcdef"), None);
    assert_eq!(code, 200);
    let pause = "/api/v1/control/sources/generator/pause";
    let (code, v) = demo.json("POST", pause, Some("reader-0123456789abcdef"), None);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let (code, v) = demo.json("POST", pause, Some("admin-0123456789abcdef"), None);
    assert_eq!((code, v["paused"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(demo.get("/health").0, 200, "health stays open");
    let out = demo.interrupt();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("no API tokens"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    store.drop().await;
}

/// `[serve.jwt]` through the binary: the HS256 secret and the JWKS file of the config verify
/// tokens signed with the test keys of `retail-serve/tests/keys/`, mapped to read and admin.
#[tokio::test(flavor = "multi_thread")]
async fn jwts_from_the_configured_keys_guard_the_api() {
    use jsonwebtoken::{encode, get_current_timestamp, Algorithm, EncodingKey, Header};
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/../retail-serve/tests/keys");
    let secret = "an-hs256-secret-of-at-least-32-bytes";
    let store = TestStore::sqlite();
    let config = store.data_dir().join("jwt.toml");
    std::fs::write(
        &config,
        format!(
            "[serve.jwt]\nhs256_secret = \"{secret}\"\njwks_file = \"{keys}/jwks.json\"\naudience = \"retail-api\"\n"
        ),
    )
    .expect("write config");
    let demo = Running::start(&args(&store, &["--config", &config.display().to_string()]));
    let claims =
        |role: &str, aud: &str| json!({"aud": aud, "exp": get_current_timestamp() + 300, "roles": [role]});
    let hs = |c: &Value| {
        let key = EncodingKey::from_secret(secret.as_bytes()).expect("key");
        encode(&Header::new(Algorithm::HS256), c, &key).expect("sign")
    };
    let pem = std::fs::read(format!("{keys}/rsa.pem")).expect("rsa.pem");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let rs_admin = encode(
        &header,
        &claims("admin", "retail-api"),
        &EncodingKey::from_rsa_pem(&pem).expect("key"),
    )
    .expect("sign");
    let read = hs(&claims("read", "retail-api"));
    let (code, _) = demo.json("GET", "/api/v1/status", None, None);
    assert_eq!(code, 401, "a JWT config closes the API");
    assert_eq!(demo.json("GET", "/api/v1/status", Some(&read), None).0, 200);
    let pause = "/api/v1/control/sources/generator/pause";
    let (code, v) = demo.json("POST", pause, Some(&read), None);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let (code, v) = demo.json("POST", pause, Some(&rs_admin), None);
    assert_eq!((code, v["paused"].as_bool()), (200, Some(true)), "{v}");
    let (code, v) = demo.json("GET", "/api/v1/status", Some(&hs(&claims("read", "other"))), None);
    assert_eq!(code, 401, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("wrong audience")),
        "{v}"
    );
    let out = demo.interrupt();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("no API tokens"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    store.drop().await;
}

/// Without tokens the binary refuses to listen beyond loopback, naming the key.
#[tokio::test(flavor = "multi_thread")]
async fn an_open_api_refuses_a_non_loopback_address() {
    let store = TestStore::sqlite();
    let mut a = demo_args(&store, 10, 1);
    let at = a.iter().position(|x| x == "127.0.0.1:0").expect("listen arg");
    a[at] = "0.0.0.0:0".to_owned();
    let out = Command::new(BIN)
        .args(&a)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run retail-etl");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("serve.listen") && stderr.contains("loopback"),
        "{stderr}"
    );
}

/// While the store cannot be reached the server answers, and the API says it waits for it.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_is_503_while_the_store_is_unreachable() {
    let store = TestStore::sqlite();
    let port = free_port();
    let unreachable = format!("postgres://postgres@127.0.0.1:{}/nowhere", free_port());
    let mut a = demo_args(&store, 10, 1);
    let at = a.iter().position(|x| x == "127.0.0.1:0").expect("listen arg");
    a[at] = format!("127.0.0.1:{port}");
    let at = a.iter().position(|x| x == "--store").expect("store arg") + 1;
    a[at] = unreachable;
    let mut child = Command::new(BIN)
        .args(&a)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let got = wait_for("the server to answer", Duration::from_secs(30), || {
        std::net::TcpStream::connect(addr).ok()?;
        Some(http_call(addr, "GET", "/api/v1/top-sales/by-city", None, None))
    });
    let _ = child.kill();
    let _ = child.wait();
    let (code, body) = got;
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("store is not open"),
        "{v}"
    );
}
