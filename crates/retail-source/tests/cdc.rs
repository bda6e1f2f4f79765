//! The PostgreSQL CDC source against the real PostgreSQL (wal_level = logical; scripts/test
//! sets it) and the real embedded log: snapshot then stream, restarts, a crash between the
//! append and the slot's advance, a log that refuses, bad rows, an unreachable server, and the
//! write-to-log lag. Each test makes its own database and drops it (and its slot) at the end.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use retail_core::event::{EventBody, OrderStatus, SaleKind};
use retail_core::health::State;
use retail_core::{decode, Event, Health, Metrics, Shutdown, TopicPartition};
use retail_log::embedded::{EmbeddedConfig, EmbeddedLog};
use retail_log::{ConsumedRecord, Consumer, Log, ProducerRecord, RecordMetadata};
use retail_source::cdc::{test_hooks, CdcConfig, CdcTable};
use retail_source::{Backlog, BuildSource, Routes, SourceContext, SourceHandle};
use rust_decimal::Decimal;
use tokio_postgres::{Client, NoTls};

fn admin_url() -> String {
    std::env::var("RETAIL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is not reachable at {url} ({e}); the test command (scripts/test) starts it")
    });
    tokio::spawn(conn);
    client
}

/// A fresh database, dropped with its slots when this is dropped (also on a panic).
struct Db {
    name: String,
    url: String,
    client: Client,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Db {
    async fn new(setup: &str) -> Self {
        let admin = connect(&admin_url()).await;
        let level: String = admin
            .query_one("SHOW wal_level", &[])
            .await
            .expect("wal_level")
            .get(0);
        assert_eq!(
            level, "logical",
            "CDC tests need wal_level = logical (scripts/test sets it)"
        );
        let name = format!(
            "retail_cdc_{}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() % 1_000_000)
        );
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let base = admin_url();
        let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", &base));
        let authority = rest.split('/').next().unwrap_or(rest);
        let query = rest
            .split_once('?')
            .map(|(_, q)| format!("?{q}"))
            .unwrap_or_default();
        let url = format!("{scheme}://{authority}/{name}{query}");
        let client = connect(&url).await;
        client.batch_execute(setup).await.expect("setup");
        Self { name, url, client }
    }

    async fn confirmed(&self, slot: &str) -> Option<u64> {
        let row = self
            .client
            .query_opt(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .expect("slots");
        row.and_then(|r| r.get::<_, Option<String>>(0))
            .and_then(|t| retail_source::cdc::pgoutput::parse_lsn(&t))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let Ok((admin, conn)) = tokio_postgres::connect(&admin_url(), NoTls).await else {
                    return;
                };
                tokio::spawn(conn);
                for _ in 0..50 {
                    let _ = admin
                        .execute(
                            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL",
                            &[&name],
                        )
                        .await;
                    let dropped = admin
                        .execute(
                            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1",
                            &[&name],
                        )
                        .await;
                    let left = admin
                        .query_one("SELECT count(*) FROM pg_replication_slots WHERE database = $1", &[&name])
                        .await
                        .map(|r| r.get::<_, i64>(0))
                        .unwrap_or(1);
                    if dropped.is_ok() && left == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

/// A log that refuses appends (a retryable error) while `refuse` is set.
#[derive(Debug)]
struct Refusing {
    inner: Arc<dyn Log>,
    refuse: AtomicBool,
}

#[async_trait]
impl Log for Refusing {
    async fn ensure_topic(&self, topic: &str, partitions: i32) -> retail_log::Result<()> {
        self.inner.ensure_topic(topic, partitions).await
    }
    async fn partitions(&self, topic: &str) -> retail_log::Result<i32> {
        self.inner.partitions(topic).await
    }
    async fn append(&self, records: Vec<ProducerRecord>) -> retail_log::Result<Vec<RecordMetadata>> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(retail_log::Error::io(
                "/refusing",
                std::io::Error::other("the test log refuses appends"),
            ));
        }
        self.inner.append(records).await
    }
    async fn watermarks(&self, tp: &TopicPartition) -> retail_log::Result<(i64, i64)> {
        self.inner.watermarks(tp).await
    }
    async fn offset_for_timestamp(&self, tp: &TopicPartition, ts: i64) -> retail_log::Result<Option<i64>> {
        self.inner.offset_for_timestamp(tp, ts).await
    }
    async fn commit_offsets(&self, group: &str, offsets: &[(TopicPartition, i64)]) -> retail_log::Result<()> {
        self.inner.commit_offsets(group, offsets).await
    }
    async fn committed_offsets(
        &self,
        group: &str,
        tps: &[TopicPartition],
    ) -> retail_log::Result<Vec<Option<i64>>> {
        self.inner.committed_offsets(group, tps).await
    }
    async fn consumer(&self, group: &str, topics: &[&str]) -> retail_log::Result<Box<dyn Consumer>> {
        self.inner.consumer(group, topics).await
    }
    async fn read(
        &self,
        tp: &TopicPartition,
        offset: i64,
        max: usize,
    ) -> retail_log::Result<Vec<ConsumedRecord>> {
        self.inner.read(tp, offset, max).await
    }
}

struct Env {
    dir: tempfile::TempDir,
    log: Arc<dyn Log>,
}

impl Env {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log: Arc<dyn Log> = Arc::new(
            EmbeddedLog::open(&dir.path().join("log"), EmbeddedConfig::default())
                .await
                .expect("opens"),
        );
        for topic in retail_core::event::topics::ALL {
            log.ensure_topic(topic, 1).await.expect("topic");
        }
        Self { dir, log }
    }

    /// Builds and spawns the source on `log`.
    async fn start(&self, config: &CdcConfig, log: Arc<dyn Log>) -> Running {
        let shutdown = Shutdown::new();
        let health = Health::new();
        let cx = SourceContext {
            log,
            metrics: Metrics::new(),
            health: health.clone(),
            shutdown: shutdown.clone(),
            data_dir: self.dir.path().to_path_buf(),
            partitions: 1,
            routes: Routes::default(),
            backlog: Backlog::default(),
            loopback: true,
        };
        let built = config.build(&cx).await.expect("builds");
        Running {
            handle: built.handle,
            health,
            shutdown,
            task: tokio::spawn(built.task),
        }
    }

    /// Every record on the log, topic by topic, in offset order.
    async fn records(&self) -> Vec<ConsumedRecord> {
        let mut all = Vec::new();
        for topic in retail_core::event::topics::ALL {
            let tp = TopicPartition::new(topic, 0);
            let mut at = 0;
            loop {
                let batch = self.log.read(&tp, at, 1000).await.expect("read");
                if batch.is_empty() {
                    break;
                }
                at = batch.last().map_or(at, |r| r.offset + 1);
                all.extend(batch);
            }
        }
        all
    }

    /// The events on the log (not the rejects).
    async fn events(&self) -> Vec<Event> {
        self.records()
            .await
            .iter()
            .filter(|r| header(r, "reject_reason").is_none())
            .map(|r| decode(&r.value).expect("an event"))
            .collect()
    }

    async fn wait_events(&self, n: usize, what: &str) -> Vec<Event> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let events = self.events().await;
            if events.len() >= n {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {} of {n} events after 30 s: {events:#?}",
                events.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

struct Running {
    handle: SourceHandle,
    health: Health,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<retail_source::Result<()>>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("stops on shutdown")
            .expect("joins")
            .expect("ends cleanly");
    }

    fn detail(&self) -> String {
        self.health
            .snapshot()
            .get(self.handle.name())
            .map(|s| s.detail.clone())
            .unwrap_or_default()
    }

    async fn wait_state(&self, state: State, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.handle.state() != state {
            assert!(
                Instant::now() < deadline,
                "not {state:?} after {secs} s: {:?} ({})",
                self.handle.state(),
                self.detail()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// `pg_current_wal_lsn()`: past the commit of everything written before.
async fn current_lsn(db: &Db) -> u64 {
    let lsn: String = db
        .client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("wal lsn")
        .get(0);
    retail_source::cdc::pgoutput::parse_lsn(&lsn).expect("lsn")
}

fn header<'a>(r: &'a ConsumedRecord, key: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| std::str::from_utf8(&h.value).ok())
}

const TABLES: &str = "
    CREATE TABLE sales (id bigserial PRIMARY KEY, store_id int NOT NULL, sku bigint, qty int,
        unit_price numeric(12,2), seller_id int, sold_at timestamptz NOT NULL DEFAULT now());
    ALTER TABLE sales REPLICA IDENTITY FULL;
    CREATE TABLE orders (id text PRIMARY KEY, status text NOT NULL, store_id int,
        total numeric(20,8), currency text);
    ALTER TABLE orders REPLICA IDENTITY FULL;
    CREATE TABLE stock (store_id int, sku bigint, qty_on_hand bigint, updated_at timestamptz,
        PRIMARY KEY (store_id, sku));
    ALTER TABLE stock REPLICA IDENTITY FULL;";

fn config(name: &str, db: &Db) -> CdcConfig {
    CdcConfig {
        name: name.to_owned(),
        url: db.url.clone(),
        poll_ms: 50,
        tables: vec![
            CdcTable {
                table: "public.sales".into(),
                event_type: "sale".into(),
                columns: BTreeMap::from([("sold_at".into(), "ts".into()), ("id".into(), "-".into())]),
            },
            CdcTable {
                table: "public.orders".into(),
                event_type: "order".into(),
                columns: BTreeMap::from([
                    ("id".into(), "order_id".into()),
                    ("total".into(), "amount".into()),
                ]),
            },
            CdcTable {
                table: "public.stock".into(),
                event_type: "inventory".into(),
                columns: BTreeMap::from([
                    ("qty_on_hand".into(), "on_hand".into()),
                    ("updated_at".into(), "ts".into()),
                ]),
            },
        ],
        ..CdcConfig::default()
    }
}

fn sale_of(e: &Event) -> Option<(SaleKind, i64, i32, Option<Decimal>)> {
    match &e.body {
        EventBody::Sale(s) => Some((s.kind, s.sku, s.qty, s.unit_price)),
        _ => None,
    }
}

fn distinct_ids(events: &[Event]) -> usize {
    let mut ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
    ids.sort();
    ids.dedup();
    ids.len()
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_stream_in_commit_order_with_exact_numbers() {
    let db = Db::new(TABLES).await;
    db.client
        .batch_execute(
            "INSERT INTO sales (store_id, sku, qty, unit_price, seller_id) VALUES (1, 101, 2, 19.99, 7), (1, 102, 1, 0.10, NULL);
             INSERT INTO orders VALUES ('o-1', 'created', 1, 1234567890.12345678, 'EUR');",
        )
        .await
        .expect("rows before the start");
    let env = Env::new().await;
    let cfg = config("cdc-a", &db);
    let src = env.start(&cfg, env.log.clone()).await;
    let snap = env.wait_events(3, "snapshot").await;
    src.wait_state(State::Running, 10).await;
    let order = snap
        .iter()
        .find_map(|e| match &e.body {
            EventBody::Order(o) => Some(o.clone()),
            _ => None,
        })
        .expect("order");
    assert_eq!(
        order.amount,
        Some(dec("1234567890.12345678")),
        "a long numeric stays exact"
    );
    assert_eq!(order.status, OrderStatus::Created);

    for sql in [
        "INSERT INTO sales (store_id, sku, qty, unit_price, seller_id) VALUES (2, 103, 3, 9999999999.99, 8)",
        "UPDATE orders SET status = 'paid' WHERE id = 'o-1'",
        "DELETE FROM sales WHERE sku = 101",
        "INSERT INTO stock VALUES (2, 103, 40, now())",
        "DELETE FROM stock WHERE sku = 103",
        "DELETE FROM orders WHERE id = 'o-1'",
    ] {
        db.client.batch_execute(sql).await.expect(sql);
    }
    let events = env.wait_events(9, "stream").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events_later = env.events().await;
    assert_eq!(
        events_later.len(),
        9,
        "nothing more, nothing twice: {events_later:#?}"
    );
    assert_eq!(distinct_ids(&events), 9);
    let sales: Vec<_> = events.iter().filter_map(sale_of).collect();
    assert_eq!(
        sales,
        vec![
            (SaleKind::Sale, 101, 2, Some(dec("19.99"))),
            (SaleKind::Sale, 102, 1, Some(dec("0.10"))),
            (SaleKind::Sale, 103, 3, Some(dec("9999999999.99"))),
            (SaleKind::Void, 101, -2, Some(dec("19.99"))),
        ],
        "snapshot first, then the stream in commit order"
    );
    let inv: Vec<i64> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Inventory(i) => Some(i.on_hand),
            _ => None,
        })
        .collect();
    assert_eq!(inv, vec![40, 0], "a deleted stock row is on_hand 0");
    let statuses: Vec<OrderStatus> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Order(o) => Some(o.status),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        vec![OrderStatus::Created, OrderStatus::Paid, OrderStatus::Cancelled]
    );
    // Across topics, the streamed records carry strictly increasing commit positions in the
    // order the transactions committed.
    let mut streamed: Vec<(u64, String)> = env
        .records()
        .await
        .iter()
        .filter_map(|r| {
            let end = header(r, "cdc_end_lsn")?;
            let e = decode(&r.value).ok()?;
            Some((
                retail_source::cdc::pgoutput::parse_lsn(end)?,
                e.type_name().to_owned(),
            ))
        })
        .collect();
    streamed.sort();
    let kinds: Vec<&str> = streamed.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["sale", "order", "void", "inventory", "inventory", "order"]
    );
    let counts = src.handle.counts();
    assert_eq!((counts.received, counts.accepted, counts.rejected), (9, 9, 0));
    let slot = cfg.slot_name();
    src.stop().await;
    assert!(db.confirmed(&slot).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_the_same_slot_misses_and_repeats_nothing() {
    let db = Db::new(TABLES).await;
    let env = Env::new().await;
    let cfg = config("cdc-b", &db);
    let insert = |from: i64, to: i64| {
        format!("INSERT INTO sales (store_id, sku, qty, unit_price) SELECT 1, g, 1, 2.50 FROM generate_series({from}, {to}) g")
    };
    db.client.batch_execute(&insert(1, 5)).await.expect("before");
    let src = env.start(&cfg, env.log.clone()).await;
    env.wait_events(5, "snapshot").await;
    db.client
        .batch_execute(&insert(6, 10))
        .await
        .expect("while running");
    env.wait_events(10, "first run").await;

    // Paused: nothing is read; resumed: it is.
    src.handle.pause();
    tokio::time::sleep(Duration::from_millis(200)).await;
    db.client
        .batch_execute(&insert(11, 12))
        .await
        .expect("while paused");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(env.events().await.len(), 10, "a paused source reads nothing");
    src.handle.resume();
    env.wait_events(12, "after resume").await;

    // Stopped (aborted, as a killed process would be), rows written while it is down.
    src.task.abort();
    let _ = src.task.await;
    db.client
        .batch_execute(&insert(13, 20))
        .await
        .expect("while down");
    db.client
        .batch_execute("UPDATE sales SET qty = 2 WHERE sku = 3; DELETE FROM sales WHERE sku = 4")
        .await
        .expect("changes while down");
    let src = env.start(&cfg, env.log.clone()).await;
    let events = env.wait_events(21, "second run").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = {
        let again = env.events().await;
        assert!(again.len() >= events.len());
        again
    };
    let mut by_id: HashMap<uuid::Uuid, usize> = HashMap::new();
    for e in &events {
        *by_id.entry(e.event_id).or_default() += 1;
    }
    assert_eq!(
        by_id.len(),
        21,
        "20 inserts and a delete, each once by id; the update of a sale is no sale"
    );
    let refused: Vec<String> = env
        .records()
        .await
        .iter()
        .filter_map(|r| header(r, "reject_reason").map(str::to_owned))
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("append-only"), "{refused:?}");
    let mut once = std::collections::HashSet::new();
    let units: i64 = events
        .iter()
        .filter(|e| once.insert(e.event_id))
        .filter_map(sale_of)
        .map(|s| i64::from(s.2))
        .sum();
    assert_eq!(units, 19, "20 sold, 1 voided; the update added nothing");
    let sold: Vec<i64> = events
        .iter()
        .filter_map(sale_of)
        .filter(|s| s.0 == SaleKind::Sale && s.2 == 1)
        .map(|s| s.1)
        .collect();
    let mut unique = sold.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique, (1..=20).collect::<Vec<i64>>());
    src.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_append_and_advance_lands_once_and_the_slot_never_passes_the_log() {
    let db = Db::new(TABLES).await;
    let env = Env::new().await;
    let cfg = config("cdc-c", &db);
    let slot = cfg.slot_name();
    let src = env.start(&cfg, env.log.clone()).await;
    src.wait_state(State::Running, 20).await;
    let start = db.confirmed(&slot).await.expect("slot");

    test_hooks::crash_after_append("cdc-c", true);
    db.client
        .batch_execute("INSERT INTO sales (store_id, sku, qty, unit_price) SELECT 1, g, 1, 1.00 FROM generate_series(1, 3) g")
        .await
        .expect("rows");
    let crashed = current_lsn(&db).await;
    tokio::time::timeout(Duration::from_secs(20), src.task)
        .await
        .expect("the hook ends the task")
        .expect("joins")
        .expect("ok");
    test_hooks::crash_after_append("cdc-c", false);
    assert_eq!(env.events().await.len(), 3, "appended before the crash");
    let after_crash = db.confirmed(&slot).await.expect("slot");
    assert!(
        after_crash >= start && after_crash < crashed,
        "the slot did not pass the crashed transaction: the advance never ran"
    );

    db.client
        .batch_execute("INSERT INTO sales (store_id, sku, qty, unit_price) VALUES (1, 4, 1, 1.00)")
        .await
        .expect("row");
    let written = current_lsn(&db).await;
    let src = env.start(&cfg, env.log.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // At every moment the slot is only past a transaction once its events are in the log
        // (the slot is read first, the log after: the log can only have more by then). The
        // slot may pass positions where nothing was captured (it reads through quiet WAL).
        let confirmed = db.confirmed(&slot).await.expect("slot");
        let events = env.events().await;
        if confirmed >= crashed {
            assert!(
                events.len() >= 6,
                "slot {confirmed:x} passed the crashed transaction, log has {} events",
                events.len()
            );
        }
        if confirmed >= written {
            assert_eq!(events.len(), 7, "slot {confirmed:x} passed the last row's commit");
        }
        if events.len() >= 7 && confirmed >= written {
            break;
        }
        assert!(Instant::now() < deadline, "{} events", events.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events = env.events().await;
    assert_eq!(
        events.len(),
        7,
        "the crashed transaction was read again (3), then one more row"
    );
    assert_eq!(distinct_ids(&events), 4, "every row once by id");
    src.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slot_does_not_move_while_the_log_refuses() {
    let db = Db::new(TABLES).await;
    let env = Env::new().await;
    let refusing = Arc::new(Refusing {
        inner: env.log.clone(),
        refuse: AtomicBool::new(false),
    });
    let cfg = config("cdc-d", &db);
    let slot = cfg.slot_name();
    let src = env.start(&cfg, refusing.clone()).await;
    src.wait_state(State::Running, 20).await;
    refusing.refuse.store(true, Ordering::SeqCst);
    db.client
        .batch_execute("INSERT INTO sales (store_id, sku, qty) VALUES (1, 1, 1), (1, 2, 1)")
        .await
        .expect("rows");
    let written = current_lsn(&db).await;
    src.wait_state(State::Retrying, 10).await;
    assert!(src.detail().contains("refuses"), "{}", src.detail());
    // The slot may have read through quiet WAL before the insert, never past it.
    let stuck = db.confirmed(&slot).await.expect("slot");
    assert!(
        stuck < written,
        "slot {stuck:x} passed the refused rows {written:x}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        db.confirmed(&slot).await,
        Some(stuck),
        "the slot stays while the append does not return"
    );
    assert!(env.events().await.is_empty());
    refusing.refuse.store(false, Ordering::SeqCst);
    env.wait_events(2, "after the log took them").await;
    src.wait_state(State::Running, 10).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.confirmed(&slot).await.is_none_or(|c| c < written) {
        assert!(Instant::now() < deadline, "the slot never moved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    src.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_become_reject_records_and_the_source_goes_on() {
    let db = Db::new(
        "CREATE TABLE sales (store_id int, sku bigint, qty text, unit_price text, ts timestamptz DEFAULT now());
         ALTER TABLE sales REPLICA IDENTITY FULL;
         CREATE TABLE audit (note text);
         CREATE PUBLICATION retail_cdc_e FOR TABLE sales, audit;",
    )
    .await;
    let env = Env::new().await;
    let mut cfg = config("cdc-e", &db);
    cfg.tables.truncate(1);
    cfg.tables[0].columns.clear();
    let src = env.start(&cfg, env.log.clone()).await;
    src.wait_state(State::Running, 20).await;
    for sql in [
        "INSERT INTO sales (store_id, sku, qty, unit_price) VALUES (1, 1, 'two', '1.00')",
        "INSERT INTO sales (store_id, sku, qty, unit_price) VALUES (1, 2, '1', 'abc')",
        "INSERT INTO sales (store_id, sku, qty, unit_price) VALUES (1, NULL, '1', '1.00')",
        "INSERT INTO audit VALUES ('not mapped')",
        "TRUNCATE sales",
        "INSERT INTO sales (store_id, sku, qty, unit_price) VALUES (1, 9, '1', '1.00')",
    ] {
        db.client.batch_execute(sql).await.expect(sql);
    }
    env.wait_events(1, "the good row after the bad ones").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let rejects = loop {
        let rejects: Vec<String> = env
            .records()
            .await
            .iter()
            .filter_map(|r| header(r, "reject_reason").map(str::to_owned))
            .collect();
        if rejects.len() >= 5 || Instant::now() > deadline {
            break rejects;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rejects.len(), 5, "{rejects:#?}");
    let has = |needles: &[&str]| rejects.iter().any(|r| needles.iter().all(|n| r.contains(n)));
    assert!(
        has(&["cdc-e", "public.sales", "column qty", "two", "LSN "]),
        "{rejects:#?}"
    );
    assert!(has(&["public.sales", "column unit_price", "abc"]), "{rejects:#?}");
    assert!(
        has(&["public.sales", "sku"]),
        "NULL in a required column: {rejects:#?}"
    );
    assert!(has(&["public.audit", "not mapped"]), "{rejects:#?}");
    assert!(has(&["public.sales", "TRUNCATE"]), "{rejects:#?}");
    let records = env.records().await;
    let bad = records
        .iter()
        .find(|r| header(r, "reject_reason").is_some_and(|x| x.contains("two")))
        .expect("reject");
    assert_eq!(header(bad, "reject_kind"), Some("cdc_row"));
    assert_eq!(header(bad, "origin_file"), Some("public.sales"));
    assert!(header(bad, "origin_line")
        .and_then(|l| l.parse::<u64>().ok())
        .is_some());
    assert_eq!(src.handle.state(), State::Running);
    let c = src.handle.counts();
    assert_eq!((c.accepted, c.rejected), (1, 5));
    src.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_postgres_shows_retrying_then_running() {
    let db = Db::new(TABLES).await;
    let env = Env::new().await;
    // A port nothing listens on yet; later a proxy to the real server opens on it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut cfg = config("cdc-f", &db);
    cfg.url = format!("postgres://postgres@127.0.0.1:{port}/{}", db.name);
    let src = env.start(&cfg, env.log.clone()).await;
    src.wait_state(State::Retrying, 10).await;
    assert!(src.detail().contains("connecting"), "{}", src.detail());

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the port");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    src.wait_state(State::Running, 20).await;
    db.client
        .batch_execute("INSERT INTO sales (store_id, sku, qty) VALUES (1, 1, 1)")
        .await
        .expect("row");
    env.wait_events(1, "through the proxy").await;
    src.stop().await;
}

/// Write-to-log lag: one-row transactions at a steady rate, each stamped with
/// `clock_timestamp()` at insert; a reader polls the log every 5 ms and notes when each row
/// appears. Printed (run with `--no-capture` to see it); bounded loosely.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_to_log_lag_at_a_steady_rate() {
    const RATE: u64 = 200;
    const ROWS: u64 = 1000;
    let db = Db::new(TABLES).await;
    let env = Env::new().await;
    let cfg = config("cdc-g", &db);
    let src = env.start(&cfg, env.log.clone()).await;
    src.wait_state(State::Running, 20).await;
    let writer = {
        let url = db.url.clone();
        tokio::spawn(async move {
            let client = connect(&url).await;
            let stmt = client
                .prepare(
                    "INSERT INTO sales (store_id, sku, qty, sold_at) VALUES (1, $1, 1, clock_timestamp())",
                )
                .await
                .expect("prepare");
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
            for i in 0..ROWS {
                tick.tick().await;
                client.execute(&stmt, &[&(i as i64 + 1)]).await.expect("insert");
            }
        })
    };
    let tp = TopicPartition::new("sales", 0);
    let mut at = 0;
    let mut lags = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (lags.len() as u64) < ROWS {
        assert!(Instant::now() < deadline, "{} of {ROWS} rows", lags.len());
        let batch = env.log.read(&tp, at, 10_000).await.expect("read");
        let now = chrono::Utc::now().timestamp_millis();
        for r in &batch {
            let e = decode(&r.value).expect("event");
            lags.push(now - e.ts.timestamp_millis());
            at = r.offset + 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    writer.await.expect("writer");
    lags.sort_unstable();
    let p = |q: f64| lags[((lags.len() as f64 - 1.0) * q) as usize];
    println!(
        "cdc write-to-log lag at {RATE} one-row transactions/s, poll_ms = {}: p50 {} ms, p95 {} ms, p99 {} ms, max {} ms ({} rows)",
        cfg.poll_ms,
        p(0.5),
        p(0.95),
        p(0.99),
        p(1.0),
        lags.len()
    );
    assert!(p(0.99) < 3000, "p99 lag {} ms", p(0.99));
    src.stop().await;
}

/// The snapshot and the stream meet exactly: rows committed while the slot is made and the
/// snapshot is read arrive once, by the snapshot or by the stream, never by both or neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_while_the_snapshot_is_taken_arrive_exactly_once() {
    const ROWS: i64 = 600;
    let db = Db::new(TABLES).await;
    db.client
        .batch_execute("INSERT INTO sales (store_id, sku, qty) SELECT 1, g, 1 FROM generate_series(1, 100) g")
        .await
        .expect("rows before");
    let env = Env::new().await;
    let cfg = config("cdc-h", &db);
    let writer = {
        let url = db.url.clone();
        tokio::spawn(async move {
            let client = connect(&url).await;
            for sku in 101..=ROWS {
                client
                    .execute(
                        "INSERT INTO sales (store_id, sku, qty) VALUES (1, $1, 1)",
                        &[&sku],
                    )
                    .await
                    .expect("insert");
                if sku % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let src = env.start(&cfg, env.log.clone()).await;
    writer.await.expect("writer");
    env.wait_events(ROWS as usize, "snapshot and stream").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut skus: Vec<i64> = env
        .events()
        .await
        .iter()
        .filter_map(sale_of)
        .map(|s| s.1)
        .collect();
    skus.sort_unstable();
    assert_eq!(skus, (1..=ROWS).collect::<Vec<_>>(), "every row exactly once");
    let streamed = env
        .records()
        .await
        .iter()
        .filter(|r| header(r, "cdc_end_lsn").is_some())
        .count();
    println!(
        "{} rows by the snapshot, {streamed} by the stream",
        ROWS as usize - streamed
    );
    src.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_the_slot_moves_while_only_unpublished_tables_are_written() {
    let db = Db::new(&format!(
        "{TABLES} CREATE TABLE other (id serial PRIMARY KEY, note text);"
    ))
    .await;
    let env = Env::new().await;
    let cfg = config("cdc-quiet", &db);
    let slot = cfg.slot_name();
    let src = env.start(&cfg, env.log.clone()).await;
    src.wait_state(State::Running, 20).await;
    db.client
        .batch_execute("INSERT INTO other (note) SELECT 'x' FROM generate_series(1, 1000)")
        .await
        .expect("unpublished writes");
    let written = current_lsn(&db).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while db.confirmed(&slot).await.is_none_or(|c| c < written) {
        assert!(
            Instant::now() < deadline,
            "the slot stayed at {:?} below {written:x}: the server keeps all WAL",
            db.confirmed(&slot).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(env.events().await.is_empty());
    src.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_a_slot_without_a_recorded_snapshot_is_snapshotted_not_skipped() {
    let db = Db::new(TABLES).await;
    db.client
        .batch_execute(
            "INSERT INTO sales (store_id, sku, qty, unit_price) VALUES (1, 1, 1, 1.00), (1, 2, 1, 1.00)",
        )
        .await
        .expect("rows before the start");
    let env = Env::new().await;
    let cfg = config("cdc-pending", &db);
    // As if the first run died right after making the slot: the slot exists, `cdc.json` does not.
    db.client
        .batch_execute(&format!(
            "SELECT pg_create_logical_replication_slot('{}', 'pgoutput')",
            cfg.slot_name()
        ))
        .await
        .expect("slot");
    let src = env.start(&cfg, env.log.clone()).await;
    let events = env.wait_events(2, "the rows that existed before the slot").await;
    src.wait_state(State::Running, 10).await;
    db.client
        .batch_execute("INSERT INTO sales (store_id, sku, qty, unit_price) VALUES (1, 3, 1, 1.00)")
        .await
        .expect("row");
    env.wait_events(3, "streamed after the snapshot").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events_later = env.events().await;
    assert_eq!(events_later.len(), 3, "{events:#?} {events_later:#?}");
    assert_eq!(distinct_ids(&events_later), 3);
    src.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_a_mapped_table_missing_from_the_publication_is_refused_by_name() {
    let db = Db::new(TABLES).await;
    let env = Env::new().await;
    let cfg = config("cdc-late", &db);
    // The publication as an earlier config (sales only) made it.
    db.client
        .batch_execute(&format!(
            "CREATE PUBLICATION \"{}\" FOR TABLE sales",
            cfg.publication_name()
        ))
        .await
        .expect("publication");
    let src = env.start(&cfg, env.log.clone()).await;
    src.wait_state(State::Failed, 20).await;
    let detail = src.detail();
    assert!(
        detail.contains("public.orders")
            && detail.contains("public.stock")
            && detail.contains("ALTER PUBLICATION")
            && detail.contains("ADD TABLE")
            && !detail.contains("public.sales,"),
        "{detail}"
    );
    src.shutdown.trigger();
    let ended = tokio::time::timeout(Duration::from_secs(10), src.task)
        .await
        .expect("the task ends")
        .expect("joins");
    assert!(
        ended.is_err(),
        "a refused configuration ends the task with an error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_shutdown_ends_the_source_while_postgres_keeps_a_call_waiting() {
    let db = Db::new(TABLES).await;
    // A transaction left open: making the slot waits for it to end.
    let blocker = connect(&db.url).await;
    blocker
        .batch_execute("BEGIN; INSERT INTO stock VALUES (9, 9, 9, now())")
        .await
        .expect("open transaction");
    let env = Env::new().await;
    let cfg = config("cdc-hang", &db);
    let src = env.start(&cfg, env.log.clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let waiting: i64 = db
        .client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_create_logical_replication_slot%' AND state = 'active' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .expect("activity")
        .get(0);
    assert_eq!(waiting, 1, "the source waits in making the slot");
    src.shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), src.task)
        .await
        .expect("shutdown ends a source whose PostgreSQL call does not return")
        .expect("joins")
        .expect("ends cleanly");
    // The call was cancelled on the server too: no backend is left making the slot.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: i64 = db
            .client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_create_logical_replication_slot%' AND state = 'active' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .expect("activity")
            .get(0);
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot is still being made on the server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    blocker.batch_execute("ROLLBACK").await.expect("rollback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_a_snapshot_taken_again_gives_equal_rows_and_rows_without_ts_the_same_ids() {
    let db = Db::new(
        "CREATE TABLE sales (store_id int, sku bigint, qty int, unit_price numeric(12,2),
             sold_at timestamptz NOT NULL DEFAULT '2024-08-12 10:00:00+00');
         CREATE TABLE orders (id text PRIMARY KEY, status text NOT NULL, store_id int,
             total numeric(20,8), currency text);
         CREATE TABLE stock (store_id int, sku bigint, qty_on_hand bigint, updated_at timestamptz,
             PRIMARY KEY (store_id, sku));
         INSERT INTO sales (store_id, sku, qty, unit_price) VALUES (1, 5, 1, 2.00), (1, 5, 1, 2.00);
         INSERT INTO orders VALUES ('o-1', 'created', 1, 10.5, 'EUR');",
    )
    .await;
    let env = Env::new().await;
    let mut cfg = config("cdc-again", &db);
    cfg.tables[0].columns.remove("id");
    let src = env.start(&cfg, env.log.clone()).await;
    env.wait_events(3, "first snapshot").await;
    src.stop().await;
    // The slot is gone (dropped by hand): the next start makes one and snapshots again. The
    // server's walsender lets go of the slot a moment after the source's connection closed.
    let slot = cfg.slot_name();
    for _ in 0..100 {
        let active: bool = db
            .client
            .query_one(
                "SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .expect("slot state")
            .get(0);
        if !active {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    db.client
        .batch_execute(&format!("SELECT pg_drop_replication_slot('{}')", cfg.slot_name()))
        .await
        .expect("drop slot");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let src = env.start(&cfg, env.log.clone()).await;
    let events = env.wait_events(6, "second snapshot").await;
    assert_eq!(
        distinct_ids(&events),
        3,
        "two equal rows are two events, and each row has the same id both times: {events:#?}"
    );
    src.stop().await;
}
