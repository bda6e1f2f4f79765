//! [`PostgresStore`]: the [`Store`] trait over one tokio-postgres session that is dropped and
//! re-opened whenever the connection fails, so a restarted or failed-over server costs the
//! caller one retryable error and nothing else.

use std::collections::HashSet;
use std::fmt;

use async_trait::async_trait;
use retail_core::TopicPartition;
use tokio::sync::Mutex;
use tokio_postgres::config::Host;
use tokio_postgres::Config;

use super::conn::{self, Conn};
use super::error::{pg_error, url_error};
use super::ledger::Ledger;
use super::retention::Retention;
use super::{bare, derived, write};
use crate::derived::sql::TableSql;
use crate::{
    AggregateTable, BareLoad, BatchOutcome, CatalogSnapshot, Error, LandedSale, LandingBatch,
    PartitionWatermark, Result, Store, StoreOptions, Table,
};

/// A PostgreSQL store. Writes are serialised on one session (PostgreSQL gains nothing from
/// concurrent writers to the same rows, and one session keeps fencing simple).
pub struct PostgresStore {
    config: Config,
    /// `host:port/dbname` for logs and errors; never the password.
    target: String,
    state: Mutex<State>,
}

struct State {
    /// `None` after a connection failure, until the next call reconnects.
    conn: Option<Conn>,
    /// Days of `sales_raw` known to have a partition.
    known_days: HashSet<i64>,
    /// The prepared aggregate tables.
    aggregates: Aggregates,
    /// The dedup horizon of the ledger (ADR 0022).
    ledger: Ledger,
    /// Day partitions of `events_raw`, `late_events` and `dead_letters`, and what retention
    /// dropped (ADR 0028).
    retention: Retention,
    /// Days of the benchmark's scratch `bench_bare_sales_raw` known to have a partition.
    bare_days: HashSet<i64>,
}

/// The aggregate tables given to `prepare_aggregates` and their statements.
#[derive(Debug, Default)]
pub(super) struct Aggregates {
    pub tables: Vec<AggregateTable>,
    pub sql: Vec<TableSql>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to a libpq-style URL (`postgres://user@host:port/db`) with the default
    /// [`StoreOptions`]; see [`PostgresStore::connect_with`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// Connects to a libpq-style URL (`postgres://user@host:port/db`), applies the migrations,
    /// prepares the write path and drops ledger days older than the dedup horizon and day
    /// partitions past their retention (ADR 0028). TLS is not
    /// supported (`sslmode=require` fails to connect).
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Self> {
        let mut config: Config = url.parse().map_err(|e| url_error(url, &e))?;
        conn::tune(&mut config);
        let target = target_of(&config);
        let conn = Conn::connect(&config, true)
            .await
            .map_err(|e| with_target(e, &target))?;
        let mut ledger = Ledger::new(options);
        ledger
            .load(&conn.client)
            .await
            .map_err(|e| with_target(e, &target))?;
        let mut retention = Retention::new(options);
        let mut known_days = HashSet::new();
        retention
            .load(&conn.client)
            .await
            .map_err(|e| with_target(e, &target))?;
        retention
            .drop_passed(&conn.client, ledger.newest, &mut known_days)
            .await
            .map_err(|e| with_target(e, &target))?;
        Ok(Self {
            config,
            target,
            state: Mutex::new(State {
                conn: Some(conn),
                known_days,
                aggregates: Aggregates::default(),
                ledger,
                retention,
                bare_days: HashSet::new(),
            }),
        })
    }
}

/// The live session, reconnecting first if the last one failed or was left mid-transaction.
async fn session<'a>(config: &Config, slot: &'a mut Option<Conn>) -> Result<&'a mut Conn> {
    match slot.take() {
        Some(c) if c.usable() => Ok(slot.insert(c)),
        _ => {
            let c = Conn::connect(config, false).await?;
            tracing::info!(message = "connected to PostgreSQL");
            Ok(slot.insert(c))
        }
    }
}

/// Forgets a session that can no longer be trusted.
fn settle<T>(slot: &mut Option<Conn>, result: Result<T>) -> Result<T> {
    if let Err(e) = &result {
        if e.is_retryable() || slot.as_ref().is_some_and(|c| !c.usable()) {
            tracing::warn!(message = "dropping PostgreSQL session", error = %e);
            *slot = None;
        }
    }
    result
}

impl PostgresStore {
    /// Writes `batch` in one transaction, committed or (a probe) rolled back.
    async fn write(&self, batch: &LandingBatch, commit: bool) -> Result<BatchOutcome> {
        let mut guard = self.state.lock().await;
        let State {
            conn,
            known_days,
            aggregates,
            ledger,
            retention,
            ..
        } = &mut *guard;
        let result = match session(&self.config, conn).await {
            Ok(c) => write::write_batch(c, known_days, ledger, retention, aggregates, batch, commit).await,
            Err(e) => Err(e),
        };
        settle(conn, result).map_err(|e| with_target(e, &self.target))
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn write_batch(&self, batch: &LandingBatch) -> Result<BatchOutcome> {
        self.write(batch, true).await
    }

    async fn probe_batch(&self, batch: &LandingBatch) -> Result<BatchOutcome> {
        self.write(batch, false).await
    }

    async fn prepare_aggregates(&self, tables: &[AggregateTable]) -> Result<()> {
        let mut guard = self.state.lock().await;
        let result = match session(&self.config, &mut guard.conn).await {
            Ok(c) => derived::prepare(&c.client, tables).await,
            Err(e) => Err(e),
        };
        let sql = settle(&mut guard.conn, result).map_err(|e| with_target(e, &self.target))?;
        guard.aggregates = Aggregates {
            tables: tables.to_vec(),
            sql,
        };
        Ok(())
    }

    async fn reset_aggregates(&self, tables: &[AggregateTable], group: &str) -> Result<()> {
        let mut guard = self.state.lock().await;
        let result = match session(&self.config, &mut guard.conn).await {
            Ok(c) => derived::reset(&c.client, tables, group).await,
            Err(e) => Err(e),
        };
        settle(&mut guard.conn, result).map_err(|e| with_target(e, &self.target))
    }

    async fn watermarks(&self, group: &str) -> Result<Vec<PartitionWatermark>> {
        let mut guard = self.state.lock().await;
        let result = match session(&self.config, &mut guard.conn).await {
            Ok(c) => derived::watermarks(&c.client, group).await,
            Err(e) => Err(e),
        };
        settle(&mut guard.conn, result).map_err(|e| with_target(e, &self.target))
    }

    async fn catalog(&self) -> Result<CatalogSnapshot> {
        let mut guard = self.state.lock().await;
        let result = match session(&self.config, &mut guard.conn).await {
            Ok(c) => derived::catalog(&c.client).await,
            Err(e) => Err(e),
        };
        settle(&mut guard.conn, result).map_err(|e| with_target(e, &self.target))
    }

    async fn offsets(&self, group: &str) -> Result<Vec<(TopicPartition, i64)>> {
        let mut guard = self.state.lock().await;
        let result = match session(&self.config, &mut guard.conn).await {
            Ok(c) => c
                .client
                .query(
                    "SELECT topic, \"partition\", next_offset FROM consumer_offsets \
                     WHERE group_id = $1 ORDER BY topic, \"partition\"",
                    &[&group],
                )
                .await
                .map_err(|e| pg_error("SELECT FROM consumer_offsets", &e))
                .and_then(|rows| {
                    rows.iter()
                        .map(|r| {
                            let tp = TopicPartition::new(r.try_get::<_, String>(0)?, r.try_get(1)?);
                            Ok((tp, r.try_get(2)?))
                        })
                        .collect::<Result<_, tokio_postgres::Error>>()
                        .map_err(|e| pg_error("read consumer_offsets row", &e))
                }),
            Err(e) => Err(e),
        };
        settle(&mut guard.conn, result).map_err(|e| with_target(e, &self.target))
    }

    async fn count(&self, table: Table) -> Result<i64> {
        let mut guard = self.state.lock().await;
        let name = table.name();
        let result = match session(&self.config, &mut guard.conn).await {
            Ok(c) => c
                .client
                .query_one(&format!("SELECT count(*) FROM {name}"), &[])
                .await
                .and_then(|r| r.try_get(0))
                .map_err(|e| pg_error(&format!("SELECT count(*) FROM {name}"), &e)),
            Err(e) => Err(e),
        };
        settle(&mut guard.conn, result).map_err(|e| with_target(e, &self.target))
    }

    async fn raise_alerts(
        &self,
        alerts: &[crate::derived::orders::Alert],
        resolutions: &[crate::derived::orders::Resolution],
        routes: &crate::outbox::Routes,
    ) -> Result<()> {
        let mut guard = self.state.lock().await;
        let result = match session(&self.config, &mut guard.conn).await {
            Ok(c) => match c.begin().await {
                Ok(()) => match super::orders::write_alerts(&c.client, alerts, resolutions, routes).await {
                    Ok(()) => c.commit().await,
                    Err(e) => {
                        c.rollback().await;
                        Err(e)
                    }
                },
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        settle(&mut guard.conn, result).map_err(|e| with_target(e, &self.target))
    }

    async fn claim_deliveries(
        &self,
        channel: &str,
        limit: usize,
        lease: std::time::Duration,
    ) -> Result<Vec<crate::outbox::Delivery>> {
        let mut guard = self.state.lock().await;
        let result = match session(&self.config, &mut guard.conn).await {
            Ok(c) => super::outbox::claim(&c.client, channel, limit, lease).await,
            Err(e) => Err(e),
        };
        settle(&mut guard.conn, result).map_err(|e| with_target(e, &self.target))
    }

    async fn next_delivery_due(&self, channel: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let mut guard = self.state.lock().await;
        let result = match session(&self.config, &mut guard.conn).await {
            Ok(c) => c
                .client
                .query_one(
                    "SELECT min(next_attempt_at) FROM notification_deliveries WHERE channel = $1 AND state = 'pending'",
                    &[&channel],
                )
                .await
                .and_then(|r| r.try_get(0))
                .map_err(|e| pg_error("SELECT the next due notification delivery", &e)),
            Err(e) => Err(e),
        };
        settle(&mut guard.conn, result).map_err(|e| with_target(e, &self.target))
    }

    async fn finish_delivery(
        &self,
        delivery_id: uuid::Uuid,
        attempt: u32,
        how: &crate::outbox::Attempt,
    ) -> Result<bool> {
        let mut guard = self.state.lock().await;
        let result = match session(&self.config, &mut guard.conn).await {
            Ok(c) => super::outbox::finish(&c.client, delivery_id, attempt, how).await,
            Err(e) => Err(e),
        };
        settle(&mut guard.conn, result).map_err(|e| with_target(e, &self.target))
    }

    async fn load_schema_registry(&self) -> Result<retail_schema::Rows> {
        let mut guard = self.state.lock().await;
        let result = match session(&self.config, &mut guard.conn).await {
            Ok(c) => super::schemas::load(c).await,
            Err(e) => Err(e),
        };
        settle(&mut guard.conn, result).map_err(|e| with_target(e, &self.target))
    }

    async fn save_schema_registry(&self, changes: &[retail_schema::Change]) -> Result<()> {
        let mut guard = self.state.lock().await;
        let result = match session(&self.config, &mut guard.conn).await {
            Ok(c) => super::schemas::save(c, changes).await,
            Err(e) => Err(e),
        };
        settle(&mut guard.conn, result).map_err(|e| with_target(e, &self.target))
    }

    async fn ping(&self) -> Result<()> {
        let mut guard = self.state.lock().await;
        let result = match session(&self.config, &mut guard.conn).await {
            Ok(c) => c.simple("SELECT 1", "ping (SELECT 1)").await,
            Err(e) => Err(e),
        };
        settle(&mut guard.conn, result).map_err(|e| with_target(e, &self.target))
    }

    async fn bare_begin(&self) -> Result<()> {
        let mut guard = self.state.lock().await;
        let State { conn, bare_days, .. } = &mut *guard;
        let result = match session(&self.config, conn).await {
            Ok(c) => bare::begin(c, bare_days).await,
            Err(e) => Err(e),
        };
        settle(conn, result).map_err(|e| with_target(e, &self.target))
    }

    async fn bare_chunk(&self, rows: &[LandedSale], batch_rows: usize) -> Result<BareLoad> {
        let mut guard = self.state.lock().await;
        let State { conn, bare_days, .. } = &mut *guard;
        let result = match session(&self.config, conn).await {
            Ok(c) => bare::chunk(c, bare_days, rows, batch_rows).await,
            Err(e) => Err(e),
        };
        settle(conn, result).map_err(|e| with_target(e, &self.target))
    }

    async fn bare_finish(&self) -> Result<()> {
        let mut guard = self.state.lock().await;
        let State { conn, bare_days, .. } = &mut *guard;
        let result = match session(&self.config, conn).await {
            Ok(c) => bare::finish(c, bare_days).await,
            Err(e) => Err(e),
        };
        settle(conn, result).map_err(|e| with_target(e, &self.target))
    }
}

/// Names the server in a PostgreSQL error, so a log line says which database failed.
fn with_target(e: Error, target: &str) -> Error {
    match e {
        Error::Postgres { message, retryable } => Error::Postgres {
            message: format!("{target}: {message}"),
            retryable,
        },
        Error::Refused { message } => Error::Refused {
            message: format!("{target}: {message}"),
        },
        other => other,
    }
}

fn target_of(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}
