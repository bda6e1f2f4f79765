//! The email channel: one message per delivery over plain SMTP (a relay on the local network;
//! no TLS stack is built in), `Message-ID: <delivery_id@retail-etl>` so a mail system can drop
//! a repeat, the subject `[severity] kind: subject`, the alert's message and its JSON body as
//! text. A 5xx reply is permanent (dead at once); a 4xx, a refused connection or a timeout is
//! retried.

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use retail_sink::outbox::Delivery;

use crate::{message, Channel, SendError};

/// An SMTP relay and the envelope.
#[derive(Debug)]
pub struct Smtp {
    relay: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Smtp {
    /// A channel mailing `to` from `from` through `host:port`.
    pub fn new(host: &str, port: u16, from: &str, to: &[String]) -> Result<Self, String> {
        let from: Mailbox = from.parse().map_err(|e| format!("from {from:?}: {e}"))?;
        let to = to
            .iter()
            .map(|t| t.parse().map_err(|e| format!("to {t:?}: {e}")))
            .collect::<Result<Vec<Mailbox>, String>>()?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .build();
        Ok(Self {
            relay: format!("{host}:{port}"),
            transport,
            from,
            to,
        })
    }
}

#[async_trait]
impl Channel for Smtp {
    async fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(message::subject(delivery))
            .message_id(Some(format!(
                "<{}@retail-etl>",
                delivery.delivery_id.hyphenated()
            )))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let text = format!(
            "{}\n\n{}\n",
            delivery.message,
            String::from_utf8_lossy(&message::body(delivery))
        );
        let email = builder
            .body(text)
            .map_err(|e| SendError::permanent(format!("building the email: {e}")))?;
        match self.transport.send(email).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let message = format!("SMTP {}: {e}", self.relay);
                if e.is_permanent() {
                    Err(SendError::permanent(message))
                } else {
                    Err(SendError::transient(message))
                }
            }
        }
    }
}
