//! An event's JSON object split into the fields the decoder reads, each as its raw JSON text,
//! in one pass over the bytes.
//!
//! Two ways, one answer. The fast path scans the object itself: flat objects whose strings
//! have no escapes, which is what tills and platforms send. Anything else (an escape anywhere,
//! a nested value, a duplicate field, a syntax error) goes to serde with [`RawValue`], which
//! reads every valid object and words the error for an invalid one. The fast path accepts only
//! what serde accepts and yields the same slices (a property test holds them to it); it exists
//! because serde's generic visitor took a fifth of a webhook batch's CPU.

use serde::Deserialize;
use serde_json::value::RawValue;

/// Declares the fields once: the struct the decoder reads, serde's twin of it, and the fast
/// path's setter. Each name comes as text (for serde) and as bytes (a `match` on byte strings
/// compiles to a switch on the length, then a few compares; a test checks the two agree).
macro_rules! fields {
    ($($field:ident = $name:literal $bytes:literal,)*) => {
        /// Every field any event type has, as its raw JSON text (`None` when absent or `null`).
        /// Unknown fields are skipped.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub(super) struct Fields<'a> {
            $(pub $field: Option<&'a str>,)*
        }

        /// [`Fields`] as serde reads it.
        #[derive(Deserialize)]
        struct SerdeFields<'a> {
            $(#[serde(borrow, rename = $name)] $field: Option<&'a RawValue>,)*
        }

        impl<'a> From<SerdeFields<'a>> for Fields<'a> {
            fn from(f: SerdeFields<'a>) -> Self {
                Self { $($field: f.$field.map(RawValue::get),)* }
            }
        }

        /// Which fields the fast path has met (serde refuses a field given twice).
        #[derive(Default)]
        struct Seen {
            $($field: bool,)*
        }

        /// Sets the field named `name` to `value`; `false` if it was met before.
        fn set<'a>(fields: &mut Fields<'a>, seen: &mut Seen, name: &[u8], value: Option<&'a str>) -> bool {
            match name {
                $($bytes => {
                    if seen.$field {
                        return false;
                    }
                    seen.$field = true;
                    fields.$field = value;
                })*
                _ => {}
            }
            true
        }

        #[cfg(test)]
        const NAMES: &[(&str, &[u8])] = &[$(($name, $bytes),)*];
    };
}

fields! {
    kind = "type" b"type",
    schema_version = "schema_version" b"schema_version",
    event_id = "event_id" b"event_id",
    ts = "ts" b"ts",
    source = "source" b"source",
    store_id = "store_id" b"store_id",
    sku = "sku" b"sku",
    qty = "qty" b"qty",
    unit_price = "unit_price" b"unit_price",
    seller_id = "seller_id" b"seller_id",
    order_id = "order_id" b"order_id",
    status = "status" b"status",
    amount = "amount" b"amount",
    currency = "currency" b"currency",
    payment_id = "payment_id" b"payment_id",
    on_hand = "on_hand" b"on_hand",
    name = "name" b"name",
    city = "city" b"city",
    country = "country" b"country",
    category = "category" b"category",
    price = "price" b"price",
    device_id = "device_id" b"device_id",
    detail = "detail" b"detail",
    customer_id = "customer_id" b"customer_id",
    card_id = "card_id" b"card_id",
    ip_country = "ip_country" b"ip_country",
    billing_country = "billing_country" b"billing_country",
    reason = "reason" b"reason",
    lead_time_days = "lead_time_days" b"lead_time_days",
    channel = "channel" b"channel",
}

/// Splits `text` into its fields; the error is serde's, for the decoder to word.
pub(super) fn split(text: &str) -> Result<Fields<'_>, serde_json::Error> {
    match scan(text) {
        Some(fields) => Ok(fields),
        None => serde_json::from_str::<SerdeFields<'_>>(text).map(Fields::from),
    }
}

/// The fast path: `Some` only for an object serde would read to the same fields.
fn scan(text: &str) -> Option<Fields<'_>> {
    let b = text.as_bytes();
    if !plain(b) {
        return None;
    }
    let mut fields = Fields::default();
    let mut seen = Seen::default();
    let mut i = skip_spaces(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_spaces(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (skip_spaces(b, i + 1) == b.len()).then_some(fields);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, i)?;
        let key = b.get(i + 1..key_end - 1)?;
        i = skip_spaces(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_spaces(b, i + 1);
        let value_end = value_end(b, i)?;
        // Cut at ASCII bytes (quotes, digits, letters), so always on a character boundary.
        let value = text.get(i..value_end)?;
        // serde reads `null` into an `Option` as `None`.
        if !set(&mut fields, &mut seen, key, (value != "null").then_some(value)) {
            return None;
        }
        i = skip_spaces(b, value_end);
        match b.get(i) {
            Some(b',') => i = skip_spaces(b, i + 1),
            Some(b'}') => return (skip_spaces(b, i + 1) == b.len()).then_some(fields),
            _ => return None,
        }
    }
}

/// No backslash and no control character anywhere. Escapes are serde's to decode (in a key,
/// `"t\u0079pe"` is `type`) and check; a control character in a string is an error serde
/// words, and outside strings (`\n`, `\t`, `\r` of pretty-printed JSON) it is rare enough to
/// leave to serde too. Then a string ends at the next quote, and whitespace is a space.
/// Branch-free within each chunk, so that it compiles to vector compares.
fn plain(b: &[u8]) -> bool {
    b.chunks(32)
        .all(|chunk| chunk.iter().fold(true, |ok, &c| ok & (c >= 0x20) & (c != b'\\')))
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

/// The end (exclusive) of the string whose opening quote is at `start`, in a [`plain`] text.
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let rest = b.get(start + 1..)?;
    rest.iter().position(|&c| c == b'"').map(|n| start + n + 2)
}

/// The end (exclusive) of the scalar value at `start`: a string, a number or a literal. `None`
/// for a nested value (left to serde) or anything that is not a value.
fn value_end(b: &[u8], start: usize) -> Option<usize> {
    match *b.get(start)? {
        b'"' => string_end(b, start),
        b'-' => number_end(b, start + 1),
        b'0'..=b'9' => number_end(b, start),
        b't' => literal_end(b, start, b"true"),
        b'f' => literal_end(b, start, b"false"),
        b'n' => literal_end(b, start, b"null"),
        _ => None,
    }
}

fn literal_end(b: &[u8], start: usize, literal: &[u8]) -> Option<usize> {
    let end = start + literal.len();
    (b.get(start..end)? == literal).then_some(end)
}

/// JSON's number grammar after the sign: `0` or a non-zero digit and digits, then an optional
/// fraction (`.` and at least one digit) and exponent (`e`, a sign, at least one digit).
fn number_end(b: &[u8], start: usize) -> Option<usize> {
    let digits = |mut i: usize| {
        while let Some(b'0'..=b'9') = b.get(i) {
            i += 1;
        }
        i
    };
    let mut i = match *b.get(start)? {
        b'0' => start + 1,
        b'1'..=b'9' => digits(start + 1),
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let end = digits(i);
        if end == i {
            return None;
        }
        i = end;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn serde(text: &str) -> Option<Fields<'_>> {
        serde_json::from_str::<SerdeFields<'_>>(text)
            .ok()
            .map(Fields::from)
    }

    /// The fast path agrees with serde, or leaves the input to it.
    fn agrees(text: &str) -> Result<(), String> {
        match scan(text) {
            None => Ok(()),
            Some(fast) if serde(text) == Some(fast) => Ok(()),
            Some(fast) => Err(format!("{text:?}: fast {fast:?}, serde {:?}", serde(text))),
        }
    }

    const EVENTS: [&str; 4] = [
        r#"{"event_id":"0193a0c0-0000-7000-8000-000000000001","type":"sale","store_id":3,"sku":100037,"qty":2,"unit_price":"1.07","seller_id":100000000000001,"ts":1764496800000}"#,
        r#" { "type" : "order" , "order_id":"o-1","status":"paid","amount":12.5e0,"extra":[1,2],"ts":"2024-08-12T09:59:49Z"} "#,
        r#" { "type" : "inventory" ,"store_id":1,"sku":2,"on_hand":-0.5E+3,"ts":null,"x":true,"y":false }"#,
        r#"{}"#,
    ];

    #[test]
    fn each_name_is_the_same_as_text_and_as_bytes() {
        for (text, bytes) in NAMES {
            assert_eq!(text.as_bytes(), *bytes);
        }
        assert_eq!(NAMES.len(), 30, "a field added to the macro must be counted here");
    }

    #[test]
    fn flat_events_take_the_fast_path_with_serdes_answer() {
        for text in [EVENTS[0], EVENTS[2], EVENTS[3]] {
            assert!(scan(text).is_some(), "{text}");
            agrees(text).expect("agrees");
        }
        let f = scan(EVENTS[2]).expect("fast");
        assert_eq!(
            (f.on_hand, f.ts, f.kind),
            (Some("-0.5E+3"), None, Some("\"inventory\""))
        );
    }

    #[test]
    fn what_serde_refuses_or_must_decode_is_left_to_it() {
        for text in [
            r#"{"type":"sale","type":"sale"}"#,
            r#"{"qty":null,"qty":1}"#,
            r#"{"t\u0079pe":"x"}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{"a" 1}"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"a":tru}"#,
            r#"{"a":{"b":1}}"#,
            r#"[1]"#,
            "",
        ] {
            assert!(scan(text).is_none(), "{text}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

        #[test]
        fn the_fast_path_never_disagrees_with_serde(
            which in 0..EVENTS.len(),
            edits in proptest::collection::vec((any::<usize>(), prop::sample::select(
                b" \t\r\n{}[]\":,.-+eE0159tfnulx\\\x01\xc3\xa9".to_vec())), 0..4),
            cut in any::<usize>(),
        ) {
            let mut bytes = EVENTS[which].as_bytes().to_vec();
            for (at, byte) in edits {
                let at = at % (bytes.len() + 1);
                if at.is_multiple_of(2) {
                    bytes.insert(at, byte);
                } else if at < bytes.len() {
                    bytes[at] = byte;
                }
            }
            if cut.is_multiple_of(3) {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let verdict = agrees(text);
                prop_assert!(verdict.is_ok(), "{verdict:?}");
            }
        }
    }
}
