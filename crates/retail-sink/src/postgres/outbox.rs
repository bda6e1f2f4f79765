//! The notification outbox in PostgreSQL (ADR 0026): deliveries planned inside the landing's
//! transaction for the alerts it inserted, and the dispatchers' claim and finish.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;
use uuid::Uuid;

use super::error::pg_error;
use crate::derived::ms_to_time;
use crate::derived::orders::Alert;
use crate::outbox::{self, state, Attempt, Delivery, LastSent, Routes};
use crate::Result;

/// Writes the deliveries of `new` alerts (those this transaction inserted) over `routes`.
pub(super) async fn plan(client: &Client, routes: &Routes, new: &[&Alert]) -> Result<()> {
    if routes.is_empty() || new.is_empty() {
        return Ok(());
    }
    let (channels, keys) = outbox::keys(routes, new);
    let mut last = LastSent::new();
    if !channels.is_empty() {
        let rows = client
            .query(
                "SELECT DISTINCT ON (d.channel, d.dedup_key) d.channel, d.dedup_key, d.alert_at, d.delivery_id \
                 FROM unnest($1::text[], $2::text[]) AS k(channel, dedup_key) \
                 JOIN notification_deliveries d ON d.channel = k.channel AND d.dedup_key = k.dedup_key \
                 WHERE d.state <> 'suppressed' ORDER BY d.channel, d.dedup_key, d.alert_at DESC",
                &[&channels, &keys],
            )
            .await
            .map_err(|e| pg_error("SELECT the last deliveries of the dedup keys", &e))?;
        for row in rows {
            let at: DateTime<Utc> = row.get(2);
            last.insert((row.get(0), row.get(1)), (at.timestamp_millis(), row.get(3)));
        }
    }
    let planned = outbox::plan(routes, new, last);
    let ids: Vec<Uuid> = planned.iter().map(|p| p.delivery_id).collect();
    let alerts: Vec<Uuid> = planned.iter().map(|p| p.alert_id).collect();
    let channels: Vec<&str> = planned.iter().map(|p| p.channel.as_str()).collect();
    let keys: Vec<&str> = planned.iter().map(|p| p.dedup_key.as_str()).collect();
    let ats: Vec<DateTime<Utc>> = planned.iter().map(|p| ms_to_time(p.alert_at)).collect();
    let states: Vec<&str> = planned
        .iter()
        .map(|p| {
            if p.duplicate_of.is_some() {
                state::SUPPRESSED
            } else {
                state::PENDING
            }
        })
        .collect();
    let duplicates: Vec<Option<Uuid>> = planned.iter().map(|p| p.duplicate_of).collect();
    client
        .execute(
            "INSERT INTO notification_deliveries \
             (delivery_id, alert_id, channel, dedup_key, alert_at, state, duplicate_of, next_attempt_at, finished_at) \
             SELECT id, alert, channel, key, at, st, dup, \
                    CASE WHEN st = 'pending' THEN now() END, CASE WHEN st = 'pending' THEN NULL ELSE now() END \
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::uuid[]) \
                  AS u(id, alert, channel, key, at, st, dup) \
             ON CONFLICT (delivery_id) DO NOTHING",
            &[&ids, &alerts, &channels, &keys, &ats, &states, &duplicates],
        )
        .await
        .map_err(|e| pg_error("INSERT INTO notification_deliveries", &e))?;
    Ok(())
}

/// Claims up to `limit` due deliveries of `channel`: counts the attempt and moves
/// `next_attempt_at` a `lease` ahead, so a dispatcher that dies mid-send leaves them due again
/// once the lease ends. `SKIP LOCKED`: two dispatchers of the channel never claim the same row.
pub(super) async fn claim(
    client: &Client,
    channel: &str,
    limit: usize,
    lease: Duration,
) -> Result<Vec<Delivery>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let lease_ms = f64::from(u32::try_from(lease.as_millis()).unwrap_or(u32::MAX));
    let rows = client
        .query(
            "WITH due AS ( \
               SELECT delivery_id FROM notification_deliveries \
               WHERE channel = $1 AND state = 'pending' AND next_attempt_at <= now() \
               ORDER BY next_attempt_at, delivery_id LIMIT $2 FOR UPDATE SKIP LOCKED) \
             UPDATE notification_deliveries d \
             SET attempts = d.attempts + 1, next_attempt_at = now() + $3::float8 * interval '1 millisecond' \
             FROM due, alerts a \
             WHERE d.delivery_id = due.delivery_id AND a.alert_id = d.alert_id \
             RETURNING d.delivery_id, d.channel, d.attempts, a.alert_id, a.kind, a.severity, a.subject, a.at, a.message",
            &[&channel, &limit, &lease_ms],
        )
        .await
        .map_err(|e| pg_error("claim due notification_deliveries", &e))?;
    let mut out: Vec<Delivery> = rows
        .iter()
        .map(|r| Delivery {
            delivery_id: r.get(0),
            channel: r.get(1),
            attempt: u32::try_from(r.get::<_, i32>(2)).unwrap_or(0),
            alert_id: r.get(3),
            kind: r.get(4),
            severity: r.get(5),
            subject: r.get(6),
            at: r.get(7),
            message: r.get(8),
        })
        .collect();
    out.sort_by_key(|d| (d.at, d.delivery_id));
    Ok(out)
}

/// Records how attempt `attempt` of `delivery_id` went. Only the claimer of that attempt may:
/// a dispatcher whose lease ran out and whose row another claimed changes nothing (`false`).
pub(super) async fn finish(client: &Client, delivery_id: Uuid, attempt: u32, how: &Attempt) -> Result<bool> {
    let attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
    let updated = match how {
        Attempt::Sent => client
            .execute(
                "UPDATE notification_deliveries SET state = 'sent', next_attempt_at = NULL, finished_at = now() \
                 WHERE delivery_id = $1 AND attempts = $2 AND state = 'pending'",
                &[&delivery_id, &attempt],
            )
            .await
            .map_err(|e| pg_error("UPDATE notification_deliveries (sent)", &e))?,
        Attempt::Failed { error, retry_at } => client
            .execute(
                "UPDATE notification_deliveries SET last_error = $3, next_attempt_at = $4, \
                 state = CASE WHEN $4::timestamptz IS NULL THEN 'dead' ELSE 'pending' END, \
                 finished_at = CASE WHEN $4::timestamptz IS NULL THEN now() END \
                 WHERE delivery_id = $1 AND attempts = $2 AND state = 'pending'",
                &[&delivery_id, &attempt, error, retry_at],
            )
            .await
            .map_err(|e| pg_error("UPDATE notification_deliveries (failed)", &e))?,
    };
    Ok(updated == 1)
}
