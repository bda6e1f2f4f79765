//! [`Event`] -> JSON bytes, the inverse of [`super::decode`]: what producers put on the log.

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

use super::types::*;

/// The flat wire shape; `None` fields are left out.
#[derive(Serialize, Default)]
struct Wire<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    schema_version: u16,
    event_id: String,
    ts: i64,
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    store_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sku: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    qty: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "money")]
    unit_price: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seller_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "money")]
    amount: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_hand: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    city: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "money")]
    price: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    card_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_country: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    billing_country: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lead_time_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
}

/// Amounts go out as JSON numbers written with the decimal's own digits (`19.99`, `1.125`,
/// `9999999999.99`), never through `f64`, which has only 15 to 17 significant digits; the
/// decoder parses the number's text exactly, so every amount reads back as the same decimal
/// (ADR 0020). `Decimal`'s text is always a valid JSON number: an optional `-`, digits, and an
/// optional point with digits, no exponent.
fn money<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => serde_json::value::RawValue::from_string(d.to_string())
            .map_err(serde::ser::Error::custom)?
            .serialize(s),
        None => s.serialize_none(),
    }
}

const fn order_status(s: OrderStatus) -> &'static str {
    match s {
        OrderStatus::Created => "created",
        OrderStatus::Paid => "paid",
        OrderStatus::Packed => "packed",
        OrderStatus::Shipped => "shipped",
        OrderStatus::Delivered => "delivered",
        OrderStatus::Cancelled => "cancelled",
    }
}

const fn payment_status(s: PaymentStatus) -> &'static str {
    match s {
        PaymentStatus::Authorized => "authorized",
        PaymentStatus::Captured => "captured",
        PaymentStatus::Failed => "failed",
        PaymentStatus::Refunded => "refunded",
    }
}

impl Event {
    /// The event as one JSON object, ready for the log.
    pub fn to_json(&self) -> Vec<u8> {
        let mut w = Wire {
            kind: self.type_name(),
            schema_version: self.schema_version,
            event_id: self.event_id.hyphenated().to_string(),
            ts: self.ts.timestamp_millis(),
            source: &self.source,
            ..Wire::default()
        };
        match &self.body {
            EventBody::Sale(s) => {
                w.store_id = Some(s.store_id);
                w.sku = Some(s.sku);
                w.qty = Some(s.qty);
                w.unit_price = s.unit_price;
                w.seller_id = s.seller_id;
            }
            EventBody::Order(o) => {
                w.order_id = Some(&o.order_id);
                w.status = Some(order_status(o.status));
                w.store_id = o.store_id;
                w.amount = o.amount;
                w.currency = o.currency.as_deref();
                w.customer_id = o.customer_id.as_deref();
                w.channel = Some(o.channel);
            }
            EventBody::Payment(p) => {
                w.payment_id = Some(&p.payment_id);
                w.order_id = Some(&p.order_id);
                w.amount = Some(p.amount);
                w.currency = Some(&p.currency);
                w.status = Some(payment_status(p.status));
                w.card_id = p.card_id.as_deref();
                w.customer_id = p.customer_id.as_deref();
                w.ip_country = p.ip_country.as_deref();
                w.billing_country = p.billing_country.as_deref();
            }
            EventBody::Inventory(i) => {
                w.store_id = Some(i.store_id);
                w.sku = Some(i.sku);
                w.on_hand = Some(i.on_hand);
                w.reason = i.reason.as_deref();
                w.lead_time_days = i.lead_time_days;
            }
            EventBody::Store(s) => {
                w.store_id = Some(s.store_id);
                w.name = Some(&s.name);
                w.city = Some(&s.city);
                w.country = Some(&s.country);
            }
            EventBody::Product(p) => {
                w.sku = Some(p.sku);
                w.name = Some(&p.name);
                w.category = Some(&p.category);
                w.price = p.price;
            }
            EventBody::Seller(s) => {
                w.seller_id = Some(s.seller_id);
                w.store_id = Some(s.store_id);
                w.name = Some(&s.name);
            }
            EventBody::DeviceStatus(d) => {
                w.store_id = Some(d.store_id);
                w.device_id = Some(&d.device_id);
                w.status = Some(&d.status);
                w.detail = d.detail.as_deref();
            }
        }
        // Serialising a struct of plain fields into a Vec cannot fail.
        serde_json::to_vec(&w).unwrap_or_default()
    }
}
