//! The webhook channel: an HTTP POST of the delivery's JSON body with
//! `Idempotency-Key: <delivery_id>`, `Retail-Delivery-Attempt: <n>` and, with a secret,
//! `Retail-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (the scheme this binary's
//! webhook source checks, so one instance can receive another's alerts). 2xx: sent; 408, 429
//! and 5xx, a timeout or a refused connection: retried; any other status: dead at once (the
//! receiver refused this delivery, and sending it again would not change that).
//!
//! Plain `http://` only: reqwest is built without a TLS stack here; an `https://` URL is refused
//! when the configuration is checked (put a TLS-terminating proxy on loopback in front).

use async_trait::async_trait;
use retail_sink::outbox::Delivery;

use crate::{message, Channel, SendError};

/// The header carrying the delivery id.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Retail-Signature";
/// The header carrying the attempt number.
pub const ATTEMPT_HEADER: &str = "Retail-Delivery-Attempt";

/// A webhook receiver.
#[derive(Debug)]
pub struct Webhook {
    url: String,
    secret: Option<String>,
    client: reqwest::Client,
}

impl Webhook {
    /// A channel posting to `url`, signing with `secret` when given.
    pub fn new(url: String, secret: Option<String>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("webhook client for {url}: {e}"))?;
        Ok(Self { url, secret, client })
    }
}

#[async_trait]
impl Channel for Webhook {
    async fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
        let body = message::body(delivery);
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header(IDEMPOTENCY_HEADER, delivery.delivery_id.hyphenated().to_string())
            .header(ATTEMPT_HEADER, delivery.attempt.to_string());
        if let Some(secret) = &self.secret {
            let now = chrono::Utc::now().timestamp();
            request = request.header(
                SIGNATURE_HEADER,
                retail_source::webhook::auth::sign(secret.as_bytes(), &body, now),
            );
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::transient(format!("POST {}: {e}", self.url)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let detail = response.text().await.unwrap_or_default();
        let detail: String = detail.chars().take(200).collect();
        let message = format!("POST {}: HTTP {status}: {detail}", self.url);
        if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            Err(SendError::transient(message))
        } else {
            Err(SendError::permanent(message))
        }
    }
}
