//! The polling task: asks the service for the payments after the cursor, a page at a time;
//! appends the page (payments as events on `payments`, bad elements as reject records the
//! landing dead-letters) through the durable path; and only then moves the cursor. A full page
//! is followed at once by the next; a short one by `interval_ms` of rest. Faults, HTTP errors
//! and answers that are not SOAP show on `/health` as `retrying` with the source, the endpoint
//! and the fault, and are retried with a doubling backoff; nothing ends the task but shutdown
//! or a log that refuses for good.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use retail_core::event::topics;
use retail_core::health::State;
use retail_core::redact;
use retail_core::{decode_with, Event};
use retail_log::ProducerRecord;
use tracing::{info, warn};

use super::config::{SoapConfig, SoapVersion};
use super::cursor::{Cursor, CursorFile};
use super::xml::{self, Answer, Field, Item};
use crate::record::{derived_id, event_record, header, headers, reject};
use crate::runtime::SourceRuntime;
use crate::{Error, Result};

/// The `reject_kind` of a payment element the source refused.
pub const REJECT_KIND: &str = "soap_payment";

/// A SOAP payments poller.
#[derive(Debug)]
pub struct Poller {
    config: SoapConfig,
    file: CursorFile,
    cursor: Cursor,
    runtime: SourceRuntime,
    partitions: i32,
    client: reqwest::Client,
    /// The endpoint as shown (logs, `/health`, dead letters): its password masked.
    shown: String,
    /// The payment ids this run put on the log at the cursor's instant: an element the service
    /// repeats (one that pages by timestamp only, `>=`) is skipped by them, not by our order of
    /// ids, which need not be the service's.
    seen: HashSet<String>,
}

/// What one page did to the cursor.
enum Landed {
    /// Shutdown came while the log refused: nothing of the page is acknowledged.
    Shutdown,
    /// The page is on the log; whether the cursor moved.
    Done { moved: bool },
}

impl Poller {
    /// Opens the cursor in `state_dir` (a leftover temporary file of a killed write is
    /// removed).
    pub fn open(
        config: SoapConfig,
        state_dir: &Path,
        runtime: SourceRuntime,
        partitions: i32,
    ) -> Result<Self> {
        let file = CursorFile::new(state_dir);
        let _ = std::fs::remove_file(state_dir.join("cursor.json.tmp"));
        let cursor = file.load()?.unwrap_or_else(|| Cursor::start(&config.start));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(|e| {
                Error::Config(format!(
                    "soap source {:?}: building the HTTP client: {e}",
                    config.name
                ))
            })?;
        Ok(Self {
            shown: redact::url(&config.endpoint),
            config,
            file,
            cursor,
            runtime,
            partitions,
            client,
            seen: HashSet::new(),
        })
    }

    /// Polls until shutdown. Only a log error that retrying cannot fix ends it early.
    pub async fn run(mut self) -> Result<()> {
        let result = self.poll().await;
        if let Err(e) = &result {
            self.runtime.set_state(
                State::Failed,
                format!("soap source {:?} stopped: {e}", self.runtime.name()),
            );
        }
        result
    }

    async fn poll(&mut self) -> Result<()> {
        if !self
            .runtime
            .ensure_topics(&[topics::PAYMENTS], self.partitions)
            .await?
        {
            return Ok(());
        }
        info!(
            message = "SOAP poller starting",
            source = %self.runtime.name(), endpoint = %self.shown, cursor = %self.cursor.show(),
        );
        self.runtime.set_state(State::Running, self.running());
        let first = Duration::from_millis(self.config.backoff_initial_ms);
        let most = Duration::from_millis(self.config.backoff_max_ms);
        let interval = Duration::from_millis(self.config.interval_ms);
        let mut backoff = first;
        loop {
            if !self.runtime.wait_unpaused().await {
                return Ok(());
            }
            let fetched = tokio::select! {
                f = self.fetch() => f,
                () = self.runtime.shutdown().wait() => return Ok(()),
            };
            let problem = match fetched {
                Ok(items) => {
                    let full = items.len() >= self.config.page_size as usize;
                    match self.land(items).await? {
                        Landed::Shutdown => return Ok(()),
                        Landed::Done { moved } if full && !moved => Some(format!(
                            "a full page of {} payments did not move the cursor past {}: the service \
                             must answer the payments strictly after ({{cursor_ts}}, {{cursor_id}}) in that \
                             order; raise page_size if it only pages by timestamp",
                            self.config.page_size,
                            self.cursor.show()
                        )),
                        Landed::Done { .. } => {
                            backoff = first;
                            self.runtime.set_state(State::Running, self.running());
                            if full {
                                continue; // the next page at once
                            }
                            None
                        }
                    }
                }
                Err(problem) => Some(problem),
            };
            let rest = match problem {
                None => interval,
                Some(problem) => {
                    let message = format!(
                        "soap source {:?}: polling {} (SOAP {}, cursor {}) failed: {problem}; retrying in {} ms",
                        self.runtime.name(),
                        self.shown,
                        self.config.soap_version.as_str(),
                        self.cursor.show(),
                        backoff.as_millis()
                    );
                    warn!(message = "SOAP poll failed", source = %self.runtime.name(), endpoint = %self.shown, %problem, backoff_ms = backoff.as_millis() as u64);
                    self.runtime.set_state(State::Retrying, message);
                    let rest = backoff;
                    backoff = (backoff * 2).min(most);
                    rest
                }
            };
            tokio::select! {
                () = tokio::time::sleep(rest) => {}
                () = self.runtime.shutdown().wait() => return Ok(()),
            }
        }
    }

    fn running(&self) -> String {
        format!(
            "polling {} every {} ms; cursor {}",
            self.shown,
            self.config.interval_ms,
            self.cursor.show()
        )
    }

    /// One request: the payment elements of the answer, or why there are none.
    async fn fetch(&self) -> std::result::Result<Vec<Item>, String> {
        let c = &self.config;
        let body = xml::render(&c.request, &self.cursor.ts, &self.cursor.id, c.page_size);
        let action = c.soap_action.as_deref().unwrap_or("");
        let request = match c.soap_version {
            SoapVersion::V11 => self
                .client
                .post(&c.endpoint)
                .header("content-type", "text/xml; charset=utf-8")
                .header("soapaction", format!("\"{action}\"")),
            SoapVersion::V12 if action.is_empty() => self
                .client
                .post(&c.endpoint)
                .header("content-type", "application/soap+xml; charset=utf-8"),
            SoapVersion::V12 => self.client.post(&c.endpoint).header(
                "content-type",
                format!("application/soap+xml; charset=utf-8; action=\"{action}\""),
            ),
        };
        let request = match &c.username {
            Some(user) => request.basic_auth(user, c.password.as_deref()),
            None => request,
        };
        let mut response = request
            .body(body)
            .send()
            .await
            .map_err(|e| chain(&e.without_url()))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| chain(&e.without_url()))? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > c.max_answer_bytes {
                return Err(format!(
                    "HTTP {status}: the answer is larger than max_answer_bytes = {}",
                    c.max_answer_bytes
                ));
            }
        }
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return Err(format!(
                "HTTP {status}: the answer is not UTF-8 text (content-type {content_type})"
            ));
        };
        match xml::parse(text, &c.elements) {
            Ok(Answer::Fault(f)) => Err(format!(
                "SOAP {} Fault, code {}: {} (HTTP {status})",
                f.version,
                if f.code.is_empty() { "(none)" } else { &f.code },
                f.reason
            )),
            Ok(Answer::Page(items)) if status.is_success() => Ok(items),
            Ok(Answer::Page(_)) => Err(format!("HTTP {status} with a SOAP envelope that holds no Fault")),
            Err(why) if !status.is_success() => Err(format!(
                "HTTP {status} (content-type {content_type}): {} (not a SOAP envelope: {why})",
                snippet(text)
            )),
            Err(why) => Err(format!(
                "the answer is not a SOAP envelope: {why} (HTTP {status}, content-type {content_type}, begins {:?})",
                snippet(text)
            )),
        }
    }

    /// Appends a page and then moves the cursor to the last keyed element of the page, in the
    /// service's order (not by our comparison of ids: a service may sort ids numerically or by
    /// a collation, and "10" after "9" must land). Only a repeat is skipped: the payment the
    /// cursor names, or one this run already landed at the cursor's instant.
    async fn land(&mut self, items: Vec<Item>) -> Result<Landed> {
        let page = self.cursor.clone();
        let at = page.instant();
        let mut next = page.clone();
        let mut landed = Vec::new();
        let mut records = Vec::with_capacity(items.len());
        let (mut fresh, mut good) = (0, 0);
        for item in &items {
            let key = key(item);
            if key
                .as_ref()
                .is_some_and(|k| k.instant() == at && (k.id == page.id || self.seen.contains(&k.id)))
            {
                continue; // the service repeated a payment already on the log
            }
            fresh += 1;
            match self.event(item, &page) {
                Ok(event) => {
                    records.push(event_record(&event));
                    good += 1;
                }
                Err(reason) => records.push(self.reject(item, &reason, &page)),
            }
            if let Some(k) = key {
                landed.push(k.clone());
                next = k;
            }
        }
        self.runtime.received(fresh);
        if !records.is_empty() {
            let appended = self
                .runtime
                .append_counted(|| records.clone(), Some(good))
                .await?;
            if appended.is_none() {
                return Ok(Landed::Shutdown);
            }
            self.runtime.rejected(fresh - good);
        }
        if next == page {
            return Ok(Landed::Done { moved: false });
        }
        // The page is on the log: only now may the cursor pass it. A failed write is retried
        // (the page would otherwise be polled again, which lands nothing twice but is waste).
        let mut backoff = Duration::from_millis(self.config.backoff_initial_ms);
        while let Err(e) = self.file.save(&next) {
            warn!(message = "writing the SOAP cursor failed, retrying", source = %self.runtime.name(), error = %e);
            self.runtime.set_state(
                State::Retrying,
                format!("soap source {:?}: saving its cursor: {e}", self.runtime.name()),
            );
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.runtime.shutdown().wait() => return Ok(Landed::Shutdown),
            }
            backoff = (backoff * 2).min(Duration::from_millis(self.config.backoff_max_ms));
        }
        // The payments at the new cursor's instant are on the log (the one it names included).
        let now = next.instant();
        if now == at {
            self.seen.insert(page.id);
        } else {
            self.seen.clear();
        }
        self.seen
            .extend(landed.into_iter().filter(|k| k.instant() == now).map(|k| k.id));
        self.cursor = next;
        Ok(Landed::Done { moved: true })
    }

    /// The payment event of an element, or why it is not one (naming the elements). Its id is
    /// derived from the source, the payment id and the status, so the same confirmation polled
    /// again lands once.
    fn event(&self, item: &Item, page: &Cursor) -> std::result::Result<Event, String> {
        let name = self.runtime.name();
        let mut json = serde_json::Map::new();
        json.insert("type".into(), "payment".into());
        json.insert("source".into(), name.into());
        for f in Field::ALL {
            let Some(v) = item.get(f) else { continue };
            let value = match f {
                Field::Timestamp if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                    v.parse::<i64>().map_or_else(|_| v.into(), Into::into)
                }
                Field::Status => v.to_ascii_lowercase().into(),
                _ => v.into(),
            };
            json.insert(f.event_field().into(), value);
        }
        let bytes = serde_json::to_vec(&json).map_err(|e| e.to_string())?;
        let seed = format!(
            "{name}\u{0}soap\u{0}{}\u{0}{}",
            item.get(Field::PaymentId).unwrap_or_default(),
            item.get(Field::Status).unwrap_or_default().to_ascii_lowercase()
        );
        decode_with(&bytes, name, |ts| derived_id(ts, seed.as_bytes(), 0)).map_err(|e| {
            let problems: Vec<String> = e
                .problems
                .iter()
                .map(|p| {
                    let element = Field::ALL
                        .iter()
                        .find(|f| f.event_field() == p.path)
                        .map_or(p.path.as_str(), |f| f.element(&self.config.elements));
                    format!("{element}: {}", p.message)
                })
                .collect();
            format!(
                "{} element {} of the page after cursor {}: {}",
                self.config.elements.record,
                item.position,
                page.show(),
                problems.join("; ")
            )
        })
    }

    /// A refused element as a record: its XML as it came, with the reason, the endpoint and
    /// page as origin file, its position as origin line, and an id from its bytes so the store
    /// keeps one dead letter however often it is polled.
    fn reject(&self, item: &Item, reason: &str, page: &Cursor) -> ProducerRecord {
        let name = self.runtime.name();
        let seed = format!(
            "{name}\u{0}soap-reject\u{0}{}\u{0}{}",
            self.config.endpoint, item.raw
        );
        let ts = item
            .get(Field::Timestamp)
            .and_then(xml::parse_ts)
            .unwrap_or(chrono::DateTime::UNIX_EPOCH);
        let id = derived_id(ts, seed.as_bytes(), 0).to_string();
        let origin = format!("{} page after cursor {}", self.shown, page.show());
        ProducerRecord {
            topic: topics::PAYMENTS.to_owned(),
            partition: None,
            key: None,
            value: item.raw.clone().into_bytes(),
            headers: vec![
                header(headers::SOURCE, name.as_bytes()),
                header(reject::REASON, reason.as_bytes()),
                header(reject::KIND, REJECT_KIND.as_bytes()),
                header(reject::FILE, origin.as_bytes()),
                header(reject::LINE, item.position.to_string().as_bytes()),
                header(reject::ID, id.as_bytes()),
            ],
            timestamp_ms: None,
        }
    }
}

/// The key of an element, if its timestamp and payment id can be read.
fn key(item: &Item) -> Option<Cursor> {
    let ts = item.get(Field::Timestamp)?;
    let id = item.get(Field::PaymentId).filter(|id| !id.is_empty())?;
    xml::parse_ts(ts)?;
    Some(Cursor {
        ts: ts.to_owned(),
        id: id.to_owned(),
    })
}

/// An error with its causes (reqwest's own message leaves out why a connection failed). Its
/// URL is taken out first (`without_url`): it may hold a password, and the message names the
/// endpoint masked.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// The start of an answer for a message: whitespace collapsed, at most 160 characters.
fn snippet(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let s = words.join(" ");
    match s.char_indices().nth(160) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}
