//! The benchmark's baseline: the same rows loaded with nothing but binary COPY into scratch
//! tables of the same shape as `sales_raw` (day-partitioned, same index) and the ledger, in the
//! same row order as the write path, with no dedup, fencing, savepoint or offsets. Its time
//! divided by `write_batch`'s is what exactly-once costs.
//!
//! In three steps (`begin`, any number of `chunk`s, `finish`) so that the benchmark can
//! stream its rows in bounded memory; the partitions created are remembered between chunks.

use std::collections::HashSet;
use std::time::Instant;

use super::conn::Conn;
use super::copy;
use super::error::pg_error;
use super::partition;
use crate::{BareLoad, LandedSale, Result};

const DROP: &str = "DROP TABLE IF EXISTS bench_bare_sales_raw, bench_bare_ledger";

/// Mirrors `sales_raw` and `landed_event_ids` in migrations/postgres/0001_init.sql.
const CREATE: &str = "\
    CREATE TABLE bench_bare_sales_raw (
        event_id uuid NOT NULL, kind text NOT NULL, store_id bigint NOT NULL, sku bigint NOT NULL,
        qty integer NOT NULL, unit_price numeric(12, 2), seller_id bigint, ts timestamptz NOT NULL,
        source text NOT NULL, ingested_at timestamptz NOT NULL DEFAULT now()
    ) PARTITION BY RANGE (ts);
    CREATE INDEX bench_bare_sales_raw_store_id_ts_idx ON bench_bare_sales_raw (store_id, ts);
    CREATE TABLE bench_bare_ledger (event_id uuid PRIMARY KEY);";

const COPY_LEDGER: &str = "COPY bench_bare_ledger (event_id) FROM STDIN (FORMAT binary)";

const COPY_SALES: &str = "COPY bench_bare_sales_raw (event_id, kind, store_id, sku, qty, unit_price, \
     seller_id, ts, source) FROM STDIN (FORMAT binary)";

/// Drops and creates the scratch tables; `days` (the partitions known to exist) starts empty.
pub(super) async fn begin(conn: &mut Conn, days: &mut HashSet<i64>) -> Result<()> {
    days.clear();
    conn.simple(DROP, "DROP TABLE bench_bare_sales_raw, bench_bare_ledger")
        .await?;
    conn.simple(CREATE, "CREATE TABLE bench_bare_sales_raw, bench_bare_ledger")
        .await
}

/// Loads `rows`, `batch_rows` per transaction, and returns the rows COPY reported and the
/// time spent in the transactions. A failed chunk leaves no transaction open.
pub(super) async fn chunk(
    conn: &mut Conn,
    days: &mut HashSet<i64>,
    rows: &[LandedSale],
    batch_rows: usize,
) -> Result<BareLoad> {
    let loaded = load(conn, days, rows, batch_rows).await;
    if conn.in_tx {
        conn.rollback().await;
    }
    loaded
}

/// Drops the scratch tables.
pub(super) async fn finish(conn: &mut Conn, days: &mut HashSet<i64>) -> Result<()> {
    days.clear();
    conn.simple(DROP, "DROP TABLE bench_bare_sales_raw, bench_bare_ledger")
        .await
}

async fn load(
    conn: &mut Conn,
    days: &mut HashSet<i64>,
    rows: &[LandedSale],
    batch_rows: usize,
) -> Result<BareLoad> {
    partition::ensure_days(
        &conn.client,
        "bench_bare_sales_raw",
        days,
        rows.iter().map(|r| &r.ts),
    )
    .await?;
    let copy_ledger = conn
        .client
        .prepare(COPY_LEDGER)
        .await
        .map_err(|e| pg_error(COPY_LEDGER, &e))?;
    let copy_sales = conn
        .client
        .prepare(COPY_SALES)
        .await
        .map_err(|e| pg_error(COPY_SALES, &e))?;
    let mut done = BareLoad::default();
    for chunk in rows.chunks(batch_rows.max(1)) {
        let start = Instant::now();
        // The same ordering as the write path, so the ratio measures exactly-once alone.
        let mut ids: Vec<_> = chunk.iter().map(|r| r.event_id).collect();
        copy::order_ids(&mut ids);
        let mut sales: Vec<&LandedSale> = chunk.iter().collect();
        copy::order_sales(&mut sales);
        conn.begin().await?;
        copy::ids(&conn.client, &copy_ledger, ids.into_iter())
            .await
            .map_err(|e| pg_error("COPY bench_bare_ledger", &e))?;
        let copied = copy::sales(&conn.client, &copy_sales, sales.into_iter())
            .await
            .map_err(|e| pg_error("COPY bench_bare_sales_raw", &e))?;
        conn.commit().await?;
        done += BareLoad {
            rows: copied,
            elapsed: start.elapsed(),
        };
    }
    Ok(done)
}
