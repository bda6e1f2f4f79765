//! One PostgreSQL session of the store: the client, the statements prepared once per session,
//! the session's temp table, and whether a transaction we opened is still open. Everything that
//! must be redone after a reconnect lives here, so dropping a [`Conn`] forgets all of it.

use std::time::Duration;

use tokio_postgres::{Client, Config, NoTls, Statement};
use tracing::warn;

use super::error::pg_error;
use crate::Result;

/// The session temp table the slow path of the ledger copies a batch's ids into. `ON COMMIT
/// DELETE ROWS` empties it at each commit (PostgreSQL skips that work for transactions that did
/// not touch a temp table, so the fast path pays nothing for it).
const CREATE_BATCH_IDS: &str = "CREATE TEMP TABLE IF NOT EXISTS retail_batch_ids \
     (event_id uuid NOT NULL, day date NOT NULL) ON COMMIT DELETE ROWS";

/// Statements of the write path, prepared once per session.
#[derive(Debug)]
pub(super) struct Statements {
    /// Fast path: all of a batch's ids straight into the ledger.
    pub copy_ledger: Statement,
    /// Slow path: the ids into the session temp table...
    pub copy_batch_ids: Statement,
    /// ...then into the ledger, returning those that were new.
    pub ledger_from_batch_ids: Statement,
    /// New sales.
    pub copy_sales: Statement,
    /// New other events.
    pub copy_events: Statement,
    /// Rejected records.
    pub copy_dead_letters: Statement,
    /// Fencing: the stored offsets of a batch's partitions, locked until commit.
    pub lock_offsets: Statement,
    /// The batch's next offsets, refused per partition where another writer moved it.
    pub upsert_offsets: Statement,
}

pub(super) const COPY_SALES: &str = "COPY sales_raw (event_id, kind, store_id, sku, qty, unit_price, \
     seller_id, ts, source) FROM STDIN (FORMAT binary)";

const COPY_LEDGER: &str = "COPY landed_event_ids (event_id, day) FROM STDIN (FORMAT binary)";

const COPY_BATCH_IDS: &str = "COPY retail_batch_ids (event_id, day) FROM STDIN (FORMAT binary)";

const LEDGER_FROM_BATCH_IDS: &str = "INSERT INTO landed_event_ids (event_id, day) \
     SELECT event_id, day FROM retail_batch_ids ON CONFLICT DO NOTHING RETURNING event_id";

const COPY_EVENTS: &str = "COPY events_raw (event_id, event_type, ts, source, partition_key, payload) \
     FROM STDIN (FORMAT binary)";

const COPY_DEAD_LETTERS: &str = "COPY dead_letters (raw, reason, kind, source, topic, \"partition\", \
     \"offset\", file, line, rejected_at) FROM STDIN (FORMAT binary)";

/// Rows come back sorted so that two writers lock shared partitions in the same order.
const LOCK_OFFSETS: &str = "SELECT topic, \"partition\", next_offset FROM consumer_offsets \
     WHERE group_id = $1 AND (topic, \"partition\") IN (SELECT * FROM unnest($2::text[], $3::int[])) \
     ORDER BY topic, \"partition\" FOR UPDATE";

/// The `WHERE` repeats the fencing check for rows that did not exist when the batch started:
/// a writer that inserted one meanwhile makes ours update nothing, which the caller sees as a
/// missing `RETURNING` row.
const UPSERT_OFFSETS: &str = "WITH input AS ( \
       SELECT * FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[]) AS u(topic, part, first, next)) \
     INSERT INTO consumer_offsets AS c (group_id, topic, \"partition\", next_offset) \
     SELECT $1, topic, part, next FROM input \
     ON CONFLICT (group_id, topic, \"partition\") DO UPDATE \
       SET next_offset = excluded.next_offset, updated_at = now() \
       WHERE c.next_offset = (SELECT i.first FROM input i \
                              WHERE i.topic = excluded.topic AND i.part = excluded.\"partition\") \
     RETURNING topic, \"partition\"";

/// A live session.
#[derive(Debug)]
pub(super) struct Conn {
    pub client: Client,
    pub stmts: Statements,
    /// Set between our `BEGIN` and its `COMMIT`/`ROLLBACK`. Still set at the next call means
    /// the previous call was cancelled mid-transaction: the session is then thrown away.
    pub in_tx: bool,
}

impl Conn {
    /// Connects, runs `migrate` if asked (the tables must exist before statements are
    /// prepared), creates the session temp table and prepares the write path.
    pub(super) async fn connect(config: &Config, migrate: bool) -> Result<Self> {
        let (mut client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| pg_error("connect to PostgreSQL", &e))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                warn!(message = "PostgreSQL connection ended", %error);
            }
        });
        if migrate {
            super::migrate::run(&mut client).await?;
        }
        client
            .batch_execute(CREATE_BATCH_IDS)
            .await
            .map_err(|e| pg_error("CREATE TEMP TABLE retail_batch_ids", &e))?;
        let prepare = |sql: &'static str| {
            let client = &client;
            async move {
                client
                    .prepare(sql)
                    .await
                    .map_err(|e| pg_error(&format!("prepare {sql}"), &e))
            }
        };
        let stmts = Statements {
            copy_ledger: prepare(COPY_LEDGER).await?,
            copy_batch_ids: prepare(COPY_BATCH_IDS).await?,
            ledger_from_batch_ids: prepare(LEDGER_FROM_BATCH_IDS).await?,
            copy_sales: prepare(COPY_SALES).await?,
            copy_events: prepare(COPY_EVENTS).await?,
            copy_dead_letters: prepare(COPY_DEAD_LETTERS).await?,
            lock_offsets: prepare(LOCK_OFFSETS).await?,
            upsert_offsets: prepare(UPSERT_OFFSETS).await?,
        };
        Ok(Self {
            client,
            stmts,
            in_tx: false,
        })
    }

    /// Runs `sql` by the simple protocol; `what` names it in the error.
    pub(super) async fn simple(&self, sql: &str, what: &str) -> Result<()> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| pg_error(what, &e))
    }

    pub(super) async fn begin(&mut self) -> Result<()> {
        self.in_tx = true;
        self.simple("BEGIN", "BEGIN").await
    }

    pub(super) async fn commit(&mut self) -> Result<()> {
        let r = self.simple("COMMIT", "COMMIT").await;
        // Failed or not, the transaction is over (an unknown outcome after a lost connection is
        // settled by fencing: a retry of a committed batch gets an offset conflict).
        self.in_tx = false;
        r
    }

    /// Best effort: a session whose rollback fails is marked as still in a transaction, so the
    /// store drops it before the next call.
    pub(super) async fn rollback(&mut self) {
        if self.simple("ROLLBACK", "ROLLBACK").await.is_ok() {
            self.in_tx = false;
        }
    }

    /// Whether the session can take another call.
    pub(super) fn usable(&self) -> bool {
        !self.in_tx && !self.client.is_closed()
    }
}

/// Defaults the store wants unless the URL says otherwise.
pub(super) fn tune(config: &mut Config) {
    if config.get_application_name().is_none() {
        config.application_name("retail-sink");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
}
