//! The event types. Field names here are the wire names.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

/// The first version of every event type, and the version of a record's envelope header. Each
/// type's current version is [`super::versions::current`]; a version a build does not know is
/// rejected, not guessed at.
pub const SCHEMA_VERSION: u16 = 1;

/// The accepted values of an order's `channel` (version 2), the first being the default.
pub const ORDER_CHANNELS: [(&str, &str); 4] = [
    ("web", "web"),
    ("app", "app"),
    ("store", "store"),
    ("marketplace", "marketplace"),
];

/// One validated retail event: the envelope plus a typed body.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique id of the event; duplicates (same id) contribute once downstream.
    pub event_id: Uuid,
    /// Event time: when it happened at the source, not when we received it.
    pub ts: DateTime<Utc>,
    /// Producing system, e.g. `pos`, `web`, `erp`, `generator`.
    pub source: String,
    /// The version of its type this event was decoded in: always the type's current one
    /// (older versions are upgraded on read, [`super::versions`]).
    pub schema_version: u16,
    /// The typed payload.
    pub body: EventBody,
}

/// The payload of an event, one variant per `type`.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    /// `sale`, `return` or `void` from a till or web shop.
    Sale(Sale),
    /// `order`: an e-commerce order changed state.
    Order(Order),
    /// `payment`: a payment changed state.
    Payment(Payment),
    /// `inventory`: stock level of a SKU in a store (from the ERP).
    Inventory(Inventory),
    /// `store`: catalog entry for a store.
    Store(StoreInfo),
    /// `product`: catalog entry for a SKU.
    Product(Product),
    /// `seller`: catalog entry for a salesperson.
    Seller(Seller),
    /// `device_status`: a store device (till, scanner, sensor) reported its state.
    DeviceStatus(DeviceStatus),
}

/// Whether a sale line sold, returned or voided goods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaleKind {
    /// Goods left the store.
    Sale,
    /// Goods came back; stored with a negative quantity.
    Return,
    /// A line cancelled at the till; stored with a negative quantity.
    Void,
}

impl SaleKind {
    /// The wire and table name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sale => "sale",
            Self::Return => "return",
            Self::Void => "void",
        }
    }
}

/// A sale line. `qty` is signed: sales are positive, returns and voids negative, so that a
/// plain `SUM(qty)` nets them.
#[derive(Debug, Clone, PartialEq)]
pub struct Sale {
    /// Sale, return or void.
    pub kind: SaleKind,
    /// Store where it happened.
    pub store_id: i64,
    /// Product.
    pub sku: i64,
    /// Units, signed (see the type's docs).
    pub qty: i32,
    /// Price of one unit, if the till sent it.
    pub unit_price: Option<Decimal>,
    /// Salesperson, if known.
    pub seller_id: Option<i64>,
}

/// States of an order, in lifecycle order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Order placed.
    Created,
    /// Payment captured.
    Paid,
    /// Packed in the warehouse.
    Packed,
    /// Handed to the carrier.
    Shipped,
    /// Delivered to the customer.
    Delivered,
    /// Cancelled at any point.
    Cancelled,
}

/// An e-commerce order state change.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// Order id from the shop.
    pub order_id: String,
    /// New state.
    pub status: OrderStatus,
    /// Store fulfilling it, if any.
    pub store_id: Option<i64>,
    /// Order total.
    pub amount: Option<Decimal>,
    /// ISO 4217 currency code.
    pub currency: Option<String>,
    /// Customer who placed it, if the shop sends it.
    pub customer_id: Option<String>,
    /// Where the order was placed: `web`, `app`, `store` or `marketplace` (version 2; an order
    /// of version 1 is `web`).
    pub channel: &'static str,
}

/// States of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// Authorised, not yet captured.
    Authorized,
    /// Money captured.
    Captured,
    /// Declined or errored.
    Failed,
    /// Money returned.
    Refunded,
}

/// A payment state change.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    /// Payment id from the payment provider.
    pub payment_id: String,
    /// Order it pays for.
    pub order_id: String,
    /// Amount.
    pub amount: Decimal,
    /// ISO 4217 currency code.
    pub currency: String,
    /// New state.
    pub status: PaymentStatus,
    /// The card (a token, never the number), for fraud rules keyed by card.
    pub card_id: Option<String>,
    /// Paying customer, for fraud rules keyed by customer.
    pub customer_id: Option<String>,
    /// ISO 3166-1 alpha-2 country of the payer's IP address.
    pub ip_country: Option<String>,
    /// ISO 3166-1 alpha-2 country of the card's billing address.
    pub billing_country: Option<String>,
}

/// Stock level of a SKU in a store.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// Store holding the stock.
    pub store_id: i64,
    /// Product.
    pub sku: i64,
    /// Units on hand after this event.
    pub on_hand: i64,
    /// Why the level changed: `snapshot` (a count, the default), `receipt`, `shrinkage`,
    /// `correction`. Every kind states the absolute level, so the last one wins.
    pub reason: Option<String>,
    /// Days a reorder takes to arrive for this SKU and store, if the ERP knows.
    pub lead_time_days: Option<i64>,
}

/// Catalog: a store and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreInfo {
    /// Store id.
    pub store_id: i64,
    /// Display name.
    pub name: String,
    /// City.
    pub city: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
}

/// Catalog: a product.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    /// SKU.
    pub sku: i64,
    /// Display name.
    pub name: String,
    /// Category.
    pub category: String,
    /// List price.
    pub price: Option<Decimal>,
}

/// Catalog: a salesperson and their store.
#[derive(Debug, Clone, PartialEq)]
pub struct Seller {
    /// Seller id.
    pub seller_id: i64,
    /// Home store.
    pub store_id: i64,
    /// Display name.
    pub name: String,
}

/// A store device's reported state.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceStatus {
    /// Store the device is in.
    pub store_id: i64,
    /// Device id within the store, e.g. `lane-3`.
    pub device_id: String,
    /// `online`, `offline`, `error`, ...
    pub status: String,
    /// Free-text detail.
    pub detail: Option<String>,
}

impl Event {
    /// An event of its type's current version (what producers write).
    pub fn new(event_id: Uuid, ts: DateTime<Utc>, source: String, body: EventBody) -> Self {
        let mut event = Self {
            event_id,
            ts,
            source,
            schema_version: 1,
            body,
        };
        event.schema_version = super::versions::current(event.type_name());
        event
    }

    /// The wire `type` of this event.
    pub const fn type_name(&self) -> &'static str {
        match &self.body {
            EventBody::Sale(s) => s.kind.as_str(),
            EventBody::Order(_) => "order",
            EventBody::Payment(_) => "payment",
            EventBody::Inventory(_) => "inventory",
            EventBody::Store(_) => "store",
            EventBody::Product(_) => "product",
            EventBody::Seller(_) => "seller",
            EventBody::DeviceStatus(_) => "device_status",
        }
    }

    /// The log topic this event belongs on.
    pub const fn topic(&self) -> &'static str {
        match &self.body {
            EventBody::Sale(_) => topics::SALES,
            EventBody::Order(_) => topics::ORDERS,
            EventBody::Payment(_) => topics::PAYMENTS,
            EventBody::Inventory(_) => topics::INVENTORY,
            EventBody::Store(_) | EventBody::Product(_) | EventBody::Seller(_) => topics::CATALOG,
            EventBody::DeviceStatus(_) => topics::DEVICES,
        }
    }

    /// The partition key: the store for store-bound events, the order for orders and payments,
    /// the SKU for products. Events of one key stay in order on one partition.
    pub fn partition_key(&self) -> String {
        match &self.body {
            EventBody::Sale(s) => s.store_id.to_string(),
            EventBody::Order(o) => o.order_id.clone(),
            EventBody::Payment(p) => p.order_id.clone(),
            EventBody::Inventory(i) => i.store_id.to_string(),
            EventBody::Store(s) => s.store_id.to_string(),
            EventBody::Product(p) => p.sku.to_string(),
            EventBody::Seller(s) => s.store_id.to_string(),
            EventBody::DeviceStatus(d) => d.store_id.to_string(),
        }
    }
}

/// Names of the log topics. One topic per stream, as a Kafka deployment would have them.
pub mod topics {
    /// Sales, returns and voids.
    pub const SALES: &str = "sales";
    /// Order lifecycle.
    pub const ORDERS: &str = "orders";
    /// Payments.
    pub const PAYMENTS: &str = "payments";
    /// Stock levels.
    pub const INVENTORY: &str = "inventory";
    /// Stores, products, sellers.
    pub const CATALOG: &str = "catalog";
    /// Store device status.
    pub const DEVICES: &str = "devices";
    /// Every data topic, in a stable order.
    pub const ALL: [&str; 6] = [SALES, ORDERS, PAYMENTS, INVENTORY, CATALOG, DEVICES];
    /// Records the landing rejected, with `reject_reason`, `reject_kind` and origin headers,
    /// for other applications sharing the log (they are rows of `dead_letters` too).
    pub const DEAD_LETTERS: &str = "dead-letters";
    /// Alerts raised by processing, for notification fan-out.
    pub const ALERTS: &str = "alerts";
    /// The topics beside the data topics.
    pub const SIDE: [&str; 2] = [DEAD_LETTERS, ALERTS];
}
