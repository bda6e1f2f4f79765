//! Sales over time: per minute or per hour, for one store or all, and totals over a range.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, TimeDelta, Utc};
use retail_sink::read::{Grain, SalesBucket, Totals};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::params::{Params, RawParams};
use super::reader;
use crate::server::ServeState;

/// A sales series.
#[derive(Debug, Serialize, ToSchema)]
pub struct SalesSeries {
    /// `minute` or `hour`.
    pub grain: Grain,
    /// The store; `null` for all stores summed.
    pub store_id: Option<i64>,
    /// Range start (inclusive).
    pub from: DateTime<Utc>,
    /// Range end (exclusive).
    pub to: DateTime<Utc>,
    /// One bucket per window with sales, by window start.
    pub items: Vec<SalesBucket>,
}

/// Reads `store_id` and checks the store exists.
pub(super) async fn store_id(s: &ServeState, p: &Params) -> ApiResult<Option<i64>> {
    let Some(id) = p.int("store_id", 1, i64::MAX)? else {
        return Ok(None);
    };
    match reader(s)?.store(id).await? {
        Some(_) => Ok(Some(id)),
        None => Err(ApiError::not_found(
            Some("store_id"),
            format!("no store with store_id {id} in the catalog"),
        )),
    }
}

async fn series(s: ServeState, q: RawParams, grain: Grain) -> ApiResult<Json<SalesSeries>> {
    let p = Params::parse(q, &["store_id", "from", "to"])?;
    let (default_span, max_span) = match grain {
        Grain::Minute => (TimeDelta::hours(1), TimeDelta::days(1)),
        Grain::Hour => (TimeDelta::days(1), TimeDelta::days(93)),
    };
    let (from, to) = p.range(default_span, max_span)?;
    let store_id = store_id(&s, &p).await?;
    let items = reader(&s)?.sales(grain, store_id, from, to).await?;
    Ok(Json(SalesSeries {
        grain,
        store_id,
        from,
        to,
        items,
    }))
}

/// Sales per minute.
#[utoipa::path(
    get,
    path = "/api/v1/sales/per-minute",
    tag = "sales",
    params(
        ("store_id" = Option<i64>, Query, minimum = 1, description = "One store; default all stores summed"),
        ("from" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "RFC 3339, inclusive; default `to` minus 1 hour"),
        ("to" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "RFC 3339, exclusive; default now; at most 24 hours after `from`"),
    ),
    responses(
        (status = 200, description = "One bucket per minute with sales", body = SalesSeries),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "Unknown store", body = ErrorBody),
        (status = 503, description = "The store is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn per_minute(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<SalesSeries>> {
    series(s, q, Grain::Minute).await
}

/// Sales per hour.
#[utoipa::path(
    get,
    path = "/api/v1/sales/per-hour",
    tag = "sales",
    params(
        ("store_id" = Option<i64>, Query, minimum = 1, description = "One store; default all stores summed"),
        ("from" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "RFC 3339, inclusive; default `to` minus 24 hours"),
        ("to" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "RFC 3339, exclusive; default now; at most 93 days after `from`"),
    ),
    responses(
        (status = 200, description = "One bucket per hour with sales", body = SalesSeries),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "Unknown store", body = ErrorBody),
        (status = 503, description = "The store is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn per_hour(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<SalesSeries>> {
    series(s, q, Grain::Hour).await
}

/// Totals over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct SalesTotals {
    /// Range start (inclusive).
    pub from: DateTime<Utc>,
    /// Range end (exclusive).
    pub to: DateTime<Utc>,
    /// The sums.
    #[serde(flatten)]
    pub totals: Totals,
}

/// Sales totals of all stores over a range (minute precision), e.g. revenue today.
#[utoipa::path(
    get,
    path = "/api/v1/sales/totals",
    tag = "sales",
    params(
        ("from" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "RFC 3339, inclusive; default midnight UTC today"),
        ("to" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "RFC 3339, exclusive; default now; at most 93 days after `from`"),
    ),
    responses(
        (status = 200, description = "Sums over the range", body = SalesTotals),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 503, description = "The store is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn totals(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<SalesTotals>> {
    let p = Params::parse(q, &["from", "to"])?;
    let (from, to) = today_range(&p)?;
    let totals = reader(&s)?.totals(from, to).await?;
    Ok(Json(SalesTotals { from, to, totals }))
}

/// `from`/`to` defaulting to the UTC day of `to` so far (`to` = now), at most 93 days.
pub(super) fn today_range(p: &Params) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    p.range_from(
        |to| {
            let midnight = to.date_naive().and_time(chrono::NaiveTime::MIN).and_utc();
            // At midnight sharp "so far" is empty: take the day that just ended.
            if midnight == to {
                to - TimeDelta::days(1)
            } else {
                midnight
            }
        },
        TimeDelta::days(93),
    )
}
