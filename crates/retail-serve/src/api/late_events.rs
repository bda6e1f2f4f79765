//! Late events: what arrived after its window closed and was recorded instead of counted.

use axum::extract::State;
use axum::Json;
use retail_sink::read::{LateEvent, Page};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::params::{Params, RawParams};
use super::reader;
use crate::server::ServeState;

/// Late events, newest first, optionally of one aggregate.
#[utoipa::path(
    get,
    path = "/api/v1/late-events",
    tag = "data quality",
    params(
        ("aggregate" = Option<String>, Query, pattern = "^[a-z_][a-z0-9_]{0,62}$", description = "Only this aggregate's, e.g. sales_agg_minute"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Rows per page, 1..=500; default 50"),
        ("offset" = Option<u64>, Query, minimum = 0, maximum = 1000000, description = "Rows to skip; default 0"),
    ),
    responses(
        (status = 200, description = "A page of late events", body = Page<LateEvent>),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 503, description = "The store is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<Page<LateEvent>>> {
    let p = Params::parse(q, &["aggregate", "limit", "offset"])?;
    let aggregate = p.get("aggregate");
    if let Some(a) = aggregate {
        // The processor only accepts plain identifiers as aggregate names.
        let plain = !a.is_empty()
            && a.len() <= 63
            && a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !a.as_bytes()[0].is_ascii_digit();
        if !plain {
            return Err(ApiError::invalid(
                "aggregate",
                format!("aggregate must be an aggregate name (lower-case letters, digits, _), got {a:?}"),
            ));
        }
    }
    let page = p.page()?;
    Ok(Json(reader(&s)?.late_events(aggregate, page).await?))
}
