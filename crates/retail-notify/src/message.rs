//! What every channel sends: the alert and the delivery, as one JSON object (the webhook's
//! body, the MQTT payload, the alerts topic's value, the email's text part), and a subject
//! line for email.

use retail_sink::outbox::Delivery;
use serde::Serialize;

/// The JSON body of a delivery.
#[derive(Debug, Serialize)]
pub struct Body<'a> {
    /// The idempotency key: the same for every attempt of this alert on this channel.
    pub delivery_id: String,
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// The channel.
    pub channel: &'a str,
    /// The alert's deterministic id.
    pub alert_id: String,
    /// `payment_timeout`, `order_stuck`, `stock_risk`, `fraud`.
    pub kind: &'a str,
    /// `info`, `warning`, `critical`.
    pub severity: &'a str,
    /// What it is about (an order id, `store/sku`, a card or customer).
    pub subject: &'a str,
    /// Event time the condition became true, RFC 3339.
    pub at: String,
    /// Human-readable explanation.
    pub message: &'a str,
}

/// `delivery` as its JSON body.
pub fn body(delivery: &Delivery) -> Vec<u8> {
    let body = Body {
        delivery_id: delivery.delivery_id.hyphenated().to_string(),
        attempt: delivery.attempt,
        channel: &delivery.channel,
        alert_id: delivery.alert_id.hyphenated().to_string(),
        kind: &delivery.kind,
        severity: &delivery.severity,
        subject: &delivery.subject,
        at: delivery.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        message: &delivery.message,
    };
    // Serialising a struct of strings and numbers cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// An email subject line: `[critical] fraud: card-0042`.
pub fn subject(delivery: &Delivery) -> String {
    format!("[{}] {}: {}", delivery.severity, delivery.kind, delivery.subject)
}
