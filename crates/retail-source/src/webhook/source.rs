//! The receiver: one axum route per webhook source, `POST /ingest/<path>`, answering 202 only
//! after the events are durably in the log.
//!
//! A request goes through, in order: the in-flight limit (429), pause, shutdown and the
//! landing's backlog (503, with `Retry-After`), the bearer token (401), `Content-Type` and
//! `Content-Encoding` (415), a declared `Content-Length` over `max_body_bytes` (413), all from
//! the head before a byte of the body is read; then the body, within `body_timeout_ms` (408,
//! connection closed) and `max_body_bytes` (413); then the HMAC signature over it (401), gzip
//! and size again (413), framing (400), `Idempotency-Key` (a remembered answer is sent again), decoding every item (422 listing every problem, or with `partial = true` the
//! good items land and the bad ones go to the dead letters), then one append. A log that
//! refuses for now gives 503: nothing of the request is kept (a failed round is undone whole,
//! also one that rolled a segment, ADR 0021); the sender resends the identical request with the
//! same `Idempotency-Key`, which lands it once even if an earlier attempt's answer was lost. A
//! refusal because the log's disk budget is reached says so (`disk_budget`), and `/health`
//! shows the source `retrying` with the log's reason until an append succeeds. A log writer
//! that stopped (a failed fsync or segment creation) gives 500: only a restart helps.
//!
//! Event ids missing from the input are derived from the `Idempotency-Key` and the item's
//! position, or without a key from the item's bytes, so a retried request lands once even
//! after a crash between the append and the answer (ADR 0007).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use retail_core::event::topics;
use retail_log::ProducerRecord;
use serde::Serialize;
use sha2::Digest;
use tokio::sync::Semaphore;
use tracing::{debug, error, info, warn};

use super::auth;
use super::body::{self, BodyError, Format};
use super::config::WebhookConfig;
use super::idempotency::{Answer, Answers, Lookup};
use crate::context::Backlog;
use crate::headers;
use crate::record::{self, event_record_with_value, reject};
use crate::runtime::SourceRuntime;

/// One webhook receiver's shared state.
#[derive(Debug)]
pub struct Receiver {
    config: WebhookConfig,
    runtime: SourceRuntime,
    backlog: Backlog,
    answers: Answers,
    in_flight: Arc<Semaphore>,
    stopping: AtomicBool,
}

/// A problem with one item of a request.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// 1-based line (NDJSON) or array index (JSON array) of the item.
    pub line: usize,
    /// Field path, e.g. `qty`; empty for the whole item.
    pub path: String,
    /// What is wrong, naming the value received.
    pub message: String,
}

#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    problems: &'a [Problem],
}

#[derive(Debug, Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

impl Receiver {
    /// A receiver for `config`, appending through `runtime`.
    pub fn new(config: WebhookConfig, runtime: SourceRuntime, backlog: Backlog) -> Self {
        let answers = Answers::new(
            Duration::from_secs(config.idempotency_ttl_s),
            config.idempotency_capacity,
        );
        let in_flight = Arc::new(Semaphore::new(config.max_in_flight as usize));
        Self {
            config,
            runtime,
            backlog,
            answers,
            in_flight,
            stopping: AtomicBool::new(false),
        }
    }

    /// The route. The handler reads the body itself, after the checks the head allows, within
    /// `max_body_bytes` (gzip bodies are limited again once inflated) and `body_timeout_ms`.
    pub fn router(self: Arc<Self>) -> Router {
        let path = format!("/ingest/{}", self.config.path());
        Router::new().route(&path, post(receive)).with_state(self)
    }

    /// Refuses new requests (503) and waits until those in flight have their answer, so that
    /// everything acknowledged is on the log before the landing drains it.
    pub async fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _all = self.in_flight.acquire_many(self.config.max_in_flight).await;
        info!(message = "webhook stopped", source = %self.runtime.name());
    }

    /// Everything that can be checked from the head, before any of the body is read: the
    /// answer to send at once, or the body's format.
    fn check_head(&self, headers: &HeaderMap) -> Result<Format, Answer> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "stopping",
                "the pipeline is stopping; retry later",
                &[],
            ));
        }
        if self.runtime.is_paused() {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "paused",
                &format!(
                    "source {:?} is paused by an operator; retry later",
                    self.runtime.name()
                ),
                &[],
            ));
        }
        let behind = self.backlog.records();
        if self.config.max_backlog_records > 0 && behind > self.config.max_backlog_records {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "backlog",
                &format!(
                    "the store is {behind} records behind the log (bound {}); retry later",
                    self.config.max_backlog_records
                ),
                &[],
            ));
        }
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Err(e) = auth::check_bearer(&self.config.bearer_tokens, get(header::AUTHORIZATION.as_str())) {
            return Err(error(StatusCode::UNAUTHORIZED, "unauthorized", &e.0, &[]));
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let Some(format) = Format::from_content_type(content_type) else {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                &format!(
                    "Content-Type {content_type:?} is not accepted: send application/json (an event or an array) \
                     or application/x-ndjson (one event per line)"
                ),
                &[],
            ));
        };
        match get(header::CONTENT_ENCODING.as_str()) {
            None | Some("identity") => {}
            Some(e) if e.eq_ignore_ascii_case("gzip") => {}
            Some(other) => {
                return Err(error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_encoding",
                    &format!("Content-Encoding {other:?} is not accepted: send gzip or nothing"),
                    &[],
                ))
            }
        }
        let declared = get(header::CONTENT_LENGTH.as_str()).and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.config.max_body_bytes as u64) {
            return Err(body_error(&BodyError::TooLarge(self.config.max_body_bytes)));
        }
        Ok(format)
    }

    /// Reads the body within `max_body_bytes` and `body_timeout_ms`.
    async fn read_body(&self, body: Body) -> Result<Bytes, Answer> {
        let limit = self.config.max_body_bytes;
        let deadline = Duration::from_millis(self.config.body_timeout_ms);
        match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.is::<LengthLimitError>() => Err(body_error(&BodyError::TooLarge(limit))),
            Ok(Err(e)) => Err(error(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                &format!("the body could not be read: {e}"),
                &[],
            )),
            Err(_) => {
                self.runtime.rejected(1);
                debug!(message = "webhook body too slow", source = %self.runtime.name(), timeout_ms = self.config.body_timeout_ms);
                Err(error(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    &format!(
                        "the body did not arrive within {} ms (body_timeout_ms); nothing was accepted",
                        self.config.body_timeout_ms
                    ),
                    &[],
                ))
            }
        }
    }

    /// The request once its body is in: the signature over it, gzip, framing, the
    /// `Idempotency-Key`, decoding and the append.
    async fn handle(&self, headers: &HeaderMap, format: Format, body: &[u8]) -> Answer {
        if let Err(e) = self.check_signature(headers, body) {
            return error(StatusCode::UNAUTHORIZED, "unauthorized", &e.0, &[]);
        }
        let inflated;
        let gzip = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
        let body = if gzip {
            match body::gunzip(body, self.config.max_body_bytes) {
                Ok(b) => {
                    inflated = b;
                    &inflated[..]
                }
                Err(e) => return body_error(&e),
            }
        } else {
            body
        };
        let items = match body::items(body, format) {
            Ok(items) => items,
            Err(e) => return body_error(&e),
        };
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        // Only a key needs the body's hash (to tell a retry from a reuse of the key); without one
        // hashing every body cost 2% of a batch benchmark's CPU for nothing.
        let keyed = key.map(|k| (k, <[u8; 32]>::from(sha2::Sha256::digest(body))));
        if let Some((key, body_hash)) = &keyed {
            match self.answers.lookup(key, body_hash) {
                Lookup::Replay(answer) => return answer,
                Lookup::Conflict => {
                    return error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "idempotency_key_reused",
                        "this Idempotency-Key was used for a request with another body",
                        &[],
                    )
                }
                Lookup::New => {}
            }
        }
        let answer = self.ingest(&items, key).await;
        if let Some((key, body_hash)) = keyed {
            if answer.status == 202 || answer.status == 422 {
                self.answers.remember(key, body_hash, answer.clone());
            }
        }
        answer
    }

    fn check_signature(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), auth::Unauthorized> {
        if let Some(secret) = &self.config.hmac_secret {
            auth::check_signature(
                secret.as_bytes(),
                &self.config.signature_header,
                headers
                    .get(&self.config.signature_header)
                    .and_then(|v| v.to_str().ok()),
                body,
                chrono::Utc::now().timestamp(),
                self.config.replay_window_s,
            )?;
        }
        Ok(())
    }

    /// Decodes every item, then appends the good ones (and, with `partial`, the bad ones as
    /// they came, for the dead letters) in one append.
    async fn ingest(&self, items: &[body::Item<'_>], key: Option<&str>) -> Answer {
        let name = self.runtime.name();
        self.runtime.received(items.len() as u64);
        let mut records = Vec::with_capacity(items.len());
        let mut ids = Vec::with_capacity(items.len());
        let mut problems = Vec::new();
        let mut bad = Vec::new();
        let mut seed = Vec::with_capacity(64);
        for item in items {
            // The seed of a derived id is built only when an event has no id (building it up
            // front copied every item into it, a memcpy per event for nothing).
            let (kind, what, position): (&[u8], &[u8], usize) = match key {
                Some(k) => (b"|key|", k.as_bytes(), item.position),
                None => (b"|item|", item.bytes, 0),
            };
            let mut derived = false;
            let decoded = retail_core::decode_with(item.bytes, name, |ts| {
                derived = true;
                seed.clear();
                seed.extend_from_slice(name.as_bytes());
                seed.extend_from_slice(kind);
                seed.extend_from_slice(what);
                body::derived_id(ts, &seed, position)
            });
            match decoded {
                Ok(event) => {
                    ids.push(event.event_id);
                    records.push(event_record_with_value(
                        &event,
                        passthrough(item.bytes, &event, derived),
                    ));
                }
                Err(e) => {
                    for p in e.problems {
                        problems.push(Problem {
                            line: item.position,
                            path: p.path,
                            message: p.message,
                        });
                    }
                    bad.push(item);
                }
            }
        }
        let accepted = records.len();
        if !bad.is_empty() {
            self.runtime.rejected(bad.len() as u64);
            if !self.config.partial {
                let message = format!(
                    "{} of {} events are invalid; nothing was accepted (this source takes whole batches only)",
                    bad.len(),
                    items.len()
                );
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_events",
                    &message,
                    &problems,
                );
            }
            // Carried to the landing as they came: it dead-letters them with their reason and
            // log position, like any other record that does not decode.
            records.extend(bad.iter().map(|item| self.reject_record(item, key)));
        }
        if records.is_empty() {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_events",
                "no valid event",
                &problems,
            );
        }
        match self.runtime.append_once(records, accepted as u64).await {
            Ok(_) => Answer {
                status: 202,
                body: accepted_body(&ids, bad.len(), self.config.partial, &problems),
            },
            Err(crate::Error::Log(e @ retail_log::Error::DiskBudget { .. })) => {
                debug!(message = "webhook append held back by the log's disk budget", source = %name, error = %e);
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "disk_budget",
                    "the log's disk budget is reached until the store catches up; nothing was accepted, retry later",
                    &[],
                )
            }
            Err(e) if e.is_retryable() => {
                warn!(message = "webhook append refused for now", source = %name, error = %e);
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "log_unavailable",
                    "the log cannot take events right now and kept none of this request; retry \
                     later with the identical request and the same Idempotency-Key (event ids \
                     derive from the key and the line), so that it lands once even if an earlier \
                     attempt got through",
                    &[],
                )
            }
            Err(e) if e.needs_restart() => {
                error!(message = "webhook append failed: the log writer stopped", source = %name, error = %e);
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "log_writer_stopped",
                    "the log writer stopped after a failed fsync or segment creation; the server \
                     must be restarted before it accepts events (its log and /health have the \
                     detail); resend this request with the same Idempotency-Key after the restart",
                    &[],
                )
            }
            Err(e) => {
                warn!(message = "webhook append failed", source = %name, error = %e);
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "appending to the log failed; nothing was accepted; the server log has the detail",
                    &[],
                )
            }
        }
    }

    /// A refused item as a record: its bytes as they came, on the sales topic, with the
    /// source header, so the landing's dead letter names the source and the log position.
    /// Under an `Idempotency-Key` it also carries an id derived from the key and the line, so
    /// that a request retried after a crash (its answer forgotten, its bad lines appended
    /// again) is dead-lettered once.
    fn reject_record(&self, item: &body::Item<'_>, key: Option<&str>) -> ProducerRecord {
        let mut headers = vec![record::header(headers::SOURCE, self.runtime.name().as_bytes())];
        if let Some(key) = key {
            let id = reject_id(self.runtime.name(), key, item.position);
            headers.push(record::header(reject::ID, id.as_bytes()));
        }
        ProducerRecord {
            topic: topics::SALES.to_owned(),
            partition: None,
            key: None,
            value: item.bytes.to_vec(),
            headers,
            timestamp_ms: None,
        }
    }
}

/// The in-flight permit comes first, so that at most `max_in_flight` bodies are read at once
/// (their memory bounded), and a request over it is refused at once rather than queued; then
/// the head is checked and only then the body read, within its deadline.
async fn receive(State(r): State<Arc<Receiver>>, request: Request) -> Response {
    let Ok(_permit) = r.in_flight.clone().try_acquire_owned() else {
        return respond(error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            &format!(
                "more than {} requests in flight on this source (max_in_flight); retry shortly",
                r.config.max_in_flight
            ),
            &[],
        ));
    };
    let (parts, body) = request.into_parts();
    let format = match r.check_head(&parts.headers) {
        Ok(format) => format,
        Err(answer) => return respond(answer),
    };
    let body = match r.read_body(body).await {
        Ok(body) => body,
        Err(answer) => return respond(answer),
    };
    respond(r.handle(&parts.headers, format, &body).await)
}

/// The id of the refused line at `position` of a request with `key`, as text: a UUIDv7 of the
/// epoch (a refused line has no trusted time) whose other bits hash the source, the key and the
/// position, apart from the ids of events (`|reject|`, not `|key|`).
fn reject_id(source: &str, key: &str, position: usize) -> String {
    let seed = [source.as_bytes(), b"|reject|", key.as_bytes()].concat();
    body::derived_id(chrono::DateTime::UNIX_EPOCH, &seed, position)
        .hyphenated()
        .to_string()
}

/// The 202 answer: `{"accepted":2,"event_ids":["…","…"],"rejected":0,"partial":false}`, with
/// `"problems":[…]` after them when there are any: the events appended, their ids in the
/// order of the request, the items refused (with `partial = true`; they went to the dead
/// letters), whether good items of a batch with bad ones are accepted, and every problem per
/// line. Written by hand: serde escaped each id's 36 characters one at a time, 5% of a batch.
fn accepted_body(ids: &[uuid::Uuid], rejected: usize, partial: bool, problems: &[Problem]) -> Vec<u8> {
    use std::io::Write;
    let mut body = Vec::with_capacity(80 + ids.len() * 39);
    let _ = write!(body, "{{\"accepted\":{},\"event_ids\":[", ids.len());
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.push(b'"');
        body.extend_from_slice(
            id.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .as_bytes(),
        );
        body.push(b'"');
    }
    let _ = write!(body, "],\"rejected\":{rejected},\"partial\":{partial}");
    if !problems.is_empty() {
        body.extend_from_slice(b",\"problems\":");
        let _ = serde_json::to_writer(&mut body, problems);
    }
    body.push(b'}');
    body
}

fn body_error(e: &BodyError) -> Answer {
    match e {
        BodyError::TooLarge(max) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            &format!("the body is larger than this source's limit of {max} bytes (max_body_bytes)"),
            &[],
        ),
        BodyError::Unreadable(m) => error(StatusCode::BAD_REQUEST, "unreadable_body", m, &[]),
    }
}

fn error(status: StatusCode, code: &str, message: &str, problems: &[Problem]) -> Answer {
    let body = serde_json::to_vec(&ErrorBody {
        error: ErrorDetail { code, message },
        problems,
    })
    .unwrap_or_default();
    Answer {
        status: status.as_u16(),
        body,
    }
}

fn respond(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, answer.body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    match status {
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        StatusCode::UNAUTHORIZED => {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // The rest of a body that did not arrive in time is not read: the connection cannot
        // carry another request, and closing it frees its slot.
        StatusCode::REQUEST_TIMEOUT => {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        _ => {}
    }
    response
}

/// The record value of a decoded line: the line as it came, with the derived `event_id`
/// written in front when it had none. The landing decodes it to the same event (same
/// decoder, same bytes, the `source` header as the default source), so re-encoding it would
/// only cost time. An event too close to the size limit for the inserted id is re-encoded.
fn passthrough(line: &[u8], event: &retail_core::Event, derived: bool) -> Vec<u8> {
    const ID_FIELD: usize = r#""event_id":"00000000-0000-0000-0000-000000000000","#.len();
    if !derived {
        return line.to_vec();
    }
    if line.first() != Some(&b'{') || line.len() + ID_FIELD > retail_core::event::MAX_EVENT_BYTES {
        return event.to_json();
    }
    let mut value = Vec::with_capacity(line.len() + ID_FIELD + 1);
    value.extend_from_slice(b"{\"event_id\":\"");
    value.extend_from_slice(
        event
            .event_id
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
            .as_bytes(),
    );
    value.extend_from_slice(b"\",");
    value.extend_from_slice(&line[1..]);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 202 answer as serde would write it.
    #[derive(Serialize)]
    struct Accepted<'a> {
        accepted: usize,
        event_ids: &'a [uuid::Uuid],
        rejected: usize,
        partial: bool,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        problems: &'a [Problem],
    }

    #[test]
    fn the_accepted_answer_is_the_json_serde_writes() {
        let ids = [uuid::Uuid::now_v7(), uuid::Uuid::nil(), uuid::Uuid::max()];
        let problems = [Problem {
            line: 2,
            path: "qty".to_owned(),
            message: "must be a non-zero integer, got \"two\"\n\u{1}".to_owned(),
        }];
        for (ids, rejected, partial, problems) in [
            (&ids[..], 0, false, &[][..]),
            (&ids[..1], 1, true, &problems[..]),
            (&[][..], 1, true, &problems[..]),
        ] {
            let serde = serde_json::to_vec(&Accepted {
                accepted: ids.len(),
                event_ids: ids,
                rejected,
                partial,
                problems,
            })
            .expect("serialises");
            assert_eq!(
                String::from_utf8(accepted_body(ids, rejected, partial, problems)).expect("utf-8"),
                String::from_utf8(serde).expect("utf-8")
            );
        }
    }

    #[test]
    fn a_passed_through_line_decodes_to_the_same_event() {
        let line = br#"{ "type":"sale","store_id":3,"sku":9,"qty":2,"unit_price":"1.50","ts":"2024-08-12T10:00:00Z"}"#;
        let id = uuid::Uuid::now_v7();
        let event = retail_core::decode_with(line, "pos", |_| id).expect("valid");
        let value = passthrough(line, &event, true);
        let again = retail_core::decode_with(&value, "pos", |_| uuid::Uuid::nil()).expect("still valid");
        assert_eq!(again, event);
        let with_id = passthrough(&value, &again, false);
        assert_eq!(with_id, value, "a line with its own id is kept as it came");
    }
}
