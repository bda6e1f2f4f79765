//! The order-lifecycle pipeline in PostgreSQL, inside the batch's transaction: read the rows of
//! the orders the batch touches and of those with a verdict due, run the pipeline
//! ([`OrderBatch::run`]), write the rows, the alerts and the pipeline time back. One statement
//! per step whatever the batch size (arrays bound and `unnest`ed).
//!
//! Concurrency: instances of one consumer group may hold an order's `orders` partition and its
//! `payments` partition separately. Rows read here are locked (`FOR UPDATE`), and a batch that
//! may insert rows takes a transaction-scoped advisory lock first, so two instances never both
//! create the same order's row from what each alone has seen.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use tokio_postgres::Client;
use uuid::Uuid;

use super::error::pg_error;
use super::outbox;
use crate::derived::ms_to_time;
use crate::derived::orders::{Alert, OrderBatch, OrderState, Resolution, STATES};
use crate::outbox::Routes;
use crate::{Error, Result};

/// Key of the advisory lock serialising batches that may create order rows.
const ORDER_ROWS_LOCK: i64 = 0x7265_7461_696c_0004; // "retail" + 4

/// What the pipeline wrote: (order rows, alerts raised).
pub(super) async fn write(
    client: &Client,
    group: &str,
    batch: &OrderBatch,
    routes: &Routes,
    is_new: impl Fn(&Uuid) -> bool,
) -> Result<(u64, u64)> {
    let touched = batch.touched(&is_new);
    if touched.is_empty() && batch.time.is_none() {
        return Ok((0, 0));
    }
    if !touched.is_empty() {
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&ORDER_ROWS_LOCK])
            .await
            .map_err(|e| pg_error("pg_advisory_xact_lock (order rows)", &e))?;
    }
    let now: Option<DateTime<Utc>> = batch.time.map(ms_to_time);
    // Two statements, each on its index (an OR of the two would scan the table every batch).
    let mut rows = client
        .query(
            "SELECT fold::text FROM order_lifecycle WHERE order_id = ANY($1) ORDER BY order_id FOR UPDATE",
            &[&touched],
        )
        .await
        .map_err(|e| pg_error("SELECT FROM order_lifecycle FOR UPDATE", &e))?;
    rows.extend(
        client
            .query(
                "SELECT fold::text FROM order_lifecycle WHERE next_check_at <= $1 AND order_id <> ALL($2) \
                 ORDER BY order_id FOR UPDATE",
                &[&now, &touched],
            )
            .await
            .map_err(|e| pg_error("SELECT FROM order_lifecycle (due) FOR UPDATE", &e))?,
    );
    let mut loaded = Vec::with_capacity(rows.len());
    for row in rows {
        let text: String = row.get(0);
        let state: OrderState = serde_json::from_str(&text).map_err(|e| Error::Postgres {
            message: format!("order_lifecycle.fold does not read back ({e}): {text}"),
            retryable: false,
        })?;
        loaded.push(state);
    }
    let changes = batch.run(loaded, &is_new);
    upsert_rows(client, batch, &changes.rows).await?;
    write_alerts(client, &changes.alerts, &changes.resolutions, routes).await?;
    if let Some(now) = now {
        write_clock(client, group, "orders", now).await?;
    }
    Ok((changes.rows.len() as u64, changes.alerts.len() as u64))
}

/// Inserts `alerts` (each once: its id is deterministic) with the deliveries `routes` give the
/// new ones (the outbox, ADR 0026), and sets `resolved_at` of those `resolutions` end.
pub(super) async fn write_alerts(
    client: &Client,
    alerts: &[Alert],
    resolutions: &[Resolution],
    routes: &Routes,
) -> Result<()> {
    if !alerts.is_empty() {
        let ids: Vec<Uuid> = alerts.iter().map(|a| a.alert_id).collect();
        let kinds: Vec<&str> = alerts.iter().map(|a| a.kind).collect();
        let severities: Vec<&str> = alerts.iter().map(|a| a.severity).collect();
        let subjects: Vec<&str> = alerts.iter().map(|a| a.subject.as_str()).collect();
        let ats: Vec<DateTime<Utc>> = alerts.iter().map(|a| ms_to_time(a.at)).collect();
        let messages: Vec<&str> = alerts.iter().map(|a| a.message.as_str()).collect();
        let inserted = client
            .query(
                "INSERT INTO alerts (alert_id, kind, severity, subject, at, message) \
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[]) \
                 ON CONFLICT (alert_id) DO NOTHING RETURNING alert_id",
                &[&ids, &kinds, &severities, &subjects, &ats, &messages],
            )
            .await
            .map_err(|e| pg_error("INSERT INTO alerts", &e))?;
        if !routes.is_empty() {
            let new: std::collections::HashSet<Uuid> = inserted.iter().map(|r| r.get(0)).collect();
            let new: Vec<&Alert> = alerts.iter().filter(|a| new.contains(&a.alert_id)).collect();
            outbox::plan(client, routes, &new).await?;
        }
    }
    if !resolutions.is_empty() {
        let ids: Vec<Uuid> = resolutions.iter().map(|r| r.alert_id).collect();
        let ats: Vec<DateTime<Utc>> = resolutions.iter().map(|r| ms_to_time(r.at)).collect();
        client
            .execute(
                "UPDATE alerts a SET resolved_at = u.at FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at) \
                 WHERE a.alert_id = u.id AND a.resolved_at IS NULL",
                &[&ids, &ats],
            )
            .await
            .map_err(|e| pg_error("UPDATE alerts SET resolved_at", &e))?;
    }
    Ok(())
}

/// Records the time `pipeline` of `group` ran at (never moving it back).
pub(super) async fn write_clock(
    client: &Client,
    group: &str,
    pipeline: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO pipeline_clock (group_id, pipeline, time) VALUES ($1, $2, $3) \
             ON CONFLICT (group_id, pipeline) DO UPDATE \
             SET time = GREATEST(pipeline_clock.time, excluded.time), updated_at = now()",
            &[&group, &pipeline, &now],
        )
        .await
        .map_err(|e| pg_error("INSERT INTO pipeline_clock", &e))?;
    Ok(())
}

/// Writes `rows` with their reader columns, one statement.
async fn upsert_rows(client: &Client, batch: &OrderBatch, rows: &[OrderState]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let r = &*batch.rules;
    let t = |ms: Option<i64>| ms.map(ms_to_time);
    let order_ids: Vec<&str> = rows.iter().map(|s| s.order_id.as_str()).collect();
    let states: Vec<Option<&str>> = rows.iter().map(|s| s.state().map(|i| STATES[i])).collect();
    let since: Vec<Option<DateTime<Utc>>> = rows.iter().map(|s| t(s.state_since())).collect();
    let customers: Vec<Option<&str>> = rows.iter().map(|s| s.customer_id.as_deref()).collect();
    let stores: Vec<Option<i64>> = rows.iter().map(|s| s.store_id).collect();
    let amounts: Vec<Option<Decimal>> = rows.iter().map(|s| s.amount).collect();
    let currencies: Vec<Option<&str>> = rows.iter().map(|s| s.currency.as_deref()).collect();
    let milestone =
        |i: usize| -> Vec<Option<DateTime<Utc>>> { rows.iter().map(|s| t(s.milestones[i])).collect() };
    let (created, paid, packed, shipped, delivered, cancelled) = (
        milestone(0),
        milestone(1),
        milestone(2),
        milestone(3),
        milestone(4),
        milestone(5),
    );
    let payment_ids: Vec<Option<&str>> = rows
        .iter()
        .map(|s| s.payment.as_ref().map(|p| p.payment_id.as_str()))
        .collect();
    let payment_status: Vec<Option<&str>> = rows.iter().map(OrderState::payment_status).collect();
    let payment_amounts: Vec<Option<Decimal>> = rows
        .iter()
        .map(|s| s.payment.as_ref().map(|p| p.amount))
        .collect();
    let payment_at: Vec<Option<DateTime<Utc>>> =
        rows.iter().map(|s| t(s.payment.as_ref().map(|p| p.ts))).collect();
    let due: Vec<Option<DateTime<Utc>>> = rows.iter().map(|s| t(s.payment_due(r))).collect();
    let timeout: Vec<bool> = rows.iter().map(|s| s.payment_timeout).collect();
    let late: Vec<bool> = rows.iter().map(|s| s.payment_late(r)).collect();
    let stuck: Vec<Option<&str>> = rows.iter().map(|s| s.stuck_state().map(|i| STATES[i])).collect();
    let last: Vec<DateTime<Utc>> = rows.iter().map(|s| ms_to_time(s.updated_at)).collect();
    let next: Vec<Option<DateTime<Utc>>> = rows.iter().map(|s| t(s.next_check(r))).collect();
    let folds: Vec<String> = rows
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    client
        .execute(
            "INSERT INTO order_lifecycle (order_id, state, state_since, customer_id, store_id, amount, currency, \
               created_at, paid_at, packed_at, shipped_at, delivered_at, cancelled_at, payment_id, payment_status, \
               payment_amount, payment_at, payment_due_at, payment_timeout, payment_late, stuck_state, last_event_at, \
               next_check_at, fold) \
             SELECT o, s, ss, cu, st, am, cur, c, p, pk, sh, d, ca, pid, ps, pa, pat, due, pto, pl, stk, lst, nxt, f::jsonb \
             FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::int8[], $6::numeric[], $7::text[], \
               $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[], \
               $13::timestamptz[], $14::text[], $15::text[], $16::numeric[], $17::timestamptz[], $18::timestamptz[], \
               $19::bool[], $20::bool[], $21::text[], $22::timestamptz[], $23::timestamptz[], $24::text[]) \
               AS u(o, s, ss, cu, st, am, cur, c, p, pk, sh, d, ca, pid, ps, pa, pat, due, pto, pl, stk, lst, nxt, f) \
             ON CONFLICT (order_id) DO UPDATE SET state = excluded.state, state_since = excluded.state_since, \
               customer_id = excluded.customer_id, store_id = excluded.store_id, amount = excluded.amount, \
               currency = excluded.currency, created_at = excluded.created_at, paid_at = excluded.paid_at, \
               packed_at = excluded.packed_at, shipped_at = excluded.shipped_at, delivered_at = excluded.delivered_at, \
               cancelled_at = excluded.cancelled_at, payment_id = excluded.payment_id, \
               payment_status = excluded.payment_status, payment_amount = excluded.payment_amount, \
               payment_at = excluded.payment_at, payment_due_at = excluded.payment_due_at, \
               payment_timeout = excluded.payment_timeout, payment_late = excluded.payment_late, \
               stuck_state = excluded.stuck_state, last_event_at = excluded.last_event_at, \
               next_check_at = excluded.next_check_at, fold = excluded.fold, updated_at = now()",
            &[
                &order_ids,
                &states,
                &since,
                &customers,
                &stores,
                &amounts,
                &currencies,
                &created,
                &paid,
                &packed,
                &shipped,
                &delivered,
                &cancelled,
                &payment_ids,
                &payment_status,
                &payment_amounts,
                &payment_at,
                &due,
                &timeout,
                &late,
                &stuck,
                &last,
                &next,
                &folds,
            ],
        )
        .await
        .map_err(|e| pg_error("INSERT INTO order_lifecycle ON CONFLICT DO UPDATE", &e))?;
    Ok(())
}
