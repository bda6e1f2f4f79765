//! One writer per log directory (issue 18, item 2): a second open of a directory fails with a
//! message naming the directory and the process holding it, and succeeds once the first is gone.
//! The two-process case is in `crates/retail-etl/tests/lock.rs`.

use retail_log::embedded::{EmbeddedConfig, EmbeddedLog};
use retail_log::Error;

#[tokio::test]
async fn a_second_open_of_a_directory_is_refused_naming_it_and_the_holder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = EmbeddedLog::open(dir.path(), EmbeddedConfig::default())
        .await
        .expect("first open");
    let err = EmbeddedLog::open(dir.path(), EmbeddedConfig::default())
        .await
        .expect_err("second open of the same directory");
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(msg.contains(&format!("pid {}", std::process::id())), "{msg}");

    first.close().await.expect("close");
    drop(first);
    let again = EmbeddedLog::open(dir.path(), EmbeddedConfig::default())
        .await
        .expect("open after the first closed");
    again.close().await.expect("close");
}
