//! What every librdkafka client of the backend shares: configuration layering, logging into
//! `tracing`, and the mapping of librdkafka errors onto the log's [`Error`].

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tracing::{debug, info, warn};

use super::KafkaConfig;
use crate::{Error, Result};

/// A client configuration: bootstrap servers, then the operator's properties, then what the
/// backend's guarantees need (`forced`), which the operator cannot turn off.
pub(super) fn client_config(
    servers: &str,
    config: &KafkaConfig,
    forced: &[(&str, &str)],
) -> Result<ClientConfig> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", servers);
    c.set("socket.timeout.ms", config.request_timeout_ms.to_string());
    for (k, v) in config.resolved_properties().map_err(Error::Config)? {
        c.set(k, v);
    }
    for (k, v) in forced {
        c.set(*k, *v);
    }
    Ok(c)
}

/// librdkafka's own log lines and client errors, into `tracing` (they never hold secrets).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tracing;

impl ClientContext for Tracing {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, line: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => warn!(message = "librdkafka", facility = fac, line),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                info!(message = "librdkafka", facility = fac, line)
            }
            RDKafkaLogLevel::Debug => debug!(message = "librdkafka", facility = fac, line),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        warn!(message = "kafka client error", error = %error, reason);
    }
}

/// Group-less clients (metadata, watermarks, offsets of a group read from outside it) never
/// rebalance: the default callbacks do.
impl ConsumerContext for Tracing {}

/// Maps a librdkafka error, saying what was being done, and whether retrying can help
/// (broker unreachable, leader moving, timeouts) or not (authorization, bad config).
pub(super) fn error(op: impl Into<String>, e: &KafkaError) -> Error {
    let retryable = e.rdkafka_error_code().is_some_and(is_transient);
    Error::Kafka {
        op: op.into(),
        message: e.to_string(),
        retryable,
    }
}

/// Error codes of conditions that pass: the same call later may succeed.
fn is_transient(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::OperationTimedOut
            | C::MessageTimedOut
            | C::QueueFull
            | C::RequestTimedOut
            | C::NetworkException
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::RebalanceInProgress
            | C::UnknownTopicOrPartition
            | C::Resolve
    )
}
