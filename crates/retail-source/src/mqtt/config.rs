//! Settings of one MQTT subscription: the broker, the fixed client id of its persistent
//! session, and the topic patterns whose levels become event fields.

use serde::{Deserialize, Serialize};

use super::source::Subscriber;
use super::topic::Pattern;
use crate::registry::{BuildSource, BuiltSource};
use crate::{Error, Result, SourceContext};

/// One topic pattern: an MQTT topic with `{field}` levels (each a single-level `+` wildcard
/// whose value becomes that event field) and an optional trailing `#`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// `stores/{store_id}/lanes/{device_id}/status`: subscribed as `stores/+/lanes/+/status`.
    pub pattern: String,
    /// The event type of messages on these topics, unless the payload names its `type`.
    #[serde(default = "device_status")]
    pub event_type: String,
}

fn device_status() -> String {
    "device_status".to_owned()
}

/// An MQTT source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Source name: metrics label, `/health` component, the events' default `source`.
    pub name: String,
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// The client id of the persistent session (default `retail-etl-<name>`). It must stay the
    /// same across restarts: the broker keeps the session's subscriptions and the messages
    /// not yet acknowledged under it.
    pub client_id: Option<String>,
    /// User name, if the broker asks for one.
    pub username: Option<String>,
    /// Password, or `${VAR}` to read it from the environment.
    pub password: Option<String>,
    /// Keep-alive interval, seconds.
    pub keep_alive_s: u64,
    /// Our own QoS 1 publishes in flight (MQTT 3.1.1 gives the client no say over what the
    /// broker sends it: Mosquitto's `max_inflight_messages` bounds that).
    pub inflight: u16,
    /// Messages per append: one log append and one identity-journal write per batch.
    pub batch_max: usize,
    /// How long a batch waits for more messages, ms.
    pub linger_ms: u64,
    /// Largest payload taken, bytes; a larger message is dead-lettered.
    pub max_payload_bytes: usize,
    /// The first and the longest wait between reconnection attempts, ms (doubling).
    pub reconnect_ms: (u64, u64),
    /// The topics subscribed (QoS 1).
    pub topics: Vec<TopicConfig>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            name: "mqtt".to_owned(),
            host: "127.0.0.1".to_owned(),
            port: 1883,
            client_id: None,
            username: None,
            password: None,
            keep_alive_s: 30,
            inflight: 100,
            batch_max: 500,
            linger_ms: 20,
            max_payload_bytes: 64 * 1024,
            reconnect_ms: (200, 10_000),
            topics: Vec::new(),
        }
    }
}

impl MqttConfig {
    /// The persistent session's client id.
    pub fn client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("retail-etl-{}", self.name))
    }

    /// The compiled topic patterns, in configuration order.
    pub fn patterns(&self) -> Result<Vec<Pattern>> {
        self.topics
            .iter()
            .enumerate()
            .map(|(i, t)| {
                Pattern::parse(&t.pattern, &t.event_type)
                    .map_err(|why| Error::Config(format!("mqtt.topics[{i}].pattern {:?}: {why}", t.pattern)))
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl BuildSource for MqttConfig {
    const KIND: &'static str = "mqtt";

    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| Err(Error::Config(format!("mqtt.{key}: {why}")));
        if self.name.trim().is_empty() {
            return bad("name", "must not be empty".to_owned());
        }
        if self.host.trim().is_empty() {
            return bad("host", "must not be empty".to_owned());
        }
        if self.client_id().is_empty() || self.client_id().len() > 128 {
            return bad("client_id", "must be 1 to 128 characters".to_owned());
        }
        if self.topics.is_empty() {
            return bad(
                "topics",
                "at least one [[sources.topics]] pattern is needed".to_owned(),
            );
        }
        if self.keep_alive_s < 5 {
            return bad(
                "keep_alive_s",
                format!("must be at least 5, got {}", self.keep_alive_s),
            );
        }
        if self.inflight == 0 {
            return bad("inflight", "must be at least 1".to_owned());
        }
        if self.batch_max == 0 || self.batch_max > 100_000 {
            return bad("batch_max", format!("must be 1..=100000, got {}", self.batch_max));
        }
        if self.reconnect_ms.0 == 0 || self.reconnect_ms.0 > self.reconnect_ms.1 {
            return bad(
                "reconnect_ms",
                format!(
                    "must be [first, longest] with 0 < first <= longest, got {:?}",
                    self.reconnect_ms
                ),
            );
        }
        if self.password.is_some() && self.username.is_none() {
            return bad("password", "a password needs a username".to_owned());
        }
        self.patterns().map(|_| ())
    }

    async fn build(&self, cx: &SourceContext) -> Result<BuiltSource> {
        let mut config = self.clone();
        if let Some(p) = config.password.as_mut() {
            *p = crate::secret::secret(p, &format!("mqtt {:?}: password", self.name))?;
        }
        config.validate()?;
        let state = cx.state_dir(&self.name)?;
        let runtime = cx.runtime(&self.name, Self::KIND);
        runtime.set_description(format!(
            "MQTT {}:{} as {:?}, topics {}",
            config.host,
            config.port,
            config.client_id(),
            config
                .topics
                .iter()
                .map(|t| t.pattern.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let subscriber = Subscriber::open(config, &state, runtime.clone(), cx.partitions)?;
        let handle = runtime.handle();
        Ok(BuiltSource {
            handle,
            task: Box::pin(subscriber.run()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_topic(pattern: &str) -> MqttConfig {
        MqttConfig {
            topics: vec![TopicConfig {
                pattern: pattern.to_owned(),
                event_type: device_status(),
            }],
            ..MqttConfig::default()
        }
    }

    #[test]
    fn a_block_parses_with_defaults_and_a_pattern() {
        let c: MqttConfig = toml::from_str(
            "name = \"lanes\"\n[[topics]]\npattern = \"stores/{store_id}/lanes/{device_id}/status\"\n",
        )
        .expect("parses");
        assert_eq!(c.client_id(), "retail-etl-lanes");
        assert_eq!(c.topics[0].event_type, "device_status");
        c.validate().expect("valid");
    }

    #[test]
    fn errors_name_the_key() {
        let e = MqttConfig::default().validate().expect_err("no topics");
        assert!(e.to_string().contains("mqtt.topics"), "{e}");
        let e = with_topic("stores/{store_id}/x{y}")
            .validate()
            .expect_err("bad level");
        assert!(e.to_string().contains("mqtt.topics[0].pattern"), "{e}");
        let e = MqttConfig {
            reconnect_ms: (0, 5),
            ..with_topic("a/b")
        }
        .validate()
        .expect_err("zero backoff");
        assert!(e.to_string().contains("mqtt.reconnect_ms"), "{e}");
    }
}
