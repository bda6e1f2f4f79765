//! Fraud rules in PostgreSQL, inside the batch's transaction: read the rows of the (rule, key)
//! pairs the batch's payments touch and of those with payments due (`FOR UPDATE`), run the
//! rules ([`FraudBatch::run`]), write rows, `fraud_alerts`, `alerts` and the pipeline time.

use chrono::{DateTime, Utc};
use tokio_postgres::Client;
use uuid::Uuid;

use super::error::pg_error;
use super::orders::{write_alerts, write_clock};
use crate::derived::fraud::{FraudBatch, FraudState};
use crate::derived::ms_to_time;
use crate::derived::orders::Alert;
use crate::{Error, Result};

/// Key of the advisory lock serialising batches that may create fraud rows.
const FRAUD_ROWS_LOCK: i64 = 0x7265_7461_696c_0006; // "retail" + 6

/// What the pipeline wrote: (rows, alerts raised).
pub(super) async fn write(
    client: &Client,
    group: &str,
    batch: &FraudBatch,
    routes: &crate::outbox::Routes,
    is_new: impl Fn(&Uuid) -> bool,
) -> Result<(u64, u64)> {
    let touched = batch.touched(&is_new);
    if touched.is_empty() && batch.time.is_none() {
        return Ok((0, 0));
    }
    if !touched.is_empty() {
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&FRAUD_ROWS_LOCK])
            .await
            .map_err(|e| pg_error("pg_advisory_xact_lock (fraud rows)", &e))?;
    }
    let rules: Vec<&str> = touched.iter().map(|k| k.0.as_str()).collect();
    let keys: Vec<&str> = touched.iter().map(|k| k.1.as_str()).collect();
    let now: Option<DateTime<Utc>> = batch.time.map(ms_to_time);
    // Two statements, each on its index (an OR of the two would scan the table every batch).
    let mut rows = client
        .query(
            "SELECT fold::text FROM fraud_state \
             WHERE (rule, key) IN (SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY rule, key FOR UPDATE",
            &[&rules, &keys],
        )
        .await
        .map_err(|e| pg_error("SELECT FROM fraud_state FOR UPDATE", &e))?;
    rows.extend(
        client
            .query(
                "SELECT fold::text FROM fraud_state WHERE next_check_at <= $1 \
                 AND (rule, key) NOT IN (SELECT * FROM unnest($2::text[], $3::text[])) \
                 ORDER BY rule, key FOR UPDATE",
                &[&now, &rules, &keys],
            )
            .await
            .map_err(|e| pg_error("SELECT FROM fraud_state (due) FOR UPDATE", &e))?,
    );
    let mut loaded = Vec::with_capacity(rows.len());
    for row in rows {
        let text: String = row.get(0);
        loaded.push(
            serde_json::from_str::<FraudState>(&text).map_err(|e| Error::Postgres {
                message: format!("fraud_state.fold does not read back ({e}): {text}"),
                retryable: false,
            })?,
        );
    }
    let changes = batch.run(loaded, &is_new);
    if !changes.rows.is_empty() {
        let rules: Vec<&str> = changes.rows.iter().map(|s| s.rule.as_str()).collect();
        let keys: Vec<&str> = changes.rows.iter().map(|s| s.key.as_str()).collect();
        let next: Vec<Option<DateTime<Utc>>> = changes
            .rows
            .iter()
            .map(|s| s.next_check().map(ms_to_time))
            .collect();
        let folds: Vec<String> = changes
            .rows
            .iter()
            .map(|s| serde_json::to_string(s).unwrap_or_default())
            .collect();
        client
            .execute(
                "INSERT INTO fraud_state (rule, key, next_check_at, fold) \
                 SELECT r, k, n, f::jsonb FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[]) AS u(r, k, n, f) \
                 ON CONFLICT (rule, key) DO UPDATE SET next_check_at = excluded.next_check_at, fold = excluded.fold, \
                 updated_at = now()",
                &[&rules, &keys, &next, &folds],
            )
            .await
            .map_err(|e| pg_error("INSERT INTO fraud_state ON CONFLICT DO UPDATE", &e))?;
    }
    if !changes.alerts.is_empty() {
        let a = &changes.alerts;
        let ids: Vec<Uuid> = a.iter().map(|x| x.alert.alert_id).collect();
        let rules: Vec<&str> = a.iter().map(|x| x.rule.as_str()).collect();
        let keys: Vec<&str> = a.iter().map(|x| x.key.as_str()).collect();
        let ats: Vec<DateTime<Utc>> = a.iter().map(|x| ms_to_time(x.alert.at)).collect();
        let severities: Vec<&str> = a.iter().map(|x| x.alert.severity).collect();
        let payments: Vec<String> = a
            .iter()
            .map(|x| serde_json::to_string(&x.payment_ids).unwrap_or_default())
            .collect();
        let messages: Vec<&str> = a.iter().map(|x| x.alert.message.as_str()).collect();
        client
            .execute(
                "INSERT INTO fraud_alerts (alert_id, rule, key, at, severity, payment_ids, message) \
                 SELECT i, r, k, t, s, p::jsonb, m FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], \
                   $5::text[], $6::text[], $7::text[]) AS u(i, r, k, t, s, p, m) \
                 ON CONFLICT (alert_id) DO NOTHING",
                &[&ids, &rules, &keys, &ats, &severities, &payments, &messages],
            )
            .await
            .map_err(|e| pg_error("INSERT INTO fraud_alerts", &e))?;
        let alerts: Vec<Alert> = a.iter().map(|x| x.alert.clone()).collect();
        write_alerts(client, &alerts, &[], routes).await?;
    }
    if let Some(now) = now {
        write_clock(client, group, "fraud", now).await?;
    }
    Ok((changes.rows.len() as u64, changes.alerts.len() as u64))
}
