//! Property test of the encoder (issue 18, item 4): `decode(to_json(e)) == e` for every money
//! amount the decoder accepts, up to the numeric(12, 2) bound, and the JSON carries the
//! amount's own digits. Prices are whole cents; order and payment amounts may have more
//! decimals (currencies such as KWD have three), which a trip through `f64` would lose
//! (ADR 0020).

use proptest::prelude::*;
use retail_core::decode;
use retail_core::event::EventBody;
use rust_decimal::Decimal;

/// A decimal below 10^10 with `scale` decimals, as text.
fn amount(max_scale: u32) -> impl Strategy<Value = String> {
    (0..10_000_000_000i64, 0..=max_scale, any::<u64>()).prop_map(|(whole, scale, frac)| {
        if scale == 0 {
            whole.to_string()
        } else {
            let frac = frac % 10u64.pow(scale);
            format!("{whole}.{frac:0width$}", width = scale as usize)
        }
    })
}

fn money_of(body: &EventBody) -> Option<Decimal> {
    match body {
        EventBody::Sale(s) => s.unit_price,
        EventBody::Order(o) => o.amount,
        EventBody::Payment(p) => Some(p.amount),
        EventBody::Product(p) => p.price,
        _ => None,
    }
}

fn round_trips(input: &str, expected: &str) -> Result<(), TestCaseError> {
    let e = decode(input.as_bytes()).map_err(|err| TestCaseError::fail(format!("{input}: {err}")))?;
    let expected: Decimal = expected
        .parse()
        .map_err(|_| TestCaseError::fail(expected.to_owned()))?;
    prop_assert_eq!(money_of(&e.body), Some(expected), "decoded {}", input);
    let json = e.to_json();
    let again = decode(&json)
        .map_err(|err| TestCaseError::fail(format!("{}: {err}", String::from_utf8_lossy(&json))))?;
    prop_assert_eq!(&again, &e, "through {}", String::from_utf8_lossy(&json));
    prop_assert_eq!(money_of(&again.body), Some(expected));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn sale_prices_round_trip(price in amount(2), qty in 1..100_000i32, as_text in any::<bool>()) {
        let p = if as_text { format!("\"{price}\"") } else { price.clone() };
        round_trips(&format!(
            r#"{{"type":"sale","store_id":1,"sku":2,"qty":{qty},"unit_price":{p},"ts":1723456789000,"source":"pos"}}"#
        ), &price)?;
    }

    #[test]
    fn product_prices_round_trip(price in amount(2)) {
        round_trips(&format!(
            r#"{{"type":"product","sku":2,"name":"n","category":"c","price":{price},"ts":1723456789000}}"#
        ), &price)?;
    }

    #[test]
    fn order_and_payment_amounts_of_any_digits_round_trip(a in amount(12)) {
        round_trips(&format!(
            r#"{{"type":"order","order_id":"o-1","status":"paid","amount":{a},"currency":"EUR","ts":1723456789000}}"#
        ), &a)?;
        round_trips(&format!(
            r#"{{"type":"payment","payment_id":"p","order_id":"o","amount":{a},"currency":"KWD","status":"captured","ts":1723456789000}}"#
        ), &a)?;
    }
}

/// The largest amounts and ones `f64` cannot hold go out with their own digits.
#[test]
fn amounts_are_written_with_their_own_digits() {
    for (input, text) in [
        (
            r#"{"type":"sale","store_id":1,"sku":2,"qty":1000,"unit_price":"9999999999.99","ts":1723456789000,"source":"pos"}"#,
            r#""unit_price":9999999999.99"#,
        ),
        (
            r#"{"type":"payment","payment_id":"p","order_id":"o","amount":"9999999999.123456789","currency":"KWD","status":"captured","ts":1723456789000}"#,
            r#""amount":9999999999.123456789"#,
        ),
        (
            r#"{"type":"sale","store_id":1,"sku":2,"qty":1,"unit_price":0.10,"ts":1723456789000,"source":"pos"}"#,
            r#""unit_price":0.1"#,
        ),
    ] {
        let e = decode(input.as_bytes()).expect(input);
        let json = String::from_utf8(e.to_json()).expect("utf-8");
        assert!(json.contains(text), "{json} should contain {text}");
    }
}
