//! The CDC task: connects, makes the publication and slot if missing, takes the initial
//! snapshot, then reads the slot every `poll_ms`, appends each read's complete transactions
//! through the durable path and only then advances the slot. Any PostgreSQL failure shows as
//! `Retrying` on `/health` and reconnects with backoff; nothing read is skipped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use retail_core::health::State;
use retail_log::ProducerRecord;
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};
use tracing::{info, warn};

use super::config::{CdcConfig, CdcTable};
use super::convert::{self, Op, Origin};
use super::pgoutput::{self, lsn_text, parse_lsn, Message, Relation, Value};
use crate::runtime::BACKOFF;
use crate::{Error, Result, SourceRuntime};

/// Rows fetched per snapshot step (and appended together).
const SNAPSHOT_ROWS: usize = 5000;

/// Test hooks: simulate a crash between the append and the slot's advance.
#[doc(hidden)]
pub mod test_hooks {
    use super::Mutex;

    static CRASH_AFTER_APPEND: Mutex<Vec<String>> = Mutex::new(Vec::new());

    /// Makes the source `name` end its task right after its next append, before it advances
    /// the slot, as if the process died there.
    pub fn crash_after_append(name: &str, on: bool) {
        if let Ok(mut v) = CRASH_AFTER_APPEND.lock() {
            v.retain(|n| n != name);
            if on {
                v.push(name.to_owned());
            }
        }
    }

    pub(super) fn crashes(name: &str) -> bool {
        CRASH_AFTER_APPEND
            .lock()
            .map(|v| v.iter().any(|n| n == name))
            .unwrap_or(false)
    }
}

/// What the source keeps in `<state_dir>/cdc.json`: the snapshot it took, so that streamed
/// transactions the snapshot already saw are skipped, also after a restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Saved {
    /// The slot the snapshot belongs to.
    slot: String,
    /// The snapshot, once started.
    snapshot: Option<Snapshot>,
}

/// A snapshot's visibility: `pg_current_snapshot()` (32-bit xids) and the WAL insert position
/// when it was taken.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Snapshot {
    done: bool,
    xmin: u32,
    xmax: u32,
    xip: Vec<u32>,
    lsn: u64,
}

/// `a` comes before `b` in PostgreSQL's circular 32-bit xid order.
fn precedes(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl Snapshot {
    /// Whether the transaction `xid` committing at `commit_lsn` is in the snapshot. Only
    /// transactions whose commit was written before the snapshot can be; for them the xid
    /// decides (committed before the snapshot: below `xmax` and not in progress).
    fn saw(&self, xid: u32, commit_lsn: u64) -> bool {
        commit_lsn < self.lsn
            && (precedes(xid, self.xmin) || (precedes(xid, self.xmax) && !self.xip.contains(&xid)))
    }

    /// Parses `pg_current_snapshot()::text` (`xmin:xmax:xip,...`, 64-bit xids).
    fn parse(text: &str, lsn: u64) -> Option<Self> {
        let mut parts = text.split(':');
        let low = |s: &str| s.parse::<u64>().ok().map(|v| (v & 0xffff_ffff) as u32);
        let xmin = low(parts.next()?)?;
        let xmax = low(parts.next()?)?;
        let xip = match parts.next() {
            Some("") | None => Vec::new(),
            Some(list) => list.split(',').map(low).collect::<Option<Vec<_>>>()?,
        };
        Some(Self {
            done: false,
            xmin,
            xmax,
            xip,
            lsn,
        })
    }
}

/// Why a session ended.
enum Fail {
    /// PostgreSQL failed or refused: reconnect with backoff.
    Pg(String),
    /// The log failed in a way retrying cannot fix.
    Fatal(Error),
    /// Shutdown came while waiting for PostgreSQL.
    Shutdown,
}

/// How long one PostgreSQL call may take before the session is ended and retried.
const PG_TIMEOUT: Duration = Duration::from_secs(60);

/// A failed call's error as a [`Fail`], naming what was being done.
trait IntoFail {
    fn into_fail(self, what: &str) -> Fail;
}

impl IntoFail for tokio_postgres::Error {
    fn into_fail(self, what: &str) -> Fail {
        pg(what)(self)
    }
}

impl IntoFail for Fail {
    fn into_fail(self, _: &str) -> Fail {
        self
    }
}

type Step<T> = std::result::Result<T, Fail>;

fn pg(what: &str) -> impl FnOnce(tokio_postgres::Error) -> Fail + '_ {
    move |e| {
        let detail = e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| format!("{}: {}", d.severity(), d.message()));
        Fail::Pg(format!("{what}: {detail}"))
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The running source.
#[derive(Debug)]
pub struct Cdc {
    config: CdcConfig,
    runtime: SourceRuntime,
    state_path: PathBuf,
    relations: HashMap<u32, Relation>,
    slot: String,
    publication: String,
}

/// One read of the slot, ready to append.
#[derive(Default)]
struct Batch {
    records: Vec<ProducerRecord>,
    good: u64,
    bad: u64,
    /// Where the slot may go once the records are durable: the end of the last complete
    /// transaction read.
    end: Option<u64>,
}

/// The transaction being read.
struct Txn {
    xid: u32,
    final_lsn: u64,
    ts: DateTime<Utc>,
    skip: bool,
    position: usize,
    batch: Batch,
}

impl Cdc {
    /// A source for `config`, reporting through `runtime`, keeping its state at `state_path`.
    pub fn new(config: CdcConfig, runtime: SourceRuntime, state_path: PathBuf) -> Self {
        let slot = config.slot_name();
        let publication = config.publication_name();
        Self {
            config,
            runtime,
            state_path,
            relations: HashMap::new(),
            slot,
            publication,
        }
    }

    /// Runs until shutdown; reconnects with backoff while PostgreSQL fails.
    pub async fn run(mut self) -> Result<()> {
        let mut backoff = BACKOFF.0;
        loop {
            if self.runtime.shutdown().is_triggered() {
                return Ok(());
            }
            match self.session(&mut backoff).await {
                Ok(()) | Err(Fail::Shutdown) => return Ok(()),
                Err(Fail::Fatal(e)) => {
                    self.runtime.set_state(State::Failed, e.to_string());
                    return Err(e);
                }
                Err(Fail::Pg(error)) => {
                    warn!(message = "PostgreSQL CDC failed, reconnecting", source = %self.runtime.name(), %error, backoff_ms = backoff.as_millis() as u64);
                    self.runtime.set_state(State::Retrying, error);
                    if !self.sleep(backoff).await {
                        return Ok(());
                    }
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
            }
        }
    }

    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => true,
            () = self.runtime.shutdown().wait() => false,
        }
    }

    /// Runs one PostgreSQL call with a timeout ([`PG_TIMEOUT`]: a retryable failure) and
    /// ends it on shutdown; either way the server is asked to cancel the query.
    async fn call<T, E: IntoFail>(
        &self,
        client: &Client,
        what: &str,
        fut: impl std::future::Future<Output = std::result::Result<T, E>>,
    ) -> Step<T> {
        let fail = tokio::select! {
            r = tokio::time::timeout(PG_TIMEOUT, fut) => match r {
                Ok(r) => return r.map_err(|e| e.into_fail(what)),
                Err(_) => Fail::Pg(format!(
                    "{what}: no answer from PostgreSQL in {} s",
                    PG_TIMEOUT.as_secs()
                )),
            },
            () = self.runtime.shutdown().wait() => Fail::Shutdown,
        };
        let cancel = client.cancel_token();
        let _ = tokio::time::timeout(Duration::from_secs(2), cancel.cancel_query(NoTls)).await;
        Err(fail)
    }

    /// One connection's life. `Ok` on shutdown (or a simulated crash).
    async fn session(&mut self, backoff: &mut Duration) -> Step<()> {
        let mut pg_config: tokio_postgres::Config = self.config.url.parse().map_err(pg("reading the url"))?;
        // A server or network that vanishes without closing the connection is noticed.
        pg_config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3);
        let connect = pg_config.connect(NoTls);
        let (client, connection) = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| Fail::Pg("connecting: no answer in 10 s".to_owned()))?
            .map_err(pg("connecting"))?;
        let conn_task = tokio::spawn(connection);
        let result = self.session_on(&client, backoff).await;
        drop(client);
        conn_task.abort();
        result
    }

    async fn session_on(&mut self, client: &Client, backoff: &mut Duration) -> Step<()> {
        // Text output as the converter reads it: ISO dates in UTC, floats in full.
        self.call(
            client,
            "setting the session",
            client.batch_execute(
                "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3",
            ),
        )
        .await?;
        let wal_level = self
            .call(client, "reading wal_level", simple_one(client, "SHOW wal_level"))
            .await?;
        if wal_level != "logical" {
            return Err(Fail::Pg(format!(
                "wal_level is {wal_level}; CDC needs logical (ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL)"
            )));
        }
        self.ensure_publication(client).await?;
        let Some(snapshot) = self.ensure_slot(client).await? else {
            return Ok(());
        };
        *backoff = BACKOFF.0;
        self.relations.clear();
        self.runtime.set_state(
            State::Running,
            format!("streaming slot {} of publication {}", self.slot, self.publication),
        );
        info!(message = "PostgreSQL CDC streaming", source = %self.runtime.name(), slot = %self.slot, publication = %self.publication);
        self.stream(client, snapshot).await
    }

    async fn ensure_publication(&self, client: &Client) -> Step<()> {
        let exists = self
            .call(
                client,
                "looking up the publication",
                client.query_opt(
                    "SELECT 1 FROM pg_publication WHERE pubname = $1",
                    &[&self.publication],
                ),
            )
            .await?;
        if exists.is_some() {
            return self.check_publication(client).await;
        }
        let tables: Vec<String> = self
            .config
            .tables
            .iter()
            .map(|t| {
                let (s, n) = t.parts();
                format!("{}.{}", quote(s), quote(n))
            })
            .collect();
        let sql = format!(
            "CREATE PUBLICATION {} FOR TABLE {}",
            quote(&self.publication),
            tables.join(", ")
        );
        self.call(client, "creating the publication", client.batch_execute(&sql))
            .await?;
        info!(message = "publication created", source = %self.runtime.name(), publication = %self.publication);
        Ok(())
    }

    /// An existing publication must hold every mapped table: one added to `tables` later
    /// would otherwise never be captured. Refuses (`Failed`, retrying does not help) naming
    /// the tables and the command that adds them.
    async fn check_publication(&self, client: &Client) -> Step<()> {
        let rows = self
            .call(
                client,
                "reading the publication's tables",
                client.query(
                    "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1",
                    &[&self.publication],
                ),
            )
            .await?;
        let published: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let missing: Vec<&CdcTable> = self
            .config
            .tables
            .iter()
            .filter(|t| !published.contains(&t.qualified()))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = missing.iter().map(|t| t.qualified()).collect();
        let quoted: Vec<String> = missing
            .iter()
            .map(|t| {
                let (s, n) = t.parts();
                format!("{}.{}", quote(s), quote(n))
            })
            .collect();
        Err(Fail::Fatal(Error::Config(format!(
            "source {:?}: publication {} does not publish {} mapped in `tables`, so their changes \
             would never be read. Add them: ALTER PUBLICATION {} ADD TABLE {}; then restart \
             (rows that exist before that are not snapshotted: the slot's snapshot was taken \
             already; drop the slot to take a new one), or remove them from `tables`",
            self.runtime.name(),
            self.publication,
            names.join(", "),
            quote(&self.publication),
            quoted.join(", ")
        ))))
    }

    fn load(&self) -> Saved {
        std::fs::read(&self.state_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Saved>(&b).ok())
            .filter(|s| s.slot == self.slot)
            .unwrap_or_default()
    }

    fn save(&self, saved: &Saved) -> Step<()> {
        let bytes = serde_json::to_vec_pretty(saved).unwrap_or_default();
        crate::state_file::replace(&self.state_path, &bytes)
            .map_err(|e| Fail::Fatal(Error::io(format!("writing {}", self.state_path.display()), e)))
    }

    /// Makes the slot if missing, with the initial snapshot when configured. Returns the
    /// snapshot whose transactions the stream skips; `None` on shutdown.
    async fn ensure_slot(&self, client: &Client) -> Step<Option<Snapshot>> {
        let row = self.call(client, "looking up the slot", client
            .query_opt(
                "SELECT plugin FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()",
                &[&self.slot],
            )).await?;
        let mut saved = self.load();
        // A snapshot is owed unless `cdc.json` says this slot's was taken (or the slot was made
        // without one): a pending or interrupted snapshot, or a slot with no saved state (the
        // process died right after making it, or the state was lost). Never skipped silently.
        let known = saved.slot == self.slot;
        let unfinished = self.config.snapshot && (!known || saved.snapshot.as_ref().is_some_and(|s| !s.done));
        if let Some(r) = row {
            let plugin: Option<String> = r.get(0);
            if plugin.as_deref() != Some("pgoutput") {
                return Err(Fail::Pg(format!(
                    "slot {} uses plugin {plugin:?}, not pgoutput",
                    self.slot
                )));
            }
            if !unfinished {
                return Ok(Some(saved.snapshot.unwrap_or_default()));
            }
            // A snapshot cut off by a crash cannot be resumed: its transaction is gone.
            // Start again from a new slot; the rows read twice have the same ids.
            warn!(message = "the initial snapshot was interrupted or never recorded; taking it again with a new slot", source = %self.runtime.name(), slot = %self.slot);
            self.call(
                client,
                "dropping the slot of an interrupted snapshot",
                client.execute("SELECT pg_drop_replication_slot($1)", &[&self.slot]),
            )
            .await?;
        }
        // Recorded before the slot exists: a crash from here on finds a pending snapshot.
        saved = Saved {
            slot: self.slot.clone(),
            snapshot: self.config.snapshot.then(Snapshot::default),
        };
        self.save(&saved)?;
        // Waits for transactions running now to end; cancelled on shutdown and after the timeout.
        let create = format!(
            "SELECT lsn::text FROM pg_create_logical_replication_slot('{}', 'pgoutput')",
            self.slot
        );
        let start = self
            .call(client, "creating the slot", simple_one(client, &create))
            .await?;
        let start = parse_lsn(&start).unwrap_or(0);
        info!(message = "replication slot created", source = %self.runtime.name(), slot = %self.slot, lsn = %lsn_text(start));
        if !self.config.snapshot {
            return Ok(Some(Snapshot::default()));
        }
        self.snapshot(client, &mut saved, start).await
    }

    /// Reads every mapped table in one REPEATABLE READ transaction begun after the slot was
    /// made, appending its rows; records which transactions it saw (ADR 0012).
    async fn snapshot(&self, client: &Client, saved: &mut Saved, start: u64) -> Step<Option<Snapshot>> {
        self.call(
            client,
            "starting the snapshot",
            client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
        )
        .await?;
        let row = simple_row(
            client,
            "SELECT pg_current_snapshot()::text, pg_current_wal_insert_lsn()::text, now()::text",
        )
        .await?;
        let lsn = row.get(1).and_then(|l| parse_lsn(l)).unwrap_or(0);
        let mut snap = row
            .first()
            .and_then(|s| Snapshot::parse(s, lsn))
            .ok_or_else(|| Fail::Pg(format!("unreadable snapshot {row:?}")))?;
        let taken = row
            .get(2)
            .and_then(|t| convert::timestamp_ms(t))
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or_else(Utc::now);
        saved.snapshot = Some(snap.clone());
        self.save(saved)?;
        for table in &self.config.tables {
            self.runtime.set_state(
                State::Running,
                format!("initial snapshot of {}", table.qualified()),
            );
            if !self.snapshot_table(client, table, start, taken).await? {
                return Ok(None);
            }
        }
        self.call(client, "ending the snapshot", client.batch_execute("COMMIT"))
            .await?;
        snap.done = true;
        saved.snapshot = Some(snap.clone());
        self.save(saved)?;
        info!(message = "initial snapshot taken", source = %self.runtime.name(), slot = %self.slot, lsn = %lsn_text(lsn));
        Ok(Some(snap))
    }

    /// Appends one table's rows; `false` on shutdown.
    async fn snapshot_table(
        &self,
        client: &Client,
        table: &CdcTable,
        start: u64,
        taken: DateTime<Utc>,
    ) -> Step<bool> {
        let (s, n) = table.parts();
        let qualified = table.qualified();
        self.call(
            client,
            "reading the snapshot",
            client.batch_execute(&format!(
                "DECLARE retail_cdc_snapshot NO SCROLL CURSOR FOR SELECT * FROM {}.{}",
                quote(s),
                quote(n)
            )),
        )
        .await?;
        // Keyed by a 16-byte digest of the row, not the row: a large table's snapshot keeps
        // 16 bytes and a count per distinct row, not every row's JSON.
        let mut seen: HashMap<[u8; 16], usize> = HashMap::new();
        loop {
            let msgs = self
                .call(
                    client,
                    "reading the snapshot",
                    client.simple_query(&format!("FETCH {SNAPSHOT_ROWS} FROM retail_cdc_snapshot")),
                )
                .await?;
            let rows: Vec<_> = msgs
                .iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => Some(r),
                    _ => None,
                })
                .collect();
            if rows.is_empty() {
                break;
            }
            let mut batch = Batch::default();
            for r in &rows {
                let row: Vec<(&str, Option<&str>)> = r
                    .columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name(), r.get(i)))
                    .collect();
                // A snapshot row's id hashes its content (and how many equal rows came
                // before), so a snapshot taken again after a crash gives the same ids.
                let content = serde_json::to_string(&row).unwrap_or_default();
                let nth = seen.entry(row_digest(&content)).or_insert(0);
                let at = Origin {
                    source: self.runtime.name(),
                    table: &qualified,
                    lsn: start,
                    seed: format!("{}|cdc-snapshot|{qualified}|{content}", self.runtime.name()),
                    position: *nth,
                    default_ts: taken,
                };
                *nth += 1;
                let (rec, ok) = convert::record(table, Op::Snapshot, &row, &at);
                batch.push(rec, ok);
            }
            if !self.append(&batch).await? {
                return Ok(false);
            }
        }
        self.call(
            client,
            "reading the snapshot",
            client.batch_execute("CLOSE retail_cdc_snapshot"),
        )
        .await?;
        Ok(true)
    }

    /// Appends a batch through the durable path; `false` on shutdown.
    async fn append(&self, batch: &Batch) -> Step<bool> {
        let n = batch.good + batch.bad;
        self.runtime.received(n);
        self.runtime.rejected(batch.bad);
        if batch.records.is_empty() {
            return Ok(true);
        }
        let appended = self
            .runtime
            .append_counted(|| batch.records.clone(), Some(batch.good))
            .await
            .map_err(Fail::Fatal)?;
        Ok(appended.is_some())
    }

    async fn stream(&mut self, client: &Client, snapshot: Snapshot) -> Step<()> {
        let peek = self.call(client, "preparing the slot read", client
            .prepare(
                "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes($1, $4::text::pg_lsn, $2, \
                 'proto_version', '1', 'publication_names', $3)",
            )).await?;
        let max = i32::try_from(self.config.max_changes).unwrap_or(i32::MAX);
        let poll = Duration::from_millis(self.config.poll_ms);
        let mut advanced = 0u64;
        loop {
            if !self.runtime.wait_unpaused().await {
                return Ok(());
            }
            // Read up to a known WAL position: if the read is not cut short by `max_changes`,
            // every transaction committed before it was read, also when pgoutput sent nothing
            // (transactions of unpublished tables or other databases), so the slot may go there.
            let upto = self
                .call(
                    client,
                    "reading the WAL position",
                    simple_one(client, "SELECT pg_current_wal_lsn()::text"),
                )
                .await?;
            let rows = self
                .call(
                    client,
                    "reading the slot",
                    client.query(&peek, &[&self.slot, &max, &self.publication, &upto]),
                )
                .await?;
            let messages: Vec<(u64, Vec<u8>)> = rows
                .iter()
                .map(|r| {
                    let lsn: String = r.get(0);
                    (parse_lsn(&lsn).unwrap_or(0), r.get::<_, Vec<u8>>(1))
                })
                .collect();
            let batch = self.read(&messages, &snapshot);
            if !self.append(&batch).await? {
                return Ok(());
            }
            if test_hooks::crashes(self.runtime.name()) && !batch.records.is_empty() {
                warn!(message = "test hook: ending after the append, before the slot advances", source = %self.runtime.name());
                return Ok(());
            }
            // `max_changes = 0` reads without a limit.
            let read_through = if max == 0 || rows.len() < usize::try_from(max).unwrap_or(usize::MAX) {
                parse_lsn(&upto)
            } else {
                None
            };
            let target = match (batch.end, read_through) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if let Some(end) = target.filter(|t| *t > advanced) {
                // Only now, with every event of these transactions durable in the log.
                advanced = end;
                self.call(
                    client,
                    "advancing the slot",
                    client.execute(
                        "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
                        &[&self.slot, &lsn_text(end)],
                    ),
                )
                .await?;
            }
            if messages.is_empty() && !self.sleep(poll).await {
                return Ok(());
            }
        }
    }

    /// Turns one read of the slot into records: complete transactions only, in commit order.
    fn read(&mut self, messages: &[(u64, Vec<u8>)], snapshot: &Snapshot) -> Batch {
        let mut out = Batch::default();
        let mut txn: Option<Txn> = None;
        for (lsn, data) in messages {
            let message = match pgoutput::decode(data) {
                Ok(m) => m,
                Err(e) => {
                    let at = self.origin(txn.as_mut(), "?", *lsn);
                    let rec = convert::refused(
                        None,
                        Op::Insert,
                        &[],
                        &at,
                        &format!("undecodable pgoutput message: {e}"),
                    );
                    match txn.as_mut() {
                        Some(t) => t.batch.push(rec, false),
                        None => out.push(rec, false),
                    }
                    continue;
                }
            };
            match message {
                Message::Begin {
                    final_lsn,
                    commit_us,
                    xid,
                } => {
                    txn = Some(Txn {
                        xid,
                        final_lsn,
                        ts: DateTime::from_timestamp_micros(commit_us).unwrap_or_else(Utc::now),
                        skip: snapshot.saw(xid, final_lsn),
                        position: 0,
                        batch: Batch::default(),
                    });
                }
                Message::Commit { end_lsn, .. } => {
                    if let Some(t) = txn.take() {
                        if !t.skip {
                            let end = lsn_text(end_lsn);
                            out.records.extend(t.batch.records.into_iter().map(|mut r| {
                                r.headers
                                    .push(crate::record::header(convert::CDC_END_LSN, end.as_bytes()));
                                r
                            }));
                            out.good += t.batch.good;
                            out.bad += t.batch.bad;
                        }
                    }
                    out.end = Some(end_lsn);
                }
                Message::Relation(r) => {
                    self.relations.insert(r.id, r);
                }
                Message::Insert { relation, new } => {
                    self.change(txn.as_mut(), Op::Insert, relation, &new, *lsn)
                }
                Message::Update { relation, new, .. } => {
                    self.change(txn.as_mut(), Op::Update, relation, &new, *lsn);
                }
                Message::Delete { relation, old } => {
                    self.change(txn.as_mut(), Op::Delete, relation, &old, *lsn)
                }
                Message::Truncate { relations } => {
                    for rel in relations {
                        let table = self
                            .relations
                            .get(&rel)
                            .map_or_else(|| format!("relation {rel}"), Relation::qualified);
                        let at = self.origin(txn.as_mut(), &table, *lsn);
                        let map = self.config.table(&table);
                        let rec = convert::refused(
                            map,
                            Op::Delete,
                            &[],
                            &at,
                            "TRUNCATE removed every row; no event says which, so nothing downstream changed",
                        );
                        if let Some(t) = txn.as_mut() {
                            t.batch.push(rec, false);
                        }
                    }
                }
                Message::Origin | Message::Type | Message::Message => {}
            }
        }
        out
    }

    /// The origin of the next change of `txn`.
    fn origin<'a>(&'a self, txn: Option<&mut Txn>, table: &'a str, lsn: u64) -> Origin<'a> {
        let name = self.runtime.name();
        match txn {
            Some(t) => {
                let position = t.position;
                t.position += 1;
                Origin {
                    source: name,
                    table,
                    lsn: t.final_lsn,
                    seed: format!("{name}|cdc|{:x}|{}", t.final_lsn, t.xid),
                    position,
                    default_ts: t.ts,
                }
            }
            None => Origin {
                source: name,
                table,
                lsn,
                seed: format!("{name}|cdc|{lsn:x}"),
                position: 0,
                default_ts: Utc::now(),
            },
        }
    }

    fn change(&self, txn: Option<&mut Txn>, op: Op, relation: u32, values: &[Value], lsn: u64) {
        let Some(txn) = txn else {
            return; // pgoutput sends changes only inside a transaction
        };
        let Some(rel) = self.relations.get(&relation) else {
            let table = format!("relation {relation}");
            let at = self.origin(Some(txn), &table, lsn);
            let rec = convert::refused(
                None,
                op,
                &[],
                &at,
                "a change of a relation the stream did not describe",
            );
            txn.batch.push(rec, false);
            return;
        };
        let table = rel.qualified();
        let texts: Vec<Option<String>> = values
            .iter()
            .map(|v| match v {
                Value::Text(b) => Some(String::from_utf8_lossy(b).into_owned()),
                Value::Null | Value::Unchanged | Value::Binary(_) => None,
            })
            .collect();
        let row: Vec<(&str, Option<&str>)> = rel
            .columns
            .iter()
            .zip(&texts)
            .map(|(c, v)| (c.name.as_str(), v.as_deref()))
            .collect();
        let at = self.origin(Some(&mut *txn), &table, lsn);
        let (rec, ok) = match self.config.table(&table) {
            Some(map) => {
                let (mut rec, ok) = convert::record(map, op, &row, &at);
                if !ok && op == Op::Delete && rel.replica_identity != b'f' {
                    for h in &mut rec.headers {
                        if h.key == crate::record::reject::REASON {
                            h.value.extend_from_slice(
                                format!(
                                    " (a delete carries only the key unless the table has REPLICA IDENTITY FULL: ALTER TABLE {table} REPLICA IDENTITY FULL)"
                                )
                                .as_bytes(),
                            );
                        }
                    }
                }
                (rec, ok)
            }
            None => (
                convert::refused(
                    None,
                    op,
                    &row,
                    &at,
                    &format!(
                        "table {table} is in publication {} but not mapped in `tables`",
                        self.publication
                    ),
                ),
                false,
            ),
        };
        txn.batch.push(rec, ok);
    }
}

impl Batch {
    fn push(&mut self, rec: ProducerRecord, ok: bool) {
        self.records.push(rec);
        if ok {
            self.good += 1;
        } else {
            self.bad += 1;
        }
    }
}

/// The first 16 bytes of the SHA-256 of a snapshot row's JSON.
fn row_digest(content: &str) -> [u8; 16] {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(content.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

async fn simple_row(client: &Client, sql: &str) -> Step<Vec<String>> {
    let msgs = client.simple_query(sql).await.map_err(pg("querying"))?;
    msgs.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or_default().to_owned())
                    .collect(),
            ),
            _ => None,
        })
        .ok_or_else(|| Fail::Pg(format!("{sql}: no row")))
}

async fn simple_one(client: &Client, sql: &str) -> Step<String> {
    Ok(simple_row(client, sql)
        .await?
        .into_iter()
        .next()
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_visibility_follows_xids_and_the_commit_position() {
        let s = Snapshot::parse("4294967396:4294967400:4294967397,4294967399", 1000).expect("parses");
        assert_eq!((s.xmin, s.xmax, s.xip.clone()), (100, 104, vec![101, 103]));
        assert!(s.saw(99, 500), "before xmin");
        assert!(s.saw(102, 500), "between, not in progress");
        assert!(!s.saw(101, 500), "in progress at the snapshot");
        assert!(!s.saw(104, 500), "at xmax");
        assert!(!s.saw(99, 1000), "committed after the snapshot's position");
        assert!(Snapshot::parse("5:9:", 1).is_some_and(|s| s.xip.is_empty()));
        assert!(Snapshot::parse("garbage", 1).is_none());
        assert!(precedes(u32::MAX, 3), "xids wrap around");
    }
}
