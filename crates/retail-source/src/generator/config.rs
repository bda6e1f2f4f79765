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
    /// Stop after exactly this many data events (sales, returns, orders, payments, stock
    /// levels, duplicates and malformed records; the catalog is not counted). Unset runs until
    /// shutdown.
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
    /// E-commerce orders, their payments and injected order and fraud anomalies (`[commerce]`).
    /// Off by default: `commerce.order_fraction = 0`.
    pub commerce: CommerceConfig,
    /// ERP stock levels of each store's bestsellers (`[stock]`). Off by default:
    /// `stock.series_per_store = 0`.
    pub stock: StockConfig,
    /// Simulated hours a run of `events` covers. When set (it needs `events`), data event
    /// times sweep evenly from (run start - span) to run start, so a short run covers hours or
    /// days of event time: payment timeouts, stuck orders and stock running out happen within
    /// it. Unset, event time is the wall clock. The out-of-order and late shifts still apply
    /// on top.
    pub simulated_span_hours: Option<f64>,
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

    /// Longest `simulated_span_hours`: ten years.
    const MAX_SPAN_HOURS: f64 = 10.0 * 365.0 * 24.0;

    /// Whether the generator produces order and payment events.
    pub fn commerce_on(&self) -> bool {
        self.commerce.order_fraction > 0.0
    }

    /// Whether the generator produces ERP stock levels.
    pub const fn stock_on(&self) -> bool {
        self.stock.series_per_store > 0
    }

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
        self.commerce.validate()?;
        self.stock.validate(self)?;
        if let Some(span) = self.simulated_span_hours {
            if !(span.is_finite() && span > 0.0 && span <= Self::MAX_SPAN_HOURS) {
                return bad(
                    "simulated_span_hours",
                    format!(
                        "must be a number of hours in (0, {}], got {span}",
                        Self::MAX_SPAN_HOURS
                    ),
                );
            }
            if self.events.is_none() {
                return bad(
                    "simulated_span_hours",
                    "needs `events`: the span is spread over that many events".to_owned(),
                );
            }
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
        let mut source = GeneratorSource::new(&config)?;
        if let (Some(hours), Some(events)) = (config.simulated_span_hours, config.events) {
            let dir = cx.state_dir(&config.name)?;
            source.set_span_end(span_end(&dir, config.seed, events, hours)?);
        }
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

/// Where the simulated span of a run of `events` events ends: the end an earlier run with the
/// same seed, count and span wrote in `dir`, or now (then written there). So a run restarted
/// after a crash, or run again, sends the same event times for the same events: exact re-sends,
/// which the store lands once (its dedup ledger keys on the event's day as well as its id).
fn span_end(dir: &std::path::Path, seed: u64, events: u64, hours: f64) -> Result<i64> {
    let path = dir.join("span_end");
    let key = format!("seed={seed} events={events} span_hours={hours}");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some((k, end)) = text.trim().rsplit_once(" end_ms=") {
            if k == key {
                if let Ok(end) = end.parse() {
                    return Ok(end);
                }
            }
        }
    }
    let end = chrono::Utc::now().timestamp_millis();
    let tmp = dir.join("span_end.tmp");
    std::fs::write(&tmp, format!("{key} end_ms={end}\n"))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| crate::Error::io(format!("generator: writing {}", path.display()), e))?;
    Ok(end)
}

/// E-commerce orders and their payments, with anomalies injected into some of them. Every
/// order is in EUR, so that amount thresholds (fraud rules) mean one thing across countries.
///
/// An order flow is `created`, then payment `authorized` 10 s to 10 min later and `captured`
/// within a minute, order `paid` right after, `packed` 1-10 h after that, `shipped` 1-20 h
/// later and `delivered` 1-3 days later: inside the pipeline's limits (payment within 30 min,
/// at most 12 h in `paid`, 24 h in `packed`, 96 h in `shipped`), so only the injected
/// anomalies raise alerts. The anomaly fractions are of order flows, drawn once per flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommerceConfig {
    /// Fraction of data events that belong to order flows (order and payment events); 0 turns
    /// orders off.
    pub order_fraction: f64,
    /// Fraction of flows whose order never gets a payment.
    pub payment_missing_fraction: f64,
    /// Fraction of flows whose payment comes 45-180 min after the order was created, past the
    /// 30 min payment window.
    pub payment_late_fraction: f64,
    /// Fraction of flows that stop in `paid`, `packed` or `shipped` and never move again.
    pub stuck_fraction: f64,
    /// Fraction of flows cancelled, either before payment (1-20 min after `created`) or after
    /// it (10 min-6 h after `paid`, the payment then `refunded`).
    pub cancel_fraction: f64,
    /// Fraction of flows replaced by a fraud pattern, rotating through five: one card paying
    /// 6-8 times within 10 minutes; a payment of 0.50-1.00 then one over 500 on the same card
    /// within a minute; after five ordinary payments, one of just over 20 times the customer's average;
    /// the IP address in another country than the card's billing address; three orders of
    /// 700-900 within an hour (over 2,000 per hour). Each pattern has a customer and card of
    /// its own, and trips only its rule.
    pub fraud_fraction: f64,
    /// Customers of the shop (`C-00001`...), each with a home country of the world, one or two
    /// cards and a usual spend; fraud patterns use customers numbered after them.
    pub customers: u32,
    /// Most orders in flight (created, not yet delivered or abandoned). At the cap no new flow
    /// starts until one completes, so memory stays bounded (about 200 bytes an order) however
    /// long the generator runs; sales fill the slots meanwhile.
    pub max_in_flight: u32,
}

impl CommerceConfig {
    /// Default `customers`.
    pub const DEFAULT_CUSTOMERS: u32 = 20_000;
    /// Default `max_in_flight`.
    pub const DEFAULT_MAX_IN_FLIGHT: u32 = 100_000;
    const MAX_CUSTOMERS: u32 = 100_000_000;
    const MAX_IN_FLIGHT: u32 = 10_000_000;

    fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| Err(Error::Config(format!("generator.commerce.{key}: {why}")));
        let fractions = [
            ("order_fraction", self.order_fraction),
            ("payment_missing_fraction", self.payment_missing_fraction),
            ("payment_late_fraction", self.payment_late_fraction),
            ("stuck_fraction", self.stuck_fraction),
            ("cancel_fraction", self.cancel_fraction),
            ("fraud_fraction", self.fraud_fraction),
        ];
        for (key, f) in fractions {
            if !(0.0..=1.0).contains(&f) {
                return bad(key, format!("must be between 0 and 1, got {f}"));
            }
        }
        let anomalies = self.payment_missing_fraction
            + self.payment_late_fraction
            + self.stuck_fraction
            + self.cancel_fraction;
        if anomalies > 1.0 {
            return bad(
                "payment_missing_fraction",
                format!(
                    "payment_missing + payment_late + stuck + cancel fractions must add up to <= 1, got {anomalies}"
                ),
            );
        }
        if self.customers == 0 || self.customers > Self::MAX_CUSTOMERS {
            return bad(
                "customers",
                format!("must be 1..={}, got {}", Self::MAX_CUSTOMERS, self.customers),
            );
        }
        if self.max_in_flight < 16 || self.max_in_flight > Self::MAX_IN_FLIGHT {
            // 16: room for the largest fraud pattern (eight orders) twice over.
            return bad(
                "max_in_flight",
                format!("must be 16..={}, got {}", Self::MAX_IN_FLIGHT, self.max_in_flight),
            );
        }
        Ok(())
    }
}

impl Default for CommerceConfig {
    fn default() -> Self {
        Self {
            order_fraction: 0.0,
            payment_missing_fraction: 0.0,
            payment_late_fraction: 0.0,
            stuck_fraction: 0.0,
            cancel_fraction: 0.0,
            fraud_fraction: 0.0,
            customers: Self::DEFAULT_CUSTOMERS,
            max_in_flight: Self::DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// ERP stock levels: per store, its most popular SKUs are tracked series. Each series loses what
/// that store sells of it (returns add back), is counted (`inventory` event, reason `snapshot`)
/// every `interval_hours` of event time, and is reordered when it falls under its reorder
/// level; the delivery (reason `receipt`) comes after the series' lead time of 2-7 days. Levels
/// and reorder points are sized from the expected demand of the series, so ordinary series do
/// not run out; `stockout_fraction` of them are never reordered and run to 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StockConfig {
    /// SKUs per store whose stock the ERP reports, the most popular ones; 0 turns stock off.
    pub series_per_store: u32,
    /// Simulated hours between two snapshots of a series.
    pub interval_hours: f64,
    /// Fraction of series that are never reordered, so they run to 0.
    pub stockout_fraction: f64,
}

impl StockConfig {
    /// Default `interval_hours`.
    pub const DEFAULT_INTERVAL_HOURS: f64 = 6.0;
    const MAX_SERIES: u64 = 1_000_000;

    fn validate(&self, config: &GeneratorConfig) -> Result<()> {
        let bad = |key: &str, why: String| Err(Error::Config(format!("generator.stock.{key}: {why}")));
        let series = u64::from(config.stores) * u64::from(self.series_per_store);
        if self.series_per_store > config.skus || series > Self::MAX_SERIES {
            return bad(
                "series_per_store",
                format!(
                    "must be <= skus with stores x series_per_store <= {}, got {}",
                    Self::MAX_SERIES,
                    self.series_per_store
                ),
            );
        }
        if !(self.interval_hours.is_finite() && self.interval_hours >= 0.01 && self.interval_hours <= 8760.0)
        {
            return bad(
                "interval_hours",
                format!(
                    "must be a number of hours in [0.01, 8760], got {}",
                    self.interval_hours
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.stockout_fraction) {
            return bad(
                "stockout_fraction",
                format!("must be between 0 and 1, got {}", self.stockout_fraction),
            );
        }
        Ok(())
    }
}

impl Default for StockConfig {
    fn default() -> Self {
        Self {
            series_per_store: 0,
            interval_hours: Self::DEFAULT_INTERVAL_HOURS,
            stockout_fraction: 0.0,
        }
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
            commerce: CommerceConfig::default(),
            stock: StockConfig::default(),
            simulated_span_hours: None,
            partitions: Self::DEFAULT_PARTITIONS,
            name: Self::DEFAULT_NAME.to_owned(),
        }
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

#[cfg(test)]
mod span_end_tests {
    use super::span_end;

    #[test]
    fn a_run_again_with_the_same_settings_ends_its_span_where_the_first_did() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = span_end(dir.path(), 7, 1000, 72.0).expect("first");
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(span_end(dir.path(), 7, 1000, 72.0).expect("again"), first);
        let other = span_end(dir.path(), 8, 1000, 72.0).expect("another seed");
        assert!(other > first, "another seed is another run");
        assert_eq!(span_end(dir.path(), 8, 1000, 72.0).expect("again"), other);
    }
}
