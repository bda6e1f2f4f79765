//! The Tansu broker of the Kafka tests, shared with `retail-log`'s tests, and what the tests
//! that run `retail-etl run` on it share: the client settings, the run configuration, counts.

#[path = "../../../retail-log/tests/support/tansu.rs"]
mod tansu;

#[allow(unused_imports)] // test crates that include `common` without using Kafka
pub use tansu::{Tansu, GROUP_PROPERTIES};

use std::path::{Path, PathBuf};

use retail_log::KafkaConfig;

use super::{pg_admin, TestStore};

/// Client settings for the tests' own Kafka clients: the broker's group timings.
pub fn client_config() -> KafkaConfig {
    let mut c = KafkaConfig::default();
    for (k, v) in GROUP_PROPERTIES {
        c.properties.insert((*k).to_owned(), (*v).to_owned());
    }
    c
}

/// A `run` configuration in `dir`: the Kafka log with `partitions`, the store, no sources, the
/// API on a free loopback port, and `extra` TOML appended.
pub fn write_config(dir: &Path, tansu: &Tansu, store: &TestStore, partitions: i32, extra: &str) -> PathBuf {
    let mut props = String::new();
    for (k, v) in GROUP_PROPERTIES {
        props.push_str(&format!("{k:?} = {v:?}\n"));
    }
    let toml = format!(
        "data_dir = {dir:?}\n\n[log]\nurl = {url:?}\npartitions = {partitions}\n\n[log.kafka.properties]\n{props}\n[store]\nurl = {store:?}\n\n[serve]\nlisten = \"127.0.0.1:0\"\n{extra}",
        dir = dir.display().to_string(),
        url = tansu.url(),
        store = store.url(),
    );
    let path = dir.join("retail.toml");
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(&path, toml).expect("write config");
    path
}

/// The single number `sql` selects; 0 while the tables are not created yet.
pub async fn count(store: &TestStore, sql: &str) -> i64 {
    match pg_admin(&store.url()).await.query_one(sql, &[]).await {
        Ok(row) => row.get(0),
        Err(_) => 0,
    }
}
