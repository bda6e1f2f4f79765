//! The subscriber task: a persistent MQTT session (fixed client id, `clean_session = false`,
//! QoS 1, manual acknowledgements), whose messages are batched, turned into events, appended
//! through the durable path, and only then acknowledged.
//!
//! Exactly once, from the broker's QoS 1 "at least once":
//! - A message is acknowledged (PUBACK) only after its batch's append returned. Until then the
//!   broker keeps it in the session and sends it again after any reconnect or restart, also
//!   the messages published while we were down.
//! - A second delivery lands once: a message's own `event_id` goes through the landing's event
//!   ledger; a message without `event_id` or `ts` gets its identity back from the journal
//!   (`identity.rs`).
//! - Subscriptions are sent only when the broker has no session for us (or the configured
//!   patterns changed): subscribing again would make the broker resend its retained messages,
//!   which would land as new events.
//!
//! rumqttc's event loop must be polled without pause (it answers pings and sends our acks), so
//! it runs in its own task and hands messages over a bounded channel: when the landing side
//! is slow or paused, the channel fills, the loop stops reading, and the broker stops sending
//! once `inflight` messages wait for their acks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use retail_core::event::topics;
use retail_core::health::State;
use retail_log::ProducerRecord;
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet, Publish, QoS, SubscribeReasonCode};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{info, warn};
use uuid::Uuid;

use super::config::MqttConfig;
use super::identity::{self, Identity, Journal, Key};
use super::topic::Pattern;
use crate::record::{event_record, header, headers, reject};
use crate::runtime::SourceRuntime;
use crate::{Error, Result};

/// The largest MQTT packet (the protocol's 256 MiB remaining-length limit).
const MQTT_MAX_PACKET: usize = 268_435_455;

/// What the event-loop task hands to the subscriber.
#[derive(Debug)]
enum Delivery {
    /// Connected; whether the broker still had our session.
    Connected { session_present: bool },
    /// A message, with the connection it came on.
    Message(Publish, u64),
    /// The broker answered our subscription.
    Subscribed(Vec<SubscribeReasonCode>),
    /// The connection failed; the loop reconnects after `retry_in`.
    Lost { error: String, retry_in: Duration },
}

/// A subscribed MQTT session.
#[derive(Debug)]
pub struct Subscriber {
    config: MqttConfig,
    patterns: Vec<Pattern>,
    journal: Journal,
    runtime: SourceRuntime,
    partitions: i32,
    /// Where the patterns last subscribed are kept (to subscribe again only when they change).
    subscribed_file: PathBuf,
}

impl Subscriber {
    /// Opens the identity journal in `state_dir`.
    pub fn open(
        config: MqttConfig,
        state_dir: &Path,
        runtime: SourceRuntime,
        partitions: i32,
    ) -> Result<Self> {
        Ok(Self {
            patterns: config.patterns()?,
            journal: Journal::open(state_dir)?,
            subscribed_file: state_dir.join("subscribed.json"),
            config,
            runtime,
            partitions,
        })
    }

    /// Runs until shutdown. Broker outages are retried for ever (shown on `/health`); a log
    /// that refuses for good, or a journal that cannot be written, ends the task.
    pub async fn run(mut self) -> Result<()> {
        let result = self.subscribe_and_land().await;
        if let Err(e) = &result {
            self.runtime.set_state(State::Failed, e.to_string());
        }
        result
    }

    async fn subscribe_and_land(&mut self) -> Result<()> {
        if !self.runtime.ensure_topics(&topics::ALL, self.partitions).await? {
            return Ok(());
        }
        // Room for every ack of a full batch and then some: acks are sent with `try_ack`, never
        // awaited, so the subscriber cannot wait on the event loop while the event loop waits
        // on the subscriber's channel.
        let (client, eventloop) = AsyncClient::new(self.options(), 2 * self.config.batch_max + 64);
        let generation = Arc::new(AtomicU64::new(0));
        let (tx, mut rx) = mpsc::channel(self.config.batch_max.max(16));
        let poller = tokio::spawn(poll(eventloop, tx, generation.clone(), self.config.reconnect_ms));
        let result = self.land(&client, &mut rx, &generation).await;
        poller.abort();
        // Not a DISCONNECT: the session stays, with every message not yet acknowledged.
        result
    }

    fn options(&self) -> MqttOptions {
        let c = &self.config;
        let mut o = MqttOptions::new(c.client_id(), c.host.clone(), c.port);
        o.set_keep_alive(Duration::from_secs(c.keep_alive_s))
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_inflight(c.inflight)
            // Any message the protocol allows is read, and a large one dead-lettered by size:
            // a packet over rumqttc's limit would close the connection before we could
            // acknowledge it, the broker would send it again on every reconnect, and the
            // session would be wedged for good while the broker drops what queues behind it.
            .set_max_packet_size(MQTT_MAX_PACKET, 1 << 20);
        if let (Some(user), Some(password)) = (&c.username, &c.password) {
            o.set_credentials(user.clone(), password.clone());
        } else if let Some(user) = &c.username {
            o.set_credentials(user.clone(), "");
        }
        o
    }

    fn broker(&self) -> String {
        format!("{}:{}", self.config.host, self.config.port)
    }

    async fn land(
        &mut self,
        client: &AsyncClient,
        rx: &mut mpsc::Receiver<Delivery>,
        generation: &AtomicU64,
    ) -> Result<()> {
        let linger = Duration::from_millis(self.config.linger_ms);
        loop {
            if !self.runtime.wait_unpaused().await {
                return Ok(());
            }
            let first = tokio::select! {
                d = rx.recv() => d,
                () = self.runtime.shutdown().wait() => return Ok(()),
            };
            let Some(first) = first else { return Ok(()) };
            // Paused while waiting: hold the message, unacknowledged, until resumed.
            if self.runtime.is_paused() && !self.runtime.wait_unpaused().await {
                return Ok(());
            }
            let mut batch = Vec::new();
            match first {
                Delivery::Message(p, g) => batch.push((p, g)),
                other => {
                    self.on_session(client, other).await;
                    continue;
                }
            }
            // Gather what else is there (or comes within `linger`), up to `batch_max`.
            let deadline = tokio::time::Instant::now() + linger;
            let mut held = None;
            while batch.len() < self.config.batch_max {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(Delivery::Message(p, g))) => batch.push((p, g)),
                    Ok(Some(other)) => {
                        held = Some(other);
                        break;
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            if !self.append_and_ack(client, batch, generation).await? {
                return Ok(());
            }
            if let Some(other) = held {
                self.on_session(client, other).await;
            }
        }
    }

    /// Connection events: subscribe when the broker lost our session, show state on `/health`.
    async fn on_session(&mut self, client: &AsyncClient, delivery: Delivery) {
        match delivery {
            Delivery::Connected { session_present } => {
                let filters: BTreeSet<String> = self.patterns.iter().map(Pattern::filter).collect();
                let unchanged = session_present && self.last_subscribed().as_ref() == Some(&filters);
                if unchanged {
                    self.runtime.set_state(
                        State::Running,
                        format!(
                            "connected to {} (session resumed), subscribed to {}",
                            self.broker(),
                            join(&filters)
                        ),
                    );
                } else {
                    // Filters of an earlier configuration would keep delivering into the session.
                    let stale: Vec<String> = self
                        .last_subscribed()
                        .unwrap_or_default()
                        .difference(&filters)
                        .cloned()
                        .collect();
                    for filter in stale {
                        if let Err(e) = client.unsubscribe(filter.clone()).await {
                            warn!(message = "could not unsubscribe", source = %self.runtime.name(), %filter, error = %e);
                        }
                    }
                    let subs = filters
                        .iter()
                        .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                    if let Err(e) = client.subscribe_many(subs).await {
                        warn!(message = "could not send the subscription", source = %self.runtime.name(), error = %e);
                    }
                    self.runtime.set_state(
                        State::Starting,
                        format!(
                            "connected to {}, subscribing to {}",
                            self.broker(),
                            join(&filters)
                        ),
                    );
                }
                info!(message = "connected to the MQTT broker", source = %self.runtime.name(), broker = %self.broker(), session_present);
            }
            Delivery::Subscribed(codes) => {
                let filters: BTreeSet<String> = self.patterns.iter().map(Pattern::filter).collect();
                if codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure)) {
                    self.runtime.set_state(
                        State::Failed,
                        format!(
                            "broker {} refused the subscription to {}",
                            self.broker(),
                            join(&filters)
                        ),
                    );
                    return;
                }
                if let Err(e) = self.remember_subscribed(&filters) {
                    warn!(message = "could not record the subscription", source = %self.runtime.name(), error = %e);
                }
                self.runtime.set_state(
                    State::Running,
                    format!("connected to {}, subscribed to {}", self.broker(), join(&filters)),
                );
            }
            Delivery::Lost { error, retry_in } => {
                warn!(message = "MQTT connection lost", source = %self.runtime.name(), broker = %self.broker(), %error);
                self.runtime.set_state(
                    State::Retrying,
                    format!(
                        "broker {}: {error}; reconnecting in {} ms",
                        self.broker(),
                        retry_in.as_millis()
                    ),
                );
            }
            Delivery::Message(..) => {}
        }
    }

    /// Converts, journals, appends and then acknowledges one batch. `false` on shutdown
    /// before the append returned (nothing acknowledged: the broker sends it again).
    async fn append_and_ack(
        &mut self,
        client: &AsyncClient,
        batch: Vec<(Publish, u64)>,
        generation: &AtomicU64,
    ) -> Result<bool> {
        self.runtime.received(batch.len() as u64);
        let mut given: Vec<(Key, Identity)> = Vec::new();
        let mut records = Vec::with_capacity(batch.len());
        let mut good = 0u64;
        for (p, _) in &batch {
            let record = self.convert(p, &mut given);
            if record.headers.iter().any(|h| h.key == reject::REASON) {
                self.runtime.rejected(1);
            } else {
                good += 1;
            }
            records.push(record);
        }
        self.journal.record(&given)?;
        if self
            .runtime
            .append_counted(|| records.clone(), Some(good))
            .await?
            .is_none()
        {
            return Ok(false);
        }
        let current = generation.load(Ordering::Acquire);
        for (p, g) in &batch {
            // An ack for a message of a lost connection would be for the broker's next use of
            // that packet id: the broker sends the message again instead.
            // A failed ack only leaves the message unacknowledged: the broker sends it again
            // (DUP set) and the journal gives it the same identity.
            if *g == current {
                if let Err(e) = client.try_ack(p) {
                    warn!(message = "could not acknowledge", source = %self.runtime.name(), topic = %p.topic, error = %e);
                }
            }
        }
        Ok(true)
    }

    /// The identity of a delivery: the one given before if the broker says it is a resend
    /// and the journal knows it, else a new one (noted in `given`).
    fn identity(&self, p: &Publish, given: &mut Vec<(Key, Identity)>) -> Identity {
        let key = identity::key(p.pkid, &p.topic, &p.payload);
        if p.dup {
            if let Some(known) = self.journal.get(&key) {
                return known;
            }
        }
        if let Some((_, known)) = given.iter().find(|(k, _)| *k == key) {
            return *known;
        }
        let fresh = Identity {
            id: Uuid::now_v7(),
            ts_ms: chrono::Utc::now().timestamp_millis(),
        };
        given.push((key, fresh));
        fresh
    }

    /// One message as an event record, or as a reject record naming the topic and why.
    fn convert(&self, p: &Publish, given: &mut Vec<(Key, Identity)>) -> ProducerRecord {
        match self.event_json(p, given) {
            Ok(bytes) => match retail_core::decode(&bytes) {
                Ok(event) => event_record(&event),
                Err(e) => self.reject(p, given, &format!("not a valid event: {e}")),
            },
            Err(why) => self.reject(p, given, &why),
        }
    }

    /// The event's JSON: the payload's object, the topic's fields, the pattern's type, the
    /// source's name, and an identity where the payload has none.
    fn event_json(
        &self,
        p: &Publish,
        given: &mut Vec<(Key, Identity)>,
    ) -> std::result::Result<Vec<u8>, String> {
        if p.payload.len() > self.config.max_payload_bytes {
            return Err(format!(
                "payload of {} bytes is over max_payload_bytes = {}",
                p.payload.len(),
                self.config.max_payload_bytes
            ));
        }
        let Some((pattern, fields)) = self
            .patterns
            .iter()
            .find_map(|pt| pt.fields(&p.topic).map(|f| (pt, f)))
        else {
            return Err(format!(
                "the topic matches none of the patterns {}",
                self.patterns
                    .iter()
                    .map(Pattern::text)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let value: Value =
            serde_json::from_slice(&p.payload).map_err(|e| format!("payload is not JSON: {e}"))?;
        let Value::Object(mut object) = value else {
            return Err(format!("payload is JSON {}, not an object", kind(&value)));
        };
        for (field, value) in fields {
            match object.get(&field) {
                Some(v) if *v != value && v.as_str() != value.as_i64().map(|n| n.to_string()).as_deref() => {
                    return Err(format!(
                        "field {field}: the topic ({pattern}) says {value}, the payload says {v}",
                        pattern = pattern.text()
                    ));
                }
                Some(_) => {}
                None => {
                    object.insert(field, value);
                }
            }
        }
        object
            .entry("type")
            .or_insert_with(|| Value::from(pattern.event_type()));
        object
            .entry("source")
            .or_insert_with(|| Value::from(self.runtime.name()));
        if !object.contains_key("event_id") || !object.contains_key("ts") {
            let identity = self.identity(p, given);
            object
                .entry("event_id")
                .or_insert_with(|| Value::from(identity.id.to_string()));
            object.entry("ts").or_insert_with(|| Value::from(identity.ts_ms));
        }
        serde_json::to_vec(&object).map_err(|e| format!("re-encoding the event: {e}"))
    }

    /// A record the landing dead-letters: the payload as it came, the reason naming the
    /// broker and topic, and an id that stays the same when the broker resends it.
    fn reject(&self, p: &Publish, given: &mut Vec<(Key, Identity)>, why: &str) -> ProducerRecord {
        let id = self.identity(p, given).id.to_string();
        let reason = format!(
            "mqtt source {:?}, topic {:?}: {why}",
            self.runtime.name(),
            p.topic
        );
        let origin = format!("mqtt://{}/{}", self.broker(), p.topic);
        ProducerRecord {
            topic: topics::DEVICES.to_owned(),
            partition: None,
            key: None,
            value: p.payload.to_vec(),
            headers: vec![
                header(headers::SOURCE, self.runtime.name().as_bytes()),
                header(reject::REASON, reason.as_bytes()),
                header(reject::KIND, b"mqtt_message"),
                header(reject::FILE, origin.as_bytes()),
                header(reject::ID, id.as_bytes()),
            ],
            timestamp_ms: None,
        }
    }

    fn last_subscribed(&self) -> Option<BTreeSet<String>> {
        let text = std::fs::read(&self.subscribed_file).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn remember_subscribed(&self, filters: &BTreeSet<String>) -> Result<()> {
        let text = serde_json::to_vec(filters).map_err(|e| Error::Config(e.to_string()))?;
        crate::state_file::replace(&self.subscribed_file, &text)
            .map_err(|e| Error::io(format!("writing {}", self.subscribed_file.display()), e))
    }
}

/// Polls rumqttc's event loop for ever: connects, reconnects with doubling backoff, and hands
/// over connections, messages and subscription answers. Ends when the subscriber is gone.
async fn poll(
    mut eventloop: rumqttc::EventLoop,
    tx: mpsc::Sender<Delivery>,
    generation: Arc<AtomicU64>,
    (first, longest): (u64, u64),
) {
    let mut backoff = Duration::from_millis(first);
    loop {
        let delivery = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(first);
                generation.fetch_add(1, Ordering::AcqRel);
                Delivery::Connected {
                    session_present: ack.session_present,
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let g = generation.load(Ordering::Acquire);
                Delivery::Message(p, g)
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => Delivery::Subscribed(ack.return_codes),
            Ok(_) => continue,
            Err(error) => {
                // Acks still queued belong to the lost connection (rumqttc drops them too).
                generation.fetch_add(1, Ordering::AcqRel);
                let retry_in = backoff;
                backoff = (backoff * 2).min(Duration::from_millis(longest));
                let error = describe(&error);
                if tx.send(Delivery::Lost { error, retry_in }).await.is_err() {
                    return;
                }
                tokio::time::sleep(retry_in).await;
                continue;
            }
        };
        if tx.send(delivery).await.is_err() {
            return;
        }
    }
}

fn describe(error: &ConnectionError) -> String {
    match error {
        ConnectionError::ConnectionRefused(code) => format!("the broker refused the connection ({code:?})"),
        other => other.to_string(),
    }
}

fn join(filters: &BTreeSet<String>) -> String {
    filters.iter().cloned().collect::<Vec<_>>().join(", ")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
