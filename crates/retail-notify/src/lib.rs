//! Notification fan-out (ADR 0026): the store's outbox, drained to every channel.
//!
//! The landing writes each new alert's deliveries (one per channel its route takes) in the
//! alert's own transaction ([`retail_sink::outbox`]). Here one [`dispatcher`] task per channel
//! claims the channel's due deliveries, sends each with the delivery id as idempotency key,
//! and records the attempt: `sent`, or a retry at the next step of the channel's backoff
//! schedule, or `dead` with the last error once the schedule is spent or the receiver refused
//! the delivery for good. Channels never wait on each other: a receiver that is down only
//! delays its own channel.
//!
//! At least once, with an idempotency key: a process killed after a receiver accepted a
//! delivery and before the store recorded it sends it again after the claim's lease, with the
//! same `delivery_id`; receivers de-duplicate on it.
//!
//! # Layout
//! - [`config`]: `[notifications]` and its `[[notifications.channels]]`, and the routes.
//! - [`dispatcher`]: the claim, send, record loop and the backoff schedule.
//! - [`message`]: what every channel sends (JSON body, subject line).
//! - [`watch`]: the pipeline's own alerts (a component retrying or failed too long).
//! - [`webhook`], [`smtp`], [`mqtt`], [`topic`]: the channels.

pub mod config;
pub mod dispatcher;
pub mod message;
pub mod mqtt;
pub mod smtp;
pub mod topic;
pub mod watch;
pub mod webhook;

use async_trait::async_trait;
use retail_sink::outbox::Delivery;

pub use config::{ChannelConfig, NotifyConfig, Target};
pub use dispatcher::{spawn_all, Dispatcher};

/// Why a send failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// What went wrong, naming the receiver (for `last_error`).
    pub message: String,
    /// The receiver refused the delivery itself (an HTTP 4xx, an SMTP 5xx): no retry.
    pub permanent: bool,
}

impl SendError {
    /// A failure a later attempt may not have (connection refused, timeout, 5xx).
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    /// A refusal no retry changes.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }
}

/// A notification channel: sends one delivery.
#[async_trait]
pub trait Channel: Send + Sync + std::fmt::Debug + 'static {
    /// Sends `delivery`; `Ok` once the receiver accepted it.
    async fn send(&self, delivery: &Delivery) -> Result<(), SendError>;
}
