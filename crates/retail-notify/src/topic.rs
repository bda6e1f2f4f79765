//! The alerts topic channel: every alert as a record of the log's `alerts` topic, keyed by its
//! subject (one subject's alerts stay in order on one partition), the JSON body as value and
//! the delivery id in a `delivery_id` header, for other applications sharing the log. With
//! `alerts_topic_format = "avro"` the value is the same body in Avro, in the Confluent wire
//! format under the `alerts-value` schema, so a Confluent deserializer reads it.

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
    avro: Option<AvroAlerts>,
}

/// The registered schema the alerts are written with in Avro.
#[derive(Debug, Clone)]
pub struct AvroAlerts {
    /// The schema's id in the registry (the wire format's header).
    pub id: u32,
    pub schema: Arc<apache_avro::Schema>,
}

impl AlertsTopic {
    /// A channel appending to `log`'s `alerts` topic, as JSON, or as Avro with `avro`.
    pub fn new(log: Arc<dyn Log>, avro: Option<AvroAlerts>) -> Self {
        Self { log, avro }
    }
}

/// The record's value: the JSON body, or the same in Avro.
fn value(avro: Option<&AvroAlerts>, delivery: &Delivery) -> Result<Vec<u8>, SendError> {
    let json = message::body(delivery);
    match avro {
        None => Ok(json),
        Some(a) => retail_schema::avro::from_json(&a.schema, &json)
            .map(|body| retail_schema::wire::frame(a.id, &body))
            // The body always fits its schema; if a change ever broke that, retrying would not
            // mend it.
            .map_err(|e| SendError::permanent(format!("alert as Avro (schema id {}): {e}", a.id))),
    }
}

#[async_trait]
impl Channel for AlertsTopic {
    async fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
        let record = ProducerRecord {
            topic: topics::ALERTS.to_owned(),
            partition: None,
            key: Some(delivery.subject.clone().into_bytes()),
            value: value(self.avro.as_ref(), delivery)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use retail_schema::builtin::ALERT_SCHEMA;

    /// In Avro the alert is the JSON body, field for field, behind the wire header.
    #[test]
    fn an_alert_in_avro_reads_back_as_its_json_body() {
        let delivery = Delivery {
            delivery_id: uuid::Uuid::from_u128(1),
            channel: "alerts-topic".into(),
            attempt: 2,
            alert_id: uuid::Uuid::from_u128(2),
            kind: "fraud".into(),
            severity: "critical".into(),
            subject: "card-\"x\"".into(),
            at: chrono::DateTime::from_timestamp_millis(1_723_456_789_000).expect("time"),
            message: "five cards in ten minutes".into(),
        };
        let schema = Arc::new(apache_avro::Schema::parse_str(ALERT_SCHEMA).expect("schema"));
        let framed = value(
            Some(&AvroAlerts {
                id: 9,
                schema: schema.clone(),
            }),
            &delivery,
        )
        .expect("avro");
        let (id, body) = retail_schema::wire::split(&framed).expect("wire format");
        assert_eq!(id, 9);
        let back: serde_json::Value =
            serde_json::from_slice(&retail_schema::avro::to_json(&schema, body).expect("json"))
                .expect("json");
        let json: serde_json::Value =
            serde_json::from_slice(&value(None, &delivery).expect("json")).expect("json");
        assert_eq!(back, json);
    }
}
