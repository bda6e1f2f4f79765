//! Tests of the generator settings: defaults, parsing, and that every bad value names its key.

use super::*;

#[test]
fn an_empty_table_is_the_default_and_valid() {
    let c: GeneratorConfig = serde_json::from_str("{}").expect("parses");
    assert_eq!(c, GeneratorConfig::default());
    c.validate().expect("defaults are valid");
    assert_eq!(c.seed, 42);
    assert_eq!(c.rate, 50.0);
    assert_eq!(c.stores, 50);
    assert!(c.countries.len() >= 10);
    assert!(c.countries.iter().all(|c| (2..=5).contains(&c.cities.len())));
}

#[test]
fn unknown_keys_are_rejected() {
    let e = serde_json::from_str::<GeneratorConfig>(r#"{"rate": 10, "ratee": 5}"#).expect_err("typo");
    assert!(e.to_string().contains("ratee"), "{e}");
    let e = serde_json::from_str::<GeneratorConfig>(r#"{"countries": [{"code": "DE", "city": []}]}"#)
        .expect_err("typo in a country");
    assert!(e.to_string().contains("city"), "{e}");
}

#[test]
fn partial_settings_keep_the_other_defaults() {
    let c: GeneratorConfig =
        serde_json::from_str(r#"{"seed": 7, "events": 1000, "malformed_fraction": 0.01}"#).expect("parses");
    assert_eq!((c.seed, c.events, c.malformed_fraction), (7, Some(1000), 0.01));
    assert_eq!(c.skus, GeneratorConfig::DEFAULT_SKUS);
}

#[test]
fn orders_and_stock_are_off_by_default_and_read_from_nested_tables() {
    let c = GeneratorConfig::default();
    assert!(!c.commerce_on() && !c.stock_on());
    assert_eq!(c.simulated_span_hours, None);
    let c: GeneratorConfig = toml::from_str(
        r#"
        events = 1000
        simulated_span_hours = 72
        [commerce]
        order_fraction = 0.15
        fraud_fraction = 0.01
        [stock]
        series_per_store = 20
        stockout_fraction = 0.05
        "#,
    )
    .expect("parses");
    c.validate().expect("valid");
    assert!(c.commerce_on() && c.stock_on());
    assert_eq!(c.commerce.max_in_flight, CommerceConfig::DEFAULT_MAX_IN_FLIGHT);
    assert_eq!(c.stock.interval_hours, StockConfig::DEFAULT_INTERVAL_HOURS);
    assert_eq!(c.simulated_span_hours, Some(72.0));
    let e = toml::from_str::<GeneratorConfig>("[commerce]\nfraud = 0.1").expect_err("typo");
    assert!(e.to_string().contains("fraud"), "{e}");
}

#[test]
fn invalid_values_name_their_key() {
    let cases: Vec<(&str, GeneratorConfig)> = vec![
        (
            "rate",
            GeneratorConfig {
                rate: -1.0,
                ..Default::default()
            },
        ),
        (
            "rate",
            GeneratorConfig {
                rate: f64::NAN,
                ..Default::default()
            },
        ),
        (
            "stores",
            GeneratorConfig {
                stores: 0,
                ..Default::default()
            },
        ),
        (
            "skus",
            GeneratorConfig {
                skus: 0,
                ..Default::default()
            },
        ),
        (
            "late_fraction",
            GeneratorConfig {
                late_fraction: 1.5,
                ..Default::default()
            },
        ),
        (
            "duplicate_fraction",
            GeneratorConfig {
                duplicate_fraction: 0.6,
                malformed_fraction: 0.6,
                ..Default::default()
            },
        ),
        (
            "countries",
            GeneratorConfig {
                countries: vec![],
                ..Default::default()
            },
        ),
        (
            "countries[0].code",
            GeneratorConfig {
                countries: vec![CountryConfig::new("de", 0, &["Berlin"])],
                ..Default::default()
            },
        ),
        (
            "partitions",
            GeneratorConfig {
                partitions: 0,
                ..Default::default()
            },
        ),
        (
            "name",
            GeneratorConfig {
                name: " ".into(),
                ..Default::default()
            },
        ),
        (
            "commerce.order_fraction",
            GeneratorConfig {
                commerce: CommerceConfig {
                    order_fraction: 1.5,
                    ..CommerceConfig::default()
                },
                ..Default::default()
            },
        ),
        (
            "commerce.fraud_fraction",
            GeneratorConfig {
                commerce: CommerceConfig {
                    fraud_fraction: -0.1,
                    ..CommerceConfig::default()
                },
                ..Default::default()
            },
        ),
        (
            "commerce.payment_missing_fraction",
            GeneratorConfig {
                commerce: CommerceConfig {
                    payment_missing_fraction: 0.5,
                    stuck_fraction: 0.3,
                    cancel_fraction: 0.3,
                    ..CommerceConfig::default()
                },
                ..Default::default()
            },
        ),
        (
            "commerce.max_in_flight",
            GeneratorConfig {
                commerce: CommerceConfig {
                    max_in_flight: 0,
                    ..CommerceConfig::default()
                },
                ..Default::default()
            },
        ),
        (
            "commerce.customers",
            GeneratorConfig {
                commerce: CommerceConfig {
                    customers: 0,
                    ..CommerceConfig::default()
                },
                ..Default::default()
            },
        ),
        (
            "stock.series_per_store",
            GeneratorConfig {
                skus: 10,
                stock: StockConfig {
                    series_per_store: 11,
                    ..StockConfig::default()
                },
                ..Default::default()
            },
        ),
        (
            "stock.interval_hours",
            GeneratorConfig {
                stock: StockConfig {
                    interval_hours: 0.0,
                    ..StockConfig::default()
                },
                ..Default::default()
            },
        ),
        (
            "stock.interval_hours",
            GeneratorConfig {
                stock: StockConfig {
                    interval_hours: f64::NAN,
                    ..StockConfig::default()
                },
                ..Default::default()
            },
        ),
        (
            "stock.stockout_fraction",
            GeneratorConfig {
                stock: StockConfig {
                    stockout_fraction: 2.0,
                    ..StockConfig::default()
                },
                ..Default::default()
            },
        ),
        (
            "simulated_span_hours",
            GeneratorConfig {
                events: Some(10),
                simulated_span_hours: Some(0.0),
                ..Default::default()
            },
        ),
        (
            "simulated_span_hours",
            GeneratorConfig {
                events: Some(10),
                simulated_span_hours: Some(f64::INFINITY),
                ..Default::default()
            },
        ),
        (
            "simulated_span_hours",
            GeneratorConfig {
                simulated_span_hours: Some(24.0),
                ..Default::default()
            },
        ),
    ];
    for (key, config) in cases {
        let e = config.validate().expect_err(key);
        assert!(e.to_string().contains(&format!("generator.{key}:")), "{key}: {e}");
        assert!(!e.is_retryable());
    }
}
