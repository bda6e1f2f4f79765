//! The inventory-at-risk pipeline in SQLite, inside the batch's transaction: read the rows of
//! the series the batch touches and of those with pending events due, read the backfill of
//! series the batch creates from `sales_raw`, run the pipeline ([`StockBatch::run`]), write
//! rows, alerts and the pipeline time back. A store with no series skips the lookups of a
//! sales-only batch.

use std::collections::BTreeMap;

use chrono::DateTime;
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::error::sqlite_error;
use super::orders::{ts, write_alerts, write_clock};
use crate::derived::stock::{StockBatch, StockFact, StockFactKind, StockState, LEVELS};
use crate::{Error, Result};

/// What the pipeline wrote: (rows, alerts raised).
pub(super) fn write(
    conn: &Connection,
    path: &str,
    group: &str,
    batch: &StockBatch,
    routes: &crate::outbox::Routes,
    is_new: impl Fn(&Uuid) -> bool,
) -> Result<(u64, u64)> {
    let err = |what: &'static str| move |e: rusqlite::Error| sqlite_error(path, what, &e);
    let creates = batch
        .facts
        .iter()
        .any(|f| matches!(f.kind, StockFactKind::Snapshot { .. }) && is_new(&f.event_id));
    if !creates {
        let any: bool = conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM inventory_risks)")
            .map_err(err("prepare SELECT EXISTS inventory_risks"))?
            .query_row([], |r| r.get(0))
            .map_err(err("SELECT EXISTS inventory_risks"))?;
        if !any {
            return Ok((0, 0));
        }
    }
    let parse = |text: String| -> Result<StockState> {
        serde_json::from_str(&text).map_err(|e| Error::Sqlite {
            path: path.to_owned(),
            message: format!("inventory_risks.fold does not read back ({e}): {text}"),
            retryable: false,
        })
    };
    let mut loaded: BTreeMap<(i64, i64), StockState> = BTreeMap::new();
    if let Some(now) = batch.time {
        let mut stmt = conn
            .prepare_cached("SELECT fold FROM inventory_risks WHERE next_check_at <= ?1")
            .map_err(err("prepare SELECT FROM inventory_risks (due)"))?;
        let texts = stmt
            .query_map([ts(now)], |r| r.get::<_, String>(0))
            .map_err(err("SELECT FROM inventory_risks (due)"))?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(err("SELECT FROM inventory_risks (due)"))?;
        for text in texts {
            let s = parse(text)?;
            loaded.insert((s.store_id, s.sku), s);
        }
    }
    {
        let mut stmt = conn
            .prepare_cached("SELECT fold FROM inventory_risks WHERE store_id = ?1 AND sku = ?2")
            .map_err(err("prepare SELECT FROM inventory_risks"))?;
        for key in batch.touched(&is_new) {
            if loaded.contains_key(&key) {
                continue;
            }
            let text: Option<String> = stmt
                .query_row(params![key.0, key.1], |r| r.get(0))
                .optional()
                .map_err(err("SELECT FROM inventory_risks"))?;
            if let Some(text) = text {
                loaded.insert(key, parse(text)?);
            }
        }
    }
    let loaded: Vec<StockState> = loaded.into_values().collect();
    let mut backfill = Vec::new();
    {
        let mut stmt = conn
            .prepare_cached(
                "SELECT event_id, ts, qty FROM sales_raw WHERE store_id = ?1 AND sku = ?2 AND ts >= ?3",
            )
            .map_err(err("prepare SELECT FROM sales_raw (stock backfill)"))?;
        for (store_id, sku, from) in batch.created(&loaded, &is_new) {
            let rows = stmt
                .query_map(params![store_id, sku, ts(from)], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(err("SELECT FROM sales_raw (stock backfill)"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(err("SELECT FROM sales_raw (stock backfill)"))?;
            for (id, at, qty) in rows {
                let (Ok(event_id), Ok(at)) = (Uuid::parse_str(&id), DateTime::parse_from_rfc3339(&at)) else {
                    return Err(Error::Sqlite {
                        path: path.to_owned(),
                        message: format!(
                            "sales_raw row {id} at {at} does not read back for the stock backfill"
                        ),
                        retryable: false,
                    });
                };
                backfill.push(StockFact {
                    event_id,
                    store_id,
                    sku,
                    ts: at.timestamp_millis(),
                    kind: StockFactKind::Sale { qty },
                });
            }
        }
    }
    let changes = batch.run(loaded, backfill, &is_new);
    let r = &*batch.rules;
    {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO inventory_risks (store_id, sku, snapshot_at, snapshot_on_hand, units_sold_after, \
                   projected_on_hand, units_7d, velocity_per_day, days_of_cover, reorder_point, lead_time_days, \
                   risk_level, first_flagged_at, as_of, next_check_at, fold) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
                 ON CONFLICT (store_id, sku) DO UPDATE SET snapshot_at = excluded.snapshot_at, \
                   snapshot_on_hand = excluded.snapshot_on_hand, units_sold_after = excluded.units_sold_after, \
                   projected_on_hand = excluded.projected_on_hand, units_7d = excluded.units_7d, \
                   velocity_per_day = excluded.velocity_per_day, days_of_cover = excluded.days_of_cover, \
                   reorder_point = excluded.reorder_point, lead_time_days = excluded.lead_time_days, \
                   risk_level = excluded.risk_level, first_flagged_at = excluded.first_flagged_at, \
                   as_of = excluded.as_of, next_check_at = excluded.next_check_at, fold = excluded.fold, \
                   updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            )
            .map_err(err("prepare INSERT INTO inventory_risks"))?;
        for s in &changes.rows {
            stmt.execute(params![
                s.store_id,
                s.sku,
                s.snapshot.map(|x| ts(x.ts)),
                s.snapshot.map(|x| x.on_hand),
                s.sold_after,
                s.projected(),
                s.units_in_window(),
                s.velocity(r),
                s.days_of_cover(r),
                s.reorder_point(r),
                s.lead_time(r),
                LEVELS[usize::from(s.level)],
                s.first_flagged_at.map(ts),
                (s.as_of != i64::MIN).then(|| ts(s.as_of)),
                s.next_check().map(ts),
                serde_json::to_string(s).unwrap_or_default(),
            ])
            .map_err(err("INSERT INTO inventory_risks"))?;
        }
    }
    write_alerts(conn, path, &changes.alerts, &[], routes)?;
    if let Some(now) = batch.time {
        write_clock(conn, path, group, "stock", now)?;
    }
    Ok((changes.rows.len() as u64, changes.alerts.len() as u64))
}
