//! Shared helpers of the binary's end-to-end tests: run `retail-etl` as a user would, against a
//! fresh SQLite file or a fresh PostgreSQL database, and read the store back with an
//! independent client (rusqlite / tokio-postgres), not through the code under test.

#![allow(dead_code)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use retail_core::{decode, EventBody};
use retail_source::generator::{EventGenerator, GeneratorConfig};

pub const BIN: &str = env!("CARGO_BIN_EXE_retail-etl");

/// Where a test's data lands.
pub enum TestStore {
    Sqlite { dir: tempfile::TempDir },
    Postgres { dir: tempfile::TempDir, admin_url: String, db: String },
}

fn pg_admin_url() -> String {
    std::env::var("RETAIL_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn pg_admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is not reachable at {url} ({e}); the test command (scripts/test) starts it")
    });
    tokio::spawn(conn);
    client
}

impl TestStore {
    pub fn sqlite() -> Self {
        Self::Sqlite { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub async fn postgres() -> Self {
        let admin_url = pg_admin_url();
        let db = format!("retail_e2e_{}_{}", std::process::id(), rand::random::<u32>());
        pg_admin(&admin_url).await.batch_execute(&format!("CREATE DATABASE {db}")).await.expect("create database");
        Self::Postgres { dir: tempfile::tempdir().expect("tempdir"), admin_url, db }
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
                let rows = client.query("SELECT event_id::text FROM sales_raw", &[]).await.expect("query");
                rows.iter().map(|r| r.get::<_, String>(0)).collect()
            }
        };
        let set: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(set.len(), ids.len(), "sales_raw holds {} duplicate rows", ids.len() - set.len());
        set
    }

    /// `(count, distinct (topic, partition, offset))` of `dead_letters`.
    pub async fn dead_letters(&self) -> (i64, i64) {
        let sql = "SELECT count(*), count(DISTINCT topic || '/' || \"partition\" || '/' || \"offset\") FROM dead_letters";
        match self {
            Self::Sqlite { dir } => {
                let conn = rusqlite::Connection::open(dir.path().join("retail.db")).expect("open sqlite");
                conn.query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?))).expect("query")
            }
            Self::Postgres { .. } => {
                let row = pg_admin(&self.url()).await.query_one(sql, &[]).await.expect("query");
                (row.get(0), row.get(1))
            }
        }
    }

    pub async fn drop(self) {
        if let Self::Postgres { admin_url, db, .. } = &self {
            let _ = pg_admin(admin_url).await.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
        }
    }
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
    pub fn args(&self, store: &TestStore) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "demo".into(),
            "--seed".into(),
            self.seed.to_string(),
            "--events".into(),
            self.events.to_string(),
            "--rate".into(),
            self.rate.to_string(),
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
        ];
        a.shrink_to_fit();
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
        let out = Command::new(BIN).args(self.args(store)).env("RUST_LOG", "warn").output().expect("run retail-etl");
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
    let line = stdout.lines().rev().find(|l| l.starts_with("generated=")).unwrap_or_else(|| {
        panic!("no summary line in stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    line.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

pub fn temp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
