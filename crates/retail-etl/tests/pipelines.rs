//! The retail pipelines against an oracle: `demo` runs the whole retail world (sales, web
//! orders with their payments and anomalies, ERP stock) over 72 hours of event time, with
//! duplicates, disorder and late sales, is killed with `kill -9` in the middle and run again to
//! the end. Then every row of `order_lifecycle` and `inventory_risks`, and every order and stock
//! alert, must equal an independent recomputation: a brute-force fold over the landed events
//! sorted by event time, written here from the definitions in the README and ADRs 0023 and
//! 0024, not from the engine's code. Both stores.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{summary, TestStore, BIN};
use rust_decimal::Decimal;
use serde_json::Value;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
/// `[processing.orders]` defaults.
const PAYMENT_WINDOW: i64 = 30 * MIN;
const GRACE: i64 = MIN;
const STUCK: [(usize, i64); 3] = [(1, 12 * HOUR), (2, 24 * HOUR), (3, 96 * HOUR)];
/// `[processing.stock]` defaults.
const VELOCITY_DAYS: i64 = 7;
const LEAD_DEFAULT: i64 = 3;
const SAFETY: i64 = 3;
const STATES: [&str; 6] = ["created", "paid", "packed", "shipped", "delivered", "cancelled"];
const LEVELS: [&str; 4] = ["ok", "low", "critical", "stockout"];

fn events() -> u64 {
    std::env::var("RETAIL_TEST_PIPELINE_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn args(store: &TestStore) -> Vec<String> {
    [
        "demo",
        "--events",
        &events().to_string(),
        "--seed",
        "23",
        "--duplicate-fraction",
        "0.01",
        "--out-of-order-fraction",
        "0.05",
        "--late-fraction",
        "0.002",
        "--store",
        &store.url(),
        "--data-dir",
        &store.data_dir().display().to_string(),
        "--listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// `retail-etl` with [`args`]. An alerts-topic delivery claimed by the process killed with
/// `kill -9` is due again only when its lease runs out (60 s by default, longer than this
/// test): a shorter lease, and a drain at stop that waits for it, let the next runs send it.
fn demo(store: &TestStore) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args(store))
        .env("RUST_LOG", "warn")
        .env("RETAIL__NOTIFICATIONS__LEASE_MS", "15000")
        .env("RETAIL__NOTIFICATIONS__DRAIN_MS", "20000");
    command
}

fn is_pg(store: &TestStore) -> bool {
    store.url().starts_with("postgres")
}

/// A timestamp column as text both stores give alike: epoch ms on PostgreSQL, ISO on SQLite.
fn ts_sql(store: &TestStore, col: &str) -> String {
    if is_pg(store) {
        format!("coalesce((extract(epoch from {col}) * 1000)::bigint::text, '')")
    } else {
        format!("coalesce({col}, '')")
    }
}

fn ms(text: &str) -> Option<i64> {
    if text.is_empty() {
        return None;
    }
    text.parse::<i64>().ok().or_else(|| {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.timestamp_millis())
    })
}

async fn clock(store: &TestStore, pipeline: &str) -> i64 {
    let sql = format!(
        "SELECT {} FROM pipeline_clock WHERE pipeline = '{pipeline}'",
        ts_sql(store, "time")
    );
    let rows = store.texts(&sql).await;
    assert_eq!(rows.len(), 1, "one {pipeline} clock: {rows:?}");
    ms(&rows[0]).expect("clock time")
}

/// The landed order, payment and inventory events, as JSON.
async fn landed_events(store: &TestStore) -> Vec<Value> {
    let payload = if is_pg(store) { "payload::text" } else { "payload" };
    store
        .texts(&format!(
            "SELECT {payload} FROM events_raw WHERE event_type IN ('order', 'payment', 'inventory')"
        ))
        .await
        .iter()
        .map(|p| serde_json::from_str(p).expect("payload JSON"))
        .collect()
}

fn ts_of(e: &Value) -> i64 {
    match &e["ts"] {
        Value::Number(n) => n.as_i64().expect("ts ms"),
        Value::String(s) => ms(s).expect("ts"),
        other => panic!("ts {other}"),
    }
}

fn text(e: &Value, k: &str) -> String {
    e[k].as_str().unwrap_or_default().to_owned()
}

/// The expected order rows and order alerts at pipeline time `t`.
#[derive(Default)]
struct Order {
    milestones: [Option<i64>; 6],
    /// (ts, payment_id) of the earliest authorized or captured payment.
    payment: Option<(i64, String)>,
}

fn expected_orders(events: &[Value], t: i64) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut orders: BTreeMap<String, Order> = BTreeMap::new();
    for e in events {
        let o = orders.entry(text(e, "order_id")).or_default();
        let ts = ts_of(e);
        match e["type"].as_str() {
            Some("order") => {
                let i = STATES
                    .iter()
                    .position(|s| *s == text(e, "status"))
                    .expect("status");
                o.milestones[i] = Some(o.milestones[i].map_or(ts, |m: i64| m.min(ts)));
            }
            Some("payment") if matches!(e["status"].as_str(), Some("authorized" | "captured")) => {
                let p = (ts, text(e, "payment_id"));
                if o.payment.as_ref().is_none_or(|q| p < *q) {
                    o.payment = Some(p);
                }
            }
            _ => {}
        }
    }
    orders.remove("");
    let mut rows = BTreeSet::new();
    let mut alerts = BTreeSet::new();
    for (id, o) in &orders {
        let state = if o.milestones[5].is_some() && o.milestones[4].is_none() {
            Some(5)
        } else {
            (0..5).rev().find(|&i| o.milestones[i].is_some())
        };
        let due = o.milestones[0].map(|c| c + PAYMENT_WINDOW);
        let timeout = due.is_some_and(|due| {
            due + GRACE <= t
                && o.milestones[5].is_none_or(|c| c > due)
                && o.payment.as_ref().is_none_or(|p| p.0 > due)
        });
        let late = matches!((due, &o.payment), (Some(due), Some(p)) if p.0 > due);
        let mut stuck_now = "-".to_owned();
        for (s, limit) in STUCK {
            let Some(since) = o.milestones[s] else { continue };
            let deadline = since + limit;
            let left = (s + 1..6).filter_map(|i| o.milestones[i]).min();
            if deadline + GRACE <= t && left.is_none_or(|l| l > deadline) {
                alerts.insert(format!("order_stuck|{id}|{}", STATES[s]));
                if state == Some(s) {
                    stuck_now = STATES[s].to_owned();
                }
            }
        }
        if timeout {
            alerts.insert(format!("payment_timeout|{id}|"));
        }
        rows.insert(format!(
            "{id}|{}|{}|{}|{}|{stuck_now}",
            state.map_or("-", |s| STATES[s]),
            if timeout { "timeout" } else { "ok" },
            if late { "late" } else { "on-time" },
            o.payment.as_ref().map_or("-", |p| p.1.as_str()),
        ));
    }
    (rows, alerts)
}

/// One series' fold in event-time order, by the ADR 0024 definitions.
fn expected_stock(
    events: &[Value],
    sales: &[(String, i64, i64, i64, i64)],
    t: i64,
) -> (BTreeSet<String>, BTreeSet<String>) {
    // (store, sku) -> events (ts, event_id, Some(on_hand, lead) | None + qty)
    type Ev = (i64, String, Option<(i64, Option<i64>)>, i64);
    let mut series: HashMap<(i64, i64), Vec<Ev>> = HashMap::new();
    for e in events.iter().filter(|e| e["type"] == "inventory") {
        let key = (
            e["store_id"].as_i64().expect("store"),
            e["sku"].as_i64().expect("sku"),
        );
        series.entry(key).or_default().push((
            ts_of(e),
            text(e, "event_id"),
            Some((
                e["on_hand"].as_i64().expect("on_hand"),
                e["lead_time_days"].as_i64(),
            )),
            0,
        ));
    }
    for (id, store, sku, qty, ts) in sales {
        if let Some(v) = series.get_mut(&(*store, *sku)) {
            v.push((*ts, id.clone(), None, *qty));
        }
    }
    let mut rows = BTreeSet::new();
    let mut alerts = BTreeSet::new();
    for ((store, sku), mut evs) in series {
        evs.retain(|e| e.0 <= t);
        evs.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let (mut snap, mut sold, mut level) = (None::<(i64, i64, Option<i64>)>, 0i64, 0usize);
        let mut hours: BTreeMap<i64, i64> = BTreeMap::new();
        let mut as_of = i64::MIN;
        for (ts, _, s, qty) in &evs {
            match s {
                Some((on_hand, lead)) => {
                    snap = Some((*ts, *on_hand, *lead));
                    sold = 0;
                }
                None => {
                    if snap.is_some_and(|s| *ts > s.0) {
                        sold += qty;
                    }
                    *hours.entry(ts.div_euclid(HOUR)).or_default() += qty;
                }
            }
            as_of = as_of.max(*ts);
            let start = as_of.div_euclid(HOUR) - VELOCITY_DAYS * 24 + 1;
            hours.retain(|h, _| *h >= start);
            let Some((snap_ts, on_hand, lead)) = snap else {
                continue;
            };
            let projected = on_hand - sold;
            let units: i64 = hours.values().sum();
            let v = units as f64 / VELOCITY_DAYS as f64;
            let lead = lead.unwrap_or(LEAD_DEFAULT) as f64;
            let now = if projected <= 0 {
                3
            } else if v > 0.0 && projected as f64 / v <= lead {
                2
            } else if v > 0.0 && projected as f64 / v <= lead + SAFETY as f64 {
                1
            } else {
                0
            };
            if now > level {
                alerts.insert(format!("{store}:{sku}|{}|{snap_ts}", LEVELS[now]));
            }
            level = now;
        }
        let units: i64 = hours.values().sum();
        let projected = snap.map_or(-1, |s| s.1 - sold);
        rows.insert(format!(
            "{store}|{sku}|{projected}|{sold}|{units}|{}",
            LEVELS[level]
        ));
    }
    (rows, alerts)
}

/// The built-in fraud rules, as the README states them: (name, key, window, measure, threshold).
const FRAUD_RULES: [(&str, &str, i64, &str, i64); 5] = [
    ("card_velocity", "card_id", 10 * MIN, "count", 5),
    ("customer_hourly_total", "customer_id", HOUR, "sum", 2000),
    ("tiny_then_large", "card_id", MIN, "tiny_then_large", 500),
    (
        "far_above_history",
        "customer_id",
        24 * HOUR,
        "amount_over_history",
        20,
    ),
    ("ip_billing_mismatch", "card_id", HOUR, "country_mismatch", 0),
];

/// Every fraud alert a scan of the authorised payments sorted by event time raises, as
/// `rule|key|payment ids`.
fn expected_fraud(events: &[Value], t: i64) -> BTreeSet<String> {
    let amount =
        |e: &Value| -> Decimal { e["amount"].to_string().trim_matches('"').parse().expect("amount") };
    let mut pays: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "payment" && e["status"] == "authorized" && ts_of(e) <= t)
        .collect();
    pays.sort_by_key(|p| (ts_of(p), text(p, "payment_id")));
    let mut out = BTreeSet::new();
    for (name, key, w, measure, thr) in FRAUD_RULES {
        let thr = Decimal::from(thr);
        let mut by_key: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for p in &pays {
            if let Some(k) = p[key].as_str() {
                by_key.entry(k.to_owned()).or_default().push(p);
            }
        }
        for (k, ps) in by_key {
            let mut last: Option<i64> = None;
            for (i, p) in ps.iter().enumerate() {
                let ts = ts_of(p);
                let earlier_in_window = || ps[..i].iter().filter(|q| ts_of(q) > ts - w);
                let tripped: Option<Vec<String>> = match measure {
                    "count" | "sum" => {
                        let win: Vec<&&Value> = earlier_in_window().chain(std::iter::once(p)).collect();
                        let value = if measure == "count" {
                            Decimal::from(win.len())
                        } else {
                            win.iter().map(|q| amount(q)).sum()
                        };
                        (value > thr).then(|| win.iter().map(|q| text(q, "payment_id")).collect())
                    }
                    "tiny_then_large" => earlier_in_window()
                        .find(|q| amount(q) < Decimal::ONE)
                        .filter(|_| amount(p) > thr)
                        .map(|q| vec![text(q, "payment_id"), text(p, "payment_id")]),
                    "amount_over_history" => {
                        let n = Decimal::from(i);
                        let sum: Decimal = ps[..i].iter().map(|q| amount(q)).sum();
                        (i >= 5 && !sum.is_zero() && amount(p) * n > thr * sum)
                            .then(|| vec![text(p, "payment_id")])
                    }
                    _ => {
                        let (ip, bill) = (text(p, "ip_country"), text(p, "billing_country"));
                        (!ip.is_empty() && !bill.is_empty() && ip != bill)
                            .then(|| vec![text(p, "payment_id")])
                    }
                };
                if let Some(ids) = tripped {
                    if last.is_none_or(|l| ts - l >= w) {
                        last = Some(ts);
                        out.insert(format!("{name}|{k}|{}", ids.join(",")));
                    }
                }
            }
        }
    }
    out
}

async fn pipelines_equal_the_oracle(store: TestStore) {
    // kill -9 in the middle, then run to the end with the same seed.
    let mut child = demo(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(rand::random_range(3_000..8_000)));
    let _ = child.kill();
    let _ = child.wait();
    let out = demo(&store).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&out);
    assert_eq!(s["generated"], events().to_string(), "{s:?}");

    let evs = landed_events(&store).await;
    let orders_t = clock(&store, "orders").await;
    let stock_t = clock(&store, "stock").await;

    // Orders: every row and every alert.
    let (want_rows, want_alerts) = expected_orders(&evs, orders_t);
    let got_rows: BTreeSet<String> = store
        .texts(
            "SELECT order_id || '|' || coalesce(state, '-') || '|' || \
             CASE WHEN payment_timeout THEN 'timeout' ELSE 'ok' END || '|' || \
             CASE WHEN payment_late THEN 'late' ELSE 'on-time' END || '|' || coalesce(payment_id, '-') || '|' || \
             coalesce(stuck_state, '-') FROM order_lifecycle",
        )
        .await
        .into_iter()
        .collect();
    assert_eq!(got_rows.len(), want_rows.len(), "order rows");
    let diff: Vec<_> = got_rows.symmetric_difference(&want_rows).take(6).collect();
    assert!(
        diff.is_empty(),
        "order_lifecycle differs from the oracle: {diff:#?}"
    );
    let got_alerts: BTreeSet<String> = store
        .texts("SELECT kind || '|' || subject || '|' || message FROM alerts WHERE kind IN ('payment_timeout', 'order_stuck')")
        .await
        .into_iter()
        .map(|a| {
            let mut p = a.splitn(3, '|');
            let (kind, subject, message) = (p.next().unwrap_or(""), p.next().unwrap_or(""), p.next().unwrap_or(""));
            let state = if kind == "order_stuck" {
                message.split("stuck in ").nth(1).and_then(|m| m.split(' ').next()).unwrap_or("?")
            } else {
                ""
            };
            format!("{kind}|{subject}|{state}")
        })
        .collect();
    let timeouts = want_alerts
        .iter()
        .filter(|a| a.starts_with("payment_timeout"))
        .count();
    let stuck = want_alerts.len() - timeouts;
    assert!(
        timeouts > 0 && stuck > 0,
        "the run must raise both kinds: {timeouts} timeouts, {stuck} stuck"
    );
    let diff: Vec<_> = got_alerts.symmetric_difference(&want_alerts).take(6).collect();
    assert!(diff.is_empty(), "order alerts differ from the oracle: {diff:#?}");
    eprintln!(
        "orders: {} rows, {timeouts} payment timeouts, {stuck} stuck alerts, pipeline time {orders_t}",
        want_rows.len()
    );

    // Stock: every row and every alert.
    let sales_sql = format!(
        "SELECT {} || '|' || store_id || '|' || sku || '|' || qty || '|' || {} FROM sales_raw",
        if is_pg(&store) {
            "event_id::text"
        } else {
            "event_id"
        },
        ts_sql(&store, "ts")
    );
    let sales: Vec<(String, i64, i64, i64, i64)> = store
        .texts(&sales_sql)
        .await
        .iter()
        .map(|r| {
            let p: Vec<&str> = r.split('|').collect();
            let n = |i: usize| p[i].parse::<i64>().expect("number");
            (p[0].to_owned(), n(1), n(2), n(3), ms(p[4]).expect("ts"))
        })
        .collect();
    let (want_rows, want_alerts) = expected_stock(&evs, &sales, stock_t);
    let got_rows: BTreeSet<String> = store
        .texts(
            "SELECT store_id || '|' || sku || '|' || coalesce(projected_on_hand, -1) || '|' || units_sold_after \
             || '|' || units_7d || '|' || risk_level FROM inventory_risks",
        )
        .await
        .into_iter()
        .collect();
    assert!(!want_rows.is_empty());
    let diff: Vec<_> = got_rows.symmetric_difference(&want_rows).take(6).collect();
    assert!(
        diff.is_empty(),
        "inventory_risks differs from the oracle: {diff:#?}"
    );
    let got_alerts: BTreeSet<String> = store
        .texts("SELECT subject || '|' || message FROM alerts WHERE kind = 'stock_risk'")
        .await
        .into_iter()
        .map(|a| {
            let (subject, message) = a.split_once('|').expect("subject|message");
            let level = message
                .split("stock ")
                .nth(1)
                .and_then(|m| m.split(' ').next())
                .unwrap_or("?");
            format!("{subject}|{level}")
        })
        .collect();
    let want_levels: BTreeSet<String> = want_alerts
        .iter()
        .map(|a| a.rsplit_once('|').map_or(a.clone(), |(head, _)| head.to_owned()))
        .collect();
    assert!(
        want_levels.iter().any(|a| a.ends_with("stockout")),
        "some series must run out"
    );
    let diff: Vec<_> = got_alerts.symmetric_difference(&want_levels).take(6).collect();
    assert!(diff.is_empty(), "stock alerts differ from the oracle: {diff:#?}");
    let raised: i64 = store
        .texts("SELECT count(*) || '' FROM alerts WHERE kind = 'stock_risk'")
        .await[0]
        .parse()
        .expect("count");
    assert_eq!(
        raised as usize,
        want_alerts.len(),
        "one alert per level and snapshot"
    );
    eprintln!(
        "stock: {} series, {raised} alerts, pipeline time {stock_t}",
        want_rows.len()
    );

    // Fraud: every alert of every rule, with the payments that tripped it.
    let fraud_t = clock(&store, "fraud").await;
    let want_fraud = expected_fraud(&evs, fraud_t);
    let payment_ids = if is_pg(&store) {
        "payment_ids::text"
    } else {
        "payment_ids"
    };
    let got_fraud: BTreeSet<String> = store
        .texts(&format!(
            "SELECT rule || '|' || key || '|' || {payment_ids} FROM fraud_alerts"
        ))
        .await
        .into_iter()
        .map(|r| {
            let mut p = r.splitn(3, '|');
            let (rule, key, ids) = (
                p.next().unwrap_or(""),
                p.next().unwrap_or(""),
                p.next().unwrap_or("[]"),
            );
            let ids: Vec<String> = serde_json::from_str(ids).expect("payment_ids JSON");
            format!("{rule}|{key}|{}", ids.join(","))
        })
        .collect();
    for (name, ..) in FRAUD_RULES {
        assert!(
            want_fraud.iter().any(|a| a.starts_with(&format!("{name}|"))),
            "the generated fraud patterns must trip {name}"
        );
    }
    let diff: Vec<_> = got_fraud.symmetric_difference(&want_fraud).take(6).collect();
    assert!(diff.is_empty(), "fraud alerts differ from the oracle: {diff:#?}");
    let in_alerts = store
        .texts("SELECT alert_id || '' FROM alerts WHERE kind = 'fraud'")
        .await
        .len();
    assert_eq!(
        in_alerts,
        want_fraud.len(),
        "each fraud alert is a row of alerts too"
    );
    eprintln!("fraud: {} alerts, pipeline time {fraud_t}", want_fraud.len());

    // The same seed again changes nothing.
    let before = store.texts("SELECT alert_id || '' FROM alerts").await;
    let again = demo(&store).output().expect("run");
    assert!(again.status.success());
    assert_eq!(summary(&again)["landed"], "0");
    let after = store.texts("SELECT alert_id || '' FROM alerts").await;
    assert!(after.len() >= before.len() && before.iter().all(|a| after.contains(a)));

    // Every alert went to the log's `alerts` topic (the default channel, ADR 0026) through the
    // outbox: one delivery each, sent, across the kill.
    let topic = store
        .texts(
            "SELECT a.alert_id || ':' || coalesce(d.state, 'none') FROM alerts a \
             LEFT JOIN notification_deliveries d ON d.alert_id = a.alert_id AND d.channel = 'alerts-topic'",
        )
        .await;
    assert_eq!(topic.len(), after.len(), "one alerts-topic delivery per alert");
    let unsent: Vec<&String> = topic.iter().filter(|t| !t.ends_with(":sent")).take(5).collect();
    assert!(unsent.is_empty(), "alerts-topic deliveries not sent: {unsent:?}");
    store.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_pipelines_equal_the_oracle_across_kill_9() {
    pipelines_equal_the_oracle(TestStore::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_pipelines_equal_the_oracle_across_kill_9() {
    pipelines_equal_the_oracle(TestStore::postgres().await).await;
}
