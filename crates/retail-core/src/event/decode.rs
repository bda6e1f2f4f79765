//! Bytes -> [`Event`], reporting every problem with its field path, never panicking.
//!
//! Why not `#[derive(Deserialize)]` on the event types: serde stops at the first error and its
//! messages name Rust types, not our fields. Instead the object is first split into its fields
//! as raw JSON slices in one pass (`fields.rs`, no allocation), then each field is checked on its own, so
//! one pass yields either a typed event or the full list of problems, e.g.
//! `qty: must be a non-zero integer, got "two"`. Unknown fields are ignored (forward
//! compatibility); a duplicated field is an error.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::fields::{self, Fields};
use super::types::*;
use super::versions;

/// Largest accepted event, in bytes. Larger input is rejected before it is parsed.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Event times outside this window are rejected: they are almost always seconds sent as
/// milliseconds (or the reverse), and each distinct day creates a partition in PostgreSQL.
const MIN_TS_MS: i64 = 946_684_800_000; // 2000-01-01T00:00:00Z
const MAX_TS_MS: i64 = 4_102_444_800_000; // 2100-01-01T00:00:00Z

/// Money (`unit_price`, `amount`, `price`) must be below this: PostgreSQL keeps it in
/// `numeric(12, 2)`, which holds at most 9,999,999,999.99 (ADR 0008).
pub const MONEY_LIMIT: i64 = 10_000_000_000;

/// Largest stock count: aggregates sum counts in 64-bit integer columns, and a count this
/// large leaves room for nine million of them in one sum (ADR 0008).
pub const MAX_COUNT: i64 = 1_000_000_000_000;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path, e.g. `qty`; empty when the problem is the whole input.
    pub path: String,
    /// What is wrong, naming the value received.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why input was not an event: every problem found, in field order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DecodeError {
    /// The problems; never empty.
    pub problems: Vec<FieldError>,
}

impl DecodeError {
    /// A short stable class for metrics and the `kind` column of dead letters.
    pub fn kind(&self) -> &'static str {
        let Some(first) = self.problems.first() else {
            return "invalid_field";
        };
        if !first.path.is_empty() {
            if first.path == "type" && first.message.starts_with("unknown event type") {
                return "unknown_type";
            }
            if first.path == "schema_version" && first.message.contains("is not known") {
                return "unknown_version";
            }
            return "invalid_field";
        }
        if first.message.starts_with("a string") {
            "invalid_field"
        } else if first.message.starts_with("schema id") {
            "unknown_schema"
        } else if first.message.starts_with("Avro") {
            "invalid_avro"
        } else if first.message.starts_with("event is") {
            "oversized"
        } else if first.message.starts_with("not UTF-8") {
            "not_utf8"
        } else {
            "malformed_json"
        }
    }

    fn whole(message: String) -> Self {
        Self {
            problems: vec![FieldError {
                path: String::new(),
                message,
            }],
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Decodes one event; a missing `event_id` gets a fresh UUIDv7 and a missing `source` becomes
/// `unknown`. See [`decode_with`] for deterministic ids.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    decode_with(bytes, "unknown", |_| Uuid::now_v7())
}

/// Decodes one event. `default_source` fills a missing `source`; `fill_id` is called with the
/// event time to fill a missing `event_id` (the landing derives it from the record's log
/// position so a replay assigns the same id).
pub fn decode_with(
    bytes: &[u8],
    default_source: &str,
    fill_id: impl FnOnce(DateTime<Utc>) -> Uuid,
) -> Result<Event, DecodeError> {
    decode_versioned(bytes, default_source, fill_id).map(|v| v.event)
}

/// An event decoded, with its text in the current version's shape when it came in an older
/// version (see [`super::versions`]): what should land as its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    pub event: Event,
    /// The upgraded JSON object; `None` when the input already had the current version.
    pub upgraded: Option<Vec<u8>>,
}

/// [`decode_with`], also returning the upgraded text of an event of an older version.
pub fn decode_versioned(
    bytes: &[u8],
    default_source: &str,
    fill_id: impl FnOnce(DateTime<Utc>) -> Uuid,
) -> Result<Versioned, DecodeError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(DecodeError::whole(format!(
            "event is {} bytes, larger than the {MAX_EVENT_BYTES}-byte limit",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        DecodeError::whole(format!("not UTF-8: invalid byte at position {}", e.valid_up_to()))
    })?;
    let raw = fields::split(text).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "not a JSON object",
            _ => "malformed JSON",
        };
        DecodeError::whole(format!("{what} ({e})"))
    })?;
    if let Some((type_name, version)) = older_version(&raw) {
        let upgraded = upgrade(text, type_name, version)?;
        let text = std::str::from_utf8(&upgraded).unwrap_or_default();
        let raw = fields::split(text)
            .map_err(|e| DecodeError::whole(format!("malformed JSON after the upgrade ({e})")))?;
        let event = check(text, &raw, default_source, fill_id)?;
        return Ok(Versioned {
            event,
            upgraded: Some(upgraded),
        });
    }
    let event = check(text, &raw, default_source, fill_id)?;
    Ok(Versioned {
        event,
        upgraded: None,
    })
}

/// The type and version of an event older than its type's current version. The type's text is
/// read only when it is a plain string (an escaped one is no known type, and the checks say so).
fn older_version<'a>(raw: &Fields<'a>) -> Option<(&'a str, u16)> {
    let type_name = match raw.kind {
        None => "sale",
        Some(t) => t.strip_prefix('"')?.strip_suffix('"')?,
    };
    let version = match raw.schema_version {
        None => 1,
        Some(v) => v.parse::<u16>().ok()?,
    };
    (version >= 1 && version < versions::current(type_name)).then_some((type_name, version))
}

/// `text` (an event of `type_name` at `version`) rewritten into the current version's shape.
fn upgrade(text: &str, type_name: &str, version: u16) -> Result<Vec<u8>, DecodeError> {
    let mut object: versions::Object =
        serde_json::from_str(text).map_err(|e| DecodeError::whole(format!("not a JSON object ({e})")))?;
    versions::upgrade(type_name, version, &mut object).map_err(|e| DecodeError {
        problems: vec![FieldError {
            path: e.path,
            message: e.message,
        }],
    })?;
    serde_json::to_vec(&object)
        .map_err(|e| DecodeError::whole(format!("the upgraded event could not be written ({e})")))
}

/// Checks every field of an event in the current version's shape.
fn check(
    text: &str,
    raw: &Fields<'_>,
    default_source: &str,
    fill_id: impl FnOnce(DateTime<Utc>) -> Uuid,
) -> Result<Event, DecodeError> {
    let mut c = Checker::default();

    let kind = match raw.kind {
        None => Some("sale".to_owned()),
        Some(v) => c.string("type", v),
    };
    // Older versions were upgraded before this check, so only the current one is read here.
    let version = match raw.schema_version {
        None => Some(1),
        Some(v) => match v.parse::<u16>() {
            Ok(n) => Some(n),
            Err(_) => {
                c.fail("schema_version", format!("must be a positive integer, got {}", v));
                None
            }
        },
    };
    if let (Some(k), Some(n)) = (kind.as_deref(), version) {
        let current = versions::current(k);
        if TYPE_NAMES.contains(&k) && n != current {
            let reads = if current == 1 {
                "version 1".to_owned()
            } else {
                format!("versions 1 to {current}")
            };
            c.fail(
                "schema_version",
                format!("{k} version {n} is not known to this build (it reads {reads})"),
            );
        }
    }
    let event_id = raw.event_id.and_then(|v| c.uuid("event_id", v));
    let ts = match raw.ts {
        None => c.missing("ts"),
        Some(v) => c.timestamp("ts", v),
    };
    let source = match raw.source {
        None => Some(default_source.to_owned()),
        Some(v) => c.nonempty("source", v),
    };

    let body = match kind.as_deref() {
        Some(k @ ("sale" | "return" | "void")) => sale(&mut c, raw, k),
        Some("order") => order(&mut c, raw),
        Some("payment") => payment(&mut c, raw),
        Some("inventory") => inventory(&mut c, raw),
        Some("store") => store(&mut c, raw),
        Some("product") => product(&mut c, raw),
        Some("seller") => seller(&mut c, raw),
        Some("device_status") => device_status(&mut c, raw),
        Some(other) => {
            c.fail(
                "type",
                format!(
                    "unknown event type {other:?} (expected one of {})",
                    TYPE_NAMES.join(", ")
                ),
            );
            None
        }
        None => None,
    };

    // Fields we do not read are still kept (the events_raw payload is the whole event): refuse
    // what jsonb cannot hold anywhere in the text, unless a field already said so.
    if c.errors.is_empty() {
        if let Some(problem) = unstorable_escape(text) {
            c.errors.push(FieldError {
                path: String::new(),
                message: problem,
            });
        }
    }

    match (c.errors.is_empty(), ts, source, body) {
        (true, Some(ts), Some(source), Some(body)) => Ok(Event {
            event_id: event_id.unwrap_or_else(|| fill_id(ts)),
            ts,
            source,
            schema_version: kind.as_deref().map_or(1, versions::current),
            body,
        }),
        _ => Err(DecodeError { problems: c.errors }),
    }
}

/// The accepted values of `type`.
pub const TYPE_NAMES: [&str; 10] = [
    "sale",
    "return",
    "void",
    "order",
    "payment",
    "inventory",
    "store",
    "product",
    "seller",
    "device_status",
];

fn sale(c: &mut Checker, raw: &Fields<'_>, kind: &str) -> Option<EventBody> {
    let store_id = c.id("store_id", raw.store_id);
    let sku = c.id("sku", raw.sku);
    let qty = c.req(raw.qty, "qty", Checker::non_zero_i32);
    let unit_price = raw.unit_price.and_then(|v| c.cents("unit_price", v));
    let seller_id = raw.seller_id.and_then(|v| c.id("seller_id", Some(v)));
    let qty = qty?;
    if let Some(p) = unit_price {
        // Bounded prices cannot overflow here; checked anyway, as everything from outside is.
        if p.checked_mul(Decimal::from(qty)).is_none() {
            c.fail("unit_price", format!("unit_price * qty overflows ({p} * {qty})"));
            return None;
        }
    }
    // The seed's shape has no type: a negative quantity there is a return.
    let kind = match kind {
        "return" => SaleKind::Return,
        "void" => SaleKind::Void,
        _ if qty < 0 => SaleKind::Return,
        _ => SaleKind::Sale,
    };
    let qty = if kind == SaleKind::Sale { qty } else { -qty.abs() };
    Some(EventBody::Sale(Sale {
        kind,
        store_id: store_id?,
        sku: sku?,
        qty,
        unit_price,
        seller_id,
    }))
}

fn order(c: &mut Checker, raw: &Fields<'_>) -> Option<EventBody> {
    let order_id = c.req(raw.order_id, "order_id", Checker::nonempty);
    let status = c.req(raw.status, "status", |c, p, v| {
        c.one_of(
            p,
            v,
            &[
                ("created", OrderStatus::Created),
                ("paid", OrderStatus::Paid),
                ("packed", OrderStatus::Packed),
                ("shipped", OrderStatus::Shipped),
                ("delivered", OrderStatus::Delivered),
                ("cancelled", OrderStatus::Cancelled),
            ],
        )
    });
    let store_id = raw.store_id.and_then(|v| c.id("store_id", Some(v)));
    let amount = raw.amount.and_then(|v| c.money("amount", v));
    let currency = raw.currency.and_then(|v| c.currency("currency", v));
    let customer_id = raw.customer_id.and_then(|v| c.nonempty("customer_id", v));
    // Version 2: where the order was placed; an order of version 1 was upgraded to `web`.
    let channel = match raw.channel {
        None => Some(ORDER_CHANNELS[0].0),
        Some(v) => c.one_of("channel", v, &ORDER_CHANNELS),
    };
    Some(EventBody::Order(Order {
        order_id: order_id?,
        status: status?,
        store_id,
        amount,
        currency,
        customer_id,
        channel: channel?,
    }))
}

fn payment(c: &mut Checker, raw: &Fields<'_>) -> Option<EventBody> {
    let payment_id = c.req(raw.payment_id, "payment_id", Checker::nonempty);
    let order_id = c.req(raw.order_id, "order_id", Checker::nonempty);
    let amount = c.req(raw.amount, "amount", Checker::money);
    let currency = c.req(raw.currency, "currency", Checker::currency);
    let status = c.req(raw.status, "status", |c, p, v| {
        c.one_of(
            p,
            v,
            &[
                ("authorized", PaymentStatus::Authorized),
                ("captured", PaymentStatus::Captured),
                ("failed", PaymentStatus::Failed),
                ("refunded", PaymentStatus::Refunded),
            ],
        )
    });
    let card_id = raw.card_id.and_then(|v| c.nonempty("card_id", v));
    let customer_id = raw.customer_id.and_then(|v| c.nonempty("customer_id", v));
    let ip_country = raw.ip_country.and_then(|v| c.country("ip_country", v));
    let billing_country = raw.billing_country.and_then(|v| c.country("billing_country", v));
    Some(EventBody::Payment(Payment {
        payment_id: payment_id?,
        order_id: order_id?,
        amount: amount?,
        currency: currency?,
        status: status?,
        card_id,
        customer_id,
        ip_country,
        billing_country,
    }))
}

fn inventory(c: &mut Checker, raw: &Fields<'_>) -> Option<EventBody> {
    let store_id = c.id("store_id", raw.store_id);
    let sku = c.id("sku", raw.sku);
    let on_hand = c.req(raw.on_hand, "on_hand", Checker::non_negative);
    let reason = raw.reason.and_then(|v| c.nonempty("reason", v));
    let lead_time_days = raw
        .lead_time_days
        .and_then(|v| c.non_negative("lead_time_days", v));
    Some(EventBody::Inventory(Inventory {
        store_id: store_id?,
        sku: sku?,
        on_hand: on_hand?,
        reason,
        lead_time_days,
    }))
}

fn seller(c: &mut Checker, raw: &Fields<'_>) -> Option<EventBody> {
    let seller_id = c.id("seller_id", raw.seller_id);
    let store_id = c.id("store_id", raw.store_id);
    let name = c.req(raw.name, "name", Checker::nonempty);
    Some(EventBody::Seller(Seller {
        seller_id: seller_id?,
        store_id: store_id?,
        name: name?,
    }))
}

fn device_status(c: &mut Checker, raw: &Fields<'_>) -> Option<EventBody> {
    let store_id = c.id("store_id", raw.store_id);
    let device_id = c.req(raw.device_id, "device_id", Checker::nonempty);
    let status = c.req(raw.status, "status", Checker::nonempty);
    let detail = raw.detail.and_then(|v| c.string("detail", v));
    Some(EventBody::DeviceStatus(DeviceStatus {
        store_id: store_id?,
        device_id: device_id?,
        status: status?,
        detail,
    }))
}

fn store(c: &mut Checker, raw: &Fields<'_>) -> Option<EventBody> {
    let store_id = c.id("store_id", raw.store_id);
    let name = c.req(raw.name, "name", Checker::nonempty);
    let city = c.req(raw.city, "city", Checker::nonempty);
    let country = c.req(raw.country, "country", Checker::country);
    Some(EventBody::Store(StoreInfo {
        store_id: store_id?,
        name: name?,
        city: city?,
        country: country?,
    }))
}

fn product(c: &mut Checker, raw: &Fields<'_>) -> Option<EventBody> {
    let sku = c.id("sku", raw.sku);
    let name = c.req(raw.name, "name", Checker::nonempty);
    let category = c.req(raw.category, "category", Checker::nonempty);
    let price = raw.price.and_then(|v| c.cents("price", v));
    Some(EventBody::Product(Product {
        sku: sku?,
        name: name?,
        category: category?,
        price,
    }))
}

/// Collects problems while converting fields; each method returns `None` after recording why.
#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn fail(&mut self, path: &str, message: String) {
        self.errors.push(FieldError {
            path: path.to_owned(),
            message,
        });
    }

    fn missing<T>(&mut self, path: &str) -> Option<T> {
        self.fail(path, "is required".to_owned());
        None
    }

    /// A required field checked by `check`.
    fn req<T>(
        &mut self,
        v: Option<&str>,
        path: &str,
        check: impl FnOnce(&mut Self, &str, &str) -> Option<T>,
    ) -> Option<T> {
        match v {
            None => self.missing(path),
            Some(v) => check(self, path, v),
        }
    }

    fn string(&mut self, path: &str, v: &str) -> Option<String> {
        let text = v;
        if text.starts_with('"') {
            // Fast path: no escapes means the inner slice is the string.
            if !text.contains('\\') {
                return Some(text[1..text.len() - 1].to_owned());
            }
            if let Ok(s) = serde_json::from_str::<String>(text) {
                if s.contains('\0') {
                    self.fail(
                        path,
                        format!("must not contain U+0000 (PostgreSQL text refuses it), got {text}"),
                    );
                    return None;
                }
                return Some(s);
            }
        }
        self.fail(path, format!("must be a string, got {text}"));
        None
    }

    fn nonempty(&mut self, path: &str, v: &str) -> Option<String> {
        let s = self.string(path, v)?;
        if s.trim().is_empty() {
            self.fail(path, "must be a non-empty string, got \"\"".to_owned());
            return None;
        }
        Some(s)
    }

    fn currency(&mut self, path: &str, v: &str) -> Option<String> {
        let s = self.string(path, v)?;
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Some(s)
        } else {
            self.fail(path, format!("must be an ISO 4217 code like \"EUR\", got {}", v));
            None
        }
    }

    /// An ISO 3166-1 alpha-2 country code.
    fn country(&mut self, path: &str, v: &str) -> Option<String> {
        let s = self.string(path, v)?;
        if s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Some(s)
        } else {
            self.fail(
                path,
                format!("must be an ISO 3166-1 alpha-2 code like \"DE\", got {}", v),
            );
            None
        }
    }

    fn integer(v: &str) -> Option<i64> {
        v.parse::<i64>().ok()
    }

    /// A required positive integer id.
    fn id(&mut self, path: &str, v: Option<&str>) -> Option<i64> {
        let v = match v {
            None => return self.missing(path),
            Some(v) => v,
        };
        match Self::integer(v) {
            Some(n) if n > 0 => Some(n),
            _ => {
                self.fail(path, format!("must be a positive integer, got {}", v));
                None
            }
        }
    }

    fn non_zero_i32(&mut self, path: &str, v: &str) -> Option<i32> {
        match Self::integer(v).and_then(|n| i32::try_from(n).ok()) {
            Some(n) if n != 0 => Some(n),
            _ => {
                self.fail(path, format!("must be a non-zero integer, got {}", v));
                None
            }
        }
    }

    fn non_negative(&mut self, path: &str, v: &str) -> Option<i64> {
        match Self::integer(v) {
            Some(n) if n > MAX_COUNT => {
                self.fail(path, format!("must be at most {MAX_COUNT}, got {}", v));
                None
            }
            Some(n) if n >= 0 => Some(n),
            _ => {
                self.fail(path, format!("must be a non-negative integer, got {}", v));
                None
            }
        }
    }

    /// A non-negative amount, as a JSON number or a numeric string, kept exact.
    fn money(&mut self, path: &str, v: &str) -> Option<Decimal> {
        let text = v;
        let digits = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text);
        let parsed = Decimal::from_str(digits).or_else(|_| Decimal::from_scientific(digits));
        match parsed {
            Ok(d) if !d.is_sign_negative() && d >= Decimal::from(MONEY_LIMIT) => {
                self.fail(
                    path,
                    format!(
                        "must be below {MONEY_LIMIT} (the stores hold 10 digits before the point), got {text}"
                    ),
                );
                None
            }
            Ok(d) if !d.is_sign_negative() => Some(d.normalize()),
            _ => {
                self.fail(path, format!("must be a non-negative decimal number, got {text}"));
                None
            }
        }
    }

    /// A price kept in a `numeric(12, 2)` column: [`Self::money`] with at most two decimals, so
    /// the raw row and the aggregates hold the same number (ADR 0008). Trailing zeros do not
    /// count (`19.990` is `19.99`).
    fn cents(&mut self, path: &str, v: &str) -> Option<Decimal> {
        let d = self.money(path, v)?;
        if d.scale() > 2 {
            self.fail(
                path,
                format!("must have at most 2 decimal places (cents), got {}", v),
            );
            return None;
        }
        Some(d)
    }

    fn uuid(&mut self, path: &str, v: &str) -> Option<Uuid> {
        let text = v;
        match text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .map(Uuid::try_parse)
        {
            Some(Ok(id)) => Some(id),
            _ => {
                self.fail(path, format!("must be a UUID string, got {text}"));
                None
            }
        }
    }

    /// Epoch milliseconds (a JSON integer) or an RFC 3339 string.
    fn timestamp(&mut self, path: &str, v: &str) -> Option<DateTime<Utc>> {
        let text = v;
        let parsed = if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            DateTime::parse_from_rfc3339(inner)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        } else {
            text.parse::<i64>().ok().and_then(DateTime::from_timestamp_millis)
        };
        match parsed {
            Some(t) if (MIN_TS_MS..MAX_TS_MS).contains(&t.timestamp_millis()) => Some(t),
            Some(_) => {
                self.fail(path, format!("must be between 2000-01-01 and 2100-01-01 (epoch milliseconds, not seconds), got {text}"));
                None
            }
            None => {
                self.fail(
                    path,
                    format!("must be epoch milliseconds or an RFC 3339 timestamp, got {text}"),
                );
                None
            }
        }
    }

    fn one_of<T: Copy>(&mut self, path: &str, v: &str, options: &[(&str, T)]) -> Option<T> {
        let s = self.string(path, v)?;
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == s) {
            return Some(*t);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        self.fail(path, format!("must be one of {}, got {}", names.join(", "), v));
        None
    }
}

/// The first `\u` escape in `text` (valid JSON) that PostgreSQL's jsonb refuses: U+0000, or a
/// surrogate that is not half of a pair. Escapes only occur inside strings, so scanning the
/// whole text finds those of every field, read or not.
fn unstorable_escape(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let hex = |at: usize| -> Option<u32> {
        let digits = b.get(at..at + 4)?;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let mut i = 0;
    while i < b.len() {
        // Jump to the next backslash: most events have none, and a byte-by-byte walk cost
        // as much as splitting the object into its fields.
        match memchr::memchr(b'\\', &b[i..]) {
            Some(n) => i += n,
            None => break,
        }
        if b.get(i + 1) != Some(&b'u') {
            i += 2; // `\\`, `\"`, `\n`...: the escaped character is not an escape itself
            continue;
        }
        let Some(cp) = hex(i + 2) else {
            i += 2;
            continue;
        };
        if cp == 0 {
            return Some(format!(
                "a string at byte {i} contains \\u0000 (U+0000), which PostgreSQL text and jsonb refuse"
            ));
        }
        if (0xD800..0xDC00).contains(&cp) {
            let low = (b.get(i + 6) == Some(&b'\\') && b.get(i + 7) == Some(&b'u'))
                .then(|| hex(i + 8))
                .flatten();
            if low.is_some_and(|l| (0xDC00..0xE000).contains(&l)) {
                i += 12;
                continue;
            }
        }
        if (0xD800..0xE000).contains(&cp) {
            return Some(format!(
                "a string at byte {i} contains a lone surrogate \\u{cp:04x}, which is not Unicode text"
            ));
        }
        i += 6;
    }
    None
}
