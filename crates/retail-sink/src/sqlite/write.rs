//! The SQLite write path, run on the worker thread: one `BEGIN IMMEDIATE` transaction per
//! batch. `IMMEDIATE` takes the write lock before the fencing read, so no other writer (another
//! process on the same file) can move an offset between our check and our commit.
//!
//! Every event id goes through `INSERT OR IGNORE INTO landed_event_ids_YYYYMMDD`, the ledger
//! table of its event day (`ledger`, ADR 0022); a change count of 1 means the id is new and
//! its row is inserted, 0 means it landed before. Events older than the dedup horizon were
//! turned into dead letters before the batch got here (`rows`). Statements come from
//! the connection's prepared-statement cache, so a batch prepares nothing after the first.

use std::time::Instant;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use std::collections::HashSet;

use uuid::Uuid;

use super::derived;
use super::error::sqlite_error;
use super::fraud;
use super::ledger::{self, DayLedger};
use super::orders;
use super::rows::{ts_text, OwnedBatch, SaleRow, Sales};
use super::stock;
use super::store::Aggregates;
use crate::horizon;
use crate::outbox::NO_ROUTES;
use crate::{BareLoad, BatchOutcome, Error, Result};

const INSERT_SALE: &str = "INSERT INTO sales_raw (event_id, kind, store_id, sku, qty, unit_price, \
     seller_id, ts, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// Binds one sale to an INSERT with the columns of [`INSERT_SALE`]. The write path and the bare
/// baseline share it, so both write exactly the same values.
fn insert_sale(
    stmt: &mut rusqlite::CachedStatement<'_>,
    s: &SaleRow,
    source: &str,
    id_buf: &mut [u8; 36],
    ts_buf: &mut String,
) -> rusqlite::Result<usize> {
    let id = &*s.event_id.hyphenated().encode_lower(id_buf);
    ts_text(&s.ts, ts_buf);
    stmt.execute(params![
        id,
        s.kind,
        s.store_id,
        s.sku,
        s.qty,
        s.unit_price.and_then(Result::ok),
        s.seller_id,
        ts_buf.as_str(),
        source
    ])
}

/// Writes `b` in one transaction; with `commit` false, rolls it back (a probe). `legacy`:
/// whether the ledger from before migration 0006 is still consulted.
pub(super) fn write_batch(
    conn: &mut Connection,
    path: &str,
    aggregates: &Aggregates,
    b: &OwnedBatch,
    legacy: bool,
    commit: bool,
) -> Result<BatchOutcome> {
    let err = |what: &'static str| move |e: rusqlite::Error| sqlite_error(path, what, &e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err("BEGIN IMMEDIATE"))?;

    // 1. Fencing.
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT next_offset FROM consumer_offsets \
                 WHERE group_id = ?1 AND topic = ?2 AND \"partition\" = ?3",
            )
            .map_err(err("prepare SELECT FROM consumer_offsets"))?;
        for r in &b.offsets {
            let stored: Option<i64> = stmt
                .query_row(params![b.group, r.tp.topic, r.tp.partition], |row| row.get(0))
                .optional()
                .map_err(err("SELECT FROM consumer_offsets"))?;
            if let Some(stored) = stored.filter(|s| *s != r.first) {
                return Err(Error::OffsetConflict {
                    tp: r.tp.clone(),
                    stored,
                    batch_first: r.first,
                });
            }
        }
    }

    let mut outcome = BatchOutcome {
        too_old: b.verdict.dead_letters.len() as u64,
        sales_duplicates: b.sales_duplicates,
        events_duplicates: b.events_duplicates,
        ..BatchOutcome::default()
    };
    let mut id_buf = [0u8; 36];
    let mut ts_buf = String::with_capacity(32);
    // Ids the ledger already held: their events contribute nothing (ADR 0004).
    let mut landed_before: HashSet<Uuid> = HashSet::new();

    // 2. Ledger and rows.
    if b.verdict.advances {
        if let Some(newest) = b.verdict.newest {
            ledger::record_newest(&tx, path, newest)?;
        }
    }
    let mut ledger = DayLedger::new(&tx, path, legacy)?;
    {
        let mut sale = tx
            .prepare_cached(INSERT_SALE)
            .map_err(err("prepare INSERT INTO sales_raw"))?;
        // Ledger first in id order, then the new rows in index order: each b-tree is then
        // filled in its own key order, which keeps SQLite's page cache hits high.
        let mut new = Vec::with_capacity(b.sales.rows.len());
        for i in b.sales.ledger_order() {
            let Some(s) = b.sales.rows.get(i) else { continue };
            let id = &*s.event_id.hyphenated().encode_lower(&mut id_buf);
            if ledger.insert(id, horizon::day_of(&s.ts))? {
                new.push(i);
            } else {
                outcome.sales_duplicates += 1;
                landed_before.insert(s.event_id);
            }
        }
        for i in b.sales.index_order(new) {
            let Some(s) = b.sales.rows.get(i) else { continue };
            if let Some(Err(price)) = s.unit_price {
                return Err(Error::Refused {
                    message: format!(
                        "sqlite {path}: INSERT INTO sales_raw: unit_price {price} of event {} is not a \
                         whole number of cents (money is stored as integer cents, ADR 0020)",
                        s.event_id
                    ),
                });
            }
            insert_sale(&mut sale, s, b.sales.source(s), &mut id_buf, &mut ts_buf)
                .map_err(err("INSERT INTO sales_raw"))?;
            outcome.sales_inserted += 1;
        }
        let mut event = tx
            .prepare_cached(
                "INSERT INTO events_raw (event_id, event_type, ts, source, partition_key, payload) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(err("prepare INSERT INTO events_raw"))?;
        for e in &b.events {
            let id = &*e.event_id.hyphenated().encode_lower(&mut id_buf);
            if !ledger.insert(id, horizon::day_of(&e.ts))? {
                outcome.events_duplicates += 1;
                landed_before.insert(e.event_id);
                continue;
            }
            ts_text(&e.ts, &mut ts_buf);
            event
                .execute(params![id, e.event_type, ts_buf, e.source, e.key, e.payload])
                .map_err(err("INSERT INTO events_raw"))?;
            outcome.events_inserted += 1;
        }
    }

    // 3. Dead letters, the horizon's too-old events among them.
    if !b.dead_letters.is_empty() || !b.verdict.dead_letters.is_empty() {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO dead_letters (raw, reason, kind, source, topic, \"partition\", \"offset\", \
                 file, line, rejected_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(err("prepare INSERT INTO dead_letters"))?;
        for d in b.dead_letters.iter().chain(&b.verdict.dead_letters) {
            // Input its source named (a retried webhook line) is dead-lettered once per id.
            if let Some(id) = &d.id {
                let id = &*id.hyphenated().encode_lower(&mut id_buf);
                if !ledger.insert(id, b.verdict.dead_letter_day(&d.rejected_at))? {
                    continue;
                }
            }
            let o = &d.origin;
            // A line past i64::MAX cannot be a real line number; store it as unknown.
            let line = o.line.and_then(|l| i64::try_from(l).ok());
            ts_text(&d.rejected_at, &mut ts_buf);
            stmt.execute(params![
                d.raw,
                d.reason,
                d.kind,
                o.source,
                o.topic,
                o.partition,
                o.offset,
                o.file,
                line,
                ts_buf
            ])
            .map_err(err("INSERT INTO dead_letters"))?;
            outcome.dead_letters += 1;
        }
    }

    // 4. What processing derived.
    let d = &*b.derived;
    // New: not landed before, and not refused as older than the dedup horizon (ADR 0022).
    let is_new = |id: &Uuid| !landed_before.contains(id) && !b.verdict.too_old.contains(id);
    if !d.contributions.is_empty() || !d.late.is_empty() {
        let (rows, late) = derived::write(&tx, path, &aggregates.tables, &aggregates.sql, d, is_new)?;
        outcome.aggregate_rows = rows;
        outcome.late_events = late;
    }
    derived::write_watermarks(&tx, path, &b.group, &d.watermarks)?;
    derived::write_catalog(&tx, path, &d.catalog)?;
    let routes = d.notifications.as_deref().unwrap_or(&NO_ROUTES);
    if let Some(o) = &d.orders {
        orders::write(&tx, path, &b.group, o, routes, is_new)?;
    }
    if let Some(st) = &d.stock {
        stock::write(&tx, path, &b.group, st, routes, is_new)?;
    }
    if let Some(fr) = &d.fraud {
        fraud::write(&tx, path, &b.group, fr, routes, is_new)?;
    }

    // 5. Offsets.
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO consumer_offsets (group_id, topic, \"partition\", next_offset) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (group_id, topic, \"partition\") DO UPDATE \
                 SET next_offset = excluded.next_offset, \
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            )
            .map_err(err("prepare INSERT INTO consumer_offsets"))?;
        for r in &b.offsets {
            stmt.execute(params![b.group, r.tp.topic, r.tp.partition, r.next])
                .map_err(err("INSERT INTO consumer_offsets ON CONFLICT DO UPDATE"))?;
        }
    }

    drop(ledger);
    if commit {
        tx.commit().map_err(err("COMMIT"))?;
    } else {
        tx.rollback().map_err(err("ROLLBACK (probe)"))?;
    }
    Ok(outcome)
}

const BARE_DROP: &str = "DROP TABLE IF EXISTS bench_bare_sales_raw; DROP TABLE IF EXISTS bench_bare_ledger;";

/// Mirrors `sales_raw` (migrations/sqlite/0004_money_in_cents.sql) and `landed_event_ids`
/// (0001_init.sql).
const BARE_CREATE: &str = "\
    CREATE TABLE bench_bare_sales_raw (
        event_id TEXT NOT NULL, kind TEXT NOT NULL, store_id INTEGER NOT NULL, sku INTEGER NOT NULL,
        qty INTEGER NOT NULL,
        unit_price INTEGER CONSTRAINT unit_price_in_cents CHECK (typeof(unit_price) IN ('integer', 'null')),
        seller_id INTEGER, ts TEXT NOT NULL,
        source TEXT NOT NULL,
        ingested_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')));
    CREATE INDEX bench_bare_sales_raw_store_id_ts_idx ON bench_bare_sales_raw (store_id, ts);
    CREATE TABLE bench_bare_ledger (event_id TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;";

/// The benchmark baseline, step 1: drops and creates the scratch tables.
pub(super) fn bare_begin(conn: &Connection, path: &str) -> Result<()> {
    let err = |what: &'static str| move |e: rusqlite::Error| sqlite_error(path, what, &e);
    conn.execute_batch(BARE_DROP)
        .map_err(err("DROP TABLE bench_bare_*"))?;
    conn.execute_batch(BARE_CREATE)
        .map_err(err("CREATE TABLE bench_bare_*"))
}

/// The benchmark baseline, step 3: drops the scratch tables.
pub(super) fn bare_finish(conn: &Connection, path: &str) -> Result<()> {
    conn.execute_batch(BARE_DROP)
        .map_err(|e| sqlite_error(path, "DROP TABLE bench_bare_*", &e))
}

/// The benchmark baseline, step 2: plain prepared INSERTs into the scratch tables,
/// `batch_rows` per transaction; returns the rows inserted and the time spent in the
/// transactions.
pub(super) fn bare_chunks(
    conn: &mut Connection,
    path: &str,
    sales: &Sales,
    batch_rows: usize,
) -> Result<BareLoad> {
    let err = |what: &'static str| move |e: rusqlite::Error| sqlite_error(path, what, &e);
    let mut id_buf = [0u8; 36];
    let mut ts_buf = String::with_capacity(32);
    let mut done = BareLoad::default();
    let all: Vec<usize> = (0..sales.rows.len()).collect();
    for chunk in all.chunks(batch_rows.max(1)) {
        let start = Instant::now();
        // The same orders as the write path, so the ratio measures exactly-once alone.
        let chunk_rows = Sales {
            rows: chunk.iter().filter_map(|&i| sales.rows.get(i).cloned()).collect(),
            sources: Vec::new(),
        };
        let mut inserted = 0u64;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("BEGIN IMMEDIATE"))?;
        {
            let mut ledger = tx
                .prepare_cached("INSERT INTO bench_bare_ledger (event_id) VALUES (?1)")
                .map_err(err("prepare INSERT INTO bench_bare_ledger"))?;
            let mut sale = tx
                .prepare_cached(
                    "INSERT INTO bench_bare_sales_raw (event_id, kind, store_id, sku, qty, unit_price, \
                     seller_id, ts, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(err("prepare INSERT INTO bench_bare_sales_raw"))?;
            let ids = chunk_rows.ledger_order();
            for &i in &ids {
                let Some(s) = chunk_rows.rows.get(i) else { continue };
                let id = &*s.event_id.hyphenated().encode_lower(&mut id_buf);
                ledger
                    .execute([id])
                    .map_err(err("INSERT INTO bench_bare_ledger"))?;
            }
            for i in chunk_rows.index_order(ids) {
                let Some(s) = chunk_rows.rows.get(i) else { continue };
                inserted += insert_sale(&mut sale, s, sales.source(s), &mut id_buf, &mut ts_buf)
                    .map_err(err("INSERT INTO bench_bare_sales_raw"))? as u64;
            }
        }
        tx.commit().map_err(err("COMMIT"))?;
        done += BareLoad {
            rows: inserted,
            elapsed: start.elapsed(),
        };
    }
    Ok(done)
}
