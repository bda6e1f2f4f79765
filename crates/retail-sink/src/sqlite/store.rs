//! [`SqliteStore`]: the [`Store`] trait over one rusqlite connection owned by a dedicated
//! thread ([`super::thread::Owned`]), which serialises writes as SQLite wants anyway.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use retail_core::TopicPartition;
use rusqlite::Connection;
use uuid::Uuid;

use super::error::{sqlite_error, worker_error};
use super::ledger::Ledger;
use super::retention::Retention;
use super::rows::{OwnedBatch, Sales};
use super::thread::Owned;
use super::{derived, migrate, write};
use crate::derived::sql::TableSql;
use crate::{
    AggregateTable, BareLoad, BatchOutcome, CatalogSnapshot, LandedSale, LandingBatch, PartitionWatermark,
    Result, Store, StoreOptions, Table,
};

/// How long a statement waits for another process's write lock before failing (retryable).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the worker thread owns.
struct Worker {
    conn: Connection,
    path: String,
    /// The prepared aggregate tables.
    aggregates: Aggregates,
    /// The dedup horizon of the ledger (ADR 0022).
    ledger: Ledger,
    /// Rows past their retention, deleted between batches (ADR 0028).
    retention: Retention,
}

/// The aggregate tables given to `prepare_aggregates` and their statements.
#[derive(Debug, Default)]
pub(super) struct Aggregates {
    pub tables: Vec<AggregateTable>,
    pub sql: Vec<TableSql>,
}

/// An SQLite store: a database file in WAL mode, written by one thread.
pub struct SqliteStore {
    worker: Owned<Worker>,
    options: StoreOptions,
    /// The newest event day landed, as last committed: batches are judged against it before
    /// they go to the worker (ADR 0022).
    newest: std::sync::Mutex<Option<i64>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.worker.path())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the database file with the default [`StoreOptions`]; see
    /// [`SqliteStore::open_with`].
    pub async fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, StoreOptions::default()).await
    }

    /// Opens (or creates) the database file, sets WAL mode and `synchronous=FULL`, applies
    /// the migrations, drops ledger days older than the dedup horizon and deletes rows past
    /// their retention (ADR 0028).
    pub async fn open_with(path: &Path, options: StoreOptions) -> Result<Self> {
        let shown = path.display().to_string();
        let file: PathBuf = path.to_path_buf();
        let name = shown.clone();
        let worker = Owned::spawn("retail-sink-sqlite", shown, None, move || {
            open_worker(&file, name, options)
        })
        .await?;
        let newest = worker.call("open", |w| Ok(w.ledger.newest)).await?;
        Ok(Self {
            worker,
            options,
            newest: std::sync::Mutex::new(newest),
        })
    }

    /// The newest event day landed, as this store last saw it.
    fn newest(&self) -> Option<i64> {
        self.newest.lock().map_or(None, |n| *n)
    }

    /// Writes (or probes) `batch` on the worker; a committed batch that moved the newest event
    /// day drops the ledger days the horizon has passed.
    async fn write(&self, batch: &LandingBatch, commit: bool) -> Result<BatchOutcome> {
        let owned = OwnedBatch::new(batch, self.options, self.newest());
        let what = if commit { "write_batch" } else { "probe_batch" };
        let (outcome, newest) = self
            .call(what, move |w| {
                let outcome = write::write_batch(
                    &mut w.conn,
                    &w.path,
                    &w.aggregates,
                    &owned,
                    w.ledger.legacy,
                    commit,
                )?;
                if commit && owned.verdict.advances {
                    w.ledger.newest = owned.verdict.newest;
                    // The batch is committed: a failure to drop only delays it to the next day.
                    if let Err(error) = w.ledger.drop_passed(&w.conn, &w.path) {
                        tracing::warn!(message = "could not drop ledger days older than the dedup horizon", %error);
                    }
                }
                if commit {
                    // Does nothing unless a retention's oldest kept day moved or rows are left.
                    if let Err(error) = w.retention.pass(&w.conn, &w.path, w.ledger.newest) {
                        tracing::warn!(message = "could not delete rows past their retention", %error);
                    }
                }
                Ok((outcome, w.ledger.newest))
            })
            .await?;
        if let Ok(mut n) = self.newest.lock() {
            *n = (*n).max(newest);
        }
        Ok(outcome)
    }

    /// Runs `f` on the worker thread and waits for its result.
    async fn call<T, F>(&self, what: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Worker) -> Result<T> + Send + 'static,
    {
        self.worker.call(what, f).await
    }
}

fn open_worker(file: &Path, path: String, options: StoreOptions) -> Result<Worker> {
    let err = |what: &str| {
        let path = path.clone();
        let what = what.to_owned();
        move |e: rusqlite::Error| sqlite_error(&path, &what, &e)
    };
    let mut conn = Connection::open(file).map_err(err("open"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(err("PRAGMA busy_timeout"))?;
    // Switching to WAL while another connection opens the same new file can answer
    // SQLITE_BUSY at once, without the busy handler (SQLite does not wait where waiting could
    // deadlock), so it is retried here for up to the busy timeout.
    let started = std::time::Instant::now();
    let mode: String = loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other.map_err(err("PRAGMA journal_mode=WAL"))?,
        }
    };
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
    let ledger = Ledger::load(&conn, &path, options)?;
    let retention = Retention::open(&conn, &path, options, ledger.newest)?;
    Ok(Worker {
        conn,
        path,
        aggregates: Aggregates::default(),
        ledger,
        retention,
    })
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn write_batch(&self, batch: &LandingBatch) -> Result<BatchOutcome> {
        self.write(batch, true).await
    }

    async fn probe_batch(&self, batch: &LandingBatch) -> Result<BatchOutcome> {
        self.write(batch, false).await
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

    async fn raise_alerts(
        &self,
        alerts: &[crate::derived::orders::Alert],
        resolutions: &[crate::derived::orders::Resolution],
        routes: &crate::outbox::Routes,
    ) -> Result<()> {
        let (alerts, resolutions, routes) = (alerts.to_vec(), resolutions.to_vec(), routes.clone());
        self.call("raise_alerts", move |w| {
            let path = w.path.clone();
            let tx = w
                .conn
                .transaction()
                .map_err(|e| sqlite_error(&path, "BEGIN (raise alerts)", &e))?;
            super::orders::write_alerts(&tx, &path, &alerts, &resolutions, &routes)?;
            tx.commit()
                .map_err(|e| sqlite_error(&path, "COMMIT (raise alerts)", &e))
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        channel: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<crate::outbox::Delivery>> {
        let channel = channel.to_owned();
        self.call("claim_deliveries", move |w| {
            super::outbox::claim(&mut w.conn, &w.path, &channel, limit, lease)
        })
        .await
    }

    async fn next_delivery_due(&self, channel: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let channel = channel.to_owned();
        self.call("next_delivery_due", move |w| {
            super::outbox::next_due(&w.conn, &w.path, &channel)
        })
        .await
    }

    async fn finish_delivery(
        &self,
        delivery_id: Uuid,
        attempt: u32,
        how: &crate::outbox::Attempt,
    ) -> Result<bool> {
        let how = how.clone();
        self.call("finish_delivery", move |w| {
            super::outbox::finish(&w.conn, &w.path, delivery_id, attempt, &how)
        })
        .await
    }

    async fn load_schema_registry(&self) -> Result<retail_schema::Rows> {
        self.call("load_schema_registry", |w| {
            super::schemas::load(&mut w.conn, &w.path)
        })
        .await
    }

    async fn save_schema_registry(&self, changes: &[retail_schema::Change]) -> Result<()> {
        let changes = changes.to_vec();
        self.call("save_schema_registry", move |w| {
            super::schemas::save(&mut w.conn, &w.path, &changes)
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

    async fn bare_begin(&self) -> Result<()> {
        self.call("bare_begin", |w| write::bare_begin(&w.conn, &w.path))
            .await
    }

    async fn bare_chunk(&self, rows: &[LandedSale], batch_rows: usize) -> Result<BareLoad> {
        let sales = Sales::collect(rows.iter());
        self.call("bare_chunk", move |w| {
            write::bare_chunks(&mut w.conn, &w.path, &sales, batch_rows)
        })
        .await
    }

    async fn bare_finish(&self) -> Result<()> {
        self.call("bare_finish", |w| write::bare_finish(&w.conn, &w.path))
            .await
    }
}
