//! The decoder's contract: the seed's shape is a sale, both timestamp forms work, every problem
//! is reported with its field path, and nothing from outside can make it panic.

use retail_core::event::{EventBody, SaleKind};
use retail_core::{decode, decode_with};

fn problems(input: &str) -> Vec<String> {
    match decode(input.as_bytes()) {
        Ok(e) => panic!("expected an error for {input}, got {e:?}"),
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn the_seed_shape_is_a_sale() {
    let e = decode(br#"{"event_id":"0191489b-6a7e-7cc2-a3a4-6f1b2c3d4e5f","store_id":42,"sku":1234,"qty":2,"ts":1723456789000}"#)
        .expect("seed shape");
    assert_eq!(e.event_id.to_string(), "0191489b-6a7e-7cc2-a3a4-6f1b2c3d4e5f");
    assert_eq!(e.ts.timestamp_millis(), 1_723_456_789_000);
    assert_eq!(e.source, "unknown");
    match e.body {
        EventBody::Sale(s) => {
            assert_eq!((s.kind, s.store_id, s.sku, s.qty), (SaleKind::Sale, 42, 1234, 2));
            assert_eq!(s.unit_price, None);
        }
        other => panic!("not a sale: {other:?}"),
    }
}

#[test]
fn rfc3339_and_epoch_millis_give_the_same_time() {
    let a = decode(br#"{"store_id":1,"sku":2,"qty":1,"ts":1723456789000}"#).expect("millis");
    let b = decode(br#"{"store_id":1,"sku":2,"qty":1,"ts":"2024-08-12T09:59:49Z"}"#).expect("rfc3339");
    let c = decode(br#"{"store_id":1,"sku":2,"qty":1,"ts":"2024-08-12T11:59:49+02:00"}"#).expect("offset");
    assert_eq!(a.ts, b.ts);
    assert_eq!(b.ts, c.ts);
}

#[test]
fn missing_event_id_is_filled_with_a_uuid_v7() {
    let e = decode(br#"{"store_id":1,"sku":2,"qty":1,"ts":1723456789000}"#).expect("valid");
    assert_eq!(e.event_id.get_version_num(), 7);
    let fixed = uuid::Uuid::from_u128(7);
    let e = decode_with(
        br#"{"store_id":1,"sku":2,"qty":1,"ts":1723456789000}"#,
        "pos",
        |_| fixed,
    )
    .expect("valid");
    assert_eq!((e.event_id, e.source.as_str()), (fixed, "pos"));
}

#[test]
fn a_word_for_a_quantity_is_named_with_its_path_and_value() {
    assert_eq!(
        problems(r#"{"store_id":42,"sku":1234,"qty":"two","ts":1723456789000}"#),
        vec![r#"qty: must be a non-zero integer, got "two""#]
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let p =
        problems(r#"{"event_id":"nope","store_id":-1,"sku":1.5,"qty":0,"ts":"yesterday","unit_price":-3}"#);
    assert_eq!(
        p,
        vec![
            r#"event_id: must be a UUID string, got "nope""#,
            r#"ts: must be epoch milliseconds or an RFC 3339 timestamp, got "yesterday""#,
            "store_id: must be a positive integer, got -1",
            "sku: must be a positive integer, got 1.5",
            "qty: must be a non-zero integer, got 0",
            "unit_price: must be a non-negative decimal number, got -3",
        ]
    );
}

#[test]
fn missing_fields_are_required_by_name() {
    assert_eq!(
        problems(r#"{"qty":1}"#),
        vec!["ts: is required", "store_id: is required", "sku: is required"]
    );
}

#[test]
fn seconds_instead_of_millis_are_rejected_with_a_hint() {
    let p = problems(r#"{"store_id":1,"sku":2,"qty":1,"ts":1723456789}"#);
    assert_eq!(p.len(), 1);
    assert!(
        p[0].starts_with("ts: must be between 2000-01-01 and 2100-01-01 (epoch milliseconds, not seconds)"),
        "{p:?}"
    );
}

#[test]
fn unknown_types_and_versions_are_rejected() {
    let p = problems(r#"{"type":"teleport","ts":1723456789000}"#);
    assert!(
        p[0].starts_with(r#"type: unknown event type "teleport" (expected one of sale, return"#),
        "{p:?}"
    );
    let p = problems(r#"{"schema_version":2,"store_id":1,"sku":2,"qty":1,"ts":1723456789000}"#);
    assert_eq!(
        p,
        vec!["schema_version: sale version 2 is not known to this build (it reads version 1)"]
    );
    let input = br#"{"type":"order","schema_version":3,"order_id":"O-1","status":"paid","ts":1723456789000}"#;
    let e = decode(input).expect_err("version 3");
    assert_eq!(
        e.to_string(),
        "schema_version: order version 3 is not known to this build (it reads versions 1 to 2)"
    );
    assert_eq!(e.kind(), "unknown_version");
}

#[test]
fn an_order_of_version_1_is_upgraded_and_its_upgraded_text_is_returned() {
    use retail_core::event::{decode_versioned, EventBody};
    let v1 = br#"{"type":"order","schema_version":1,"event_id":"0190f6a4-0000-7000-8000-000000000001","order_id":"O-1","status":"paid","customer_id":"C-1","ts":1723456789000,"source":"web"}"#;
    let without = br#"{"type":"order","event_id":"0190f6a4-0000-7000-8000-000000000001","order_id":"O-1","status":"paid","customer_id":"C-1","ts":1723456789000,"source":"web"}"#;
    let v2 = br#"{"type":"order","schema_version":2,"event_id":"0190f6a4-0000-7000-8000-000000000001","order_id":"O-1","status":"paid","customer_id":"C-1","channel":"web","ts":1723456789000,"source":"web"}"#;
    let current = decode_versioned(v2, "x", |_| unreachable!()).expect("v2");
    assert_eq!(current.upgraded, None, "the current version is not rewritten");
    assert_eq!(current.event.schema_version, 2);
    for old in [&v1[..], &without[..]] {
        let up = decode_versioned(old, "x", |_| unreachable!()).expect("v1");
        assert_eq!(up.event, current.event, "a v1 order reads as the same v2 order");
        let text: serde_json::Value = serde_json::from_slice(&up.upgraded.expect("rewritten")).expect("json");
        assert_eq!(text["schema_version"], 2);
        assert_eq!(text["channel"], "web");
        assert_eq!(text["customer_id"], "C-1");
    }
    let EventBody::Order(o) = decode(br#"{"type":"order","schema_version":2,"order_id":"O-2","status":"created","channel":"app","ts":1723456789000}"#).expect("app").body else {
        unreachable!("an order")
    };
    assert_eq!(o.channel, "app");
    let e = decode(br#"{"type":"order","schema_version":2,"order_id":"O-2","status":"created","channel":"fax","ts":1723456789000}"#).expect_err("fax");
    assert!(e.to_string().starts_with("channel: "), "{e}");
    // An event encoded by this build decodes as it is, at its type's current version.
    let again = decode_versioned(&current.event.to_json(), "x", |_| unreachable!()).expect("round trip");
    assert_eq!(again.event, current.event);
    assert_eq!(again.upgraded, None);
}

#[test]
fn malformed_and_non_object_input_is_an_error_not_a_panic() {
    for input in [
        "",
        "{",
        "[1,2]",
        "42",
        "null",
        "\"x\"",
        "{\"qty\":}",
        "{\"ts\":1}garbage",
    ] {
        let err = decode(input.as_bytes()).expect_err(input);
        assert_eq!(err.problems.len(), 1, "{input}");
        assert!(err.problems[0].path.is_empty());
    }
    assert!(decode(&[0xff, 0xfe, b'{'])
        .expect_err("bytes")
        .to_string()
        .starts_with("not UTF-8"));
    let dup = problems(r#"{"store_id":1,"store_id":2,"sku":2,"qty":1,"ts":1723456789000}"#);
    assert!(dup[0].contains("duplicate field `store_id`"), "{dup:?}");
}

#[test]
fn oversized_events_are_rejected_before_parsing() {
    let big = format!(
        r#"{{"store_id":1,"sku":2,"qty":1,"ts":1723456789000,"pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    let p = problems(&big);
    assert!(p[0].contains("larger than the 65536-byte limit"), "{p:?}");
}

#[test]
fn returns_are_stored_with_negative_quantity() {
    for input in [
        r#"{"type":"return","store_id":1,"sku":2,"qty":3,"ts":1723456789000}"#,
        r#"{"store_id":1,"sku":2,"qty":-3,"ts":1723456789000}"#,
    ] {
        match decode(input.as_bytes()).expect(input).body {
            EventBody::Sale(s) => assert_eq!((s.kind, s.qty), (SaleKind::Return, -3)),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn every_event_type_round_trips_through_json() {
    let inputs = [
        r#"{"type":"sale","store_id":1,"sku":2,"qty":1,"unit_price":19.99,"seller_id":7,"ts":1723456789000,"source":"pos"}"#,
        r#"{"type":"order","order_id":"o-1","status":"paid","amount":"42.50","currency":"EUR","ts":1723456789000}"#,
        r#"{"type":"payment","payment_id":"p-1","order_id":"o-1","amount":42.5,"currency":"EUR","status":"captured","ts":1723456789000}"#,
        r#"{"type":"inventory","store_id":1,"sku":2,"on_hand":0,"ts":1723456789000}"#,
        r#"{"type":"store","store_id":1,"name":"Alexanderplatz","city":"Berlin","country":"DE","ts":1723456789000}"#,
        r#"{"type":"product","sku":2,"name":"Socks","category":"apparel","price":4.99,"ts":1723456789000}"#,
        r#"{"type":"seller","seller_id":7,"store_id":1,"name":"Ada","ts":1723456789000}"#,
        r#"{"type":"device_status","store_id":1,"device_id":"lane-3","status":"offline","ts":1723456789000}"#,
    ];
    for input in inputs {
        let e = decode(input.as_bytes()).expect(input);
        let again = decode(&e.to_json()).expect("re-decode");
        assert_eq!(e, again, "{input}");
    }
}

#[test]
fn enum_fields_list_their_accepted_values() {
    let p = problems(r#"{"type":"order","order_id":"o-1","status":"lost","ts":1723456789000}"#);
    assert_eq!(
        p,
        vec![r#"status: must be one of created, paid, packed, shipped, delivered, cancelled, got "lost""#]
    );
    let p = problems(
        r#"{"type":"store","store_id":1,"name":"x","city":"Berlin","country":"Germany","ts":1723456789000}"#,
    );
    assert_eq!(
        p,
        vec![r#"country: must be an ISO 3166-1 alpha-2 code like "DE", got "Germany""#]
    );
}

/// Values both stores cannot hold are refused here, with their field, so one event can never
/// stop the landing (issue 18, item 1; ADR 0008).
#[test]
fn values_no_store_can_hold_are_rejected_with_their_field() {
    let base = r#""store_id":1,"sku":2,"qty":1,"ts":1723456789000"#;
    // numeric(12,2) holds up to 9,999,999,999.99.
    assert!(decode(format!(r#"{{{base},"unit_price":9999999999.99}}"#).as_bytes()).is_ok());
    let p = problems(&format!(r#"{{{base},"unit_price":10000000000}}"#));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("unit_price: must be below 10000000000"), "{p:?}");
    let p = problems(
        r#"{"type":"payment","payment_id":"p","order_id":"o","amount":"1e12","currency":"EUR","status":"captured","ts":1723456789000}"#,
    );
    assert!(p[0].starts_with("amount: must be below 10000000000"), "{p:?}");
    // PostgreSQL text and jsonb refuse U+0000: in a field we read, in `source`, and in a field
    // we do not read (it is kept in the events_raw payload).
    let p = problems(&format!(r#"{{{base},"source":"po\u0000s"}}"#));
    assert!(p[0].starts_with("source: must not contain U+0000"), "{p:?}");
    let p = problems(
        r#"{"type":"store","store_id":1,"name":"a\u0000","city":"Berlin","country":"DE","ts":1723456789000}"#,
    );
    assert!(p[0].starts_with("name: must not contain U+0000"), "{p:?}");
    let p = problems(&format!(r#"{{{base},"note":"x\u0000"}}"#));
    assert!(p[0].contains("U+0000"), "{p:?}");
    // An escaped backslash before `u0000` is plain text, not U+0000.
    assert!(decode(format!(r#"{{{base},"note":"x\\u0000"}}"#).as_bytes()).is_ok());
    // A lone surrogate escape is not Unicode text; jsonb refuses it.
    let p = problems(&format!(r#"{{{base},"note":"\ud800"}}"#));
    assert!(p[0].contains("surrogate"), "{p:?}");
    assert!(decode(format!(r#"{{{base},"note":"\ud83d\ude00"}}"#).as_bytes()).is_ok());
    // Stock counts are summed in bigint columns: bounded so that sums cannot overflow.
    let p = problems(
        r#"{"type":"inventory","store_id":1,"sku":2,"on_hand":9223372036854775807,"ts":1723456789000}"#,
    );
    assert!(p[0].starts_with("on_hand: must be at most"), "{p:?}");
}

/// `sales_raw.unit_price` and `product_dim.price` keep cents (numeric(12,2)); a price with more
/// decimals would be rounded in the raw row but aggregated exactly, so raw rows and aggregates
/// would disagree. It is refused instead, naming the field (issue 18, item 4; ADR 0008).
#[test]
fn prices_with_more_than_cents_are_rejected() {
    let base = r#""store_id":1,"sku":2,"qty":3,"ts":1723456789000"#;
    let p = problems(&format!(r#"{{{base},"unit_price":19.999}}"#));
    assert_eq!(
        p,
        ["unit_price: must have at most 2 decimal places (cents), got 19.999"]
    );
    let p = problems(&format!(r#"{{{base},"unit_price":"0.001"}}"#));
    assert!(
        p[0].starts_with("unit_price: must have at most 2 decimal places"),
        "{p:?}"
    );
    let p =
        problems(r#"{"type":"product","sku":2,"name":"n","category":"c","price":1.005,"ts":1723456789000}"#);
    assert!(
        p[0].starts_with("price: must have at most 2 decimal places"),
        "{p:?}"
    );
    // Trailing zeros are not precision: 19.990 is 19.99.
    let e = decode(format!(r#"{{{base},"unit_price":19.990}}"#).as_bytes()).expect("19.990");
    match e.body {
        EventBody::Sale(s) => assert_eq!(s.unit_price.map(|p| p.to_string()).as_deref(), Some("19.99")),
        other => panic!("not a sale: {other:?}"),
    }
    // Amounts of orders and payments are kept exactly in the payload (currencies such as KWD
    // have three decimals), so they are not limited to cents.
    assert!(decode(br#"{"type":"payment","payment_id":"p","order_id":"o","amount":"1.125","currency":"KWD","status":"captured","ts":1723456789000}"#).is_ok());
}
