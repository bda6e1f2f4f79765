//! Orders as the order-lifecycle pipeline keeps them (ADR 0023): a filtered list, one order
//! with its events, and counts by state.
//!
//! "Time in state" is measured on the **pipeline time**, not the wall clock: the event-time
//! clock the pipeline decides timeouts and stuck orders on (the smallest watermark of the
//! `orders` and `payments` partitions, idle partitions advancing with the wall clock), as the
//! landing's consumer group last recorded it in `pipeline_clock`. So the figure agrees with the
//! alerts, and a replay of old events shows the times they had, not how long ago they were.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use retail_sink::derived::orders::STATES;
use retail_sink::read::orders::{OrderEvent as EventRow, OrderFilter, OrderRow, StateCount, ORDERS_PIPELINE};
use retail_sink::Reader;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::params::{parse_id, Params, RawParams};
use super::reader;
use crate::server::ServeState;

/// An order.
#[derive(Debug, Serialize, ToSchema)]
pub struct Order {
    /// Order id.
    pub order_id: String,
    /// Current state: `created`, `paid`, `packed`, `shipped`, `delivered` or `cancelled`;
    /// `null` while only payments were seen.
    pub state: Option<String>,
    /// Event time the order entered its current state.
    pub state_since: Option<DateTime<Utc>>,
    /// Pipeline time minus `state_since`, in milliseconds (0 when the state began after the
    /// pipeline time); `null` without a state or before the pipeline's first verdict run.
    pub time_in_state_ms: Option<i64>,
    /// Customer.
    pub customer_id: Option<String>,
    /// Fulfilling store.
    pub store_id: Option<i64>,
    /// Order total.
    pub amount: Option<f64>,
    /// Currency of the total.
    pub currency: Option<String>,
    /// Event time it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// Event time it was paid.
    pub paid_at: Option<DateTime<Utc>>,
    /// Event time it was packed.
    pub packed_at: Option<DateTime<Utc>>,
    /// Event time it was shipped.
    pub shipped_at: Option<DateTime<Utc>>,
    /// Event time it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Event time it was cancelled.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The payment matched to it: the earliest authorising or capturing one.
    pub payment_id: Option<String>,
    /// Status of the latest payment event: `failed`, `authorized`, `captured` or `refunded`.
    pub payment_status: Option<String>,
    /// Amount of the matched payment.
    pub payment_amount: Option<f64>,
    /// Event time of the matched payment.
    pub payment_at: Option<DateTime<Utc>>,
    /// When the payment is due: `created_at` plus the payment window.
    pub payment_due_at: Option<DateTime<Utc>>,
    /// Whether no payment came within the window (an alert was raised).
    pub payment_timeout: bool,
    /// Whether the matched payment came after the window.
    pub payment_late: bool,
    /// The state the order is stuck in (its current state), while an alert says so.
    pub stuck_state: Option<String>,
    /// Latest event time of its events.
    pub last_event_at: DateTime<Utc>,
}

impl Order {
    fn new(r: OrderRow, pipeline_time: Option<DateTime<Utc>>) -> Self {
        let [created_at, paid_at, packed_at, shipped_at, delivered_at, cancelled_at] = r.milestones;
        let time_in_state_ms = match (pipeline_time, r.state_since) {
            (Some(now), Some(since)) => Some((now - since).num_milliseconds().max(0)),
            _ => None,
        };
        Self {
            order_id: r.order_id,
            state: r.state,
            state_since: r.state_since,
            time_in_state_ms,
            customer_id: r.customer_id,
            store_id: r.store_id,
            amount: r.amount,
            currency: r.currency,
            created_at,
            paid_at,
            packed_at,
            shipped_at,
            delivered_at,
            cancelled_at,
            payment_id: r.payment_id,
            payment_status: r.payment_status,
            payment_amount: r.payment_amount,
            payment_at: r.payment_at,
            payment_due_at: r.payment_due_at,
            payment_timeout: r.payment_timeout,
            payment_late: r.payment_late,
            stuck_state: r.stuck_state,
            last_event_at: r.last_event_at,
        }
    }
}

/// A page of orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    /// The pipeline time `time_in_state_ms` is measured at; `null` before its first run.
    pub pipeline_time: Option<DateTime<Utc>>,
    /// The orders, newest `created_at` first (orders without one last).
    pub items: Vec<Order>,
    /// The limit asked for.
    pub limit: u32,
    /// The offset asked for.
    pub offset: u64,
    /// The offset of the next page; `null` on the last page.
    pub next_offset: Option<u64>,
}

/// One event of an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderEvent {
    /// Event id.
    pub event_id: String,
    /// `order` or `payment`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Event time.
    pub ts: DateTime<Utc>,
    /// Producing system.
    pub source: String,
    /// The event as landed (amounts with their own digits).
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    /// When it landed.
    pub ingested_at: DateTime<Utc>,
}

impl From<EventRow> for OrderEvent {
    fn from(e: EventRow) -> Self {
        // The stores only hold JSON objects here; anything else is shown as an object
        // holding the text rather than failing the request.
        let payload = RawValue::from_string(e.payload).unwrap_or_else(|err| {
            tracing::warn!(message = "an order event's payload is not JSON", event_id = %e.event_id, error = %err);
            RawValue::from_string("{\"unreadable\":true}".to_owned()).unwrap_or_default()
        });
        Self {
            event_id: e.event_id,
            event_type: e.event_type,
            ts: e.ts,
            source: e.source,
            payload,
            ingested_at: e.ingested_at,
        }
    }
}

/// An order with its history.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDetail {
    /// The order.
    #[serde(flatten)]
    pub order: Order,
    /// The pipeline time `time_in_state_ms` is measured at.
    pub pipeline_time: Option<DateTime<Utc>>,
    /// Its `order` and `payment` events, by event time.
    pub events: Vec<OrderEvent>,
}

/// Orders in one state.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct StateOrders {
    /// The state.
    pub state: String,
    /// Orders in it.
    pub orders: i64,
    /// Of those, stuck in it (an alert is open).
    pub stuck: i64,
}

/// Orders counted by state.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrdersByState {
    /// Every state in lifecycle order, zero included.
    pub states: Vec<StateOrders>,
    /// Orders of which only payments were seen (no state yet).
    pub payment_only: i64,
    /// All orders.
    pub total: i64,
    /// The pipeline time of the counts' verdicts; `null` before its first run.
    pub pipeline_time: Option<DateTime<Utc>>,
}

/// Every state in lifecycle order with its counts, and the payment-only count.
pub(crate) fn by_state(counts: &[StateCount]) -> (Vec<StateOrders>, i64) {
    let states = STATES
        .iter()
        .map(|s| {
            let c = counts.iter().find(|c| c.state.as_deref() == Some(*s));
            StateOrders {
                state: (*s).to_owned(),
                orders: c.map_or(0, |c| c.orders),
                stuck: c.map_or(0, |c| c.stuck),
            }
        })
        .collect();
    let payment_only = counts
        .iter()
        .filter(|c| c.state.is_none())
        .map(|c| c.orders)
        .sum();
    (states, payment_only)
}

/// The landing group's pipeline time, if the binary said which group and it ran.
async fn pipeline_time(s: &ServeState, r: &dyn Reader) -> ApiResult<Option<DateTime<Utc>>> {
    match s.landing_group() {
        Some(group) => Ok(r.pipeline_time(&group, ORDERS_PIPELINE).await?),
        None => Ok(None),
    }
}

/// Orders, newest first, filtered.
#[utoipa::path(
    get,
    path = "/api/v1/orders",
    tag = "orders",
    params(
        ("state" = Option<String>, Query, pattern = "^(created|paid|packed|shipped|delivered|cancelled)$", description = "Only orders in this state"),
        ("customer_id" = Option<String>, Query, pattern = "^[^\\x00-\\x1f\\x7f]{1,256}$", description = "Only this customer's orders"),
        ("store_id" = Option<i64>, Query, minimum = 1, description = "Only orders of this store"),
        ("stuck" = Option<bool>, Query, description = "`true`: only orders stuck in their state; `false`: only the others"),
        ("payment_timeout" = Option<bool>, Query, description = "`true`: only orders whose payment timed out; `false`: only the others"),
        ("from" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "RFC 3339: only orders created at or after it"),
        ("to" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "RFC 3339: only orders created before it; after `from`"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Rows per page, 1..=500; default 50"),
        ("offset" = Option<u64>, Query, minimum = 0, maximum = 1000000, description = "Rows to skip; default 0"),
    ),
    responses(
        (status = 200, description = "A page of orders; time in state on the pipeline time", body = OrderPage),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 503, description = "The store is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<OrderPage>> {
    let p = Params::parse(
        q,
        &[
            "state",
            "customer_id",
            "store_id",
            "stuck",
            "payment_timeout",
            "from",
            "to",
            "limit",
            "offset",
        ],
    )?;
    let (from, to) = p.optional_range()?;
    let filter = OrderFilter {
        state: p.one_of("state", &STATES)?,
        customer_id: p.id("customer_id")?,
        store_id: p.int("store_id", 1, i64::MAX)?,
        stuck: p.flag("stuck")?,
        payment_timeout: p.flag("payment_timeout")?,
        from,
        to,
    };
    let page = p.page()?;
    let r = reader(&s)?;
    let rows = r.orders(&filter, page).await?;
    let now = pipeline_time(&s, r.as_ref()).await?;
    Ok(Json(OrderPage {
        pipeline_time: now,
        items: rows.items.into_iter().map(|o| Order::new(o, now)).collect(),
        limit: rows.limit,
        offset: rows.offset,
        next_offset: rows.next_offset,
    }))
}

/// One order with its `order` and `payment` events.
#[utoipa::path(
    get,
    path = "/api/v1/orders/{order_id}",
    tag = "orders",
    params(("order_id" = String, Path, pattern = "^[^\\x00-\\x1f\\x7f]{1,256}$", description = "Order id")),
    responses(
        (status = 200, description = "The order and its history", body = OrderDetail),
        (status = 400, description = "The order id is not an id", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 503, description = "The store is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn one(
    State(s): State<ServeState>,
    Path(raw): Path<String>,
    q: RawParams,
) -> ApiResult<Json<OrderDetail>> {
    Params::parse(q, &[])?;
    let id = parse_id("order_id", &raw)?;
    let r = reader(&s)?;
    let detail = r
        .order(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(Some("order_id"), format!("no order with order_id {id:?}")))?;
    let now = pipeline_time(&s, r.as_ref()).await?;
    Ok(Json(OrderDetail {
        order: Order::new(detail.order, now),
        pipeline_time: now,
        events: detail.events.into_iter().map(OrderEvent::from).collect(),
    }))
}

/// Orders counted by state, stuck ones apart.
#[utoipa::path(
    get,
    path = "/api/v1/orders/by-state",
    tag = "orders",
    responses(
        (status = 200, description = "Every state with its count", body = OrdersByState),
        (status = 400, description = "A parameter was given (there are none)", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 503, description = "The store is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn counts(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<OrdersByState>> {
    Params::parse(q, &[])?;
    let r = reader(&s)?;
    let counts = r.orders_by_state().await?;
    let (states, payment_only) = by_state(&counts);
    Ok(Json(OrdersByState {
        total: counts.iter().map(|c| c.orders).sum(),
        states,
        payment_only,
        pipeline_time: pipeline_time(&s, r.as_ref()).await?,
    }))
}
