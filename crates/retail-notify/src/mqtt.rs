//! The MQTT channel: the delivery's JSON body published at QoS 1 to `<topic>/<kind>`; sent
//! once the broker's PUBACK for that packet came. One publish in flight at a time; after any
//! connection error the client is rebuilt, so nothing from a failed attempt is re-sent behind
//! the dispatcher's back (the dispatcher's retry is the only one, with the same delivery id in
//! the payload).

use std::time::Duration;

use async_trait::async_trait;
use retail_sink::outbox::Delivery;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::Mutex;

use crate::{message, Channel, SendError};

/// A broker and a topic prefix.
pub struct Mqtt {
    broker: String,
    options: MqttOptions,
    topic: String,
    session: Mutex<Option<(AsyncClient, EventLoop)>>,
}

impl Mqtt {
    /// A channel publishing to `host:port` under `topic`; `name` goes into the client id.
    pub fn new(name: &str, host: &str, port: u16, topic: &str) -> Self {
        let id = format!("retail-etl-notify-{name}-{}", uuid::Uuid::now_v7().simple());
        let mut options = MqttOptions::new(id, host, port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(true);
        Self {
            broker: format!("{host}:{port}"),
            options,
            topic: topic.to_owned(),
            session: Mutex::new(None),
        }
    }
}

impl std::fmt::Debug for Mqtt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mqtt")
            .field("broker", &self.broker)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Channel for Mqtt {
    async fn send(&self, delivery: &Delivery) -> Result<(), SendError> {
        let mut guard = self.session.lock().await;
        let (client, eventloop) = guard.get_or_insert_with(|| AsyncClient::new(self.options.clone(), 4));
        let topic = format!("{}/{}", self.topic, delivery.kind);
        let fail = |what: String| SendError::transient(format!("MQTT {} topic {topic}: {what}", self.broker));
        client
            .publish(topic.as_str(), QoS::AtLeastOnce, false, message::body(delivery))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut pkid = None;
        let acked = loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Publish(id))) if pkid.is_none() => pkid = Some(id),
                Ok(Event::Incoming(Packet::PubAck(ack))) if Some(ack.pkid) == pkid => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(fail(e.to_string())),
            }
        };
        if acked.is_err() {
            // A fresh client next time: the failed one would re-send this publish itself.
            *guard = None;
        }
        acked
    }
}
