//! The inventory-at-risk pipeline in PostgreSQL, inside the batch's transaction: read the rows
//! of the series the batch touches and of those with pending events due (`FOR UPDATE`), read
//! the backfill of series the batch creates from `sales_raw`, run the pipeline
//! ([`StockBatch::run`]), write rows, alerts and the pipeline time back.
//!
//! A batch of sales touches many series, most with no row (no snapshot yet): they are looked
//! up in one statement, and a store with no series at all skips even that.

use chrono::{DateTime, Utc};
use tokio_postgres::Client;
use uuid::Uuid;

use super::error::pg_error;
use super::orders::{write_alerts, write_clock};
use crate::derived::ms_to_time;
use crate::derived::stock::{StockBatch, StockFact, StockFactKind, StockState, LEVELS};
use crate::{Error, Result};

/// Key of the advisory lock serialising batches that may create series rows.
const STOCK_ROWS_LOCK: i64 = 0x7265_7461_696c_0005; // "retail" + 5

/// What the pipeline wrote: (rows, alerts raised).
pub(super) async fn write(
    client: &Client,
    group: &str,
    batch: &StockBatch,
    routes: &crate::outbox::Routes,
    is_new: impl Fn(&Uuid) -> bool,
) -> Result<(u64, u64)> {
    let touched = batch.touched(&is_new);
    let creates = batch
        .facts
        .iter()
        .any(|f| matches!(f.kind, StockFactKind::Snapshot { .. }) && is_new(&f.event_id));
    if !creates {
        // Only sales: nothing to do unless some series exists.
        let any: bool = client
            .query_one("SELECT EXISTS (SELECT 1 FROM inventory_risks)", &[])
            .await
            .map_err(|e| pg_error("SELECT EXISTS inventory_risks", &e))?
            .get(0);
        if !any {
            return Ok((0, 0));
        }
    } else {
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&STOCK_ROWS_LOCK])
            .await
            .map_err(|e| pg_error("pg_advisory_xact_lock (stock rows)", &e))?;
    }
    let stores: Vec<i64> = touched.iter().map(|k| k.0).collect();
    let skus: Vec<i64> = touched.iter().map(|k| k.1).collect();
    let now: Option<DateTime<Utc>> = batch.time.map(ms_to_time);
    // Two statements, each on its index (an OR of the two would scan the table every batch).
    let mut rows = client
        .query(
            "SELECT fold::text FROM inventory_risks \
             WHERE (store_id, sku) IN (SELECT * FROM unnest($1::int8[], $2::int8[])) \
             ORDER BY store_id, sku FOR UPDATE",
            &[&stores, &skus],
        )
        .await
        .map_err(|e| pg_error("SELECT FROM inventory_risks FOR UPDATE", &e))?;
    rows.extend(
        client
            .query(
                "SELECT fold::text FROM inventory_risks WHERE next_check_at <= $1 \
                 AND (store_id, sku) NOT IN (SELECT * FROM unnest($2::int8[], $3::int8[])) \
                 ORDER BY store_id, sku FOR UPDATE",
                &[&now, &stores, &skus],
            )
            .await
            .map_err(|e| pg_error("SELECT FROM inventory_risks (due) FOR UPDATE", &e))?,
    );
    let mut loaded = Vec::with_capacity(rows.len());
    for row in rows {
        let text: String = row.get(0);
        loaded.push(
            serde_json::from_str::<StockState>(&text).map_err(|e| Error::Postgres {
                message: format!("inventory_risks.fold does not read back ({e}): {text}"),
                retryable: false,
            })?,
        );
    }
    let mut backfill = Vec::new();
    for (store_id, sku, from) in batch.created(&loaded, &is_new) {
        let rows = client
            .query(
                "SELECT event_id, ts, qty::int8 FROM sales_raw WHERE store_id = $1 AND sku = $2 AND ts >= $3",
                &[&store_id, &sku, &ms_to_time(from)],
            )
            .await
            .map_err(|e| pg_error("SELECT FROM sales_raw (stock backfill)", &e))?;
        backfill.extend(rows.iter().map(|r| StockFact {
            event_id: r.get(0),
            store_id,
            sku,
            ts: r.get::<_, DateTime<Utc>>(1).timestamp_millis(),
            kind: StockFactKind::Sale { qty: r.get(2) },
        }));
    }
    let changes = batch.run(loaded, backfill, &is_new);
    upsert_rows(client, batch, &changes.rows).await?;
    write_alerts(client, &changes.alerts, &[], routes).await?;
    if let Some(now) = now {
        write_clock(client, group, "stock", now).await?;
    }
    Ok((changes.rows.len() as u64, changes.alerts.len() as u64))
}

async fn upsert_rows(client: &Client, batch: &StockBatch, rows: &[StockState]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let r = &*batch.rules;
    let t = |ms: Option<i64>| ms.map(ms_to_time);
    let stores: Vec<i64> = rows.iter().map(|s| s.store_id).collect();
    let skus: Vec<i64> = rows.iter().map(|s| s.sku).collect();
    let snap_at: Vec<Option<DateTime<Utc>>> = rows.iter().map(|s| t(s.snapshot.map(|x| x.ts))).collect();
    let snap_on_hand: Vec<Option<i64>> = rows.iter().map(|s| s.snapshot.map(|x| x.on_hand)).collect();
    let sold: Vec<i64> = rows.iter().map(|s| s.sold_after).collect();
    let projected: Vec<Option<i64>> = rows.iter().map(StockState::projected).collect();
    let units: Vec<i64> = rows.iter().map(StockState::units_in_window).collect();
    let velocity: Vec<f64> = rows.iter().map(|s| s.velocity(r)).collect();
    let cover: Vec<Option<f64>> = rows.iter().map(|s| s.days_of_cover(r)).collect();
    let reorder: Vec<i64> = rows.iter().map(|s| s.reorder_point(r)).collect();
    let lead: Vec<i64> = rows.iter().map(|s| s.lead_time(r)).collect();
    let level: Vec<&str> = rows.iter().map(|s| LEVELS[usize::from(s.level)]).collect();
    let flagged: Vec<Option<DateTime<Utc>>> = rows.iter().map(|s| t(s.first_flagged_at)).collect();
    let as_of: Vec<Option<DateTime<Utc>>> = rows
        .iter()
        .map(|s| t((s.as_of != i64::MIN).then_some(s.as_of)))
        .collect();
    let next: Vec<Option<DateTime<Utc>>> = rows.iter().map(|s| t(s.next_check())).collect();
    let folds: Vec<String> = rows
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    client
        .execute(
            "INSERT INTO inventory_risks (store_id, sku, snapshot_at, snapshot_on_hand, units_sold_after, \
               projected_on_hand, units_7d, velocity_per_day, days_of_cover, reorder_point, lead_time_days, \
               risk_level, first_flagged_at, as_of, next_check_at, fold) \
             SELECT st, sk, sa, so, us, po, u7, v, c, rp, lt, rl, ff, ao, nc, f::jsonb \
             FROM unnest($1::int8[], $2::int8[], $3::timestamptz[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], \
               $8::float8[], $9::float8[], $10::int8[], $11::int8[], $12::text[], $13::timestamptz[], \
               $14::timestamptz[], $15::timestamptz[], $16::text[]) \
               AS u(st, sk, sa, so, us, po, u7, v, c, rp, lt, rl, ff, ao, nc, f) \
             ON CONFLICT (store_id, sku) DO UPDATE SET snapshot_at = excluded.snapshot_at, \
               snapshot_on_hand = excluded.snapshot_on_hand, units_sold_after = excluded.units_sold_after, \
               projected_on_hand = excluded.projected_on_hand, units_7d = excluded.units_7d, \
               velocity_per_day = excluded.velocity_per_day, days_of_cover = excluded.days_of_cover, \
               reorder_point = excluded.reorder_point, lead_time_days = excluded.lead_time_days, \
               risk_level = excluded.risk_level, first_flagged_at = excluded.first_flagged_at, \
               as_of = excluded.as_of, next_check_at = excluded.next_check_at, fold = excluded.fold, \
               updated_at = now()",
            &[
                &stores,
                &skus,
                &snap_at,
                &snap_on_hand,
                &sold,
                &projected,
                &units,
                &velocity,
                &cover,
                &reorder,
                &lead,
                &level,
                &flagged,
                &as_of,
                &next,
                &folds,
            ],
        )
        .await
        .map_err(|e| pg_error("INSERT INTO inventory_risks ON CONFLICT DO UPDATE", &e))?;
    Ok(())
}
