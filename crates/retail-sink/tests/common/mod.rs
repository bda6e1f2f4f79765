//! Test fixtures shared by the behaviour suite and the benchmark: a fresh PostgreSQL database
//! or SQLite file per test, and builders for batches.
//!
//! PostgreSQL comes from `RETAIL_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test creates `retail_test_<random>`
//! there and drops it (`WITH (FORCE)`) when its fixture drops, even if the test panicked. An
//! unreachable server fails the test with a message saying so: a skipped PostgreSQL suite
//! would look green while testing nothing.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use retail_core::{DeadLetter, Origin, Sale, SaleKind, TopicPartition};
use retail_sink::{LandedEvent, LandedSale, OffsetRange, Store, StoreUrl};
use rust_decimal::Decimal;
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A store to open (as often as a test likes) and what to clean up after it.
#[derive(Debug)]
pub struct Fixture {
    pub url: StoreUrl,
    pub pg: Option<PgDb>,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    /// Opens the store (running migrations).
    pub async fn open(&self) -> Arc<dyn Store> {
        match retail_sink::open(&self.url).await {
            Ok(s) => s,
            Err(e) => panic!("open store {:?}: {e}", self.url),
        }
    }

    /// Opens the store with a dedup horizon of `days` (`0`: none).
    pub async fn open_with_horizon(&self, days: u32) -> Arc<dyn Store> {
        let options = retail_sink::StoreOptions {
            dedup_horizon_days: days,
            ..retail_sink::StoreOptions::default()
        };
        match retail_sink::open_with(&self.url, options).await {
            Ok(s) => s,
            Err(e) => panic!("open store {:?} with a horizon of {days} days: {e}", self.url),
        }
    }

    /// Opens the store with `options` (retention, ADR 0028).
    pub async fn open_with(&self, options: retail_sink::StoreOptions) -> Arc<dyn Store> {
        match retail_sink::open_with(&self.url, options).await {
            Ok(s) => s,
            Err(e) => panic!("open store {:?} with {options:?}: {e}", self.url),
        }
    }

    /// The day partitions of `parent` (PostgreSQL, from `pg_inherits`), sorted; SQLite: none.
    pub async fn partitions(&self, parent: &str) -> Vec<String> {
        match &self.url {
            StoreUrl::Postgres(_) => {
                self.texts(&format!(
                    "SELECT CAST(c.relname AS text) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                     WHERE i.inhparent = '{parent}'::regclass"
                ))
                .await
            }
            StoreUrl::Sqlite(_) => Vec::new(),
        }
    }

    /// The ledger's day partitions (PostgreSQL, from `pg_inherits`) or day tables (SQLite),
    /// sorted: `landed_event_ids_YYYYMMDD`.
    pub async fn ledger_days(&self) -> Vec<String> {
        let sql = match &self.url {
            StoreUrl::Postgres(_) => {
                "SELECT CAST(c.relname AS text) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = 'landed_event_ids'::regclass"
            }
            StoreUrl::Sqlite(_) => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'landed_event_ids_[0-9]*'"
            }
        };
        self.texts(sql).await
    }
}

/// A fresh PostgreSQL database.
pub async fn pg() -> Fixture {
    let db = PgDb::create().await;
    Fixture {
        url: StoreUrl::Postgres(db.url.clone()),
        pg: Some(db),
        _dir: None,
    }
}

impl Fixture {
    /// Rows of a one-text-column query, sorted, read behind the store's back.
    pub async fn texts(&self, sql: &str) -> Vec<String> {
        let mut rows: Vec<String> = match &self.url {
            StoreUrl::Postgres(url) => connect(url)
                .await
                .query(sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect(),
            StoreUrl::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).expect("open sqlite");
                let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("query");
                rows.map(|r| r.expect("row")).collect()
            }
        };
        rows.sort();
        rows
    }
}

impl Fixture {
    /// The one money column of each row of `sql`, read behind the store's back as the exact
    /// decimal the store holds: PostgreSQL's `numeric` as its text, SQLite's integer cents
    /// (ADR 0020); anything else in SQLite (a REAL) fails the test, naming it. Sorted.
    pub async fn money(&self, sql: &str) -> Vec<Decimal> {
        let mut out: Vec<Decimal> = match &self.url {
            StoreUrl::Postgres(url) => connect(url)
                .await
                .query(&format!("SELECT v::text FROM ({sql}) AS q(v)"), &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|r| {
                    let text: String = r.get(0);
                    text.parse().unwrap_or_else(|e| panic!("{sql}: {text:?}: {e}"))
                })
                .collect(),
            StoreUrl::Sqlite(path) => {
                use rusqlite::types::Value;
                let conn = rusqlite::Connection::open(path).expect("open sqlite");
                let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let rows = stmt.query_map([], |r| r.get::<_, Value>(0)).expect("query");
                rows.map(|r| match r.expect("row") {
                    Value::Integer(cents) => Decimal::new(cents, 2),
                    other => panic!("{sql}: money must be integer cents in SQLite, got {other:?}"),
                })
                .collect()
            }
        };
        out.sort();
        out
    }
}

impl Fixture {
    /// Makes the store refuse, for its data, every sale of store `store_id`: a trigger behind
    /// the store's back, raising PostgreSQL's numeric_value_out_of_range (class 22) or SQLite's
    /// constraint error, with the message `store <id> is refused`.
    pub async fn refuse_store(&self, store_id: i64) {
        match &self.url {
            StoreUrl::Postgres(url) => connect(url)
                .await
                .batch_execute(&format!(
                    "CREATE FUNCTION refuse_store() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                       IF NEW.store_id = {store_id} THEN \
                         RAISE EXCEPTION 'store {store_id} is refused' USING ERRCODE = 'numeric_value_out_of_range'; \
                       END IF; RETURN NEW; END $$; \
                     CREATE TRIGGER refuse_store BEFORE INSERT ON sales_raw \
                       FOR EACH ROW EXECUTE FUNCTION refuse_store();"
                ))
                .await
                .expect("create refusing trigger"),
            StoreUrl::Sqlite(path) => rusqlite::Connection::open(path)
                .expect("open sqlite")
                .execute_batch(&format!(
                    "CREATE TRIGGER refuse_store BEFORE INSERT ON sales_raw \
                       WHEN NEW.store_id = {store_id} \
                       BEGIN SELECT RAISE(ABORT, 'store {store_id} is refused'); END;"
                ))
                .expect("create refusing trigger"),
        }
    }
}

/// A fresh SQLite file in a temp dir.
pub fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().expect("create temp dir");
    let url = StoreUrl::Sqlite(dir.path().join("retail.db"));
    Fixture {
        url,
        pg: None,
        _dir: Some(dir),
    }
}

/// `retail_test_<random>` on the test server, dropped with the value.
#[derive(Debug)]
pub struct PgDb {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl PgDb {
    async fn create() -> Self {
        let admin_url = std::env::var("RETAIL_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
        let name = format!("retail_test_{}", Uuid::now_v7().simple());
        let admin = connect(&admin_url).await;
        if let Err(e) = admin.batch_execute(&format!("CREATE DATABASE {name}")).await {
            panic!("CREATE DATABASE {name} on {admin_url}: {e}");
        }
        let url = with_database(&admin_url, &name);
        Self { name, url, admin_url }
    }

    /// A plain client on the test database, for checks behind the store's back.
    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Own thread and runtime: drop may run inside (or after) the test's runtime.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&admin_url, NoTls).await.ok()?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// Connects or fails the test saying PostgreSQL is not there.
pub async fn connect(url: &str) -> Client {
    match tokio_postgres::connect(url, NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            client
        }
        Err(e) => panic!(
            "PostgreSQL unreachable at {url}: {e} ({}). The PostgreSQL tests need a server: start one or \
             point RETAIL_TEST_PG_URL at it.",
            std::error::Error::source(&e).map_or_else(String::new, |s| s.to_string())
        ),
    }
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{db}{query}")
}

/// A UTC timestamp from RFC 3339.
pub fn ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("test timestamp").to_utc()
}

/// A sale of `qty` units of SKU 42 in store `store`.
pub fn sale(event_id: Uuid, at: DateTime<Utc>, store: i64, qty: i32) -> LandedSale {
    LandedSale {
        event_id,
        ts: at,
        source: "pos".to_owned(),
        sale: Sale {
            kind: if qty < 0 { SaleKind::Return } else { SaleKind::Sale },
            store_id: store,
            sku: 42,
            qty,
            unit_price: Some(Decimal::new(1999, 2)),
            seller_id: Some(7),
        },
    }
}

/// An order event.
pub fn order(event_id: Uuid, at: DateTime<Utc>) -> LandedEvent {
    LandedEvent {
        event_id,
        ts: at,
        source: "web".to_owned(),
        event_type: "order",
        key: "o-1".to_owned(),
        payload: format!(r#"{{"type":"order","event_id":"{event_id}","order_id":"o-1","status":"paid"}}"#),
    }
}

/// A dead letter from `topic`/`partition` at `offset`, with a file and line.
pub fn dead_letter(tp: &TopicPartition, offset: i64, reason: &str) -> DeadLetter {
    DeadLetter {
        raw: b"{\"type\":\"sale\",\"qty\":\"two\"}\xff".to_vec(),
        reason: reason.to_owned(),
        kind: "invalid_field",
        origin: Origin {
            file: Some("erp/2026-11-21.csv".to_owned()),
            line: Some(17),
            ..Origin::log("csv", tp, offset)
        },
        rejected_at: ts("2026-11-21T13:43:53.488Z"),
        id: None,
    }
}

/// The offsets `[first, next)` of a partition.
pub fn range(tp: &TopicPartition, first: i64, next: i64) -> OffsetRange {
    OffsetRange {
        tp: tp.clone(),
        first,
        next,
    }
}

/// `n` time-ordered ids.
pub fn ids(n: usize) -> Vec<Uuid> {
    (0..n).map(|_| Uuid::now_v7()).collect()
}
