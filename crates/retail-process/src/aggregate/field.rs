//! The fields an aggregate can filter, group and measure by: an event's own fields plus those
//! the catalog join adds to sales (city, country, names, category).

use std::sync::Arc;

use retail_core::{Event, EventBody};
use retail_sink::derived::{ColumnType, Value};
use rust_decimal::Decimal;

use super::catalog::Catalog;

/// A field, resolved from its name once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `sale`, `return` or `void` (sales); order/payment/device status elsewhere.
    Kind,
    /// Store id.
    StoreId,
    /// Product id.
    Sku,
    /// Quantity (negative for returns).
    Qty,
    /// Unit price.
    UnitPrice,
    /// `qty * unit_price` for sales; the amount of orders and payments.
    Amount,
    /// Seller id.
    SellerId,
    /// The producing system.
    Source,
    /// Order id.
    OrderId,
    /// Payment id.
    PaymentId,
    /// Currency code.
    Currency,
    /// Stock on hand.
    OnHand,
    /// Device id.
    DeviceId,
    /// Joined from the store: city.
    City,
    /// Joined from the store: country.
    Country,
    /// Joined from the store: its name.
    StoreName,
    /// Joined from the seller: name.
    SellerName,
    /// Joined from the product: category.
    Category,
    /// Joined from the product: name.
    ProductName,
}

impl Field {
    /// Number of fields: [`Field`] as `usize` indexes arrays of this length.
    pub const COUNT: usize = Self::ProductName as usize + 1;
}

/// Which catalog dimension a field needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// `store_dim`.
    Store,
    /// `seller_dim`.
    Seller,
    /// `product_dim`.
    Product,
}

impl Dimension {
    /// The store table holding this dimension (what lineage names as a join's input).
    pub const fn table(self) -> &'static str {
        match self {
            Self::Store => "store_dim",
            Self::Seller => "seller_dim",
            Self::Product => "product_dim",
        }
    }
}

/// What a join miss is filled with, so the row still lands and is visibly unenriched.
pub const UNKNOWN: &str = "unknown";

impl Field {
    /// Fields of `topic` by name, in the order error messages list them.
    pub fn of_topic(topic: &str) -> &'static [(&'static str, Self)] {
        match topic {
            "sales" => &[
                ("kind", Self::Kind),
                ("store_id", Self::StoreId),
                ("sku", Self::Sku),
                ("qty", Self::Qty),
                ("unit_price", Self::UnitPrice),
                ("amount", Self::Amount),
                ("seller_id", Self::SellerId),
                ("source", Self::Source),
                ("city", Self::City),
                ("country", Self::Country),
                ("store_name", Self::StoreName),
                ("seller_name", Self::SellerName),
                ("category", Self::Category),
                ("product_name", Self::ProductName),
            ],
            "orders" => &[
                ("order_id", Self::OrderId),
                ("status", Self::Kind),
                ("store_id", Self::StoreId),
                ("amount", Self::Amount),
                ("currency", Self::Currency),
                ("source", Self::Source),
            ],
            "payments" => &[
                ("payment_id", Self::PaymentId),
                ("order_id", Self::OrderId),
                ("amount", Self::Amount),
                ("currency", Self::Currency),
                ("status", Self::Kind),
                ("source", Self::Source),
            ],
            "inventory" => &[
                ("store_id", Self::StoreId),
                ("sku", Self::Sku),
                ("on_hand", Self::OnHand),
                ("source", Self::Source),
            ],
            "devices" => &[
                ("store_id", Self::StoreId),
                ("device_id", Self::DeviceId),
                ("status", Self::Kind),
                ("source", Self::Source),
            ],
            _ => &[],
        }
    }

    /// The column type of the field's values.
    pub const fn ty(self) -> ColumnType {
        match self {
            Self::StoreId | Self::Sku | Self::Qty | Self::SellerId | Self::OnHand => ColumnType::Int,
            Self::UnitPrice | Self::Amount => ColumnType::Decimal,
            _ => ColumnType::Text,
        }
    }

    /// The catalog dimension this field is joined from, if any.
    pub const fn dimension(self) -> Option<Dimension> {
        match self {
            Self::City | Self::Country | Self::StoreName => Some(Dimension::Store),
            Self::SellerName => Some(Dimension::Seller),
            Self::Category | Self::ProductName => Some(Dimension::Product),
            _ => None,
        }
    }

    /// Whether the field's value in `event` is one of `allowed`. Filters run several times per
    /// event (`kind = "sale"` in most measures), so text the event holds is compared in place
    /// instead of being copied into a [`Value`] first.
    pub fn is_in(self, event: &Event, catalog: &Catalog, allowed: &[Value]) -> bool {
        let text = |s: &str| allowed.iter().any(|v| matches!(v, Value::Text(t) if &**t == s));
        match (&event.body, self) {
            (_, Self::Source) => text(&event.source),
            (EventBody::Sale(s), Self::Kind) => text(s.kind.as_str()),
            _ => allowed.contains(&self.value(event, catalog)),
        }
    }

    /// The field's value in `event`, joined with `catalog` where needed. `Null` when the event
    /// lacks it; [`UNKNOWN`] when the catalog lacks the row.
    pub fn value(self, event: &Event, catalog: &Catalog) -> Value {
        let int = |v: i64| Value::Int(v);
        let text = |s: &str| Value::Text(Arc::from(s));
        let dec = |d: Option<Decimal>| d.map_or(Value::Null, Value::Decimal);
        let joined = |v: Option<&Arc<str>>| Value::Text(v.cloned().unwrap_or_else(|| Arc::from(UNKNOWN)));
        if self == Self::Source {
            return text(&event.source);
        }
        match &event.body {
            EventBody::Sale(s) => match self {
                Self::Kind => text(s.kind.as_str()),
                Self::StoreId => int(s.store_id),
                Self::Sku => int(s.sku),
                Self::Qty => int(i64::from(s.qty)),
                Self::UnitPrice => dec(s.unit_price),
                // The decoder refuses a price whose product with qty overflows; checked here
                // too, so no input can make this panic (absent rather than wrong if it did).
                Self::Amount => dec(s.unit_price.and_then(|p| p.checked_mul(Decimal::from(s.qty)))),
                Self::SellerId => s.seller_id.map_or(Value::Null, int),
                Self::City => joined(catalog.store(s.store_id).map(|st| &st.city)),
                Self::Country => joined(catalog.store(s.store_id).map(|st| &st.country)),
                Self::StoreName => joined(catalog.store(s.store_id).map(|st| &st.name)),
                Self::SellerName => match s.seller_id {
                    Some(id) => joined(catalog.seller(id)),
                    None => Value::Null,
                },
                Self::Category => joined(catalog.product(s.sku).map(|p| &p.category)),
                Self::ProductName => joined(catalog.product(s.sku).map(|p| &p.name)),
                _ => Value::Null,
            },
            EventBody::Order(o) => match self {
                Self::OrderId => text(&o.order_id),
                Self::Kind => text(&format!("{:?}", o.status).to_lowercase()),
                Self::StoreId => o.store_id.map_or(Value::Null, int),
                Self::Amount => dec(o.amount),
                Self::Currency => o.currency.as_deref().map_or(Value::Null, text),
                _ => Value::Null,
            },
            EventBody::Payment(p) => match self {
                Self::PaymentId => text(&p.payment_id),
                Self::OrderId => text(&p.order_id),
                Self::Amount => Value::Decimal(p.amount),
                Self::Currency => text(&p.currency),
                Self::Kind => text(&format!("{:?}", p.status).to_lowercase()),
                _ => Value::Null,
            },
            EventBody::Inventory(i) => match self {
                Self::StoreId => int(i.store_id),
                Self::Sku => int(i.sku),
                Self::OnHand => int(i.on_hand),
                _ => Value::Null,
            },
            EventBody::DeviceStatus(d) => match self {
                Self::StoreId => int(d.store_id),
                Self::DeviceId => text(&d.device_id),
                Self::Kind => text(&d.status),
                _ => Value::Null,
            },
            EventBody::Store(_) | EventBody::Product(_) | EventBody::Seller(_) => Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use retail_core::{Sale, SaleKind};

    use super::*;

    fn sale(kind: SaleKind) -> Event {
        Event {
            event_id: uuid::Uuid::nil(),
            ts: chrono::DateTime::UNIX_EPOCH,
            source: "pos".into(),
            schema_version: 1,
            body: EventBody::Sale(Sale {
                kind,
                store_id: 7,
                sku: 1,
                qty: 2,
                unit_price: None,
                seller_id: None,
            }),
        }
    }

    /// `is_in` compares text in place; it must say what comparing `value` would.
    #[test]
    fn is_in_agrees_with_value() {
        let catalog = Catalog::default();
        let text = |s: &str| Value::Text(Arc::from(s));
        let cases: &[(Field, Vec<Value>)] = &[
            (Field::Kind, vec![text("sale")]),
            (Field::Kind, vec![text("return"), text("void")]),
            (Field::Source, vec![text("pos")]),
            (Field::Source, vec![text("web")]),
            (Field::StoreId, vec![Value::Int(7)]),
            (Field::City, vec![text(UNKNOWN)]),
            (Field::SellerId, vec![Value::Null]),
        ];
        for kind in [SaleKind::Sale, SaleKind::Return, SaleKind::Void] {
            let e = sale(kind);
            for (f, allowed) in cases {
                let expected = allowed.contains(&f.value(&e, &catalog));
                assert_eq!(
                    f.is_in(&e, &catalog, allowed),
                    expected,
                    "{f:?} in {allowed:?} for {kind:?}"
                );
            }
        }
        assert!(Field::Kind.is_in(&sale(SaleKind::Return), &catalog, &[text("return")]));
    }
}
