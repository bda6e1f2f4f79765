//! Shared helpers of the binary's end-to-end tests: run `retail-etl` as a user would, against a
//! fresh SQLite file or a fresh PostgreSQL database, and read the store back with an
//! independent client (rusqlite / tokio-postgres), not through the code under test.

#![allow(dead_code)]

#[cfg(feature = "kafka")]
pub mod kafka;
pub mod oracle;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use retail_core::{decode, EventBody};
use retail_source::generator::{EventGenerator, GeneratorConfig};

pub const BIN: &str = env!("CARGO_BIN_EXE_retail-etl");

/// Where a test's data lands.
pub enum TestStore {
    Sqlite {
        dir: tempfile::TempDir,
    },
    Postgres {
        dir: tempfile::TempDir,
        admin_url: String,
        db: String,
    },
}

fn pg_admin_url() -> String {
    std::env::var("RETAIL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub async fn pg_admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is not reachable at {url} ({e}); the test command (scripts/test) starts it")
        });
    tokio::spawn(conn);
    client
}

impl TestStore {
    pub fn sqlite() -> Self {
        Self::Sqlite {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub async fn postgres() -> Self {
        let admin_url = pg_admin_url();
        let db = format!("retail_e2e_{}_{}", std::process::id(), rand::random::<u32>());
        pg_admin(&admin_url)
            .await
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .expect("create database");
        Self::Postgres {
            dir: tempfile::tempdir().expect("tempdir"),
            admin_url,
            db,
        }
    }

    pub fn data_dir(&self) -> &Path {
        match self {
            Self::Sqlite { dir } | Self::Postgres { dir, .. } => dir.path(),
        }
    }

    pub fn url(&self) -> String {
        match self {
            Self::Sqlite { dir } => format!("sqlite://{}", dir.path().join("retail.db").display()),
            Self::Postgres { admin_url, db, .. } => {
                let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(b, _)| b);
                format!("{base}/{db}")
            }
        }
    }

    /// Every event_id in `sales_raw`, read with an independent client; panics on a duplicate.
    pub async fn sales_ids(&self) -> HashSet<String> {
        let ids: Vec<String> = match self {
            Self::Sqlite { dir } => {
                let conn = rusqlite::Connection::open(dir.path().join("retail.db")).expect("open sqlite");
                let mut stmt = conn.prepare("SELECT event_id FROM sales_raw").expect("prepare");
                let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("query");
                rows.map(|r| r.expect("row")).collect()
            }
            Self::Postgres { .. } => {
                let client = pg_admin(&self.url()).await;
                let rows = client
                    .query("SELECT event_id::text FROM sales_raw", &[])
                    .await
                    .expect("query");
                rows.iter().map(|r| r.get::<_, String>(0)).collect()
            }
        };
        let set: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(
            set.len(),
            ids.len(),
            "sales_raw holds {} duplicate rows",
            ids.len() - set.len()
        );
        set
    }

    /// Rows of a one-text-column query, sorted, read with an independent client.
    pub async fn texts(&self, sql: &str) -> Vec<String> {
        let mut rows: Vec<String> = match self {
            Self::Sqlite { dir } => {
                let conn = rusqlite::Connection::open(dir.path().join("retail.db")).expect("open sqlite");
                let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("query");
                rows.map(|r| r.expect("row")).collect()
            }
            Self::Postgres { .. } => pg_admin(&self.url())
                .await
                .query(sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect(),
        };
        rows.sort();
        rows
    }

    /// `(count, distinct (topic, partition, offset))` of `dead_letters`.
    pub async fn dead_letters(&self) -> (i64, i64) {
        let sql = "SELECT count(*), count(DISTINCT topic || '/' || \"partition\" || '/' || \"offset\") FROM dead_letters";
        match self {
            Self::Sqlite { dir } => {
                let conn = rusqlite::Connection::open(dir.path().join("retail.db")).expect("open sqlite");
                conn.query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
                    .expect("query")
            }
            Self::Postgres { .. } => {
                let row = pg_admin(&self.url())
                    .await
                    .query_one(sql, &[])
                    .await
                    .expect("query");
                (row.get(0), row.get(1))
            }
        }
    }

    pub async fn drop(self) {
        if let Self::Postgres { admin_url, db, .. } = &self {
            let _ = pg_admin(admin_url)
                .await
                .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .await;
        }
    }
}

impl Drop for TestStore {
    /// Drops the test's database also when the test panicked before `drop().await` (unwinding
    /// runs this), with `psql` because no runtime can be awaited here. After `drop().await` it
    /// is a no-op (`IF EXISTS`); a server already gone fails fast and is ignored.
    fn drop(&mut self) {
        if let Self::Postgres { admin_url, db, .. } = self {
            let _ = Command::new("psql")
                .arg(admin_url.as_str())
                .args(["-q", "-c", &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")])
                .env("PGCONNECT_TIMEOUT", "3")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A temporary directory `<tmp>/<prefix>XXXX` holding this process's pid in `owner.pid`, so that
/// a later run can find what a run killed before its `Drop` guards ran left behind
/// ([`stale_tempdirs`]).
pub fn owned_tempdir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("tempdir");
    std::fs::write(dir.path().join("owner.pid"), std::process::id().to_string()).expect("owner.pid");
    dir
}

/// Directories [`owned_tempdir`] made with `prefix` for processes that no longer run.
pub fn stale_tempdirs(prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .filter(|dir| {
            std::fs::read_to_string(dir.join("owner.pid"))
                .ok()
                .and_then(|pid| pid.trim().parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        })
        .collect()
}

/// The generator settings a `demo` run with these flags uses.
pub struct Run {
    pub seed: u64,
    pub events: u64,
    pub rate: f64,
    pub duplicate_fraction: f64,
    pub malformed_fraction: f64,
}

impl Run {
    /// `demo` with these settings; a `rate` of 0 means as fast as the pipeline goes (no
    /// `--rate`: with `--events` that is the default, and `--rate 0` would switch the
    /// generator off).
    pub fn args(&self, store: &TestStore) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "demo".into(),
            "--seed".into(),
            self.seed.to_string(),
            "--events".into(),
            self.events.to_string(),
            "--duplicate-fraction".into(),
            self.duplicate_fraction.to_string(),
            "--malformed-fraction".into(),
            self.malformed_fraction.to_string(),
            "--store".into(),
            store.url(),
            "--data-dir".into(),
            store.data_dir().display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            // The sales path alone: what `expected_sale_ids` computes.
            "--sales-only".into(),
        ];
        if self.rate > 0.0 {
            a.extend(["--rate".into(), self.rate.to_string()]);
        }
        a
    }

    pub fn spawn(&self, store: &TestStore) -> Child {
        Command::new(BIN)
            .args(self.args(store))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn retail-etl")
    }

    pub fn run_to_end(&self, store: &TestStore) -> Output {
        let out = Command::new(BIN)
            .args(self.args(store))
            .env("RUST_LOG", "warn")
            .output()
            .expect("run retail-etl");
        assert!(
            out.status.success(),
            "retail-etl {:?} failed: {}\n{}",
            self.args(store),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The distinct valid sale ids this run generates, computed independently of the binary
    /// by running the same deterministic generator here.
    pub fn expected_sale_ids(&self) -> HashSet<String> {
        let config = GeneratorConfig {
            seed: self.seed,
            events: Some(self.events),
            rate: self.rate,
            duplicate_fraction: self.duplicate_fraction,
            malformed_fraction: self.malformed_fraction,
            ..GeneratorConfig::default()
        };
        // Iterate exactly as the source does: the catalog first (it draws ids from the same
        // sequence), then the data records.
        let g = EventGenerator::new(&config).expect("generator config");
        let mut ids = HashSet::new();
        for item in g.filter(|item| !item.catalog) {
            if let Ok(e) = decode(&item.record.value) {
                if matches!(e.body, EventBody::Sale(_)) {
                    ids.insert(e.event_id.to_string());
                }
            }
        }
        ids
    }
}

/// `key=value` pairs of the summary line.
pub fn summary(out: &Output) -> std::collections::HashMap<String, String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("generated="))
        .unwrap_or_else(|| {
            panic!(
                "no summary line in stdout: {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub fn temp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// A `demo` running in the background with its HTTP address read from its stderr.
pub struct Running {
    pub child: Child,
    pub http: std::net::SocketAddr,
    /// Stderr up to and including the line that says where it listens.
    early_stderr: Vec<String>,
    stderr_lines: std::sync::mpsc::Receiver<String>,
}

impl Running {
    /// Starts `retail-etl <args>` and waits until it prints where /health answers.
    pub fn start(args: &[String]) -> Self {
        Self::start_logging(args, "warn")
    }

    /// [`Self::start`] with `RUST_LOG` set to `filter` (`info` shows the start-up logs).
    // The child is waited for by `Drop` (and on the one early panic); the lint cannot see that.
    #[allow(clippy::zombie_processes)]
    pub fn start_logging(args: &[String], filter: &str) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn retail-etl");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut early_stderr = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("retail-etl never said where it listens"));
            if let Some(rest) = line.split("health at http://").nth(1) {
                let addr = rest
                    .split('/')
                    .next()
                    .expect("addr")
                    .parse()
                    .expect("socket addr");
                early_stderr.push(line);
                return Self {
                    child,
                    http: addr,
                    early_stderr,
                    stderr_lines: rx,
                };
            }
            early_stderr.push(line);
        }
    }

    /// `GET path` over plain TCP: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_call(self.http, "GET", path, None, None)
    }

    /// `method path` with an optional bearer token and JSON body: (status, body).
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
        http_call(self.http, method, path, token, body)
    }

    /// [`Self::call`] for a JSON answer.
    pub fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let (code, text) = self.call(method, path, token, body);
        let value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {code} {e}: {text}"));
        (code, value)
    }

    /// `GET path` as JSON, asserting 200.
    pub fn ok(&self, path: &str) -> serde_json::Value {
        let (code, v) = self.json("GET", path, None, None);
        assert_eq!(code, 200, "GET {path}: {v}");
        v
    }

    /// The value of a metric sample line `name{labels} value` (first match).
    pub fn metric(&self, prefix: &str) -> f64 {
        let (_, body) = self.get("/metrics");
        body.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Sends SIGINT (what Ctrl-C sends) and waits for the exit; returns stdout and stderr.
    pub fn interrupt(mut self) -> Output {
        self.interrupt_inner()
    }

    /// Ctrl-C, a clean exit, and the summary line's `key=value` pairs.
    pub fn interrupt_to_summary(self) -> std::collections::HashMap<String, String> {
        let out = self.interrupt();
        assert!(
            out.status.success(),
            "exit {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        summary(&out)
    }

    fn interrupt_inner(&mut self) -> Output {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        self.collect_inner()
    }

    /// Waits for the exit (of a process told to stop, or that ends by itself); returns stdout
    /// and stderr.
    pub fn collect(mut self) -> Output {
        self.collect_inner()
    }

    fn collect_inner(&mut self) -> Output {
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            use std::io::Read;
            out.read_to_string(&mut stdout).expect("stdout");
        }
        let status = self.child.wait().expect("wait");
        let mut stderr = std::mem::take(&mut self.early_stderr);
        // Until the reader thread sees the end of the pipe: the last lines (an error at exit)
        // may still be on their way.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while let Ok(line) = self
            .stderr_lines
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            stderr.push(line);
        }
        Output {
            status,
            stdout: stdout.into_bytes(),
            stderr: stderr.join("\n").into_bytes(),
        }
    }
}

impl Drop for Running {
    /// A test that panicked before `interrupt` must not leave the binary running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP/1.1 request over plain TCP, `Connection: close`: (status, body).
pub fn http_call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    req.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let code = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// A port that was free a moment ago, for a server whose address must be known before it
/// says where it listens.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Args of a `demo` without an event count.
pub fn demo_args(store: &TestStore, rate: u32, seed: u64) -> Vec<String> {
    [
        "demo",
        "--rate",
        &rate.to_string(),
        "--seed",
        &seed.to_string(),
        "--store",
        &store.url(),
        "--data-dir",
        &store.data_dir().display().to_string(),
        "--listen",
        "127.0.0.1:0",
        "--sales-only",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

pub async fn pg_exec(url: &str, sql: &str) {
    pg_admin(url)
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

impl TestStore {
    /// The admin URL and database name of a PostgreSQL test store.
    pub fn pg_parts(&self) -> Option<(&str, &str)> {
        match self {
            Self::Postgres { admin_url, db, .. } => Some((admin_url, db)),
            Self::Sqlite { .. } => None,
        }
    }
}

/// A TCP proxy in front of PostgreSQL that a test can cut (refuse and reset every connection)
/// and restore: a store outage as the binary sees one, without stopping the shared server.
pub struct CuttableProxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl CuttableProxy {
    pub fn to(target: std::net::SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::<std::net::TcpStream>::new()));
        let (up2, conns2) = (up.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(target) else {
                    continue;
                };
                let pairs = [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (
                        server.try_clone().expect("clone"),
                        client.try_clone().expect("clone"),
                    ),
                ];
                if let Ok(mut list) = conns2.lock() {
                    list.push(client);
                    list.push(server);
                }
                for (mut from, mut to) in pairs {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { port, up, conns }
    }

    /// Resets every open connection and refuses new ones until [`Self::restore`].
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut list) = self.conns.lock() {
            for c in list.drain(..) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
