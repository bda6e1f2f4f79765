//! Fraud rules in SQLite, inside the batch's transaction: read the rows of the (rule, key)
//! pairs the batch's payments touch and of those with payments due, run the rules
//! ([`FraudBatch::run`]), write rows, `fraud_alerts`, `alerts` and the pipeline time.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::error::sqlite_error;
use super::orders::{ts, write_alerts, write_clock};
use crate::derived::fraud::{FraudBatch, FraudState};
use crate::derived::orders::Alert;
use crate::{Error, Result};

/// What the pipeline wrote: (rows, alerts raised).
pub(super) fn write(
    conn: &Connection,
    path: &str,
    group: &str,
    batch: &FraudBatch,
    routes: &crate::outbox::Routes,
    is_new: impl Fn(&Uuid) -> bool,
) -> Result<(u64, u64)> {
    let err = |what: &'static str| move |e: rusqlite::Error| sqlite_error(path, what, &e);
    let touched = batch.touched(&is_new);
    if touched.is_empty() && batch.time.is_none() {
        return Ok((0, 0));
    }
    let parse = |text: String| -> Result<FraudState> {
        serde_json::from_str(&text).map_err(|e| Error::Sqlite {
            path: path.to_owned(),
            message: format!("fraud_state.fold does not read back ({e}): {text}"),
            retryable: false,
        })
    };
    let mut loaded: BTreeMap<(String, String), FraudState> = BTreeMap::new();
    if let Some(now) = batch.time {
        let mut stmt = conn
            .prepare_cached("SELECT fold FROM fraud_state WHERE next_check_at <= ?1")
            .map_err(err("prepare SELECT FROM fraud_state (due)"))?;
        let texts = stmt
            .query_map([ts(now)], |r| r.get::<_, String>(0))
            .map_err(err("SELECT FROM fraud_state (due)"))?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(err("SELECT FROM fraud_state (due)"))?;
        for text in texts {
            let s = parse(text)?;
            loaded.insert((s.rule.clone(), s.key.clone()), s);
        }
    }
    {
        let mut stmt = conn
            .prepare_cached("SELECT fold FROM fraud_state WHERE rule = ?1 AND key = ?2")
            .map_err(err("prepare SELECT FROM fraud_state"))?;
        for key in touched {
            if loaded.contains_key(&key) {
                continue;
            }
            let text: Option<String> = stmt
                .query_row(params![key.0, key.1], |r| r.get(0))
                .optional()
                .map_err(err("SELECT FROM fraud_state"))?;
            if let Some(text) = text {
                loaded.insert(key, parse(text)?);
            }
        }
    }
    let changes = batch.run(loaded.into_values().collect(), &is_new);
    {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO fraud_state (rule, key, next_check_at, fold) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (rule, key) DO UPDATE SET next_check_at = excluded.next_check_at, fold = excluded.fold, \
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            )
            .map_err(err("prepare INSERT INTO fraud_state"))?;
        for s in &changes.rows {
            stmt.execute(params![
                s.rule,
                s.key,
                s.next_check().map(ts),
                serde_json::to_string(s).unwrap_or_default()
            ])
            .map_err(err("INSERT INTO fraud_state"))?;
        }
    }
    if !changes.alerts.is_empty() {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO fraud_alerts (alert_id, rule, key, at, severity, payment_ids, message) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (alert_id) DO NOTHING",
            )
            .map_err(err("prepare INSERT INTO fraud_alerts"))?;
        for a in &changes.alerts {
            stmt.execute(params![
                a.alert.alert_id.hyphenated().to_string(),
                a.rule,
                a.key,
                ts(a.alert.at),
                a.alert.severity,
                serde_json::to_string(&a.payment_ids).unwrap_or_default(),
                a.alert.message
            ])
            .map_err(err("INSERT INTO fraud_alerts"))?;
        }
        let alerts: Vec<Alert> = changes.alerts.iter().map(|x| x.alert.clone()).collect();
        write_alerts(conn, path, &alerts, &[], routes)?;
    }
    if let Some(now) = batch.time {
        write_clock(conn, path, group, "fraud", now)?;
    }
    Ok((changes.rows.len() as u64, changes.alerts.len() as u64))
}
