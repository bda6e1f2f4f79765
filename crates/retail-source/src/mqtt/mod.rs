//! Store devices over MQTT (lane status, opening hours, sensor readings): a persistent QoS 1
//! session whose messages are acknowledged only once their events are on the log, with topic
//! levels mapped to event fields and broker redeliveries landed once.
//!
//! - `config.rs`: [`MqttConfig`], which builds the source.
//! - `topic.rs`: topic patterns (`stores/{store_id}/lanes/{device_id}/status`).
//! - `identity.rs`: the journal that gives a redelivered message without `event_id` or `ts`
//!   the identity it had.
//! - `source.rs`: the [`Subscriber`] task.

mod config;
mod identity;
mod source;
mod topic;

pub use config::{MqttConfig, TopicConfig};
pub use source::Subscriber;
pub use topic::Pattern;
