//! [`SqliteStore`]: the [`Store`] trait over one rusqlite connection owned by a dedicated
//! thread. SQLite calls block, so they must not run on the async runtime's threads; one
//! long-lived thread (rather than `spawn_blocking` per call) keeps the connection and its
//! prepared-statement cache in one place and serialises writes as SQLite wants anyway.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use retail_core::TopicPartition;
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::error::{sqlite_error, worker_error};
use super::rows::{OwnedBatch, Sales};
use super::{derived, migrate, write};
use crate::derived::sql::TableSql;
use crate::{
    AggregateTable, BatchOutcome, CatalogSnapshot, LandedSale, LandingBatch, PartitionWatermark, Result,
    Store, Table,
};

/// How long a statement waits for another process's write lock before failing (retryable).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the worker thread owns.
struct Worker {
    conn: Connection,
    path: String,
    /// The prepared aggregate tables.
    aggregates: Aggregates,
}

/// The aggregate tables given to `prepare_aggregates` and their statements.
#[derive(Debug, Default)]
pub(super) struct Aggregates {
    pub tables: Vec<AggregateTable>,
    pub sql: Vec<TableSql>,
}

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// An SQLite store: a database file in WAL mode, written by one thread.
pub struct SqliteStore {
    path: String,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the database file, sets WAL mode and `synchronous=FULL`, and applies
    /// the migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let file: PathBuf = path.to_path_buf();
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = oneshot::channel::<Result<()>>();
        let name = shown.clone();
        let thread = std::thread::Builder::new()
            .name("retail-sink-sqlite".to_owned())
            .spawn(move || match open_worker(&file, name) {
                Ok(mut worker) => {
                    let _ = ready_tx.send(Ok(()));
                    // Ends when the store drops its sender.
                    while let Ok(job) = queue.recv() {
                        job(&mut worker);
                    }
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| worker_error(&shown, format!("spawn SQLite worker thread: {e}")))?;
        let store = Self {
            path: shown,
            jobs: Some(jobs),
            thread: Some(thread),
        };
        ready_rx
            .await
            .map_err(|_| worker_error(&store.path, "SQLite worker thread died while opening".to_owned()))??;
        Ok(store)
    }

    /// Runs `f` on the worker thread and waits for its result.
    async fn call<T, F>(&self, what: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Worker) -> Result<T> + Send + 'static,
    {
        let gone = || worker_error(&self.path, format!("{what}: SQLite worker thread is gone"));
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |w| {
            let _ = reply.send(f(w));
        });
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

fn open_worker(file: &Path, path: String) -> Result<Worker> {
    let err = |what: &str| {
        let path = path.clone();
        let what = what.to_owned();
        move |e: rusqlite::Error| sqlite_error(&path, &what, &e)
    };
    let mut conn = Connection::open(file).map_err(err("open"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(err("PRAGMA busy_timeout"))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(err("PRAGMA journal_mode=WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(worker_error(
            &path,
            format!("PRAGMA journal_mode=WAL: SQLite kept journal mode {mode}"),
        ));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(err("PRAGMA synchronous=FULL"))?;
    // 64 MiB of page cache instead of the default 2 MiB: the ledger and the sales index are
    // touched all over at every batch, and re-reading their pages from the OS is what a
    // small cache costs.
    conn.pragma_update(None, "cache_size", -65_536)
        .map_err(err("PRAGMA cache_size"))?;
    conn.set_prepared_statement_cache_capacity(32);
    migrate::run(&mut conn, &path)?;
    Ok(Worker {
        conn,
        path,
        aggregates: Aggregates::default(),
    })
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue ends the thread after its current job; joining closes the file
        // before the drop returns, so a reopen right after sees everything.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn write_batch(&self, batch: &LandingBatch) -> Result<BatchOutcome> {
        let owned = OwnedBatch::new(batch);
        self.call("write_batch", move |w| {
            write::write_batch(&mut w.conn, &w.path, &w.aggregates, &owned)
        })
        .await
    }

    async fn prepare_aggregates(&self, tables: &[AggregateTable]) -> Result<()> {
        let tables = tables.to_vec();
        self.call("prepare_aggregates", move |w| {
            let sql = derived::prepare(&w.conn, &w.path, &tables)?;
            w.aggregates = Aggregates { tables, sql };
            Ok(())
        })
        .await
    }

    async fn reset_aggregates(&self, tables: &[AggregateTable], group: &str) -> Result<()> {
        let (tables, group) = (tables.to_vec(), group.to_owned());
        self.call("reset_aggregates", move |w| {
            derived::reset(&w.conn, &w.path, &tables, &group)
        })
        .await
    }

    async fn watermarks(&self, group: &str) -> Result<Vec<PartitionWatermark>> {
        let group = group.to_owned();
        self.call("watermarks", move |w| {
            derived::watermarks(&w.conn, &w.path, &group)
        })
        .await
    }

    async fn catalog(&self) -> Result<CatalogSnapshot> {
        self.call("catalog", |w| derived::catalog(&w.conn, &w.path)).await
    }

    async fn offsets(&self, group: &str) -> Result<Vec<(TopicPartition, i64)>> {
        let group = group.to_owned();
        self.call("offsets", move |w| {
            let err = |e: rusqlite::Error| sqlite_error(&w.path, "SELECT FROM consumer_offsets", &e);
            let mut stmt = w
                .conn
                .prepare_cached(
                    "SELECT topic, \"partition\", next_offset FROM consumer_offsets \
                     WHERE group_id = ?1 ORDER BY topic, \"partition\"",
                )
                .map_err(err)?;
            let rows = stmt
                .query_map([group], |r| {
                    Ok((TopicPartition::new(r.get::<_, String>(0)?, r.get(1)?), r.get(2)?))
                })
                .map_err(err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(err)
        })
        .await
    }

    async fn count(&self, table: Table) -> Result<i64> {
        self.call("count", move |w| {
            let sql = format!("SELECT count(*) FROM {}", table.name());
            w.conn
                .query_row(&sql, [], |r| r.get(0))
                .map_err(|e| sqlite_error(&w.path, &sql, &e))
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.call("ping", |w| {
            w.conn
                .query_row("SELECT 1", [], |_| Ok(()))
                .map_err(|e| sqlite_error(&w.path, "ping (SELECT 1)", &e))
        })
        .await
    }

    async fn bare_load(&self, rows: &[LandedSale], batch_rows: usize) -> Result<Duration> {
        let sales = Sales::collect(rows.iter());
        self.call("bare_load", move |w| {
            write::bare_load(&mut w.conn, &w.path, &sales, batch_rows)
        })
        .await
    }
}
