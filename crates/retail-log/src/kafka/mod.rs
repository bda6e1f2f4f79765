//! The Kafka backend (cargo feature `kafka`): the [`Log`](crate::Log) trait on any
//! Kafka-protocol cluster through librdkafka, for running several `retail-etl` processes as one
//! consumer group (ADR 0010).
//!
//! - Producer: idempotent, `acks=all`; an append returns only once the broker acknowledged
//!   every record. The backend picks each partition itself with the Java client's murmur2
//!   ([`partition_for_key`](crate::partition_for_key)), so other Kafka applications agree on
//!   where a store or an order lives.
//! - Topics are created with the admin API when missing and checked when present: another
//!   partition count is [`Error::PartitionMismatch`](crate::Error::PartitionMismatch).
//! - Consumers are group members whose rebalances wait for the caller (`consumer.rs`).
//!
//! # Layout
//! - `../kafka_config.rs`: `[log.kafka]`, `${VAR}` secrets, redaction (built without the
//!   feature too, so configurations load and `check-config` works everywhere).
//! - `client.rs`: configuration layering, librdkafka logs, error mapping.
//! - `log.rs`: [`KafkaLog`]. `consumer.rs`: [`KafkaConsumer`].

mod client;
mod consumer;
mod log;

pub use crate::KafkaConfig;
pub use consumer::KafkaConsumer;
pub use log::KafkaLog;
