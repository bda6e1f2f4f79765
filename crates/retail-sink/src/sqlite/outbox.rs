//! The notification outbox in SQLite (ADR 0026): deliveries planned inside the landing's
//! transaction for the alerts it inserted, and the dispatchers' claim and finish. SQLite has one
//! writer at a time, so a claim (one `UPDATE ... RETURNING` in its own transaction) needs no
//! `SKIP LOCKED`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::error::sqlite_error;
use super::orders::ts;
use crate::derived::orders::Alert;
use crate::outbox::{self, state, Attempt, Delivery, LastSent, Routes};
use crate::{Error, Result};

/// Writes the deliveries of `new` alerts (those this transaction inserted) over `routes`.
pub(super) fn plan(conn: &Connection, path: &str, routes: &Routes, new: &[&Alert]) -> Result<()> {
    if routes.is_empty() || new.is_empty() {
        return Ok(());
    }
    let err = |what: &'static str| move |e: rusqlite::Error| sqlite_error(path, what, &e);
    let (channels, keys) = outbox::keys(routes, new);
    let mut last = LastSent::new();
    {
        let mut stmt = conn
            .prepare_cached(
                "SELECT alert_at, delivery_id FROM notification_deliveries \
                 WHERE channel = ?1 AND dedup_key = ?2 AND state <> 'suppressed' \
                 ORDER BY alert_at DESC LIMIT 1",
            )
            .map_err(err("prepare SELECT the last delivery of a dedup key"))?;
        for (channel, key) in channels.into_iter().zip(keys) {
            let found: Option<(String, String)> = stmt
                .query_row(params![channel, key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(err("SELECT the last delivery of a dedup key"))?;
            if let Some((at, id)) = found {
                last.insert(
                    (channel, key),
                    (parse_time(path, &at)?.timestamp_millis(), parse_id(path, &id)?),
                );
            }
        }
    }
    let now = ts(Utc::now().timestamp_millis());
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO notification_deliveries \
             (delivery_id, alert_id, channel, dedup_key, alert_at, state, duplicate_of, next_attempt_at, finished_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (delivery_id) DO NOTHING",
        )
        .map_err(err("prepare INSERT INTO notification_deliveries"))?;
    for p in outbox::plan(routes, new, last) {
        let (st, next, finished) = match p.duplicate_of {
            Some(_) => (state::SUPPRESSED, None, Some(now.as_str())),
            None => (state::PENDING, Some(now.as_str()), None),
        };
        insert
            .execute(params![
                p.delivery_id.hyphenated().to_string(),
                p.alert_id.hyphenated().to_string(),
                p.channel,
                p.dedup_key,
                ts(p.alert_at),
                st,
                p.duplicate_of.map(|d| d.hyphenated().to_string()),
                next,
                finished,
            ])
            .map_err(err("INSERT INTO notification_deliveries"))?;
    }
    Ok(())
}

/// Claims up to `limit` due deliveries of `channel`: counts the attempt and moves
/// `next_attempt_at` a `lease` ahead, so a dispatcher that dies mid-send leaves them due again
/// once the lease ends.
pub(super) fn claim(
    conn: &mut Connection,
    path: &str,
    channel: &str,
    limit: usize,
    lease: Duration,
) -> Result<Vec<Delivery>> {
    let err = |what: &'static str| move |e: rusqlite::Error| sqlite_error(path, what, &e);
    let now = Utc::now();
    let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let tx = conn.transaction().map_err(err("BEGIN (claim deliveries)"))?;
    let mut out = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached(
                "UPDATE notification_deliveries SET attempts = attempts + 1, next_attempt_at = ?3 \
                 WHERE delivery_id IN (SELECT delivery_id FROM notification_deliveries \
                   WHERE channel = ?1 AND state = 'pending' AND next_attempt_at <= ?2 \
                   ORDER BY next_attempt_at, delivery_id LIMIT ?4) \
                 RETURNING delivery_id, attempts, alert_id",
            )
            .map_err(err("prepare claim due notification_deliveries"))?;
        let claimed: Vec<(String, i64, String)> = stmt
            .query_map(
                params![
                    channel,
                    ts(now.timestamp_millis()),
                    ts(until.timestamp_millis()),
                    limit
                ],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(err("claim due notification_deliveries"))?
            .collect::<rusqlite::Result<_>>()
            .map_err(err("claim due notification_deliveries"))?;
        let mut alert = tx
            .prepare_cached("SELECT kind, severity, subject, at, message FROM alerts WHERE alert_id = ?1")
            .map_err(err("prepare SELECT FROM alerts"))?;
        for (id, attempts, alert_id) in claimed {
            let (kind, severity, subject, at, message): (String, String, String, String, String) = alert
                .query_row([&alert_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .map_err(err("SELECT FROM alerts (a delivery's alert)"))?;
            out.push(Delivery {
                delivery_id: parse_id(path, &id)?,
                channel: channel.to_owned(),
                attempt: u32::try_from(attempts).unwrap_or(0),
                alert_id: parse_id(path, &alert_id)?,
                kind,
                severity,
                subject,
                at: parse_time(path, &at)?,
                message,
            });
        }
    }
    tx.commit().map_err(err("COMMIT (claim deliveries)"))?;
    out.sort_by_key(|d| (d.at, d.delivery_id));
    Ok(out)
}

/// Records how attempt `attempt` of `delivery_id` went. Only the claimer of that attempt may:
/// one whose lease ran out and whose row another claimed changes nothing (`false`).
pub(super) fn finish(
    conn: &Connection,
    path: &str,
    delivery_id: Uuid,
    attempt: u32,
    how: &Attempt,
) -> Result<bool> {
    let now = ts(Utc::now().timestamp_millis());
    let id = delivery_id.hyphenated().to_string();
    let updated = match how {
        Attempt::Sent => conn
            .execute(
                "UPDATE notification_deliveries SET state = 'sent', next_attempt_at = NULL, finished_at = ?3 \
                 WHERE delivery_id = ?1 AND attempts = ?2 AND state = 'pending'",
                params![id, attempt, now],
            )
            .map_err(|e| sqlite_error(path, "UPDATE notification_deliveries (sent)", &e))?,
        Attempt::Failed { error, retry_at } => {
            let (st, next, finished) = match retry_at {
                Some(at) => (state::PENDING, Some(ts(at.timestamp_millis())), None),
                None => (state::DEAD, None, Some(now)),
            };
            conn.execute(
                "UPDATE notification_deliveries SET state = ?3, last_error = ?4, next_attempt_at = ?5, finished_at = ?6 \
                 WHERE delivery_id = ?1 AND attempts = ?2 AND state = 'pending'",
                params![id, attempt, st, error, next, finished],
            )
            .map_err(|e| sqlite_error(path, "UPDATE notification_deliveries (failed)", &e))?
        }
    };
    Ok(updated == 1)
}

/// When the next pending delivery of `channel` is due, if one is pending.
pub(super) fn next_due(conn: &Connection, path: &str, channel: &str) -> Result<Option<DateTime<Utc>>> {
    let due: Option<String> = conn
        .query_row(
            "SELECT min(next_attempt_at) FROM notification_deliveries WHERE channel = ?1 AND state = 'pending'",
            [channel],
            |r| r.get(0),
        )
        .map_err(|e| sqlite_error(path, "SELECT the next due notification delivery", &e))?;
    due.map(|t| parse_time(path, &t)).transpose()
}

fn parse_id(path: &str, text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|e| Error::Sqlite {
        path: path.to_owned(),
        message: format!("notification_deliveries holds {text:?}, not a UUID ({e})"),
        retryable: false,
    })
}

fn parse_time(path: &str, text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Sqlite {
            path: path.to_owned(),
            message: format!("notification_deliveries holds {text:?}, not an RFC 3339 time ({e})"),
            retryable: false,
        })
}
