//! What the read side gives of the order-lifecycle pipeline (ADR 0023): the `order_lifecycle`
//! rows, an order's events from `events_raw`, counts by state, the `alerts` and the pipeline
//! time in `pipeline_clock`. Plain rows: the API's shapes (and their OpenAPI schemas) are
//! `retail-serve`'s. Money is the nearest `f64` of the exact amount on both stores
//! ([`super::decimal_to_f64`], ADR 0020).

use chrono::{DateTime, Utc};

/// Which orders a list returns; every field that is `Some` must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Current state, one of [`crate::derived::orders::STATES`].
    pub state: Option<String>,
    /// Customer.
    pub customer_id: Option<String>,
    /// Fulfilling store.
    pub store_id: Option<i64>,
    /// `true`: only orders stuck in their current state (`stuck_state IS NOT NULL`); `false`:
    /// only the others.
    pub stuck: Option<bool>,
    /// `true`: only orders whose payment timed out; `false`: only the others.
    pub payment_timeout: Option<bool>,
    /// `created_at >= from` (orders without a `created` event are left out).
    pub from: Option<DateTime<Utc>>,
    /// `created_at < to`.
    pub to: Option<DateTime<Utc>>,
}

/// One `order_lifecycle` row, without the pipeline's own fold.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRow {
    /// Order id.
    pub order_id: String,
    /// Current state; `None` while only payments were seen.
    pub state: Option<String>,
    /// Event time the order entered its current state.
    pub state_since: Option<DateTime<Utc>>,
    /// Customer.
    pub customer_id: Option<String>,
    /// Fulfilling store.
    pub store_id: Option<i64>,
    /// Order total.
    pub amount: Option<f64>,
    /// Currency of the total.
    pub currency: Option<String>,
    /// Event time of each milestone: created, paid, packed, shipped, delivered, cancelled.
    pub milestones: [Option<DateTime<Utc>>; 6],
    /// The payment the join matched.
    pub payment_id: Option<String>,
    /// Status of the latest payment event.
    pub payment_status: Option<String>,
    /// Amount of the matched payment.
    pub payment_amount: Option<f64>,
    /// Event time of the matched payment.
    pub payment_at: Option<DateTime<Utc>>,
    /// `created` plus the payment window.
    pub payment_due_at: Option<DateTime<Utc>>,
    /// Whether the payment timed out.
    pub payment_timeout: bool,
    /// Whether the matched payment came after the window.
    pub payment_late: bool,
    /// The state an alert says the order is stuck in (its current state).
    pub stuck_state: Option<String>,
    /// Largest event time of the order's events.
    pub last_event_at: DateTime<Utc>,
}

/// One event of an order's history, from `events_raw`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEvent {
    /// Event id.
    pub event_id: String,
    /// `order` or `payment`.
    pub event_type: String,
    /// Event time.
    pub ts: DateTime<Utc>,
    /// Producing system.
    pub source: String,
    /// The event as JSON text (PostgreSQL gives its `jsonb` normal form).
    pub payload: String,
    /// When it landed.
    pub ingested_at: DateTime<Utc>,
}

/// An order with its history.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderDetail {
    /// The row.
    pub order: OrderRow,
    /// Its `order` and `payment` events, by event time.
    pub events: Vec<OrderEvent>,
}

/// Orders in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    /// The state; `None` for orders of which only payments were seen.
    pub state: Option<String>,
    /// Orders in it.
    pub orders: i64,
    /// Of those, stuck in it.
    pub stuck: i64,
}

/// Which alerts a list returns; every field that is `Some` must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFilter {
    /// `payment_timeout`, `order_stuck`, ...
    pub kind: Option<String>,
    /// `info`, `warning` or `critical`.
    pub severity: Option<String>,
    /// What it is about, e.g. an order id.
    pub subject: Option<String>,
    /// `true`: only unresolved alerts (`resolved_at IS NULL`); `false`: only resolved ones.
    pub open: Option<bool>,
    /// `at >= from`.
    pub from: Option<DateTime<Utc>>,
    /// `at < to`.
    pub to: Option<DateTime<Utc>>,
}

/// One `alerts` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    /// Deterministic id (UUID v5), hyphenated lower case.
    pub alert_id: String,
    /// Kind.
    pub kind: String,
    /// Severity.
    pub severity: String,
    /// What it is about.
    pub subject: String,
    /// Event time the condition became true.
    pub at: DateTime<Utc>,
    /// For a person.
    pub message: String,
    /// Event time it ended, if it did.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Wall-clock time the store recorded it.
    pub raised_at: DateTime<Utc>,
}

/// The pipeline whose clock the order verdicts run on, in `pipeline_clock.pipeline`.
pub const ORDERS_PIPELINE: &str = "orders";

/// What `inventory_risks` is filtered by; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RiskFilter {
    /// Only this level: `ok`, `low`, `critical` or `stockout`.
    pub risk_level: Option<String>,
    /// Only this store.
    pub store_id: Option<i64>,
    /// `true`: only levels other than `ok`; `false`: only `ok`.
    pub at_risk: Option<bool>,
}

/// A row of `inventory_risks` (ADR 0024).
#[derive(Debug, Clone, PartialEq)]
pub struct RiskRow {
    /// Store.
    pub store_id: i64,
    /// SKU.
    pub sku: i64,
    /// Event time of the snapshot the row projects from.
    pub snapshot_at: Option<DateTime<Utc>>,
    /// Units on hand then.
    pub snapshot_on_hand: Option<i64>,
    /// Net units sold after it.
    pub units_sold_after: i64,
    /// Snapshot minus units sold after it.
    pub projected_on_hand: Option<i64>,
    /// Net units over the velocity window.
    pub units_7d: i64,
    /// Units per day.
    pub velocity_per_day: f64,
    /// Days the projected stock lasts; `None` when nothing sells.
    pub days_of_cover: Option<f64>,
    /// Units that last the lead time.
    pub reorder_point: i64,
    /// Reorder lead time, days.
    pub lead_time_days: i64,
    /// `ok`, `low`, `critical` or `stockout`.
    pub risk_level: String,
    /// Event time the series first left `ok` in its current episode.
    pub first_flagged_at: Option<DateTime<Utc>>,
    /// Event time of the latest event applied.
    pub as_of: Option<DateTime<Utc>>,
}

/// What `fraud_alerts` is filtered by; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FraudAlertFilter {
    /// Only this rule.
    pub rule: Option<String>,
    /// Only this card or customer.
    pub key: Option<String>,
    /// Only alerts at or after this event time.
    pub from: Option<DateTime<Utc>>,
    /// Only alerts before this event time.
    pub to: Option<DateTime<Utc>>,
}

/// A row of `fraud_alerts` (ADR 0025).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FraudAlertRow {
    /// Id (also the `alerts` row's).
    pub alert_id: String,
    /// Rule.
    pub rule: String,
    /// Card or customer.
    pub key: String,
    /// Event time of the payment that tripped it.
    pub at: DateTime<Utc>,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// The payments that tripped it, as a JSON array of ids.
    pub payment_ids: String,
    /// For a person.
    pub message: String,
    /// Wall-clock time the store recorded it.
    pub raised_at: DateTime<Utc>,
}

/// The order inventory risks are listed in, worst first: by level, then fewest days of cover.
pub(crate) const RISK_ORDER: &str = "CASE risk_level WHEN 'stockout' THEN 0 WHEN 'critical' THEN 1 \
     WHEN 'low' THEN 2 ELSE 3 END, days_of_cover IS NULL, days_of_cover, store_id, sku";

/// Puts counts in lifecycle order ([`crate::derived::orders::STATES`]), payment-only last, so
/// both stores answer alike whatever order their `GROUP BY` gives.
pub(crate) fn sort_by_state(counts: &mut [StateCount]) {
    use crate::derived::orders::STATES;
    counts.sort_by_key(|c| {
        c.state.as_deref().map_or(STATES.len() + 1, |s| {
            STATES.iter().position(|k| *k == s).unwrap_or(STATES.len())
        })
    });
}
