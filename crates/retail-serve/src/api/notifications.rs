//! The notification outbox (ADR 0026): one delivery per alert and channel its route takes,
//! written with the alert; each ends `sent`, `dead` (retries exhausted, with the last error) or
//! `suppressed` (a repeat within the channel's dedup window, naming the delivery it repeats).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use retail_sink::read::notifications::{DeliveryFilter, DeliveryRow, DELIVERY_STATES};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiResult, ErrorBody};
use super::params::{Params, RawParams};
use super::reader;
use crate::server::ServeState;

/// A delivery of an alert to a channel.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct Delivery {
    /// Id: UUID v5 of the alert id and the channel, the idempotency key the channel's receiver
    /// gets.
    pub delivery_id: String,
    /// The alert (as in `/alerts`).
    pub alert_id: String,
    /// The alert's kind, e.g. `payment_timeout` or `fraud`.
    pub kind: String,
    /// What the alert is about, e.g. an order id.
    pub subject: String,
    /// The channel (its name in `[notifications]`).
    pub channel: String,
    /// `pending`, `sent`, `dead` or `suppressed`.
    pub state: String,
    /// Attempts made so far.
    pub attempts: i64,
    /// The alert's event time.
    pub alert_at: DateTime<Utc>,
    /// Wall-clock time of the next attempt; `null` once final.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed; `null` if none did.
    pub last_error: Option<String>,
    /// For a suppressed delivery, the delivery it repeats; `null` otherwise.
    pub duplicate_of: Option<String>,
    /// Wall-clock time it was written (with its alert).
    pub created_at: DateTime<Utc>,
    /// Wall-clock time it reached its final state; `null` while pending.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<DeliveryRow> for Delivery {
    fn from(r: DeliveryRow) -> Self {
        Self {
            delivery_id: r.delivery_id,
            alert_id: r.alert_id,
            kind: r.kind,
            subject: r.subject,
            channel: r.channel,
            state: r.state,
            attempts: r.attempts,
            alert_at: r.alert_at,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            duplicate_of: r.duplicate_of,
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// The deliveries, newest `alert_at` first.
    pub items: Vec<Delivery>,
    /// The limit asked for.
    pub limit: u32,
    /// The offset asked for.
    pub offset: u64,
    /// The offset of the next page; `null` on the last page.
    pub next_offset: Option<u64>,
}

/// Notification deliveries, newest alert first, filtered.
#[utoipa::path(
    get,
    path = "/api/v1/notifications/deliveries",
    tag = "notifications",
    params(
        ("channel" = Option<String>, Query, pattern = "^[^\\x00-\\x1f\\x7f]{1,256}$", description = "Only this channel"),
        ("state" = Option<String>, Query, pattern = "^(pending|sent|dead|suppressed)$", description = "Only this state"),
        ("alert_id" = Option<String>, Query, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", description = "Only the deliveries of this alert (a UUID)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Rows per page, 1..=500; default 50"),
        ("offset" = Option<u64>, Query, minimum = 0, maximum = 1000000, description = "Rows to skip; default 0"),
    ),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPage),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 503, description = "The store is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn deliveries(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<DeliveryPage>> {
    let p = Params::parse(q, &["channel", "state", "alert_id", "limit", "offset"])?;
    let filter = DeliveryFilter {
        channel: p.id("channel")?,
        state: p.one_of("state", &DELIVERY_STATES)?,
        alert_id: p.uuid("alert_id")?,
    };
    let page = p.page()?;
    let rows = reader(&s)?.deliveries(&filter, page).await?;
    Ok(Json(DeliveryPage {
        items: rows.items.into_iter().map(Delivery::from).collect(),
        limit: rows.limit,
        offset: rows.offset,
        next_offset: rows.next_offset,
    }))
}
