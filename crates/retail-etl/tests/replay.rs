//! `retail-etl replay` rebuilds every aggregate from the log into fresh tables, and the numbers
//! are the live run's: same rows, same late events; a replay that would write over live tables
//! is refused. Both stores.

mod common;

use std::process::Command;

use common::oracle::{aggregate_rows, late_events, BUILTINS};
use common::{summary, TestStore, BIN};

fn retail(args: &[&str]) -> std::process::Output {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run retail-etl");
    assert!(
        out.status.success(),
        "retail-etl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn replay_rebuilds_the_same_numbers(store: TestStore) {
    let (url, dir) = (store.url(), store.data_dir().display().to_string());
    let out = retail(&[
        "demo",
        "--events",
        "150000",
        "--seed",
        "9",
        "--duplicate-fraction",
        "0.02",
        "--out-of-order-fraction",
        "0.05",
        "--late-fraction",
        "0.01",
        "--store",
        &url,
        "--data-dir",
        &dir,
        "--listen",
        "127.0.0.1:0",
        "--sales-only",
    ]);
    assert_eq!(summary(&out)["generated"], "150000");

    // Twice: the second replay starts from a clean slate, not on top of the first.
    for _ in 0..2 {
        let out = retail(&["replay", "--store", &url, "--data-dir", &dir]);
        let line = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            line.contains("replayed=") && !line.contains("replayed=0 "),
            "{line}"
        );
    }

    // A replay never writes over live data: refused before anything is opened, naming the
    // table and the suffix. No suffix would rebuild the live aggregates in place ...
    let landed = store.sales_ids().await.len();
    let refused = |extra: &[&str]| {
        let mut args = vec!["replay", "--store", &url, "--data-dir", &dir];
        args.extend_from_slice(extra);
        let out = Command::new(BIN).args(&args).output().expect("run");
        assert!(!out.status.success(), "replay {extra:?} must be refused");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = refused(&["--suffix", ""]);
    assert!(
        err.contains("--suffix \"\"")
            && err.contains("\"sales_agg_minute\"")
            && err.contains("live aggregate"),
        "{err}"
    );
    // ... and an aggregate "sales" with the suffix "_raw" would drop and replace sales_raw.
    let config = store.data_dir().join("sales.toml");
    std::fs::write(
        &config,
        "[[aggregates]]\nname = \"sales\"\ntopic = \"sales\"\ngroup_by = [\"store_id\"]\n\
         window = { kind = \"tumbling\", size = \"1m\" }\nmeasures = [{ name = \"n\", fn = \"count\" }]\n",
    )
    .expect("write config");
    let config = config.display().to_string();
    let err = refused(&["--config", &config, "--suffix", "_raw"]);
    assert!(
        err.contains("--suffix \"_raw\"") && err.contains("\"sales_raw\"") && err.contains("store's table"),
        "{err}"
    );
    assert_eq!(store.sales_ids().await.len(), landed, "sales_raw untouched");

    for (name, _, _) in BUILTINS {
        let live = aggregate_rows(&store, name, name).await;
        let replayed = aggregate_rows(&store, name, &format!("{name}_replay")).await;
        assert!(!live.is_empty(), "{name} is empty");
        assert_eq!(
            live, replayed,
            "{name}: the replay's table differs from the live one"
        );
    }
    let late = late_events(&store).await;
    let live: Vec<_> = late.iter().filter(|(a, _)| !a.ends_with("_replay")).collect();
    let replayed: Vec<_> = late
        .iter()
        .filter(|(a, _)| a.ends_with("_replay"))
        .map(|(a, id)| (a.trim_end_matches("_replay").to_owned(), id.clone()))
        .collect();
    assert!(!live.is_empty(), "the stream must have late events");
    assert_eq!(
        live.into_iter().cloned().collect::<Vec<_>>(),
        replayed,
        "the replay's late events differ from the live ones"
    );

    // A bad --from is a clear error.
    let bad = Command::new(BIN)
        .args([
            "replay",
            "--store",
            &url,
            "--data-dir",
            &dir,
            "--from",
            "yesterday",
        ])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--from \"yesterday\"") && err.contains("RFC 3339"),
        "{err}"
    );
    store.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_replay_rebuilds_the_same_numbers() {
    replay_rebuilds_the_same_numbers(TestStore::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replay_rebuilds_the_same_numbers() {
    replay_rebuilds_the_same_numbers(TestStore::postgres().await).await;
}
