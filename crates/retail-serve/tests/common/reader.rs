//! A store's read side with fixed order-lifecycle rows and alerts, recording the filters it
//! was asked for, so the API's parameter mapping and JSON shapes are checked without a store
//! (the queries themselves are retail-sink's `tests/read.rs`, on both stores).

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use retail_sink::read::notifications::{DeliveryFilter, DeliveryRow};
use retail_sink::read::orders::{
    AlertFilter, AlertRow, FraudAlertFilter, FraudAlertRow, OrderDetail, OrderEvent, OrderFilter, OrderRow,
    RiskFilter, RiskRow, StateCount,
};
use retail_sink::read::{
    CitySales, Claim, Counts, DeadLetterDetail, DeadLetterSummary, Grain, LateEvent, Page, PageRequest,
    SalesBucket, SellerSales, StoreInfo, StoreSummary, Totals,
};
use retail_sink::Reader;

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").to_utc()
}

/// The pipeline time the fake reports for group `landing`.
pub const PIPELINE_TIME: &str = "2026-11-22T00:00:00Z";

/// O-5: paid at 10:01, stuck there; O-3: payment only.
pub fn order_rows() -> Vec<OrderRow> {
    vec![
        OrderRow {
            order_id: "O-5".into(),
            state: Some("paid".into()),
            state_since: Some(t("2026-11-21T10:01:00Z")),
            customer_id: Some("C-2".into()),
            store_id: Some(3),
            amount: Some(19.99),
            currency: Some("EUR".into()),
            milestones: [
                Some(t("2026-11-21T10:01:00Z")),
                Some(t("2026-11-21T10:01:00Z")),
                None,
                None,
                None,
                None,
            ],
            payment_id: Some("P-O-5".into()),
            payment_status: Some("captured".into()),
            payment_amount: Some(19.99),
            payment_at: Some(t("2026-11-21T10:01:00Z")),
            payment_due_at: Some(t("2026-11-21T10:31:00Z")),
            payment_timeout: false,
            payment_late: false,
            stuck_state: Some("paid".into()),
            last_event_at: t("2026-11-21T10:01:00Z"),
        },
        OrderRow {
            order_id: "O-3".into(),
            state: None,
            state_since: None,
            customer_id: None,
            store_id: None,
            amount: None,
            currency: None,
            milestones: [None; 6],
            payment_id: Some("P-O-3".into()),
            payment_status: Some("captured".into()),
            payment_amount: Some(5.0),
            payment_at: Some(t("2026-11-21T10:01:00Z")),
            payment_due_at: None,
            payment_timeout: false,
            payment_late: false,
            stuck_state: None,
            last_event_at: t("2026-11-21T10:01:00Z"),
        },
    ]
}

pub fn alert_rows() -> Vec<AlertRow> {
    vec![
        AlertRow {
            alert_id: "0b7e6c3a-52b8-5a3c-9d55-0d1e2f3a4b5c".into(),
            kind: "order_stuck".into(),
            severity: "warning".into(),
            subject: "O-5".into(),
            at: t("2026-11-21T22:01:00Z"),
            message: "order O-5 stuck in paid for more than 720 min".into(),
            resolved_at: None,
            raised_at: t("2026-11-21T23:00:00Z"),
        },
        AlertRow {
            alert_id: "1c8f7d4b-63c9-5b4d-8e66-1e2f3a4b5c6d".into(),
            kind: "payment_timeout".into(),
            severity: "warning".into(),
            subject: "O-1".into(),
            at: t("2026-11-21T10:30:00Z"),
            message: "order O-1 has no payment 30 min after it was created".into(),
            resolved_at: Some(t("2026-11-21T10:40:00Z")),
            raised_at: t("2026-11-21T11:00:00Z"),
        },
    ]
}

/// Two fixed rows of `inventory_risks`: a stock-out and an `ok` series that sells nothing.
pub fn risk_rows() -> Vec<RiskRow> {
    let t = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
    vec![
        RiskRow {
            store_id: 3,
            sku: 100_001,
            snapshot_at: Some(t("2026-11-21T06:00:00Z")),
            snapshot_on_hand: Some(20),
            units_sold_after: 20,
            projected_on_hand: Some(0),
            units_7d: 35,
            velocity_per_day: 5.0,
            days_of_cover: Some(0.0),
            reorder_point: 10,
            lead_time_days: 2,
            risk_level: "stockout".into(),
            first_flagged_at: Some(t("2026-11-21T09:00:00Z")),
            as_of: Some(t("2026-11-21T10:00:00Z")),
        },
        RiskRow {
            store_id: 4,
            sku: 100_002,
            snapshot_at: Some(t("2026-11-21T06:00:00Z")),
            snapshot_on_hand: Some(50),
            units_sold_after: 0,
            projected_on_hand: Some(50),
            units_7d: 0,
            velocity_per_day: 0.0,
            days_of_cover: None,
            reorder_point: 0,
            lead_time_days: 3,
            risk_level: "ok".into(),
            first_flagged_at: None,
            as_of: Some(t("2026-11-21T06:00:00Z")),
        },
    ]
}

/// Three fixed rows of `notification_deliveries`: one pending a retry after an error, one
/// dead, one suppressed as a repeat of another.
pub fn delivery_rows() -> Vec<DeliveryRow> {
    let alert = "0b7e6c3a-52b8-5a3c-9d55-0d1e2f3a4b5c";
    vec![
        DeliveryRow {
            delivery_id: "2d9a8e5c-74da-5c5e-9f77-2f3a4b5c6d7e".into(),
            alert_id: alert.into(),
            kind: "order_stuck".into(),
            subject: "O-5".into(),
            channel: "hook".into(),
            state: "pending".into(),
            attempts: 2,
            alert_at: t("2026-11-21T22:01:00Z"),
            next_attempt_at: Some(t("2026-11-21T23:00:30Z")),
            last_error: Some("HTTP 503 from https://hooks.example/alerts".into()),
            duplicate_of: None,
            created_at: t("2026-11-21T23:00:00Z"),
            finished_at: None,
        },
        DeliveryRow {
            delivery_id: "3e0b9f6d-85eb-5d6f-8a88-3a4b5c6d7e8f".into(),
            alert_id: alert.into(),
            kind: "order_stuck".into(),
            subject: "O-5".into(),
            channel: "mail".into(),
            state: "dead".into(),
            attempts: 5,
            alert_at: t("2026-11-21T22:01:00Z"),
            next_attempt_at: None,
            last_error: Some("SMTP 550 mailbox unavailable".into()),
            duplicate_of: None,
            created_at: t("2026-11-21T23:00:00Z"),
            finished_at: Some(t("2026-11-21T23:20:00Z")),
        },
        DeliveryRow {
            delivery_id: "4f1c0a7e-96fc-5e70-9b99-4b5c6d7e8f90".into(),
            alert_id: "1c8f7d4b-63c9-5b4d-8e66-1e2f3a4b5c6d".into(),
            kind: "payment_timeout".into(),
            subject: "O-1".into(),
            channel: "hook".into(),
            state: "suppressed".into(),
            attempts: 0,
            alert_at: t("2026-11-21T10:30:00Z"),
            next_attempt_at: None,
            last_error: None,
            duplicate_of: Some("2d9a8e5c-74da-5c5e-9f77-2f3a4b5c6d7e".into()),
            created_at: t("2026-11-21T11:00:00Z"),
            finished_at: Some(t("2026-11-21T11:00:00Z")),
        },
    ]
}

/// The fake. `orders`/`alerts` answer with every fixed row, one page of `limit` after
/// `offset`, whatever the filter; the filter is recorded.
#[derive(Debug, Default)]
pub struct FakeReader {
    pub order_filters: Mutex<Vec<OrderFilter>>,
    pub alert_filters: Mutex<Vec<AlertFilter>>,
    pub risk_filters: Mutex<Vec<RiskFilter>>,
    pub fraud_filters: Mutex<Vec<FraudAlertFilter>>,
    pub delivery_filters: Mutex<Vec<DeliveryFilter>>,
    pub clock_asks: Mutex<Vec<(String, String)>>,
}

fn page<T: Clone>(rows: &[T], req: PageRequest) -> Page<T> {
    let rows: Vec<T> = rows
        .iter()
        .skip(usize::try_from(req.offset).unwrap_or(usize::MAX))
        .take(req.limit as usize + 1)
        .cloned()
        .collect();
    Page::from_rows(rows, req)
}

#[async_trait]
impl Reader for FakeReader {
    fn kind(&self) -> &'static str {
        "fake"
    }
    async fn sales(
        &self,
        _: Grain,
        _: Option<i64>,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> retail_sink::Result<Vec<SalesBucket>> {
        Ok(Vec::new())
    }
    async fn totals(&self, _: DateTime<Utc>, _: DateTime<Utc>) -> retail_sink::Result<Totals> {
        Ok(Totals::default())
    }
    async fn top_sales_by_city(&self, _: NaiveDate, _: u32) -> retail_sink::Result<Vec<CitySales>> {
        Ok(Vec::new())
    }
    async fn top_salesmen_by_country(
        &self,
        _: Option<&str>,
        _: Option<DateTime<Utc>>,
        _: u32,
    ) -> retail_sink::Result<Vec<SellerSales>> {
        Ok(Vec::new())
    }
    async fn store(&self, _: i64) -> retail_sink::Result<Option<StoreInfo>> {
        Ok(None)
    }
    async fn stores(
        &self,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
        req: PageRequest,
    ) -> retail_sink::Result<Page<StoreSummary>> {
        Ok(page(&[], req))
    }
    async fn store_summary(
        &self,
        _: i64,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> retail_sink::Result<Option<StoreSummary>> {
        Ok(None)
    }
    async fn late_events(&self, _: Option<&str>, req: PageRequest) -> retail_sink::Result<Page<LateEvent>> {
        Ok(page(&[], req))
    }
    async fn dead_letters(&self, req: PageRequest) -> retail_sink::Result<Page<DeadLetterSummary>> {
        Ok(page(&[], req))
    }
    async fn dead_letter(&self, _: i64) -> retail_sink::Result<Option<DeadLetterDetail>> {
        Ok(None)
    }
    async fn claim_dead_letter(&self, _: i64) -> retail_sink::Result<Claim> {
        Ok(Claim::NotFound)
    }
    async fn unclaim_dead_letter(&self, _: i64) -> retail_sink::Result<()> {
        Ok(())
    }
    async fn counts(&self) -> retail_sink::Result<Counts> {
        Ok(Counts::default())
    }
    async fn orders(&self, filter: &OrderFilter, req: PageRequest) -> retail_sink::Result<Page<OrderRow>> {
        self.order_filters.lock().expect("lock").push(filter.clone());
        Ok(page(&order_rows(), req))
    }
    async fn order(&self, order_id: &str) -> retail_sink::Result<Option<OrderDetail>> {
        let Some(order) = order_rows().into_iter().find(|o| o.order_id == order_id) else {
            return Ok(None);
        };
        let event = |ts: &str, kind: &str, payload: &str| OrderEvent {
            event_id: format!("019acd7e-0000-7000-8000-00000000000{}", payload.len() % 10),
            event_type: kind.into(),
            ts: t(ts),
            source: "web".into(),
            payload: payload.into(),
            ingested_at: t("2026-11-21T10:01:01Z"),
        };
        Ok(Some(OrderDetail {
            order,
            events: vec![
                event(
                    "2026-11-21T10:01:00Z",
                    "order",
                    r#"{"type":"order","order_id":"O-5","status":"created","amount":19.990}"#,
                ),
                event(
                    "2026-11-21T10:01:00Z",
                    "payment",
                    r#"{"type":"payment","order_id":"O-5","status":"captured","amount":19.99}"#,
                ),
            ],
        }))
    }
    async fn orders_by_state(&self) -> retail_sink::Result<Vec<StateCount>> {
        Ok(vec![
            StateCount {
                state: Some("created".into()),
                orders: 4,
                stuck: 0,
            },
            StateCount {
                state: Some("paid".into()),
                orders: 2,
                stuck: 1,
            },
            StateCount {
                state: None,
                orders: 1,
                stuck: 0,
            },
        ])
    }
    async fn inventory_risks(
        &self,
        filter: &RiskFilter,
        req: PageRequest,
    ) -> retail_sink::Result<Page<RiskRow>> {
        if let Ok(mut f) = self.risk_filters.lock() {
            f.push(filter.clone());
        }
        Ok(page(&risk_rows(), req))
    }
    async fn fraud_alerts(
        &self,
        filter: &FraudAlertFilter,
        req: PageRequest,
    ) -> retail_sink::Result<Page<FraudAlertRow>> {
        if let Ok(mut f) = self.fraud_filters.lock() {
            f.push(filter.clone());
        }
        let t = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        let rows = [FraudAlertRow {
            alert_id: "5f0e4a6c-3b1d-5e7a-9c2b-0d1e2f3a4b5c".into(),
            rule: "tiny_then_large".into(),
            key: "card-7f3a".into(),
            at: t("2026-11-21T10:00:30Z"),
            severity: "critical".into(),
            payment_ids: r#"["P-000101-1","P-000102-1"]"#.into(),
            message: "tiny_then_large on card-7f3a: a payment under 1 then 800 within 60 s".into(),
            raised_at: t("2026-11-21T10:01:00Z"),
        }];
        Ok(page(&rows, req))
    }
    async fn deliveries(
        &self,
        filter: &DeliveryFilter,
        req: PageRequest,
    ) -> retail_sink::Result<Page<DeliveryRow>> {
        self.delivery_filters.lock().expect("lock").push(filter.clone());
        Ok(page(&delivery_rows(), req))
    }
    async fn alerts(&self, filter: &AlertFilter, req: PageRequest) -> retail_sink::Result<Page<AlertRow>> {
        self.alert_filters.lock().expect("lock").push(filter.clone());
        Ok(page(&alert_rows(), req))
    }
    async fn pipeline_time(&self, group: &str, pipeline: &str) -> retail_sink::Result<Option<DateTime<Utc>>> {
        self.clock_asks
            .lock()
            .expect("lock")
            .push((group.to_owned(), pipeline.to_owned()));
        Ok((group == "landing").then(|| t(PIPELINE_TIME)))
    }
}
