//! The order-lifecycle pipeline in SQLite, inside the batch's transaction: read the rows of the
//! orders the batch touches and of those with a verdict due, run the pipeline
//! ([`OrderBatch::run`]), write the rows, the alerts and the pipeline time back. SQLite has one
//! writer, so no locking beyond the batch's `BEGIN IMMEDIATE` is needed. Money is INTEGER cents
//! (ADR 0020): an amount finer than a cent is refused, and the batch's rows are then isolated
//! into dead letters like any refused row.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::error::sqlite_error;
use super::money::to_cents;
use super::rows::ts_text;
use crate::derived::ms_to_time;
use crate::derived::orders::{Alert, OrderBatch, OrderState, Resolution, STATES};
use crate::{Error, Result};

pub(super) fn ts(ms: i64) -> String {
    let mut out = String::with_capacity(24);
    ts_text(&ms_to_time(ms), &mut out);
    out
}

fn cents(order_id: &str, what: &str, d: Option<Decimal>) -> Result<Option<i64>> {
    d.map(|d| {
        to_cents(d).ok_or_else(|| Error::Refused {
            message: format!(
                "order {order_id}: {what} {d} is not a whole number of cents (SQLite keeps money in integer cents, ADR 0020)"
            ),
        })
    })
    .transpose()
}

/// What the pipeline wrote: (order rows, alerts raised).
pub(super) fn write(
    conn: &Connection,
    path: &str,
    group: &str,
    batch: &OrderBatch,
    routes: &crate::outbox::Routes,
    is_new: impl Fn(&Uuid) -> bool,
) -> Result<(u64, u64)> {
    let err = |what: &'static str| move |e: rusqlite::Error| sqlite_error(path, what, &e);
    let touched = batch.touched(&is_new);
    if touched.is_empty() && batch.time.is_none() {
        return Ok((0, 0));
    }
    let parse = |text: String| -> Result<OrderState> {
        serde_json::from_str(&text).map_err(|e| Error::Sqlite {
            path: path.to_owned(),
            message: format!("order_lifecycle.fold does not read back ({e}): {text}"),
            retryable: false,
        })
    };
    let mut loaded: BTreeMap<String, OrderState> = BTreeMap::new();
    if let Some(now) = batch.time {
        let mut stmt = conn
            .prepare_cached("SELECT fold FROM order_lifecycle WHERE next_check_at <= ?1")
            .map_err(err("prepare SELECT FROM order_lifecycle (due)"))?;
        let texts = stmt
            .query_map([ts(now)], |r| r.get::<_, String>(0))
            .map_err(err("SELECT FROM order_lifecycle (due)"))?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(err("SELECT FROM order_lifecycle (due)"))?;
        for text in texts {
            let s = parse(text)?;
            loaded.insert(s.order_id.clone(), s);
        }
    }
    {
        let mut stmt = conn
            .prepare_cached("SELECT fold FROM order_lifecycle WHERE order_id = ?1")
            .map_err(err("prepare SELECT FROM order_lifecycle"))?;
        for id in &touched {
            if loaded.contains_key(id) {
                continue;
            }
            let text: Option<String> = stmt
                .query_row([id], |r| r.get(0))
                .optional()
                .map_err(err("SELECT FROM order_lifecycle"))?;
            if let Some(text) = text {
                loaded.insert(id.clone(), parse(text)?);
            }
        }
    }
    let changes = batch.run(loaded.into_values().collect(), &is_new);
    let r = &*batch.rules;
    let t = |ms: Option<i64>| ms.map(ts);
    {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO order_lifecycle (order_id, state, state_since, customer_id, store_id, amount, currency, \
                   created_at, paid_at, packed_at, shipped_at, delivered_at, cancelled_at, payment_id, payment_status, \
                   payment_amount, payment_at, payment_due_at, payment_timeout, payment_late, stuck_state, \
                   last_event_at, next_check_at, fold) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, \
                   ?21, ?22, ?23, ?24) \
                 ON CONFLICT (order_id) DO UPDATE SET state = excluded.state, state_since = excluded.state_since, \
                   customer_id = excluded.customer_id, store_id = excluded.store_id, amount = excluded.amount, \
                   currency = excluded.currency, created_at = excluded.created_at, paid_at = excluded.paid_at, \
                   packed_at = excluded.packed_at, shipped_at = excluded.shipped_at, \
                   delivered_at = excluded.delivered_at, cancelled_at = excluded.cancelled_at, \
                   payment_id = excluded.payment_id, payment_status = excluded.payment_status, \
                   payment_amount = excluded.payment_amount, payment_at = excluded.payment_at, \
                   payment_due_at = excluded.payment_due_at, payment_timeout = excluded.payment_timeout, \
                   payment_late = excluded.payment_late, stuck_state = excluded.stuck_state, \
                   last_event_at = excluded.last_event_at, next_check_at = excluded.next_check_at, \
                   fold = excluded.fold, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            )
            .map_err(err("prepare INSERT INTO order_lifecycle"))?;
        for s in &changes.rows {
            let fold = serde_json::to_string(s).unwrap_or_default();
            let m = |i: usize| t(s.milestones[i]);
            stmt.execute(params![
                s.order_id,
                s.state().map(|i| STATES[i]),
                t(s.state_since()),
                s.customer_id,
                s.store_id,
                cents(&s.order_id, "amount", s.amount)?,
                s.currency,
                m(0),
                m(1),
                m(2),
                m(3),
                m(4),
                m(5),
                s.payment.as_ref().map(|p| p.payment_id.as_str()),
                s.payment_status(),
                cents(
                    &s.order_id,
                    "payment amount",
                    s.payment.as_ref().map(|p| p.amount)
                )?,
                t(s.payment.as_ref().map(|p| p.ts)),
                t(s.payment_due(r)),
                s.payment_timeout,
                s.payment_late(r),
                s.stuck_state().map(|i| STATES[i]),
                ts(s.updated_at),
                t(s.next_check(r)),
                fold,
            ])
            .map_err(err("INSERT INTO order_lifecycle"))?;
        }
    }
    write_alerts(conn, path, &changes.alerts, &changes.resolutions, routes)?;
    if let Some(now) = batch.time {
        write_clock(conn, path, group, "orders", now)?;
    }
    Ok((changes.rows.len() as u64, changes.alerts.len() as u64))
}

/// Inserts `alerts` (each once: its id is deterministic) with the deliveries `routes` give the
/// new ones (the outbox, ADR 0026), and sets `resolved_at` of those `resolutions` end.
pub(super) fn write_alerts(
    conn: &Connection,
    path: &str,
    alerts: &[Alert],
    resolutions: &[Resolution],
    routes: &crate::outbox::Routes,
) -> Result<()> {
    let err = |what: &'static str| move |e: rusqlite::Error| sqlite_error(path, what, &e);
    if !alerts.is_empty() {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO alerts (alert_id, kind, severity, subject, at, message) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (alert_id) DO NOTHING",
            )
            .map_err(err("prepare INSERT INTO alerts"))?;
        let mut new = Vec::new();
        for a in alerts {
            let inserted = stmt
                .execute(params![
                    a.alert_id.hyphenated().to_string(),
                    a.kind,
                    a.severity,
                    a.subject,
                    ts(a.at),
                    a.message
                ])
                .map_err(err("INSERT INTO alerts"))?;
            if inserted == 1 {
                new.push(a);
            }
        }
        super::outbox::plan(conn, path, routes, &new)?;
    }
    if !resolutions.is_empty() {
        let mut stmt = conn
            .prepare_cached("UPDATE alerts SET resolved_at = ?2 WHERE alert_id = ?1 AND resolved_at IS NULL")
            .map_err(err("prepare UPDATE alerts"))?;
        for res in resolutions {
            stmt.execute(params![res.alert_id.hyphenated().to_string(), ts(res.at)])
                .map_err(err("UPDATE alerts SET resolved_at"))?;
        }
    }
    Ok(())
}

/// Records the time `pipeline` of `group` ran at (never moving it back).
pub(super) fn write_clock(
    conn: &Connection,
    path: &str,
    group: &str,
    pipeline: &str,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO pipeline_clock (group_id, pipeline, time) VALUES (?1, ?2, ?3) \
         ON CONFLICT (group_id, pipeline) DO UPDATE SET time = max(pipeline_clock.time, excluded.time), \
         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    )
    .map_err(|e| sqlite_error(path, "prepare INSERT INTO pipeline_clock", &e))?
    .execute(params![group, pipeline, ts(now)])
    .map_err(|e| sqlite_error(path, "INSERT INTO pipeline_clock", &e))?;
    Ok(())
}
