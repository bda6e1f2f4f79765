//! The order-lifecycle and alert queries of [`SqliteReader`]: `order_lifecycle`, an order's
//! events in `events_raw`, `alerts` and `pipeline_clock`. Money is INTEGER cents and times are
//! fixed-width RFC 3339 text (ADR 0020), so time filters compare text and amounts become the
//! same `f64` PostgreSQL gives.

use chrono::{DateTime, Utc};
use rusqlite::Row;

use super::{money, opt_text, opt_ts, page_params, ts, ts_param, Param, SqliteReader};
use crate::read::orders::{
    sort_by_state, AlertFilter, AlertRow, FraudAlertFilter, FraudAlertRow, OrderDetail, OrderEvent,
    OrderFilter, OrderRow, RiskFilter, RiskRow, StateCount, RISK_ORDER,
};
use crate::read::{Page, PageRequest};
use crate::Result;

const ORDER_COLUMNS: &str = "order_id, state, state_since, customer_id, store_id, amount, currency, \
     created_at, paid_at, packed_at, shipped_at, delivered_at, cancelled_at, payment_id, payment_status, \
     payment_amount, payment_at, payment_due_at, payment_timeout, payment_late, stuck_state, last_event_at";

fn opt_money(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<f64>> {
    match r.get::<_, Option<i64>>(i)? {
        None => Ok(None),
        Some(_) => money(r, i).map(Some),
    }
}

fn order_row(r: &Row<'_>) -> rusqlite::Result<OrderRow> {
    Ok(OrderRow {
        order_id: r.get(0)?,
        state: r.get(1)?,
        state_since: opt_ts(r, 2)?,
        customer_id: r.get(3)?,
        store_id: r.get(4)?,
        amount: opt_money(r, 5)?,
        currency: r.get(6)?,
        milestones: [
            opt_ts(r, 7)?,
            opt_ts(r, 8)?,
            opt_ts(r, 9)?,
            opt_ts(r, 10)?,
            opt_ts(r, 11)?,
            opt_ts(r, 12)?,
        ],
        payment_id: r.get(13)?,
        payment_status: r.get(14)?,
        payment_amount: opt_money(r, 15)?,
        payment_at: opt_ts(r, 16)?,
        payment_due_at: opt_ts(r, 17)?,
        payment_timeout: r.get(18)?,
        payment_late: r.get(19)?,
        stuck_state: r.get(20)?,
        last_event_at: ts(r, 21)?,
    })
}

fn opt_bool(b: Option<bool>) -> Param {
    b.map_or(Param::Null, |b| Param::Int(i64::from(b)))
}

impl SqliteReader {
    pub(super) async fn order_list(&self, f: &OrderFilter, page: PageRequest) -> Result<Page<OrderRow>> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM order_lifecycle \
             WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR customer_id = ?2) \
               AND (?3 IS NULL OR store_id = ?3) \
               AND (?4 IS NULL OR (stuck_state IS NOT NULL) = ?4) \
               AND (?5 IS NULL OR payment_timeout = ?5) \
               AND (?6 IS NULL OR created_at >= ?6) AND (?7 IS NULL OR created_at < ?7) \
             ORDER BY created_at IS NULL, created_at DESC, order_id LIMIT ?8 OFFSET ?9"
        );
        let [limit, offset] = page_params(page);
        let params = vec![
            opt_text(f.state.as_deref()),
            opt_text(f.customer_id.as_deref()),
            f.store_id.map_or(Param::Null, Param::Int),
            opt_bool(f.stuck),
            opt_bool(f.payment_timeout),
            f.from.map_or(Param::Null, ts_param),
            f.to.map_or(Param::Null, ts_param),
            limit,
            offset,
        ];
        let rows = self
            .rows("SELECT FROM order_lifecycle", sql, params, order_row)
            .await?;
        Ok(Page::from_rows(rows, page))
    }

    pub(super) async fn order_detail(&self, order_id: &str) -> Result<Option<OrderDetail>> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM order_lifecycle WHERE order_id = ?1");
        let id = Param::Text(order_id.to_owned());
        let rows = self
            .rows("SELECT FROM order_lifecycle", sql, vec![id.clone()], order_row)
            .await?;
        let Some(order) = rows.into_iter().next() else {
            return Ok(None);
        };
        let events = self
            .rows(
                "SELECT FROM events_raw (order history)",
                "SELECT event_id, event_type, ts, source, payload, ingested_at FROM events_raw \
                 WHERE partition_key = ?1 AND event_type IN ('order', 'payment') ORDER BY ts, event_id"
                    .to_owned(),
                vec![id],
                |r| {
                    Ok(OrderEvent {
                        event_id: r.get(0)?,
                        event_type: r.get(1)?,
                        ts: ts(r, 2)?,
                        source: r.get(3)?,
                        payload: r.get(4)?,
                        ingested_at: ts(r, 5)?,
                    })
                },
            )
            .await?;
        Ok(Some(OrderDetail { order, events }))
    }

    pub(super) async fn state_counts(&self) -> Result<Vec<StateCount>> {
        let mut counts = self
            .rows(
                "SELECT count(*) FROM order_lifecycle GROUP BY state",
                "SELECT state, count(*), count(stuck_state) FROM order_lifecycle GROUP BY state".to_owned(),
                Vec::new(),
                |r| {
                    Ok(StateCount {
                        state: r.get(0)?,
                        orders: r.get(1)?,
                        stuck: r.get(2)?,
                    })
                },
            )
            .await?;
        sort_by_state(&mut counts);
        Ok(counts)
    }

    pub(super) async fn alert_list(&self, f: &AlertFilter, page: PageRequest) -> Result<Page<AlertRow>> {
        let sql = "SELECT alert_id, kind, severity, subject, at, message, resolved_at, raised_at FROM alerts \
             WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR severity = ?2) AND (?3 IS NULL OR subject = ?3) \
               AND (?4 IS NULL OR (resolved_at IS NULL) = ?4) \
               AND (?5 IS NULL OR at >= ?5) AND (?6 IS NULL OR at < ?6) \
             ORDER BY at DESC, alert_id LIMIT ?7 OFFSET ?8";
        let [limit, offset] = page_params(page);
        let params = vec![
            opt_text(f.kind.as_deref()),
            opt_text(f.severity.as_deref()),
            opt_text(f.subject.as_deref()),
            opt_bool(f.open),
            f.from.map_or(Param::Null, ts_param),
            f.to.map_or(Param::Null, ts_param),
            limit,
            offset,
        ];
        let rows = self
            .rows("SELECT FROM alerts", sql.to_owned(), params, |r| {
                Ok(AlertRow {
                    alert_id: r.get(0)?,
                    kind: r.get(1)?,
                    severity: r.get(2)?,
                    subject: r.get(3)?,
                    at: ts(r, 4)?,
                    message: r.get(5)?,
                    resolved_at: opt_ts(r, 6)?,
                    raised_at: ts(r, 7)?,
                })
            })
            .await?;
        Ok(Page::from_rows(rows, page))
    }

    pub(super) async fn risk_list(&self, f: &RiskFilter, page: PageRequest) -> Result<Page<RiskRow>> {
        let sql = format!(
            "SELECT store_id, sku, snapshot_at, snapshot_on_hand, units_sold_after, projected_on_hand, units_7d, \
               velocity_per_day, days_of_cover, reorder_point, lead_time_days, risk_level, first_flagged_at, as_of \
             FROM inventory_risks \
             WHERE (?1 IS NULL OR risk_level = ?1) AND (?2 IS NULL OR store_id = ?2) \
               AND (?3 IS NULL OR (risk_level <> 'ok') = ?3) \
             ORDER BY {RISK_ORDER} LIMIT ?4 OFFSET ?5"
        );
        let [limit, offset] = page_params(page);
        let params = vec![
            opt_text(f.risk_level.as_deref()),
            f.store_id.map_or(Param::Null, Param::Int),
            opt_bool(f.at_risk),
            limit,
            offset,
        ];
        let rows = self
            .rows("SELECT FROM inventory_risks", sql, params, |r| {
                Ok(RiskRow {
                    store_id: r.get(0)?,
                    sku: r.get(1)?,
                    snapshot_at: opt_ts(r, 2)?,
                    snapshot_on_hand: r.get(3)?,
                    units_sold_after: r.get(4)?,
                    projected_on_hand: r.get(5)?,
                    units_7d: r.get(6)?,
                    velocity_per_day: r.get(7)?,
                    days_of_cover: r.get(8)?,
                    reorder_point: r.get(9)?,
                    lead_time_days: r.get(10)?,
                    risk_level: r.get(11)?,
                    first_flagged_at: opt_ts(r, 12)?,
                    as_of: opt_ts(r, 13)?,
                })
            })
            .await?;
        Ok(Page::from_rows(rows, page))
    }

    pub(super) async fn fraud_list(
        &self,
        f: &FraudAlertFilter,
        page: PageRequest,
    ) -> Result<Page<FraudAlertRow>> {
        let sql =
            "SELECT alert_id, rule, key, at, severity, payment_ids, message, raised_at FROM fraud_alerts \
             WHERE (?1 IS NULL OR rule = ?1) AND (?2 IS NULL OR key = ?2) \
               AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR at < ?4) \
             ORDER BY at DESC, alert_id LIMIT ?5 OFFSET ?6";
        let [limit, offset] = page_params(page);
        let params = vec![
            opt_text(f.rule.as_deref()),
            opt_text(f.key.as_deref()),
            f.from.map_or(Param::Null, ts_param),
            f.to.map_or(Param::Null, ts_param),
            limit,
            offset,
        ];
        let rows = self
            .rows("SELECT FROM fraud_alerts", sql.to_owned(), params, |r| {
                Ok(FraudAlertRow {
                    alert_id: r.get(0)?,
                    rule: r.get(1)?,
                    key: r.get(2)?,
                    at: ts(r, 3)?,
                    severity: r.get(4)?,
                    payment_ids: r.get(5)?,
                    message: r.get(6)?,
                    raised_at: ts(r, 7)?,
                })
            })
            .await?;
        Ok(Page::from_rows(rows, page))
    }

    pub(super) async fn clock(&self, group: &str, pipeline: &str) -> Result<Option<DateTime<Utc>>> {
        let rows = self
            .rows(
                "SELECT FROM pipeline_clock",
                "SELECT time FROM pipeline_clock WHERE group_id = ?1 AND pipeline = ?2".to_owned(),
                vec![Param::Text(group.to_owned()), Param::Text(pipeline.to_owned())],
                |r| ts(r, 0),
            )
            .await?;
        Ok(rows.into_iter().next())
    }
}
