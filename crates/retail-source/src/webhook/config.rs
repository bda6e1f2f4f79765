//! Settings of one webhook receiver: where it listens, how it authenticates senders, how much
//! it takes per request, and when it asks senders to wait.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::source::Receiver;
use crate::registry::{BuildSource, BuiltSource};
use crate::{Error, Result, SourceContext};

/// A webhook receiver: `POST /ingest/<path>` on the main server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Source name: metrics label, `/health` component, the events' default `source`.
    pub name: String,
    /// The path under `/ingest/`: `pos` listens on `POST /ingest/pos`. Default: the name.
    pub path: Option<String>,
    /// Largest request body accepted, in bytes (after gzip decompression too); larger gets 413.
    pub max_body_bytes: usize,
    /// How long a request's body may take to arrive once its head is in, in milliseconds. A
    /// body not complete in time gets 408 and the connection is closed, so a sender trickling
    /// bytes holds an in-flight slot and a connection at most this long.
    pub body_timeout_ms: u64,
    /// Requests this receiver reads and processes at once; more get 429 with `Retry-After`.
    /// With `max_body_bytes` it bounds the memory bodies take: at most `max_in_flight` x
    /// `max_body_bytes`, twice that for gzip bodies (the compressed and the inflated copy).
    pub max_in_flight: u32,
    /// Whether the good lines of a batch with bad lines are accepted (202, the bad lines listed
    /// and sent to the dead letters), or the whole batch refused (422, nothing written).
    pub partial: bool,
    /// Bearer tokens a sender may present (`Authorization: Bearer <token>`). Empty: no token
    /// needed (allowed only while the server listens on loopback, unless `hmac_secret` is set).
    pub bearer_tokens: Vec<String>,
    /// Shared secret for HMAC-SHA256 signatures in the `signature_header`, in the style of
    /// payment providers: `t=<unix seconds>,v1=<hex of HMAC(secret, "<t>.<body>")>`.
    pub hmac_secret: Option<String>,
    /// The header carrying the signature.
    pub signature_header: String,
    /// A signature whose timestamp is further than this from now (seconds) is refused as a
    /// possible replay.
    pub replay_window_s: u64,
    /// When the landing is this many records behind the log (the store is far behind), new
    /// requests get 503 with `Retry-After` instead of growing the backlog. 0 = no bound.
    pub max_backlog_records: i64,
    /// How long an `Idempotency-Key` answer is remembered in memory, seconds. After that (or
    /// after a restart) a retried request is processed again with the same event ids, so its
    /// events still land once.
    pub idempotency_ttl_s: u64,
    /// Most remembered `Idempotency-Key` answers; the oldest are forgotten first.
    pub idempotency_capacity: usize,
}

impl WebhookConfig {
    /// Default `max_body_bytes`: 10 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

    /// Default `body_timeout_ms`: 10 s. A till's batch (well under 1 MiB) arrives in far less
    /// even on a 1 Mbit/s uplink (1 MiB takes about 8 s there), while a sender trickling bytes
    /// holds a slot for at most this long; senders of larger bodies on slow links raise it.
    pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 10_000;

    /// Default `max_in_flight`: 128. The webhook benchmark reached its best single-event rate
    /// with 128 connections (each request waits for its group commit; 500 gave no more), and
    /// 128 x 10 MiB bounds bodies to 1.25 GiB (2.5 GiB if all are gzip); the earlier 512
    /// allowed 5 (10) GiB.
    pub const DEFAULT_MAX_IN_FLIGHT: u32 = 128;

    /// A receiver called `name` with the defaults.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// The path under `/ingest/`.
    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or(&self.name)
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            name: "webhook".to_owned(),
            path: None,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            body_timeout_ms: Self::DEFAULT_BODY_TIMEOUT_MS,
            max_in_flight: Self::DEFAULT_MAX_IN_FLIGHT,
            partial: false,
            bearer_tokens: Vec::new(),
            hmac_secret: None,
            signature_header: "Retail-Signature".to_owned(),
            replay_window_s: 300,
            max_backlog_records: 5_000_000,
            idempotency_ttl_s: 24 * 3600,
            idempotency_capacity: 100_000,
        }
    }
}

#[async_trait::async_trait]
impl BuildSource for WebhookConfig {
    const KIND: &'static str = "webhook";

    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| Err(Error::Config(format!("webhook.{key}: {why}")));
        if self.name.trim().is_empty() {
            return bad("name", "must not be empty".to_owned());
        }
        let path = self.path();
        if path.is_empty()
            || !path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
            || path.starts_with('/')
            || path.ends_with('/')
            || path.contains("//")
        {
            return bad(
                "path",
                format!("{path:?} must be letters, digits, '-', '_', '.' and inner '/' (it becomes /ingest/<path>)"),
            );
        }
        if self.max_body_bytes == 0 {
            return bad("max_body_bytes", "must be at least 1".to_owned());
        }
        if self.body_timeout_ms == 0 {
            return bad(
                "body_timeout_ms",
                "must be at least 1 (milliseconds a request's body may take to arrive)".to_owned(),
            );
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight", "must be at least 1".to_owned());
        }
        for (i, t) in self.bearer_tokens.iter().enumerate() {
            if is_env(t) {
                continue; // checked once read, at start
            }
            if t.chars().count() < 16 || t.chars().any(char::is_whitespace) {
                return bad(
                    &format!("bearer_tokens[{i}]"),
                    "a token must be at least 16 characters without whitespace".to_owned(),
                );
            }
        }
        if self
            .hmac_secret
            .as_ref()
            .is_some_and(|s| !is_env(s) && s.len() < 16)
        {
            return bad("hmac_secret", "must be at least 16 bytes".to_owned());
        }
        if self.idempotency_capacity == 0 {
            return bad("idempotency_capacity", "must be at least 1".to_owned());
        }
        Ok(())
    }

    fn mounts(&self) -> Vec<String> {
        vec![format!("/ingest/{}", self.path())]
    }

    async fn build(&self, cx: &SourceContext) -> Result<BuiltSource> {
        let mut config = self.clone();
        for (i, t) in config.bearer_tokens.iter_mut().enumerate() {
            *t = crate::secret::secret(t, &format!("webhook {:?}: bearer_tokens[{i}]", self.name))?;
        }
        if let Some(s) = config.hmac_secret.as_mut() {
            *s = crate::secret::secret(s, &format!("webhook {:?}: hmac_secret", self.name))?;
        }
        config.validate()?;
        let open = self.bearer_tokens.is_empty() && self.hmac_secret.is_none();
        if open && !cx.loopback {
            return Err(Error::Config(format!(
                "webhook {:?}: no bearer_tokens and no hmac_secret, and the server does not listen on \
                 loopback: anyone on the network could post events. Configure a token or a secret",
                self.name
            )));
        }
        let runtime = cx.runtime(&self.name, Self::KIND);
        runtime.set_description(format!(
            "POST JSON, a JSON array or NDJSON to /ingest/{}{}",
            self.path(),
            if open { " (no auth: loopback only)" } else { "" }
        ));
        let receiver = Arc::new(Receiver::new(config, runtime.clone(), cx.backlog.clone()));
        cx.routes.mount(receiver.clone().router());
        runtime.set_state(
            retail_core::health::State::Running,
            format!("listening on /ingest/{}", self.path()),
        );
        let handle = runtime.handle();
        let shutdown = cx.shutdown.clone();
        // The receiver works in the server's request tasks; this task only marks the end.
        let task = Box::pin(async move {
            shutdown.wait().await;
            receiver.stop().await;
            Ok(())
        });
        Ok(BuiltSource { handle, task })
    }
}

/// Whether a secret is written as `${VAR}`.
fn is_env(value: &str) -> bool {
    crate::secret::env_var(value).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_body_timeout_or_in_flight_limit_is_refused_naming_the_key() {
        let zero_timeout = WebhookConfig {
            body_timeout_ms: 0,
            ..WebhookConfig::named("pos")
        };
        let e = zero_timeout.validate().expect_err("refused").to_string();
        assert!(e.contains("webhook.body_timeout_ms"), "{e}");
        let zero_in_flight = WebhookConfig {
            max_in_flight: 0,
            ..WebhookConfig::named("pos")
        };
        let e = zero_in_flight.validate().expect_err("refused").to_string();
        assert!(e.contains("webhook.max_in_flight"), "{e}");
        let defaults = WebhookConfig::named("pos");
        assert!(defaults.validate().is_ok());
        assert_eq!((defaults.body_timeout_ms, defaults.max_in_flight), (10_000, 128));
    }
}
