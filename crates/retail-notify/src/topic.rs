//! The alerts topic channel: every alert as a record of the log's `alerts` topic, keyed by its
//! subject (one subject's alerts stay in order on one partition), the JSON body as value and
//! the delivery id in a `delivery_id` header, for other applications sharing the log.

use std::sync::Arc;

use async_trait::async_trait;
use retail_core::event::topics;
use retail_log::{Header, Log, ProducerRecord};
use retail_sink::outbox::Delivery;

use crate::{message, Channel, SendError};

/// The log's `alerts` topic.
#[derive(Debug)]
pub struct AlertsTopic {
    log: Arc<dyn Log>,
}

impl AlertsTopic {
    /// A channel appending to `log`'s `alerts` topic.
    pub fn new(log: Arc<dyn Log>) -> Self {
        Self { log }
    }
}

#[async_trait]
impl Channel for AlertsTopic {
    async fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
        let record = ProducerRecord {
            topic: topics::ALERTS.to_owned(),
            partition: None,
            key: Some(delivery.subject.clone().into_bytes()),
            value: message::body(delivery),
            headers: vec![Header {
                key: "delivery_id".into(),
                value: delivery.delivery_id.hyphenated().to_string().into_bytes(),
            }],
            timestamp_ms: Some(delivery.at.timestamp_millis()),
        };
        self.log.append(vec![record]).await.map(|_| ()).map_err(|e| {
            let message = format!("append to topic {}: {e}", topics::ALERTS);
            if e.is_retryable() {
                SendError::transient(message)
            } else {
                SendError::permanent(message)
            }
        })
    }
}
