//! Dead letters: list, inspect, and resubmit a fixed payload. Resubmitting appends the fixed
//! event to the log on its own topic, exactly as a source would, and marks the dead letter;
//! the landing then takes it like any other event (de-duplicated by `event_id`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use retail_core::Event;
use retail_sink::read::{Claim, DeadLetterDetail, DeadLetterSummary, Page};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::params::{parse_int, Params, RawParams};
use super::reader;
use crate::server::ServeState;

/// Dead letters, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/dead-letters",
    tag = "data quality",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Rows per page, 1..=500; default 50"),
        ("offset" = Option<u64>, Query, minimum = 0, maximum = 1000000, description = "Rows to skip; default 0"),
    ),
    responses(
        (status = 200, description = "A page of dead letters, without payloads", body = Page<DeadLetterSummary>),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 503, description = "The store is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<Page<DeadLetterSummary>>> {
    let p = Params::parse(q, &["limit", "offset"])?;
    let page = p.page()?;
    Ok(Json(reader(&s)?.dead_letters(page).await?))
}

fn id(raw: &str) -> ApiResult<i64> {
    parse_int("id", raw, 1, i64::MAX)
}

async fn find(s: &ServeState, id: i64) -> ApiResult<DeadLetterDetail> {
    reader(s)?
        .dead_letter(id)
        .await?
        .ok_or_else(|| ApiError::not_found(Some("id"), format!("no dead letter with id {id}")))
}

/// One dead letter with its payload.
#[utoipa::path(
    get,
    path = "/api/v1/dead-letters/{id}",
    tag = "data quality",
    params(("id" = i64, Path, minimum = 1, description = "Dead letter id")),
    responses(
        (status = 200, description = "The dead letter", body = DeadLetterDetail),
        (status = 400, description = "The id is not a positive integer", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 404, description = "No such dead letter", body = ErrorBody),
        (status = 503, description = "The store is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn one(
    State(s): State<ServeState>,
    Path(raw): Path<String>,
    q: RawParams,
) -> ApiResult<Json<DeadLetterDetail>> {
    Params::parse(q, &[])?;
    Ok(Json(find(&s, id(&raw)?).await?))
}

/// Where a resubmitted event went.
#[derive(Debug, Serialize, ToSchema)]
pub struct Resubmitted {
    /// The dead letter.
    pub id: i64,
    /// The event's id (the landing de-duplicates by it).
    pub event_id: String,
    /// Log topic.
    pub topic: String,
    /// Log partition.
    pub partition: i32,
    /// Log offset.
    pub offset: i64,
    /// When the dead letter was marked resubmitted.
    pub resubmitted_at: DateTime<Utc>,
}

/// Resubmits a fixed payload for a dead letter: the body is the corrected event as JSON.
#[utoipa::path(
    post,
    path = "/api/v1/dead-letters/{id}/resubmit",
    tag = "data quality",
    params(("id" = i64, Path, minimum = 1, description = "Dead letter id")),
    request_body(
        content = Object,
        content_type = "application/json",
        description = "The fixed event, in the wire format (`type`, `event_id`, `ts`, payload fields)"
    ),
    responses(
        (status = 202, description = "Appended to the log; the landing will take it", body = Resubmitted),
        (status = 400, description = "The id or the body is invalid (the message names the field)", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "The token may only read", body = ErrorBody),
        (status = 404, description = "No such dead letter", body = ErrorBody),
        (status = 409, description = "Already resubmitted", body = ErrorBody),
        (status = 503, description = "The store or the log is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn resubmit(
    State(s): State<ServeState>,
    Path(raw): Path<String>,
    q: RawParams,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Resubmitted>)> {
    Params::parse(q, &[])?;
    let id = id(&raw)?;
    let dead = find(&s, id).await?;
    let event = parse_event(&body, &dead.summary.source, id)?;
    let log = s
        .log()
        .ok_or_else(|| ApiError::unavailable("the log is not open yet; see /health"))?;
    let reader = reader(&s)?;
    if let Some(at) = dead.summary.resubmitted_at {
        return Err(ApiError::conflict(format!(
            "dead letter {id} was already resubmitted at {}",
            at.to_rfc3339()
        )));
    }
    // Append first, then mark (ADR 0015): a crash between the two leaves the letter unmarked
    // and the event on the log; the operator's retry appends the same event again, and the
    // landing's event ledger takes it once. Marking first lost the event in that window (the
    // retry was refused as already resubmitted while nothing had been appended).
    // The one record builder every source uses: same topic, key and headers.
    let record = retail_source::event_record(&event);
    let topic = record.topic.clone();
    let appended = log.append(vec![record]).await.map_err(|e| {
        if e.is_retryable() {
            ApiError::unavailable(format!("the log refused the append for now: {e}"))
        } else {
            ApiError::internal("appending the resubmitted event", &e)
        }
    })?;
    let meta = appended.first().copied().ok_or_else(|| {
        ApiError::internal("appending the resubmitted event", &"the log returned no position")
    })?;
    let resubmitted_at = match reader.claim_dead_letter(id).await? {
        Claim::Claimed(at) => at,
        // A concurrent resubmit marked it between our check and now: both events are on the
        // log, and one event id lands once.
        Claim::AlreadyResubmitted(at) => at,
        // Removed meanwhile (retention): the event is on the log all the same.
        Claim::NotFound => Utc::now(),
    };
    tracing::info!(message = "dead letter resubmitted", id, event_id = %event.event_id, topic, partition = meta.partition, offset = meta.offset);
    Ok((
        StatusCode::ACCEPTED,
        Json(Resubmitted {
            id,
            event_id: event.event_id.to_string(),
            topic,
            partition: meta.partition,
            offset: meta.offset,
            resubmitted_at,
        }),
    ))
}

/// Decodes the fixed payload as the landing would, so a payload that would be dead-lettered
/// again is refused now with the reason.
fn parse_event(body: &[u8], source: &str, letter: i64) -> ApiResult<Event> {
    if body.is_empty() {
        return Err(ApiError::invalid(
            "body",
            "the body must be the fixed event as a JSON object; it is empty",
        ));
    }
    if let Err(e) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body) {
        return Err(ApiError::invalid(
            "body",
            format!("the body must be a JSON object: {e}"),
        ));
    }
    // Without an `event_id`, the id derives from the dead letter: a resubmit retried after a
    // crash (the event appended, the letter not yet marked) lands once.
    let seed = format!("dead-letter/{letter}");
    retail_core::decode_with(body, source, |ts| {
        retail_source::record::derived_id(ts, seed.as_bytes(), 0)
    })
    .map_err(|e| {
        let field = e
            .problems
            .first()
            .map(|p| p.path.clone())
            .filter(|p| !p.is_empty())
            .map_or_else(|| "body".to_owned(), |p| format!("body.{p}"));
        ApiError::invalid(&field, format!("the fixed event is still invalid: {e}"))
    })
}
