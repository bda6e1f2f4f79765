//! Settings of the load generator: the size of the simulated world, the pace, and how much
//! chaos (duplicates, disorder, lateness, garbage) to mix into the stream.

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use super::source::GeneratorSource;
use crate::registry::{BuildSource, BuiltSource};
use crate::{Error, Result, SourceContext};

/// One country of the simulated world and the cities its stores are in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountryConfig {
    /// ISO 3166-1 alpha-2 code, e.g. `"DE"`.
    pub code: String,
    /// Offset of local (standard) time from UTC, in minutes; daylight saving is ignored. It
    /// places the country's busy hours on the time-of-day curve.
    #[serde(default)]
    pub utc_offset_minutes: i32,
    /// City names. Stores are spread over every city of every country, round-robin.
    pub cities: Vec<String>,
}

impl CountryConfig {
    fn new(code: &str, utc_offset_minutes: i32, cities: &[&str]) -> Self {
        Self {
            code: code.to_owned(),
            utc_offset_minutes,
            cities: cities.iter().map(|c| (*c).to_owned()).collect(),
        }
    }
}

/// The built-in world: real cities in eleven countries on four continents, so the
/// time-of-day curve makes some regions busy while others sleep.
pub fn default_countries() -> Vec<CountryConfig> {
    vec![
        CountryConfig::new("DE", 60, &["Berlin", "Hamburg", "Munich", "Cologne", "Frankfurt"]),
        CountryConfig::new("FR", 60, &["Paris", "Lyon", "Marseille", "Toulouse"]),
        CountryConfig::new("GB", 0, &["London", "Manchester", "Birmingham", "Glasgow"]),
        CountryConfig::new("ES", 60, &["Madrid", "Barcelona", "Valencia", "Seville"]),
        CountryConfig::new("IT", 60, &["Rome", "Milan", "Naples", "Turin"]),
        CountryConfig::new("NL", 60, &["Amsterdam", "Rotterdam", "Utrecht"]),
        CountryConfig::new("US", -300, &["New York", "Boston", "Atlanta", "Miami"]),
        CountryConfig::new("BR", -180, &["São Paulo", "Rio de Janeiro", "Belo Horizonte"]),
        CountryConfig::new("IN", 330, &["Mumbai", "Delhi", "Bengaluru", "Chennai"]),
        CountryConfig::new("JP", 540, &["Tokyo", "Osaka", "Yokohama", "Nagoya"]),
        CountryConfig::new("AU", 600, &["Sydney", "Melbourne", "Brisbane"]),
    ]
}

/// Load generator settings. Every field has a default, so an empty table is a valid config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneratorConfig {
    /// Seed of the simulated world and of the event stream: the same seed and settings give
    /// the same event ids and payloads (only `ts`, the wall clock, differs between runs).
    pub seed: u64,
    /// Data events per second; 0 produces nothing, `"unlimited"` as fast as the log accepts
    /// them. Changeable at runtime through the control API.
    #[serde(with = "rate_serde")]
    pub rate: f64,
    /// Stop after exactly this many data events (sales, returns, duplicates and malformed
    /// records; the catalog is not counted). Unset runs until shutdown.
    pub events: Option<u64>,
    /// Number of stores, spread round-robin over every city of `countries`.
    pub stores: u32,
    /// Countries and cities of the simulated world.
    pub countries: Vec<CountryConfig>,
    /// Salespeople per store; seller ids are unique across stores.
    pub sellers_per_store: u32,
    /// Number of distinct products (SKUs) in the catalog.
    pub skus: u32,
    /// Exponent of the Zipf law of product popularity: 0 is uniform, around 1 is typical
    /// retail (a few bestsellers, a long tail).
    pub zipf_exponent: f64,
    /// Fraction of valid sale lines that are returns (negative quantity).
    pub return_fraction: f64,
    /// Fraction of data records that are exact re-sends of an earlier record (same bytes, same
    /// `event_id`), as an at-least-once producer would send them.
    pub duplicate_fraction: f64,
    /// Fraction of data records whose event time is moved back by up to
    /// `out_of_order_max_ms`, within what watermarks should absorb.
    pub out_of_order_fraction: f64,
    /// Fraction of data records whose event time is moved back by `late_by_ms`, beyond any
    /// reasonable grace period, so they should land in `late_events`.
    pub late_fraction: f64,
    /// Fraction of data records that are not valid events (broken JSON, a wrong field type, an
    /// unknown type, a missing `store_id`, an oversized value); they must reach `dead_letters`.
    pub malformed_fraction: f64,
    /// Largest backwards shift of an out-of-order event, in milliseconds.
    pub out_of_order_max_ms: u64,
    /// Backwards shift of a late event, in milliseconds.
    pub late_by_ms: u64,
    /// Whether stores follow a daily rhythm (quiet at night, busy around noon and early
    /// evening, by each store's local hour). It changes which stores sell, not how many events
    /// per second are produced, so `rate` holds exactly.
    pub time_of_day_curve: bool,
    /// Partition count used when creating the `sales` and `catalog` topics: in a pipeline,
    /// always the log's `log.partitions` (one number, one place), so not a key of its own.
    #[serde(skip)]
    pub partitions: i32,
    /// Source name: the events' `source` field, the record header, the metrics label and the
    /// `/health` component. (`source_name` is accepted for older files.)
    #[serde(alias = "source_name")]
    pub name: String,
}

impl GeneratorConfig {
    /// Default `seed`.
    pub const DEFAULT_SEED: u64 = 42;
    /// Default `rate`, events per second.
    pub const DEFAULT_RATE: f64 = 50.0;
    /// Default `stores`.
    pub const DEFAULT_STORES: u32 = 50;
    /// Default `sellers_per_store`.
    pub const DEFAULT_SELLERS_PER_STORE: u32 = 8;
    /// Default `skus`.
    pub const DEFAULT_SKUS: u32 = 5000;
    /// Default `zipf_exponent`.
    pub const DEFAULT_ZIPF_EXPONENT: f64 = 1.1;
    /// Default `return_fraction`.
    pub const DEFAULT_RETURN_FRACTION: f64 = 0.03;
    /// Default `out_of_order_max_ms`.
    pub const DEFAULT_OUT_OF_ORDER_MAX_MS: u64 = 5000;
    /// Default `late_by_ms`: ten minutes.
    pub const DEFAULT_LATE_BY_MS: u64 = 600_000;
    /// Default `partitions`.
    pub const DEFAULT_PARTITIONS: i32 = 4;
    /// Default `name`.
    pub const DEFAULT_NAME: &'static str = "generator";

    /// Upper bounds that keep the simulated world in memory comfortably.
    const MAX_STORES: u32 = 1_000_000;
    const MAX_SELLERS: u64 = 10_000_000;
    const MAX_SKUS: u32 = 10_000_000;

    /// Checks every setting; the error names the key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| Err(Error::Config(format!("generator.{key}: {why}")));
        if self.rate.is_nan() || self.rate < 0.0 {
            return bad(
                "rate",
                format!(
                    "must be a number >= 0 (0 = no events) or \"unlimited\", got {}",
                    self.rate
                ),
            );
        }
        if self.stores == 0 || self.stores > Self::MAX_STORES {
            return bad(
                "stores",
                format!("must be 1..={}, got {}", Self::MAX_STORES, self.stores),
            );
        }
        let sellers = u64::from(self.stores) * u64::from(self.sellers_per_store);
        if self.sellers_per_store == 0 || sellers > Self::MAX_SELLERS {
            return bad(
                "sellers_per_store",
                format!(
                    "must be >= 1 with stores x sellers_per_store <= {}, got {}",
                    Self::MAX_SELLERS,
                    self.sellers_per_store
                ),
            );
        }
        if self.skus == 0 || self.skus > Self::MAX_SKUS {
            return bad(
                "skus",
                format!("must be 1..={}, got {}", Self::MAX_SKUS, self.skus),
            );
        }
        if self.countries.is_empty() {
            return bad("countries", "must name at least one country".to_owned());
        }
        for (i, c) in self.countries.iter().enumerate() {
            if !(c.code.len() == 2 && c.code.bytes().all(|b| b.is_ascii_uppercase())) {
                return bad(
                    &format!("countries[{i}].code"),
                    format!("must be an ISO 3166-1 alpha-2 code like \"DE\", got {:?}", c.code),
                );
            }
            if !(-14 * 60..=14 * 60).contains(&c.utc_offset_minutes) {
                return bad(
                    &format!("countries[{i}].utc_offset_minutes"),
                    format!("must be within +-840 minutes, got {}", c.utc_offset_minutes),
                );
            }
            if c.cities.is_empty() || c.cities.iter().any(|city| city.trim().is_empty()) {
                return bad(
                    &format!("countries[{i}].cities"),
                    "must list at least one city, none of them empty".to_owned(),
                );
            }
        }
        if !(self.zipf_exponent.is_finite() && self.zipf_exponent >= 0.0) {
            return bad(
                "zipf_exponent",
                format!("must be a number >= 0, got {}", self.zipf_exponent),
            );
        }
        let fractions = [
            ("return_fraction", self.return_fraction),
            ("duplicate_fraction", self.duplicate_fraction),
            ("out_of_order_fraction", self.out_of_order_fraction),
            ("late_fraction", self.late_fraction),
            ("malformed_fraction", self.malformed_fraction),
        ];
        for (key, f) in fractions {
            if !(0.0..=1.0).contains(&f) {
                return bad(key, format!("must be between 0 and 1, got {f}"));
            }
        }
        let faults = self.duplicate_fraction
            + self.out_of_order_fraction
            + self.late_fraction
            + self.malformed_fraction;
        if faults > 1.0 {
            return bad(
                "duplicate_fraction",
                format!(
                    "duplicate + out_of_order + late + malformed fractions must add up to <= 1, got {faults}"
                ),
            );
        }
        if self.out_of_order_max_ms == 0 {
            return bad("out_of_order_max_ms", "must be >= 1".to_owned());
        }
        if self.late_by_ms == 0 || self.late_by_ms > 365 * 24 * 3600 * 1000 {
            return bad(
                "late_by_ms",
                format!("must be 1..=one year in milliseconds, got {}", self.late_by_ms),
            );
        }
        if self.partitions < 1 {
            return bad("partitions", format!("must be >= 1, got {}", self.partitions));
        }
        if self.name.trim().is_empty() {
            return bad("name", "must not be empty".to_owned());
        }
        Ok(())
    }

    /// Validates the settings and builds the source task.
    pub fn build(&self) -> Result<GeneratorSource> {
        GeneratorSource::new(self)
    }
}

#[async_trait::async_trait]
impl BuildSource for GeneratorConfig {
    const KIND: &'static str = "generator";

    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<()> {
        Self::validate(self)
    }

    async fn build(&self, cx: &SourceContext) -> Result<BuiltSource> {
        let config = Self {
            partitions: cx.partitions,
            ..self.clone()
        };
        let source = GeneratorSource::new(&config)?;
        let runtime = cx.runtime(&config.name, Self::KIND);
        runtime.set_rate_control(Arc::new(source.handle()));
        runtime.set_bounded(config.events.is_some());
        let pace = if config.rate.is_infinite() {
            "as fast as the log goes".to_owned()
        } else {
            format!("{} events/s", config.rate)
        };
        runtime.set_description(match config.events {
            Some(n) => format!("{n} generated events, {pace}"),
            None => format!("generated events, {pace}, until stopped"),
        });
        let handle = runtime.handle();
        let task = Box::pin(async move { source.run_in(runtime).await.map(|_| ()) });
        Ok(BuiltSource { handle, task })
    }
}

/// `rate` in files: a number of events per second, or `"unlimited"` (infinity, which TOML and
/// JSON numbers cannot carry portably).
mod rate_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(rate: &f64, s: S) -> Result<S::Ok, S::Error> {
        if rate.is_infinite() {
            s.serialize_str("unlimited")
        } else {
            s.serialize_f64(*rate)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Rate {
            Number(f64),
            Word(String),
        }
        match Rate::deserialize(d)? {
            Rate::Number(n) => Ok(n),
            Rate::Word(w) if w == "unlimited" => Ok(f64::INFINITY),
            Rate::Word(w) => Err(serde::de::Error::custom(format!(
                "rate must be a number of events per second or \"unlimited\", got {w:?}"
            ))),
        }
    }
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: Self::DEFAULT_SEED,
            rate: Self::DEFAULT_RATE,
            events: None,
            stores: Self::DEFAULT_STORES,
            countries: default_countries(),
            sellers_per_store: Self::DEFAULT_SELLERS_PER_STORE,
            skus: Self::DEFAULT_SKUS,
            zipf_exponent: Self::DEFAULT_ZIPF_EXPONENT,
            return_fraction: Self::DEFAULT_RETURN_FRACTION,
            duplicate_fraction: 0.0,
            out_of_order_fraction: 0.0,
            late_fraction: 0.0,
            malformed_fraction: 0.0,
            out_of_order_max_ms: Self::DEFAULT_OUT_OF_ORDER_MAX_MS,
            late_by_ms: Self::DEFAULT_LATE_BY_MS,
            time_of_day_curve: true,
            partitions: Self::DEFAULT_PARTITIONS,
            name: Self::DEFAULT_NAME.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
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
            serde_json::from_str(r#"{"seed": 7, "events": 1000, "malformed_fraction": 0.01}"#)
                .expect("parses");
        assert_eq!((c.seed, c.events, c.malformed_fraction), (7, Some(1000), 0.01));
        assert_eq!(c.skus, GeneratorConfig::DEFAULT_SKUS);
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
        ];
        for (key, config) in cases {
            let e = config.validate().expect_err(key);
            assert!(e.to_string().contains(&format!("generator.{key}:")), "{key}: {e}");
            assert!(!e.is_retryable());
        }
    }
}
