//! The order-lifecycle and alert queries of [`PostgresReader`]: `order_lifecycle`, an order's
//! events in `events_raw`, `alerts` and `pipeline_clock`. Filters are bound as nullable
//! parameters (`$n IS NULL OR ...`), so each query is one prepared statement whatever is set.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use tokio_postgres::Row;

use super::{limit_plus_one, PostgresReader};
use crate::read::orders::{
    sort_by_state, AlertFilter, AlertRow, FraudAlertFilter, FraudAlertRow, OrderDetail, OrderEvent,
    OrderFilter, OrderRow, RiskFilter, RiskRow, StateCount, RISK_ORDER,
};
use crate::read::{decimal_to_f64, Page, PageRequest};
use crate::Result;

const ORDER_COLUMNS: &str = "order_id, state, state_since, customer_id, store_id, amount, currency, \
     created_at, paid_at, packed_at, shipped_at, delivered_at, cancelled_at, payment_id, payment_status, \
     payment_amount, payment_at, payment_due_at, payment_timeout, payment_late, stuck_state, last_event_at";

fn order_row(r: &Row) -> OrderRow {
    let money = |i: usize| r.get::<_, Option<Decimal>>(i).map(decimal_to_f64);
    OrderRow {
        order_id: r.get(0),
        state: r.get(1),
        state_since: r.get(2),
        customer_id: r.get(3),
        store_id: r.get(4),
        amount: money(5),
        currency: r.get(6),
        milestones: [r.get(7), r.get(8), r.get(9), r.get(10), r.get(11), r.get(12)],
        payment_id: r.get(13),
        payment_status: r.get(14),
        payment_amount: money(15),
        payment_at: r.get(16),
        payment_due_at: r.get(17),
        payment_timeout: r.get(18),
        payment_late: r.get(19),
        stuck_state: r.get(20),
        last_event_at: r.get(21),
    }
}

impl PostgresReader {
    pub(super) async fn order_list(&self, f: &OrderFilter, page: PageRequest) -> Result<Page<OrderRow>> {
        let (limit, offset) = limit_plus_one(page);
        // Ties by order id in byte order ("C"), as SQLite sorts text, so both stores page alike.
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM order_lifecycle \
             WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR customer_id = $2) \
               AND ($3::bigint IS NULL OR store_id = $3) \
               AND ($4::bool IS NULL OR (stuck_state IS NOT NULL) = $4) \
               AND ($5::bool IS NULL OR payment_timeout = $5) \
               AND ($6::timestamptz IS NULL OR created_at >= $6) \
               AND ($7::timestamptz IS NULL OR created_at < $7) \
             ORDER BY created_at DESC NULLS LAST, order_id COLLATE \"C\" LIMIT $8 OFFSET $9"
        );
        let rows = self
            .query(
                "SELECT FROM order_lifecycle",
                &sql,
                &[
                    &f.state,
                    &f.customer_id,
                    &f.store_id,
                    &f.stuck,
                    &f.payment_timeout,
                    &f.from,
                    &f.to,
                    &limit,
                    &offset,
                ],
            )
            .await?;
        Ok(Page::from_rows(rows.iter().map(order_row).collect(), page))
    }

    pub(super) async fn order_detail(&self, order_id: &str) -> Result<Option<OrderDetail>> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM order_lifecycle WHERE order_id = $1");
        let rows = self
            .query("SELECT FROM order_lifecycle", &sql, &[&order_id])
            .await?;
        let Some(order) = rows.first().map(order_row) else {
            return Ok(None);
        };
        let events = self
            .query(
                "SELECT FROM events_raw (order history)",
                "SELECT event_id::text, event_type, ts, source, payload::text, ingested_at FROM events_raw \
                 WHERE partition_key = $1 AND event_type IN ('order', 'payment') ORDER BY ts, event_id",
                &[&order_id],
            )
            .await?;
        let events = events
            .iter()
            .map(|r| OrderEvent {
                event_id: r.get(0),
                event_type: r.get(1),
                ts: r.get(2),
                source: r.get(3),
                payload: r.get(4),
                ingested_at: r.get(5),
            })
            .collect();
        Ok(Some(OrderDetail { order, events }))
    }

    pub(super) async fn state_counts(&self) -> Result<Vec<StateCount>> {
        let rows = self
            .query(
                "SELECT count(*) FROM order_lifecycle GROUP BY state",
                "SELECT state, count(*)::bigint, count(stuck_state)::bigint FROM order_lifecycle GROUP BY state",
                &[],
            )
            .await?;
        let mut counts: Vec<StateCount> = rows
            .iter()
            .map(|r| StateCount {
                state: r.get(0),
                orders: r.get(1),
                stuck: r.get(2),
            })
            .collect();
        sort_by_state(&mut counts);
        Ok(counts)
    }

    pub(super) async fn alert_list(&self, f: &AlertFilter, page: PageRequest) -> Result<Page<AlertRow>> {
        let (limit, offset) = limit_plus_one(page);
        let rows = self
            .query(
                "SELECT FROM alerts",
                "SELECT alert_id::text, kind, severity, subject, at, message, resolved_at, raised_at FROM alerts \
                 WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR severity = $2) \
                   AND ($3::text IS NULL OR subject = $3) \
                   AND ($4::bool IS NULL OR (resolved_at IS NULL) = $4) \
                   AND ($5::timestamptz IS NULL OR at >= $5) AND ($6::timestamptz IS NULL OR at < $6) \
                 ORDER BY at DESC, alert_id LIMIT $7 OFFSET $8",
                &[
                    &f.kind,
                    &f.severity,
                    &f.subject,
                    &f.open,
                    &f.from,
                    &f.to,
                    &limit,
                    &offset,
                ],
            )
            .await?;
        let rows = rows
            .iter()
            .map(|r| AlertRow {
                alert_id: r.get(0),
                kind: r.get(1),
                severity: r.get(2),
                subject: r.get(3),
                at: r.get(4),
                message: r.get(5),
                resolved_at: r.get(6),
                raised_at: r.get(7),
            })
            .collect();
        Ok(Page::from_rows(rows, page))
    }

    pub(super) async fn risk_list(&self, f: &RiskFilter, page: PageRequest) -> Result<Page<RiskRow>> {
        let (limit, offset) = limit_plus_one(page);
        let sql = format!(
            "SELECT store_id, sku, snapshot_at, snapshot_on_hand, units_sold_after, projected_on_hand, units_7d, \
               velocity_per_day, days_of_cover, reorder_point, lead_time_days, risk_level, first_flagged_at, as_of \
             FROM inventory_risks \
             WHERE ($1::text IS NULL OR risk_level = $1) AND ($2::bigint IS NULL OR store_id = $2) \
               AND ($3::bool IS NULL OR (risk_level <> 'ok') = $3) \
             ORDER BY {RISK_ORDER} LIMIT $4 OFFSET $5"
        );
        let rows = self
            .query(
                "SELECT FROM inventory_risks",
                &sql,
                &[&f.risk_level, &f.store_id, &f.at_risk, &limit, &offset],
            )
            .await?;
        let rows = rows
            .iter()
            .map(|r| RiskRow {
                store_id: r.get(0),
                sku: r.get(1),
                snapshot_at: r.get(2),
                snapshot_on_hand: r.get(3),
                units_sold_after: r.get(4),
                projected_on_hand: r.get(5),
                units_7d: r.get(6),
                velocity_per_day: r.get(7),
                days_of_cover: r.get(8),
                reorder_point: r.get(9),
                lead_time_days: r.get(10),
                risk_level: r.get(11),
                first_flagged_at: r.get(12),
                as_of: r.get(13),
            })
            .collect();
        Ok(Page::from_rows(rows, page))
    }

    pub(super) async fn fraud_list(
        &self,
        f: &FraudAlertFilter,
        page: PageRequest,
    ) -> Result<Page<FraudAlertRow>> {
        let (limit, offset) = limit_plus_one(page);
        let rows = self
            .query(
                "SELECT FROM fraud_alerts",
                "SELECT alert_id::text, rule, key, at, severity, payment_ids::text, message, raised_at FROM fraud_alerts \
                 WHERE ($1::text IS NULL OR rule = $1) AND ($2::text IS NULL OR key = $2) \
                   AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4) \
                 ORDER BY at DESC, alert_id LIMIT $5 OFFSET $6",
                &[&f.rule, &f.key, &f.from, &f.to, &limit, &offset],
            )
            .await?;
        let rows = rows
            .iter()
            .map(|r| FraudAlertRow {
                alert_id: r.get(0),
                rule: r.get(1),
                key: r.get(2),
                at: r.get(3),
                severity: r.get(4),
                payment_ids: r.get(5),
                message: r.get(6),
                raised_at: r.get(7),
            })
            .collect();
        Ok(Page::from_rows(rows, page))
    }

    pub(super) async fn clock(&self, group: &str, pipeline: &str) -> Result<Option<DateTime<Utc>>> {
        let rows = self
            .query(
                "SELECT FROM pipeline_clock",
                "SELECT time FROM pipeline_clock WHERE group_id = $1 AND pipeline = $2",
                &[&group, &pipeline],
            )
            .await?;
        Ok(rows.first().map(|r| r.get(0)))
    }
}
