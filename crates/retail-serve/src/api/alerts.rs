//! Alerts the pipelines raised (payment timeouts, stuck orders; ADR 0023): raised once each,
//! resolved in event time when their condition ends.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use retail_sink::read::orders::{AlertFilter, AlertRow};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiResult, ErrorBody};
use super::params::{Params, RawParams};
use super::reader;
use crate::server::ServeState;

/// Severities an alert can have.
pub const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];

/// An alert.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct Alert {
    /// Id: the same for the same condition, however often it is raised (UUID v5).
    pub alert_id: String,
    /// `payment_timeout`, `order_stuck`, ...
    pub kind: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// What it is about, e.g. an order id.
    pub subject: String,
    /// Event time the condition became true.
    pub at: DateTime<Utc>,
    /// For a person.
    pub message: String,
    /// Whether the condition still holds (`resolved_at` is `null`).
    pub open: bool,
    /// Event time the condition ended; `null` while open.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Wall-clock time the store recorded it.
    pub raised_at: DateTime<Utc>,
}

impl From<AlertRow> for Alert {
    fn from(a: AlertRow) -> Self {
        Self {
            alert_id: a.alert_id,
            kind: a.kind,
            severity: a.severity,
            subject: a.subject,
            at: a.at,
            message: a.message,
            open: a.resolved_at.is_none(),
            resolved_at: a.resolved_at,
            raised_at: a.raised_at,
        }
    }
}

/// A page of alerts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    /// The alerts, newest `at` first.
    pub items: Vec<Alert>,
    /// The limit asked for.
    pub limit: u32,
    /// The offset asked for.
    pub offset: u64,
    /// The offset of the next page; `null` on the last page.
    pub next_offset: Option<u64>,
}

/// Alerts, newest first, filtered.
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "orders",
    params(
        ("kind" = Option<String>, Query, pattern = "^[a-z_][a-z0-9_]{0,62}$", description = "Only this kind, e.g. payment_timeout or order_stuck"),
        ("severity" = Option<String>, Query, pattern = "^(info|warning|critical)$", description = "Only this severity"),
        ("subject" = Option<String>, Query, pattern = "^[^\\x00-\\x1f\\x7f]{1,256}$", description = "Only alerts about this, e.g. an order id"),
        ("open" = Option<bool>, Query, description = "`true`: only alerts whose condition still holds; `false`: only resolved ones"),
        ("from" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "RFC 3339: only alerts at or after it (event time)"),
        ("to" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "RFC 3339: only alerts before it; after `from`"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Rows per page, 1..=500; default 50"),
        ("offset" = Option<u64>, Query, minimum = 0, maximum = 1000000, description = "Rows to skip; default 0"),
    ),
    responses(
        (status = 200, description = "A page of alerts", body = AlertPage),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 503, description = "The store is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<AlertPage>> {
    let p = Params::parse(
        q,
        &[
            "kind", "severity", "subject", "open", "from", "to", "limit", "offset",
        ],
    )?;
    let (from, to) = p.optional_range()?;
    let filter = AlertFilter {
        kind: p.identifier("kind", "an alert kind")?,
        severity: p.one_of("severity", &SEVERITIES)?,
        subject: p.id("subject")?,
        open: p.flag("open")?,
        from,
        to,
    };
    let page = p.page()?;
    let rows = reader(&s)?.alerts(&filter, page).await?;
    Ok(Json(AlertPage {
        items: rows.items.into_iter().map(Alert::from).collect(),
        limit: rows.limit,
        offset: rows.offset,
        next_offset: rows.next_offset,
    }))
}
