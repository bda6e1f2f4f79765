//! Property tests of the decoder (issue 18): random bytes, and valid events with bytes
//! replaced, inserted or cut off, never make it panic, and every rejection is a clear error:
//! at least one problem, each with a message, and a known dead-letter kind. Every accepted
//! event keeps the bounds the stores need (ADR 0008).

use proptest::prelude::*;
use retail_core::event::EventBody;
use retail_core::{decode, DecodeError};

const KINDS: [&str; 5] = [
    "malformed_json",
    "invalid_field",
    "unknown_type",
    "oversized",
    "not_utf8",
];

fn valid_events() -> Vec<&'static str> {
    vec![
        r#"{"event_id":"0191489b-6a7e-7cc2-a3a4-6f1b2c3d4e5f","store_id":42,"sku":1234,"qty":2,"unit_price":"19.99","seller_id":7,"source":"pos","ts":1723456789000}"#,
        r#"{"type":"order","order_id":"o-1","status":"paid","store_id":3,"amount":12.5,"currency":"EUR","ts":"2024-08-12T09:59:49Z"}"#,
        r#"{"type":"payment","payment_id":"p","order_id":"o","amount":"1.125","currency":"KWD","status":"captured","ts":1723456789000}"#,
        r#"{"type":"inventory","store_id":1,"sku":2,"on_hand":5,"ts":1723456789000}"#,
        r#"{"type":"store","store_id":1,"name":"A\u00e9","city":"Berlin","country":"DE","ts":1723456789000}"#,
        r#"{"type":"product","sku":2,"name":"n","category":"c","price":1.5,"ts":1723456789000}"#,
        r#"{"type":"device_status","store_id":1,"device_id":"d","status":"ok","detail":"\ud83d\ude00","ts":1723456789000}"#,
    ]
}

fn is_clear(e: &DecodeError) -> bool {
    !e.problems.is_empty()
        && e.problems.iter().all(|p| !p.message.trim().is_empty())
        && KINDS.contains(&e.kind())
        && !e.to_string().is_empty()
}

fn within_bounds(bytes: &[u8]) -> Result<(), String> {
    match decode(bytes) {
        Err(e) if is_clear(&e) => Ok(()),
        Err(e) => Err(format!("unclear rejection {e:?}")),
        Ok(ev) => {
            if ev.source.contains('\0') {
                return Err(format!("NUL in source accepted: {ev:?}"));
            }
            if let EventBody::Sale(s) = &ev.body {
                if let Some(p) = s.unit_price {
                    if p.scale() > 2 || p >= rust_decimal::Decimal::from(10_000_000_000_i64) {
                        return Err(format!("price out of bounds accepted: {p}"));
                    }
                }
            }
            Ok(())
        }
    }
}

/// One edit of a valid event: replace, insert or delete a byte, or cut the tail.
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Replace(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len().max(1);
        match *e {
            Edit::Replace(i, b) if !bytes.is_empty() => bytes[i % n] = b,
            Edit::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Edit::Delete(i) if !bytes.is_empty() => {
                bytes.remove(i % n);
            }
            Edit::Truncate(i) => bytes.truncate(i % (bytes.len() + 1)),
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_are_a_clear_error(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(within_bounds(&bytes).is_ok(), "{:?}", within_bounds(&bytes));
    }

    #[test]
    fn random_text_is_a_clear_error(text in "\\PC{0,200}") {
        prop_assert!(within_bounds(text.as_bytes()).is_ok(), "{:?}", within_bounds(text.as_bytes()));
    }

    #[test]
    fn mutated_events_are_accepted_within_bounds_or_a_clear_error(
        which in 0usize..7,
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let bytes = apply(valid_events()[which].as_bytes().to_vec(), &edits);
        let r = within_bounds(&bytes);
        prop_assert!(r.is_ok(), "{:?} for {}", r, String::from_utf8_lossy(&bytes));
    }

    /// Values of any size in the numeric fields, as numbers and as strings.
    #[test]
    fn any_numbers_are_accepted_within_bounds_or_a_clear_error(
        qty in any::<i64>(),
        price in "-?[0-9]{0,30}(\\.[0-9]{0,30})?(e-?[0-9]{1,3})?",
        on_hand in any::<i64>(),
        quoted in any::<bool>(),
    ) {
        let price = if quoted { format!("\"{price}\"") } else { price };
        let sale = format!(r#"{{"store_id":1,"sku":2,"qty":{qty},"unit_price":{price},"ts":1723456789000}}"#);
        let r = within_bounds(sale.as_bytes());
        prop_assert!(r.is_ok(), "{:?} for {}", r, sale);
        let inv = format!(r#"{{"type":"inventory","store_id":1,"sku":2,"on_hand":{on_hand},"ts":1723456789000}}"#);
        let r = within_bounds(inv.as_bytes());
        prop_assert!(r.is_ok(), "{:?} for {}", r, inv);
    }
}

#[test]
fn the_valid_events_of_the_properties_are_valid() {
    for e in valid_events() {
        decode(e.as_bytes()).unwrap_or_else(|err| panic!("{e}: {err}"));
    }
}
