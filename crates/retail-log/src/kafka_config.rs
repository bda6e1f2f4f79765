//! `[log.kafka]`: settings of the Kafka backend, and librdkafka properties passed through.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Kafka backend settings.
///
/// `properties` go to every librdkafka client the backend makes (producer, consumers, admin):
/// SASL, TLS, compression, linger, timeouts. A value written `${VAR}` is read from the
/// environment when the backend opens, so secrets live outside the file; values are never
/// logged, and `check-config` shows them redacted ([`KafkaConfig::redacted`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Replication factor of topics the backend creates.
    pub replication_factor: i32,
    /// Timeout of admin and metadata requests, milliseconds.
    pub request_timeout_ms: u64,
    /// librdkafka properties, e.g. `"security.protocol" = "SASL_SSL"`,
    /// `"sasl.password" = "${KAFKA_PASSWORD}"`, `"session.timeout.ms" = "6000"`.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            replication_factor: 1,
            request_timeout_ms: 30_000,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// Refuses settings that cannot work, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=32).contains(&self.replication_factor) {
            return Err(format!(
                "log.kafka.replication_factor: must be between 1 and 32, got {}",
                self.replication_factor
            ));
        }
        if !(100..=600_000).contains(&self.request_timeout_ms) {
            return Err(format!(
                "log.kafka.request_timeout_ms: must be between 100 and 600000, got {}",
                self.request_timeout_ms
            ));
        }
        Ok(())
    }

    /// The properties with every `${VAR}` replaced by the environment variable's value.
    /// An unset variable is an error naming the property and the variable, never an empty value.
    pub fn resolved_properties(&self) -> Result<Vec<(String, String)>, String> {
        self.properties
            .iter()
            .map(|(k, v)| {
                resolve_env(v, |name| std::env::var(name).ok())
                    .map(|v| (k.clone(), v))
                    .map_err(|var| {
                        format!("log.kafka.properties.{k:?}: environment variable {var} is not set")
                    })
            })
            .collect()
    }

    /// A copy for display: secret-looking properties become `<redacted>` unless they only name
    /// an environment variable (`${VAR}` is not a secret and helps the reader).
    #[must_use]
    pub fn redacted(&self) -> Self {
        let mut shown = self.clone();
        for (k, v) in &mut shown.properties {
            let only_env = v.starts_with("${") && v.ends_with('}') && !v[2..].contains("${");
            if retail_core::redact::is_secret_name(k) && !only_env {
                *v = "<redacted>".to_owned();
            }
        }
        shown
    }
}

/// Replaces each `${NAME}` in `value` by `lookup(NAME)`; `Err(NAME)` for the first unset one.
fn resolve_env(value: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        out.push_str(&lookup(name).ok_or_else(|| name.to_owned())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_are_resolved_and_an_unset_one_is_named() {
        let lookup = |n: &str| (n == "PW").then(|| "s3cret".to_owned());
        assert_eq!(resolve_env("${PW}", lookup).as_deref(), Ok("s3cret"));
        assert_eq!(resolve_env("a-${PW}-b", lookup).as_deref(), Ok("a-s3cret-b"));
        assert_eq!(resolve_env("plain", lookup).as_deref(), Ok("plain"));
        assert_eq!(resolve_env("${NOPE}", lookup), Err("NOPE".to_owned()));
        assert_eq!(resolve_env("${open", lookup).as_deref(), Ok("${open"));
    }

    #[test]
    fn unset_variable_error_names_the_property() {
        let mut c = KafkaConfig::default();
        c.properties
            .insert("sasl.password".into(), "${RETAIL_TEST_SURELY_UNSET_VAR}".into());
        let err = c.resolved_properties().expect_err("unset");
        assert!(
            err.contains("sasl.password") && err.contains("RETAIL_TEST_SURELY_UNSET_VAR"),
            "{err}"
        );
    }

    #[test]
    fn secrets_are_redacted_but_env_references_and_paths_are_shown() {
        let mut c = KafkaConfig::default();
        for (k, v) in [
            ("sasl.password", "hunter2"),
            ("sasl.username", "etl"),
            ("ssl.key.password", "${KEY_PW}"),
            ("ssl.key.location", "/etc/kafka/key.pem"),
            ("linger.ms", "5"),
        ] {
            c.properties.insert(k.into(), v.into());
        }
        let shown = c.redacted().properties;
        assert_eq!(shown["sasl.password"], "<redacted>");
        assert_eq!(shown["sasl.username"], "etl");
        assert_eq!(shown["ssl.key.password"], "${KEY_PW}");
        assert_eq!(shown["ssl.key.location"], "/etc/kafka/key.pem");
        assert_eq!(shown["linger.ms"], "5");
    }
}
