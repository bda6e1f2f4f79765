//! `[notifications]`: the channels alerts fan out to, how each is routed, and the retry
//! schedule.
//!
//! ```toml
//! [notifications]
//! backoff_ms = [1000, 5000, 30000, 120000, 600000]  # waits before attempts 2, 3, ...; then dead
//! alerts_topic = true                                # every alert also on the log's `alerts` topic
//! alerts_topic_format = "json"                       # json | avro (Confluent wire format, subject alerts-value)
//!
//! [[notifications.channels]]
//! name = "ops-hook"
//! type = "webhook"                  # webhook | smtp | mqtt
//! url = "http://127.0.0.1:8443/hooks/retail"
//! secret = "${OPS_HOOK_SECRET}"     # HMAC-SHA256 signature header; optional
//! kinds = ["fraud", "payment_timeout"]  # empty or absent: every kind
//! min_severity = "warning"          # info | warning | critical
//! dedup_window_ms = 600000          # same kind, severity and subject within 10 min: suppressed
//! ```

use std::collections::HashSet;
use std::time::Duration;

use retail_sink::outbox::{severity_rank, Route, Routes};
use serde::{Deserialize, Serialize};

/// The alert kinds the pipelines raise, for checking `kinds`.
pub const ALERT_KINDS: &[&str] = &[
    "payment_timeout",
    "order_stuck",
    "stock_risk",
    "fraud",
    "pipeline",
];

/// The channel that puts every alert on the log's `alerts` topic, when `alerts_topic` is on.
pub const ALERTS_TOPIC_CHANNEL: &str = "alerts-topic";

/// `[notifications]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// The channels, each a `[[notifications.channels]]` block.
    pub channels: Vec<ChannelConfig>,
    /// Every alert also goes to the log's `alerts` topic (channel `alerts-topic`), for other
    /// applications sharing the log.
    pub alerts_topic: bool,
    /// How the `alerts` topic's records are written: `json`, or `avro` in the Confluent wire
    /// format with the schema registered under `alerts-value` (issue 16), for consumers that
    /// read the topic with a Confluent deserializer.
    pub alerts_topic_format: TopicFormat,
    /// Waits before the 2nd, 3rd, ... attempt, milliseconds; after the last one fails, the
    /// delivery is dead. Empty: one attempt.
    pub backoff_ms: Vec<u64>,
    /// How long a claimed delivery stays with its dispatcher before it is due again (a
    /// dispatcher killed mid-send); longer than any channel's timeout.
    pub lease_ms: u64,
    /// How often an idle dispatcher looks for due deliveries.
    pub poll_interval_ms: u64,
    /// At stop, how long dispatchers go on sending what is due (the alerts of the last
    /// batches); what is left stays pending for the next start.
    pub drain_ms: u64,
    /// A component (source, landing, log) `retrying` or `failed` this long raises the
    /// pipeline's own alert (kind `pipeline`). 0: never.
    pub pipeline_alert_after_ms: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            channels: Vec::new(),
            alerts_topic: true,
            alerts_topic_format: TopicFormat::Json,
            backoff_ms: vec![1_000, 5_000, 30_000, 120_000, 600_000],
            lease_ms: 60_000,
            poll_interval_ms: 500,
            drain_ms: 5_000,
            pipeline_alert_after_ms: 30_000,
        }
    }
}

/// How a topic's records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopicFormat {
    /// One JSON object per record.
    #[default]
    Json,
    /// Avro in the Confluent wire format (magic byte, schema id, Avro body).
    Avro,
}

/// One `[[notifications.channels]]` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelConfig {
    /// Unique name: the `channel` of its deliveries.
    pub name: String,
    /// Alert kinds it takes; empty: all.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// The lowest severity it takes.
    #[serde(default = "default_severity")]
    pub min_severity: String,
    /// Repeats (same kind, severity and subject) within this many milliseconds of event time
    /// are suppressed; 0: none.
    #[serde(default)]
    pub dedup_window_ms: u64,
    /// How long one send may take.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Where it sends.
    #[serde(flatten)]
    pub target: Target,
}

fn default_severity() -> String {
    "info".to_owned()
}

const fn default_timeout() -> u64 {
    10_000
}

/// Where a channel sends, by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Target {
    /// An HTTP POST of the JSON body, with `Idempotency-Key` and, with a secret, a
    /// `Retail-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` header (the scheme the
    /// webhook source checks).
    Webhook {
        /// `http://` URL (no TLS stack is built in).
        url: String,
        /// The signing secret, or `${VAR}`.
        #[serde(default)]
        secret: Option<String>,
    },
    /// An email over SMTP (plain, no TLS: a relay on the local network).
    Smtp {
        /// Relay host.
        host: String,
        /// Relay port.
        #[serde(default = "default_smtp_port")]
        port: u16,
        /// Sender address.
        from: String,
        /// Recipients.
        to: Vec<String>,
    },
    /// An MQTT publish (QoS 1) of the JSON body to `<topic>/<kind>`.
    Mqtt {
        /// Broker host.
        host: String,
        /// Broker port.
        #[serde(default = "default_mqtt_port")]
        port: u16,
        /// Topic prefix.
        topic: String,
    },
}

const fn default_smtp_port() -> u16 {
    25
}

const fn default_mqtt_port() -> u16 {
    1883
}

impl NotifyConfig {
    /// Every channel's route, the alerts topic's included.
    pub fn routes(&self) -> Routes {
        let mut routes: Vec<Route> = self
            .channels
            .iter()
            .map(|c| Route {
                channel: c.name.clone(),
                kinds: c.kinds.clone(),
                min_severity: c.min_severity.clone(),
                dedup_window_ms: i64::try_from(c.dedup_window_ms).unwrap_or(i64::MAX),
            })
            .collect();
        if self.alerts_topic {
            routes.push(Route {
                channel: ALERTS_TOPIC_CHANNEL.to_owned(),
                kinds: Vec::new(),
                min_severity: "info".to_owned(),
                dedup_window_ms: 0,
            });
        }
        Routes { routes }
    }

    /// The wait before attempt `attempt + 1` after attempt `attempt` (from 1) failed, or
    /// `None` when the schedule is spent.
    pub fn backoff(&self, attempt: u32) -> Option<Duration> {
        let i = usize::try_from(attempt).ok()?.checked_sub(1)?;
        self.backoff_ms.get(i).map(|ms| Duration::from_millis(*ms))
    }

    /// Checks names, kinds, severities and targets; errors name the channel and the key.
    pub fn check(&self) -> Result<(), String> {
        let mut names = HashSet::new();
        for (i, c) in self.channels.iter().enumerate() {
            let at = format!("notifications.channels[{i}] ({:?})", c.name);
            if c.name.is_empty() {
                return Err(format!("notifications.channels[{i}]: name is empty"));
            }
            if c.name == ALERTS_TOPIC_CHANNEL {
                return Err(format!(
                    "{at}: name {ALERTS_TOPIC_CHANNEL} is the alerts topic's own"
                ));
            }
            if !names.insert(c.name.as_str()) {
                return Err(format!("{at}: another channel has this name"));
            }
            if let Some(k) = c.kinds.iter().find(|k| !ALERT_KINDS.contains(&k.as_str())) {
                return Err(format!(
                    "{at}: kinds: unknown alert kind {k:?} (known: {})",
                    ALERT_KINDS.join(", ")
                ));
            }
            if severity_rank(&c.min_severity).is_none() {
                return Err(format!(
                    "{at}: min_severity {:?} is not one of info, warning, critical",
                    c.min_severity
                ));
            }
            if c.timeout_ms == 0 || c.timeout_ms >= self.lease_ms {
                return Err(format!(
                    "{at}: timeout_ms {} must be above 0 and below notifications.lease_ms {}",
                    c.timeout_ms, self.lease_ms
                ));
            }
            match &c.target {
                Target::Webhook { url, .. } => {
                    if url.starts_with("https://") {
                        return Err(format!(
                            "{at}: url {url:?}: https webhooks are not built in (no TLS stack); \
                             post to an http:// TLS-terminating proxy on loopback"
                        ));
                    }
                    if !url.starts_with("http://") {
                        return Err(format!("{at}: url {url:?} is not an http:// URL"));
                    }
                }
                Target::Smtp { from, to, .. } => {
                    if to.is_empty() {
                        return Err(format!("{at}: to has no recipient"));
                    }
                    for address in std::iter::once(from).chain(to) {
                        address
                            .parse::<lettre::Address>()
                            .map_err(|e| format!("{at}: {address:?} is not an email address ({e})"))?;
                    }
                }
                Target::Mqtt { topic, .. } => {
                    if topic.is_empty() || topic.contains(['+', '#']) {
                        return Err(format!(
                            "{at}: topic {topic:?} must be a non-empty topic name without wildcards"
                        ));
                    }
                }
            }
        }
        if self.poll_interval_ms == 0 {
            return Err("notifications.poll_interval_ms must be above 0".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> NotifyConfig {
        #[derive(Deserialize)]
        struct File {
            notifications: NotifyConfig,
        }
        let file: File = toml::from_str(toml).expect("parses");
        file.notifications
    }

    #[test]
    fn channels_parse_by_type_and_route_with_the_alerts_topic() {
        let c = parse(
            r#"
            [notifications]
            backoff_ms = [100, 200]
            [[notifications.channels]]
            name = "hook"
            type = "webhook"
            url = "http://127.0.0.1:9/x"
            secret = "s"
            kinds = ["fraud"]
            min_severity = "critical"
            dedup_window_ms = 600000
            [[notifications.channels]]
            name = "mail"
            type = "smtp"
            host = "127.0.0.1"
            port = 2525
            from = "etl@shop.example"
            to = ["ops@shop.example"]
            [[notifications.channels]]
            name = "bus"
            type = "mqtt"
            host = "127.0.0.1"
            topic = "retail/alerts"
            "#,
        );
        c.check().expect("valid");
        assert!(matches!(c.channels[1].target, Target::Smtp { port: 2525, .. }));
        assert!(matches!(c.channels[2].target, Target::Mqtt { port: 1883, .. }));
        let routes = c.routes();
        let names: Vec<&str> = routes.routes.iter().map(|r| r.channel.as_str()).collect();
        assert_eq!(names, ["hook", "mail", "bus", ALERTS_TOPIC_CHANNEL]);
        assert_eq!(routes.routes[0].dedup_window_ms, 600_000);
        assert_eq!(c.backoff(1), Some(Duration::from_millis(100)));
        assert_eq!(c.backoff(2), Some(Duration::from_millis(200)));
        assert_eq!(c.backoff(3), None);
    }

    #[test]
    fn errors_name_the_channel_and_the_key() {
        let bad = |extra: &str, want: &str| {
            let c = parse(&format!(
                "[notifications]\n[[notifications.channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://h/\"\n{extra}"
            ));
            let e = c.check().expect_err(extra);
            assert!(
                e.contains("notifications.channels[0] (\"hook\")") && e.contains(want),
                "{e}"
            );
        };
        bad("kinds = [\"frauds\"]", "unknown alert kind \"frauds\"");
        bad("min_severity = \"loud\"", "min_severity \"loud\"");
        bad("timeout_ms = 0", "timeout_ms 0");
        let c = parse(
            "[notifications]\n[[notifications.channels]]\nname = \"m\"\ntype = \"smtp\"\nhost = \"h\"\nfrom = \"nope\"\nto = [\"a@b.c\"]\n",
        );
        assert!(c
            .check()
            .expect_err("from")
            .contains("\"nope\" is not an email address"));
    }
}
