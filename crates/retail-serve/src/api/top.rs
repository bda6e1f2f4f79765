//! The seed's two rankings: top cities of a day by revenue, top sellers per country.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use retail_sink::read::{CitySales, SellerSales};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::params::{Params, RawParams};
use super::reader;
use crate::server::ServeState;

/// Rankings return at most this many rows (per country for sellers).
pub const MAX_RANK_LIMIT: u32 = 100;
const DEFAULT_RANK_LIMIT: u32 = 10;

/// The cities of one day.
#[derive(Debug, Serialize, ToSchema)]
pub struct CityRanking {
    /// The UTC day.
    pub day: NaiveDate,
    /// Cities by rank.
    pub items: Vec<CitySales>,
}

/// Top cities by revenue on a UTC day.
#[utoipa::path(
    get,
    path = "/api/v1/top-sales/by-city",
    tag = "rankings",
    params(
        ("day" = Option<chrono::NaiveDate>, Query, description = "UTC day YYYY-MM-DD; default today", example = "2026-11-21"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Cities to return, 1..=100; default 10"),
    ),
    responses(
        (status = 200, description = "Cities by rank (ties share a rank)", body = CityRanking),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 503, description = "The store is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn by_city(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<CityRanking>> {
    let p = Params::parse(q, &["day", "limit"])?;
    let day = p.date("day")?.unwrap_or_else(|| Utc::now().date_naive());
    let limit = p.limit(DEFAULT_RANK_LIMIT, MAX_RANK_LIMIT)?;
    let items = reader(&s)?.top_sales_by_city(day, limit).await?;
    Ok(Json(CityRanking { day, items }))
}

/// The sellers of one ranking window.
#[derive(Debug, Serialize, ToSchema)]
pub struct SellerRanking {
    /// The country asked for; `null` for every country.
    pub country: Option<String>,
    /// The window the ranking is of (`null` if there is no data yet).
    pub window_start: Option<DateTime<Utc>>,
    /// Sellers ordered by country, then rank.
    pub items: Vec<SellerSales>,
}

/// Checks an ISO 3166-1 alpha-2 code, as the catalog stores it.
fn country(p: &Params) -> ApiResult<Option<String>> {
    let Some(c) = p.get("country") else {
        return Ok(None);
    };
    if c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(Some(c.to_owned()))
    } else {
        Err(ApiError::invalid(
            "country",
            format!("country must be an ISO 3166-1 alpha-2 code in capitals, like DE, got {c:?}"),
        ))
    }
}

/// Top sellers by revenue within their country.
#[utoipa::path(
    get,
    path = "/api/v1/top-salesmen/by-country",
    tag = "rankings",
    params(
        ("country" = Option<String>, Query, pattern = "^[A-Z]{2}$", description = "ISO 3166-1 alpha-2 code, e.g. DE; default every country"),
        ("window_start" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "RFC 3339 start of the ranking window (30 days); default the latest"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Ranks per country, 1..=100; default 10"),
    ),
    responses(
        (status = 200, description = "Sellers ranked within each country (ties share a rank)", body = SellerRanking),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 503, description = "The store is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn by_country(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<SellerRanking>> {
    let p = Params::parse(q, &["country", "window_start", "limit"])?;
    let country = country(&p)?;
    let window_start = p.time("window_start")?;
    let limit = p.limit(DEFAULT_RANK_LIMIT, MAX_RANK_LIMIT)?;
    let items = reader(&s)?
        .top_salesmen_by_country(country.as_deref(), window_start, limit)
        .await?;
    let window_start = items.first().map(|i| i.window_start).or(window_start);
    Ok(Json(SellerRanking {
        country,
        window_start,
        items,
    }))
}
