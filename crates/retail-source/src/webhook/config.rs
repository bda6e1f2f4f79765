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
