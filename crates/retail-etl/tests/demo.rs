//! The running binary as an operator sees it: `/health` and `/metrics` answer and move, Ctrl-C
//! lands everything acknowledged before exiting, and a store that goes away is retried without
//! skipping anything.

mod common;

use std::time::{Duration, Instant};

use common::{demo_args, CuttableProxy, Running, TestStore};

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn ctrl_c_lands_everything_acknowledged(store: TestStore) {
    let demo = Running::start(&demo_args(&store, 3_000, 5));
    let (code, body) = demo.get("/health");
    assert_eq!(code, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).expect("health json");
    for component in ["log", "store", "landing", "generator"] {
        assert!(
            health["components"][component]["state"].is_string(),
            "{component} missing in {body}"
        );
    }
    wait_until("rows to land", Duration::from_secs(30), || {
        demo.metric("retail_landing_rows_total{table=\"sales_raw\"}") > 0.0
    });
    let first = demo.metric("retail_landing_rows_total{table=\"sales_raw\"}");
    wait_until("the landed count to grow", Duration::from_secs(30), || {
        demo.metric("retail_landing_rows_total{table=\"sales_raw\"}") > first
    });
    assert!(demo.metric("retail_source_accepted_events_total{source=\"generator\"}") > 0.0);
    assert!(
        demo.metric("retail_event_to_store_latency_seconds_count{table=\"sales_raw\",source=\"generator\"}")
            > 0.0
    );

    let s = demo.interrupt_to_summary();
    assert_eq!(
        s["landed"], s["generated"],
        "everything acknowledged must land before exit: {s:?}"
    );
    let generated: usize = s["generated"].parse().expect("number");
    assert!(generated > 0);
    assert_eq!(store.sales_ids().await.len(), generated);
    store.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_ctrl_c_lands_everything_acknowledged() {
    ctrl_c_lands_everything_acknowledged(TestStore::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_ctrl_c_lands_everything_acknowledged() {
    ctrl_c_lands_everything_acknowledged(TestStore::postgres().await).await;
}

/// PostgreSQL becomes unreachable for a few seconds in the middle of a run (every connection
/// reset, new ones refused, through a proxy): the landing reports `retrying`, counts retries,
/// holds its offsets, and afterwards every event lands exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_outage_is_retried_and_nothing_is_skipped() {
    let store = TestStore::postgres().await;
    let (_, db) = store.pg_parts().expect("pg");
    let proxy = CuttableProxy::to("127.0.0.1:5432".parse().expect("addr"));
    let via_proxy = format!("postgres://postgres@127.0.0.1:{}/{db}", proxy.port);
    let mut args = demo_args(&store, 2_000, 9);
    let at = args.iter().position(|a| a == "--store").expect("--store") + 1;
    args[at] = via_proxy;
    let demo = Running::start(&args);
    wait_until("rows to land", Duration::from_secs(30), || {
        demo.metric("retail_landing_rows_total{table=\"sales_raw\"}") > 0.0
    });

    proxy.cut();
    wait_until("the landing to report retrying", Duration::from_secs(30), || {
        demo.get("/health").1.contains("\"retrying\"")
    });
    assert!(demo.metric("retail_landing_retries_total") > 0.0);
    let landed_during = demo.metric("retail_landing_rows_total{table=\"sales_raw\"}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        demo.metric("retail_landing_rows_total{table=\"sales_raw\"}"),
        landed_during,
        "nothing lands while the store is down"
    );
    proxy.restore();
    wait_until("the landing to catch up", Duration::from_secs(60), || {
        demo.metric("retail_landing_rows_total{table=\"sales_raw\"}") > landed_during + 4_000.0
    });

    let s = demo.interrupt_to_summary();
    let generated: usize = s["generated"].parse().expect("number");
    let landed = store.sales_ids().await.len();
    assert_eq!(
        landed, generated,
        "an outage must not lose or double events: {s:?}"
    );
    store.drop().await;
}
