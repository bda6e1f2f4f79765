//! The OpenAPI document says what the server enforces: Schemathesis (a property-based API
//! fuzzer from PyPI, an independent client) runs every check it has (`--checks all`, positive
//! and negative data) against a running `demo` on SQLite, and must report no failure. It
//! finds parameters the document declares wider than the server accepts (and the reverse),
//! responses that do not match their schema, undeclared status codes and security declared
//! but not enforced.
//!
//! Bounded: a few examples per operation and a time budget. `tests/schemathesis.toml` adds what
//! OpenAPI cannot say (rules between parameters, such as `from` before `to`).
//! Skipped (with a message) only if `st` is not installed and RETAIL_TEST_REQUIRE_SCHEMATHESIS
//! is unset; scripts/test installs it and sets the variable.

mod common;

use std::process::Command;
use std::time::Instant;

use common::{demo_args, Running, TestStore};

/// Examples per operation and the time budget of the whole run, in seconds.
const MAX_EXAMPLES: &str = "5";
const MAX_TIME_SECS: &str = "120";

fn schemathesis() -> Option<Command> {
    let found = Command::new("st")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(Command::new("st"));
    }
    assert!(
        std::env::var_os("RETAIL_TEST_REQUIRE_SCHEMATHESIS").is_none(),
        "RETAIL_TEST_REQUIRE_SCHEMATHESIS is set but the Schemathesis CLI `st` is not on PATH \
         (python3 -m pip install schemathesis==4.32.5)"
    );
    eprintln!(
        "SKIPPED: the Schemathesis CLI `st` is not installed (python3 -m pip install schemathesis==4.32.5); \
         set RETAIL_TEST_REQUIRE_SCHEMATHESIS=1 to make this a failure"
    );
    None
}

#[test]
fn schemathesis_finds_no_mismatch_between_the_document_and_the_server() {
    let Some(mut st) = schemathesis() else {
        return;
    };
    let store = TestStore::sqlite();
    let demo = Running::start(&demo_args(&store, 20, 5));
    let started = Instant::now();
    let reports = tempfile::tempdir().expect("tempdir");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let out = st
        .args([
            "--config-file",
            config,
            "run",
            &format!("http://{}/api/openapi.json", demo.http),
            "--checks",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
            "--max-time",
            MAX_TIME_SECS,
            "--seed",
            "1",
            // One worker: with two, Schemathesis 4.32.5 once failed inside its own coverage
            // phase (a KeyError in its source-line cache), not on the API.
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--no-color",
            "--generation-database",
            "none",
            "--report-dir",
        ])
        .arg(reports.path())
        .env("NO_COLOR", "1")
        // Schemathesis keeps a `.schemathesis/` cache in its working directory: not in the crate.
        .current_dir(reports.path())
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "schemathesis ran for {:.1} s:\n{}",
        started.elapsed().as_secs_f64(),
        stdout
            .lines()
            .filter(|l| l.contains("passed") || l.contains("Test cases") || l.contains("Operations"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        out.status.success(),
        "schemathesis reports mismatches between /api/openapi.json and the server ({}):\n{stdout}\n{stderr}",
        out.status
    );
    drop(demo);
}
