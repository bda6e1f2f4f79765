//! The built-in event types' Avro schemas, registered at start under Confluent's default
//! subject names (`<topic>-value`, the TopicNameStrategy), every version in order.
//!
//! Each schema mirrors the JSON shape of its type (`retail_core::event`, the same field names),
//! so an Avro event is the JSON event it stands for ([`crate::avro::to_json`]): `type` and
//! `schema_version` are fields with defaults, so a producer may leave them out; optional fields
//! are unions with `null`; money is `string` (exact decimal text); `ts` is `timestamp-millis`.
//! The `orders` subject has both versions of `order` (version 2 adds `channel` with a
//! default, a BACKWARD-compatible change), so a producer still writing version 1 keeps working
//! and its orders are upgraded on read like JSON ones. The `catalog` topic (stores, products
//! and sellers in one topic) has no built-in Avro schema: it stays JSON.

/// One built-in schema: the subject it is registered under, the event type and its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    pub subject: &'static str,
    pub type_name: &'static str,
    pub version: u16,
    pub schema: &'static str,
}

macro_rules! schema {
    ($name:literal, $type:literal, $version:literal, [$($field:literal),* $(,)?]) => {
        concat!(
            r#"{"type":"record","name":""#, $name, r#"","namespace":"retail.events","fields":["#,
            r#"{"name":"type","type":"string","default":""#, $type, r#""},"#,
            r#"{"name":"schema_version","type":"int","default":"#, $version, r#"},"#,
            r#"{"name":"event_id","type":["null","string"],"default":null},"#,
            r#"{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},"#,
            r#"{"name":"source","type":["null","string"],"default":null}"#,
            $(",", $field,)*
            "]}"
        )
    };
}

/// Every built-in schema, in the order it is registered (versions of a subject oldest first).
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        subject: "sales-value",
        type_name: "sale",
        version: 1,
        schema: schema!(
            "Sale",
            "sale",
            "1",
            [
                r#"{"name":"store_id","type":"long"}"#,
                r#"{"name":"sku","type":"long"}"#,
                r#"{"name":"qty","type":"int"}"#,
                r#"{"name":"unit_price","type":["null","string"],"default":null}"#,
                r#"{"name":"seller_id","type":["null","long"],"default":null}"#,
            ]
        ),
    },
    Builtin {
        subject: "orders-value",
        type_name: "order",
        version: 1,
        schema: schema!(
            "Order",
            "order",
            "1",
            [
                r#"{"name":"order_id","type":"string"}"#,
                r#"{"name":"status","type":"string"}"#,
                r#"{"name":"store_id","type":["null","long"],"default":null}"#,
                r#"{"name":"amount","type":["null","string"],"default":null}"#,
                r#"{"name":"currency","type":["null","string"],"default":null}"#,
                r#"{"name":"customer_id","type":["null","string"],"default":null}"#,
            ]
        ),
    },
    Builtin {
        subject: "orders-value",
        type_name: "order",
        version: 2,
        schema: schema!(
            "Order",
            "order",
            "2",
            [
                r#"{"name":"order_id","type":"string"}"#,
                r#"{"name":"status","type":"string"}"#,
                r#"{"name":"store_id","type":["null","long"],"default":null}"#,
                r#"{"name":"amount","type":["null","string"],"default":null}"#,
                r#"{"name":"currency","type":["null","string"],"default":null}"#,
                r#"{"name":"customer_id","type":["null","string"],"default":null}"#,
                r#"{"name":"channel","type":"string","default":"web"}"#,
            ]
        ),
    },
    Builtin {
        subject: "payments-value",
        type_name: "payment",
        version: 1,
        schema: schema!(
            "Payment",
            "payment",
            "1",
            [
                r#"{"name":"payment_id","type":"string"}"#,
                r#"{"name":"order_id","type":"string"}"#,
                r#"{"name":"amount","type":"string"}"#,
                r#"{"name":"currency","type":"string"}"#,
                r#"{"name":"status","type":"string"}"#,
                r#"{"name":"card_id","type":["null","string"],"default":null}"#,
                r#"{"name":"customer_id","type":["null","string"],"default":null}"#,
                r#"{"name":"ip_country","type":["null","string"],"default":null}"#,
                r#"{"name":"billing_country","type":["null","string"],"default":null}"#,
            ]
        ),
    },
    Builtin {
        subject: "inventory-value",
        type_name: "inventory",
        version: 1,
        schema: schema!(
            "Inventory",
            "inventory",
            "1",
            [
                r#"{"name":"store_id","type":"long"}"#,
                r#"{"name":"sku","type":"long"}"#,
                r#"{"name":"on_hand","type":"long"}"#,
                r#"{"name":"reason","type":["null","string"],"default":null}"#,
                r#"{"name":"lead_time_days","type":["null","long"],"default":null}"#,
            ]
        ),
    },
    Builtin {
        subject: "devices-value",
        type_name: "device_status",
        version: 1,
        schema: schema!(
            "DeviceStatus",
            "device_status",
            "1",
            [
                r#"{"name":"store_id","type":"long"}"#,
                r#"{"name":"device_id","type":"string"}"#,
                r#"{"name":"status","type":"string"}"#,
                r#"{"name":"detail","type":["null","string"],"default":null}"#,
            ]
        ),
    },
];

/// The subject of the `alerts` topic's records when they are written in Avro
/// (`notifications.alerts_topic_format = "avro"`).
pub const ALERTS_SUBJECT: &str = "alerts-value";

/// The schema of an alert on the `alerts` topic: the JSON body every channel sends
/// (`retail_notify::message::Body`), field for field.
pub const ALERT_SCHEMA: &str = concat!(
    r#"{"type":"record","name":"AlertDelivery","namespace":"retail.alerts","fields":["#,
    r#"{"name":"delivery_id","type":"string"},"#,
    r#"{"name":"attempt","type":"int"},"#,
    r#"{"name":"channel","type":"string"},"#,
    r#"{"name":"alert_id","type":"string"},"#,
    r#"{"name":"kind","type":"string"},"#,
    r#"{"name":"severity","type":"string"},"#,
    r#"{"name":"subject","type":"string"},"#,
    r#"{"name":"at","type":"string"},"#,
    r#"{"name":"message","type":"string"}"#,
    "]}"
);

/// `(subject, schema)` pairs for [`crate::SchemaRegistry::open`]: the event types' and the
/// alerts topic's.
pub fn subjects() -> Vec<(&'static str, &'static str)> {
    BUILTINS
        .iter()
        .map(|b| (b.subject, b.schema))
        .chain([(ALERTS_SUBJECT, ALERT_SCHEMA)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryStore, SchemaRegistry};
    use std::sync::Arc;

    #[tokio::test]
    async fn every_builtin_parses_registers_and_reopens_the_same() {
        let store = Arc::new(MemoryStore::new());
        let registry = SchemaRegistry::open(store.clone(), &subjects())
            .await
            .expect("open");
        let orders = registry
            .versions("orders-value", crate::Deleted::Hidden)
            .await
            .expect("orders");
        assert_eq!(orders.len(), 2, "both order versions: {orders:?}");
        let rows = store.rows();
        let again = SchemaRegistry::open(store.clone(), &subjects())
            .await
            .expect("reopen");
        assert_eq!(store.rows(), rows, "a restart registers nothing new");
        assert_eq!(
            again
                .versions("orders-value", crate::Deleted::Hidden)
                .await
                .expect("orders"),
            orders
        );
    }
}
