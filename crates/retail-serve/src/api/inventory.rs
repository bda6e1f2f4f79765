//! Stock at risk, as the inventory-at-risk pipeline keeps it (ADR 0024): one row per store and
//! SKU the ERP reports on, worst first.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use retail_sink::read::orders::{RiskFilter, RiskRow};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiResult, ErrorBody};
use super::params::{Params, RawParams};
use super::reader;
use crate::server::ServeState;

/// Risk levels, from best to worst.
pub const LEVELS: [&str; 4] = ["ok", "low", "critical", "stockout"];

/// A store and SKU's stock, projected from its last ERP snapshot.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct InventoryRisk {
    /// Store.
    pub store_id: i64,
    /// SKU.
    pub sku: i64,
    /// Event time of the snapshot the projection starts from.
    pub snapshot_at: Option<DateTime<Utc>>,
    /// Units on hand at the snapshot.
    pub snapshot_on_hand: Option<i64>,
    /// Net units sold after the snapshot (returns count back).
    pub units_sold_after: i64,
    /// Snapshot minus units sold after it.
    pub projected_on_hand: Option<i64>,
    /// Net units over the last 7 days of hours ending at `as_of`.
    pub units_7d: i64,
    /// Units per day over those 7 days.
    pub velocity_per_day: f64,
    /// Days the projected stock lasts at that velocity; `null` when nothing sells (unknown,
    /// not zero).
    pub days_of_cover: Option<f64>,
    /// Units that last the lead time at the velocity.
    pub reorder_point: i64,
    /// Reorder lead time, days.
    pub lead_time_days: i64,
    /// `ok`, `low`, `critical` or `stockout`.
    pub risk_level: String,
    /// Event time the series first left `ok` in its current episode.
    pub first_flagged_at: Option<DateTime<Utc>>,
    /// Event time of the latest sale or snapshot applied.
    pub as_of: Option<DateTime<Utc>>,
}

impl From<RiskRow> for InventoryRisk {
    fn from(r: RiskRow) -> Self {
        Self {
            store_id: r.store_id,
            sku: r.sku,
            snapshot_at: r.snapshot_at,
            snapshot_on_hand: r.snapshot_on_hand,
            units_sold_after: r.units_sold_after,
            projected_on_hand: r.projected_on_hand,
            units_7d: r.units_7d,
            velocity_per_day: r.velocity_per_day,
            days_of_cover: r.days_of_cover,
            reorder_point: r.reorder_point,
            lead_time_days: r.lead_time_days,
            risk_level: r.risk_level,
            first_flagged_at: r.first_flagged_at,
            as_of: r.as_of,
        }
    }
}

/// A page of inventory risks.
#[derive(Debug, Serialize, ToSchema)]
pub struct RiskPage {
    /// The rows, worst first: level, then fewest days of cover, then store and SKU.
    pub items: Vec<InventoryRisk>,
    /// The limit asked for.
    pub limit: u32,
    /// The offset asked for.
    pub offset: u64,
    /// The offset of the next page; `null` on the last page.
    pub next_offset: Option<u64>,
}

/// Stock at risk, worst first, filtered.
#[utoipa::path(
    get,
    path = "/api/v1/inventory-risks",
    tag = "orders",
    params(
        ("risk_level" = Option<String>, Query, pattern = "^(ok|low|critical|stockout)$", description = "Only this level"),
        ("store_id" = Option<i64>, Query, minimum = 1, description = "Only this store"),
        ("at_risk" = Option<bool>, Query, description = "`true`: only levels other than ok; `false`: only ok"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Rows per page, 1..=500; default 50"),
        ("offset" = Option<u64>, Query, minimum = 0, maximum = 1000000, description = "Rows to skip; default 0"),
    ),
    responses(
        (status = 200, description = "A page of inventory risks", body = RiskPage),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 503, description = "The store is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<RiskPage>> {
    let p = Params::parse(q, &["risk_level", "store_id", "at_risk", "limit", "offset"])?;
    let filter = RiskFilter {
        risk_level: p.one_of("risk_level", &LEVELS)?,
        store_id: p.int("store_id", 1, i64::MAX)?,
        at_risk: p.flag("at_risk")?,
    };
    let page = p.page()?;
    let rows = reader(&s)?.inventory_risks(&filter, page).await?;
    Ok(Json(RiskPage {
        items: rows.items.into_iter().map(InventoryRisk::from).collect(),
        limit: rows.limit,
        offset: rows.offset,
        next_offset: rows.next_offset,
    }))
}
