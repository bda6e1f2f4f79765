//! One dispatcher per channel: claim the channel's due deliveries from the store, send them one
//! by one, record each attempt. A failed attempt is due again after the next wait of the
//! backoff schedule, or is `dead` once the schedule is spent or the receiver refused it for
//! good. A dispatcher never waits on another channel, and an unreachable store only pauses it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use retail_core::{Health, Metrics, Shutdown};
use retail_log::Log;
use retail_sink::outbox::{Attempt, Delivery};
use retail_sink::Store;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{NotifyConfig, Target, ALERTS_TOPIC_CHANNEL};
use crate::{mqtt, smtp, topic, webhook, Channel, SendError};

/// Deliveries claimed at once.
const CLAIM_BATCH: usize = 32;

/// A channel's dispatcher.
#[derive(Debug)]
pub struct Dispatcher {
    /// The channel's name.
    pub name: String,
    channel: Arc<dyn Channel>,
    store: Arc<dyn Store>,
    config: NotifyConfig,
    timeout: Duration,
    metrics: Metrics,
}

impl Dispatcher {
    /// A dispatcher sending `name`'s deliveries through `channel`.
    pub fn new(
        name: impl Into<String>,
        channel: Arc<dyn Channel>,
        store: Arc<dyn Store>,
        config: NotifyConfig,
        timeout: Duration,
        metrics: Metrics,
    ) -> Self {
        Self {
            name: name.into(),
            channel,
            store,
            config,
            timeout,
            metrics,
        }
    }

    /// Runs until `shutdown`: claims, sends, records; sleeps a poll interval when nothing is
    /// due. Once `shutdown` comes it goes on sending what is due for up to
    /// `notifications.drain_ms`, and stops as soon as nothing is; what is left stays pending in
    /// the outbox for the next start.
    pub async fn run(self, shutdown: Shutdown) {
        let lease = Duration::from_millis(self.config.lease_ms);
        let idle = Duration::from_millis(self.config.poll_interval_ms);
        let drain = Duration::from_millis(self.config.drain_ms);
        let mut drain_until: Option<Instant> = None;
        loop {
            if shutdown.is_triggered() {
                let until = *drain_until.get_or_insert_with(|| Instant::now() + drain);
                if Instant::now() >= until {
                    return;
                }
            }
            let claimed = match self.store.claim_deliveries(&self.name, CLAIM_BATCH, lease).await {
                Ok(c) => c,
                Err(e) => {
                    warn!(message = "could not claim notification deliveries; retrying", channel = %self.name, error = %e);
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                if let Some(until) = drain_until {
                    // Draining: wait only for a retry that falls due before the deadline.
                    let due = self.store.next_delivery_due(&self.name).await.ok().flatten();
                    let left = until.saturating_duration_since(Instant::now());
                    match due.map(|d| (d - chrono::Utc::now()).to_std().unwrap_or_default()) {
                        Some(wait) if wait < left => tokio::time::sleep(wait.min(idle)).await,
                        _ => return,
                    }
                    continue;
                }
                tokio::select! {
                    () = tokio::time::sleep(idle) => {}
                    () = shutdown.wait() => {}
                }
                continue;
            }
            for delivery in &claimed {
                self.attempt(delivery).await;
            }
        }
    }

    /// Sends one delivery and records how it went.
    async fn attempt(&self, delivery: &Delivery) {
        let sent = match tokio::time::timeout(self.timeout, self.channel.send(delivery)).await {
            Ok(result) => result,
            Err(_) => Err(SendError::transient(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
        };
        let how = match sent {
            Ok(()) => {
                self.metrics.notifications(&self.name, "sent").inc();
                Attempt::Sent
            }
            Err(e) => {
                let retry_at = (!e.permanent)
                    .then(|| self.config.backoff(delivery.attempt))
                    .flatten()
                    .map(|wait| {
                        chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
                    });
                let outcome = if retry_at.is_some() { "retried" } else { "dead" };
                self.metrics.notifications(&self.name, outcome).inc();
                warn!(
                    message = "notification delivery failed",
                    channel = %self.name,
                    delivery_id = %delivery.delivery_id,
                    attempt = delivery.attempt,
                    outcome,
                    error = %e.message
                );
                Attempt::Failed {
                    error: e.message,
                    retry_at,
                }
            }
        };
        // The record may fail (store down); the claim's lease then makes the delivery due
        // again and it is sent again with the same id: at least once.
        for wait in [0, 200, 1_000, 5_000] {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            match self
                .store
                .finish_delivery(delivery.delivery_id, delivery.attempt, &how)
                .await
            {
                Ok(true) => return,
                Ok(false) => {
                    warn!(message = "a delivery's claim was lost before its attempt was recorded (lease too short?)", channel = %self.name, delivery_id = %delivery.delivery_id);
                    return;
                }
                Err(e) if e.is_retryable() => {
                    warn!(message = "could not record a delivery attempt; retrying", error = %e);
                }
                Err(e) => {
                    warn!(message = "could not record a delivery attempt", error = %e);
                    return;
                }
            }
        }
    }
}

/// Builds a dispatcher per configured channel (and the alerts topic's) and spawns them, with
/// the watch that raises the pipeline's own alerts from `health`. Errors name the channel whose
/// settings do not build (a secret's variable unset, ...).
pub fn spawn_all(
    config: &NotifyConfig,
    store: &Arc<dyn Store>,
    log: &Arc<dyn Log>,
    metrics: &Metrics,
    health: &Health,
    shutdown: &Shutdown,
    avro_alerts: Option<topic::AvroAlerts>,
) -> Result<Vec<JoinHandle<()>>, String> {
    let mut dispatchers = Vec::new();
    for c in &config.channels {
        let channel: Arc<dyn Channel> = match &c.target {
            Target::Webhook { url, secret } => {
                let key = format!("notifications.channels ({:?}): secret", c.name);
                let secret = secret
                    .as_deref()
                    .map(|s| retail_source::secret::secret(s, &key))
                    .transpose()
                    .map_err(|e| e.to_string())?;
                Arc::new(webhook::Webhook::new(url.clone(), secret)?)
            }
            Target::Smtp { host, port, from, to } => Arc::new(
                smtp::Smtp::new(host, *port, from, to)
                    .map_err(|e| format!("notifications.channels ({:?}): {e}", c.name))?,
            ),
            Target::Mqtt { host, port, topic } => Arc::new(mqtt::Mqtt::new(&c.name, host, *port, topic)),
        };
        dispatchers.push(Dispatcher::new(
            c.name.clone(),
            channel,
            store.clone(),
            config.clone(),
            Duration::from_millis(c.timeout_ms),
            metrics.clone(),
        ));
    }
    if config.alerts_topic {
        dispatchers.push(Dispatcher::new(
            ALERTS_TOPIC_CHANNEL,
            Arc::new(topic::AlertsTopic::new(log.clone(), avro_alerts)),
            store.clone(),
            config.clone(),
            Duration::from_secs(10),
            metrics.clone(),
        ));
    }
    info!(
        message = "notification dispatchers started",
        channels = dispatchers.len()
    );
    let mut tasks: Vec<JoinHandle<()>> = dispatchers
        .into_iter()
        .map(|d| tokio::spawn(d.run(shutdown.clone())))
        .collect();
    if config.pipeline_alert_after_ms > 0 {
        tasks.push(tokio::spawn(crate::watch::run(
            health.clone(),
            store.clone(),
            config.routes(),
            Duration::from_millis(config.pipeline_alert_after_ms),
            shutdown.clone(),
        )));
    }
    Ok(tasks)
}
