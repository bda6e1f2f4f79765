//! Store summaries: the catalog's stores with their sales over a range.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use retail_sink::read::{Page, StoreSummary};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::params::{parse_int, Params, RawParams};
use super::reader;
use super::sales::today_range;
use crate::server::ServeState;

/// A page of stores.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoreList {
    /// Range start (inclusive).
    pub from: DateTime<Utc>,
    /// Range end (exclusive).
    pub to: DateTime<Utc>,
    /// Stores by id, with their sales over the range.
    #[serde(flatten)]
    pub page: Page<StoreSummary>,
}

/// Stores with their sales over a range (hour precision).
#[utoipa::path(
    get,
    path = "/api/v1/stores",
    tag = "stores",
    params(
        ("from" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "RFC 3339, inclusive; default midnight UTC today"),
        ("to" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "RFC 3339, exclusive; default now; at most 93 days after `from`"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Stores per page, 1..=500; default 50"),
        ("offset" = Option<u64>, Query, minimum = 0, maximum = 1000000, description = "Stores to skip; default 0"),
    ),
    responses(
        (status = 200, description = "A page of stores", body = StoreList),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 503, description = "The store is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<StoreList>> {
    let p = Params::parse(q, &["from", "to", "limit", "offset"])?;
    let (from, to) = today_range(&p)?;
    let page = p.page()?;
    let page = reader(&s)?.stores(from, to, page).await?;
    Ok(Json(StoreList { from, to, page }))
}

/// One store.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoreDetail {
    /// Range start (inclusive).
    pub from: DateTime<Utc>,
    /// Range end (exclusive).
    pub to: DateTime<Utc>,
    /// The store with its sales over the range.
    #[serde(flatten)]
    pub store: StoreSummary,
}

/// One store with its sales over a range (hour precision).
#[utoipa::path(
    get,
    path = "/api/v1/stores/{store_id}",
    tag = "stores",
    params(
        ("store_id" = i64, Path, minimum = 1, description = "Store id"),
        ("from" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "RFC 3339, inclusive; default midnight UTC today"),
        ("to" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "RFC 3339, exclusive; default now"),
    ),
    responses(
        (status = 200, description = "The store", body = StoreDetail),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "Unknown store", body = ErrorBody),
        (status = 503, description = "The store is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn one(
    State(s): State<ServeState>,
    Path(id): Path<String>,
    q: RawParams,
) -> ApiResult<Json<StoreDetail>> {
    let id = parse_int("store_id", &id, 1, i64::MAX)?;
    let p = Params::parse(q, &["from", "to"])?;
    let (from, to) = today_range(&p)?;
    let store = reader(&s)?.store_summary(id, from, to).await?.ok_or_else(|| {
        ApiError::not_found(
            Some("store_id"),
            format!("no store with store_id {id} in the catalog"),
        )
    })?;
    Ok(Json(StoreDetail { from, to, store }))
}
