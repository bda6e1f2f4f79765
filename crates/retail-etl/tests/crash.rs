//! Exactly once under `kill -9`: the real binary is killed at random moments while it
//! generates and lands, restarted with the same seed, and finally run to the end. The store must
//! then hold every distinct event_id the seed generates, once, and nothing else; every bad record
//! must be a dead letter exactly once per log record; and re-running the seed changes nothing.
//! The aggregate tables must then equal their SQL recomputation and `late_events` the log's
//! late events. The same test body runs against SQLite and the real PostgreSQL.

mod common;

use std::time::Duration;

use common::{oracle, summary, Run, TestStore};
use rand::Rng;

const KILLS: usize = 6;

async fn exactly_once_across_kill_9(store: TestStore) {
    let run = Run {
        seed: 11,
        events: 60_000,
        rate: 30_000.0,
        duplicate_fraction: 0.02,
        malformed_fraction: 0.002,
    };
    let expected = run.expected_sale_ids();
    let mut rng = rand::rng();
    for kill in 0..KILLS {
        let mut child = run.spawn(&store);
        let after = Duration::from_millis(rng.random_range(300..2_500));
        std::thread::sleep(after);
        match child.try_wait().expect("try_wait") {
            Some(status) => eprintln!("run {kill} ended before its kill ({status})"),
            None => {
                child.kill().expect("SIGKILL");
                eprintln!("run {kill}: killed with SIGKILL after {after:?}");
            }
        }
        let _ = child.wait();
    }

    let out = run.run_to_end(&store);
    let s = summary(&out);
    assert_eq!(s["generated"], run.events.to_string(), "{s:?}");

    let landed = store.sales_ids().await;
    assert_eq!(
        landed.len(),
        expected.len(),
        "row count must equal the distinct event_ids generated"
    );
    let missing: Vec<_> = expected.difference(&landed).take(3).collect();
    let extra: Vec<_> = landed.difference(&expected).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "landed ids differ: missing {missing:?}, unexpected {extra:?}"
    );
    let (dead, distinct_positions) = store.dead_letters().await;
    assert!(dead > 0, "malformed records must reach dead_letters");
    assert_eq!(dead, distinct_positions, "a log record was dead-lettered twice");

    // The same seed again lands nothing new.
    let again = summary(&run.run_to_end(&store));
    assert_eq!(again["landed"], "0", "{again:?}");
    assert_eq!(store.sales_ids().await.len(), expected.len());

    // The aggregates survived the kills too: each equals SQL over the exactly-once raw rows,
    // and the late events are exactly those the log says were late.
    let checked = oracle::assert_aggregates_match_sql(&store).await;
    assert!(checked > 0);
    let late = oracle::late_events(&store).await;
    let expected_late = oracle::expected_late_from_log(store.data_dir(), 4).await;
    assert_eq!(
        late.len(),
        expected_late.len(),
        "late_events differs from the log: {:?}",
        late.symmetric_difference(&expected_late)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert_eq!(late, expected_late);
    store.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_exactly_once_across_kill_9() {
    exactly_once_across_kill_9(TestStore::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_exactly_once_across_kill_9() {
    exactly_once_across_kill_9(TestStore::postgres().await).await;
}
