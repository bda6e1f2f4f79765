//! The sources `demo` runs with no configuration, and how its flags change them. Kept here so
//! the binary knows no source type: it hands over its flags and gets `[[sources]]` back.

use crate::csv::CsvConfig;
use crate::generator::{CommerceConfig, GeneratorConfig, StockConfig};
use crate::registry::SourceConfig;
use crate::webhook::WebhookConfig;

/// The name (and path) of the webhook `demo` adds: `POST /ingest/pos`.
pub const DEMO_WEBHOOK: &str = "pos";
/// The name of the CSV folder `demo` adds at `<data-dir>/inbox`.
pub const DEMO_INBOX: &str = "inbox";

/// Hours of event time `demo --events N` covers unless a span is configured: three days, so
/// payment timeouts, stuck orders and stock running out all happen within the run.
pub const DEMO_SPAN_HOURS: f64 = 72.0;

/// The shop `demo` runs unless the generator's `[commerce]` is configured: every anomaly kind
/// present (a few dozen fraud patterns in 300,000 events).
pub fn demo_commerce() -> CommerceConfig {
    CommerceConfig {
        order_fraction: 0.15,
        payment_missing_fraction: 0.02,
        payment_late_fraction: 0.02,
        stuck_fraction: 0.02,
        cancel_fraction: 0.02,
        fraud_fraction: 0.01,
        ..CommerceConfig::default()
    }
}

/// The ERP stock `demo` reports unless the generator's `[stock]` is configured: each store's
/// 20 bestsellers, counted every 6 hours, 5% of them never reordered.
pub fn demo_stock() -> StockConfig {
    StockConfig {
        series_per_store: 20,
        stockout_fraction: 0.05,
        ..StockConfig::default()
    }
}

/// `demo`'s flags that shape its sources. `None` keeps the configured value.
#[derive(Debug, Clone, Default)]
pub struct DemoFlags {
    /// Generated events per second. 0 switches the generator off, so only the other sources
    /// feed the pipeline.
    pub rate: Option<f64>,
    /// Generate exactly this many events (as fast as possible unless `rate` is given).
    pub events: Option<u64>,
    /// Generator seed.
    pub seed: Option<u64>,
    /// Fraction of events re-sent as exact duplicates.
    pub duplicate_fraction: Option<f64>,
    /// Fraction of malformed events.
    pub malformed_fraction: Option<f64>,
    /// Fraction of out-of-order events.
    pub out_of_order_fraction: Option<f64>,
    /// Fraction of late events.
    pub late_fraction: Option<f64>,
    /// Sales only, on the wall clock: the generator as it was before the retail pipelines
    /// (no orders, payments or stock, no simulated span). Tests and figures of the sales path
    /// use it.
    pub sales_only: bool,
}

/// Completes `sources` for `demo`: a generator unless one is configured or `--rate 0`
/// switches it off, with the flags applied to every generator; a webhook at
/// `POST /ingest/pos` unless a webhook is configured; a CSV folder at `<data-dir>/inbox`
/// unless a CSV source is configured. The generator also sells online and reports stock
/// ([`demo_commerce`], [`demo_stock`]) unless those are configured, and with `events` its
/// event time covers [`DEMO_SPAN_HOURS`] unless a span is configured.
pub fn demo_sources(sources: &mut Vec<SourceConfig>, flags: &DemoFlags) {
    if !sources.iter().any(|s| matches!(s, SourceConfig::Webhook(_))) {
        sources.push(SourceConfig::Webhook(WebhookConfig::named(DEMO_WEBHOOK)));
    }
    if !sources.iter().any(|s| matches!(s, SourceConfig::Csv(_))) {
        // `dir` unset: `<data_dir>/inbox`, resolved when the source is built.
        sources.push(SourceConfig::Csv(CsvConfig {
            name: DEMO_INBOX.to_owned(),
            ..CsvConfig::default()
        }));
    }
    let generator_off = flags.rate == Some(0.0);
    if generator_off {
        sources.retain(|s| !matches!(s, SourceConfig::Generator(_)));
    } else if !sources.iter().any(|s| matches!(s, SourceConfig::Generator(_))) {
        sources.insert(0, SourceConfig::Generator(GeneratorConfig::default()));
    }
    for source in sources.iter_mut() {
        if let SourceConfig::Generator(g) = source {
            apply(g, flags);
        }
    }
}

fn apply(g: &mut GeneratorConfig, flags: &DemoFlags) {
    // A fixed count is a job to finish, not a stream to watch: unless a rate is given, run it
    // as fast as the pipeline goes.
    match (flags.rate, flags.events) {
        (Some(v), _) => g.rate = v,
        (None, Some(_)) => g.rate = f64::INFINITY,
        (None, None) => {}
    }
    let set = |slot: &mut f64, v: Option<f64>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    if flags.events.is_some() {
        g.events = flags.events;
    }
    if flags.sales_only {
        g.commerce = CommerceConfig::default();
        g.stock = StockConfig::default();
        g.simulated_span_hours = None;
    } else {
        if g.commerce == CommerceConfig::default() {
            g.commerce = demo_commerce();
        }
        if g.stock == StockConfig::default() {
            g.stock = demo_stock();
        }
        if g.events.is_some() && g.simulated_span_hours.is_none() {
            g.simulated_span_hours = Some(DEMO_SPAN_HOURS);
        }
    }
    if let Some(v) = flags.seed {
        g.seed = v;
    }
    set(&mut g.duplicate_fraction, flags.duplicate_fraction);
    set(&mut g.malformed_fraction, flags.malformed_fraction);
    set(&mut g.out_of_order_fraction, flags.out_of_order_fraction);
    set(&mut g.late_fraction, flags.late_fraction);
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use retail_core::event::{decode, topics, Event, EventBody};

    use super::*;
    use crate::generator::{EventGenerator, ManualClock};

    #[test]
    fn rate_zero_switches_the_generator_off_and_events_make_it_unlimited() {
        let mut off = Vec::new();
        demo_sources(
            &mut off,
            &DemoFlags {
                rate: Some(0.0),
                ..DemoFlags::default()
            },
        );
        assert!(off.iter().all(|s| s.kind() != "generator"), "{off:?}");
        assert!(
            off.iter()
                .any(|s| s.kind() == "webhook" && s.name() == DEMO_WEBHOOK),
            "{off:?}"
        );

        let mut counted = Vec::new();
        demo_sources(
            &mut counted,
            &DemoFlags {
                events: Some(10),
                seed: Some(7),
                ..DemoFlags::default()
            },
        );
        let SourceConfig::Generator(g) = &counted[0] else {
            panic!("a generator first: {counted:?}");
        };
        assert!(g.rate.is_infinite());
        assert_eq!((g.events, g.seed), (Some(10), 7));
        assert_eq!(g.simulated_span_hours, Some(DEMO_SPAN_HOURS));
        g.validate().expect("the demo generator is valid");
    }

    #[test]
    fn demo_turns_orders_and_stock_on_unless_configured() {
        let mut sources = Vec::new();
        demo_sources(&mut sources, &DemoFlags::default());
        let SourceConfig::Generator(g) = &sources[0] else {
            panic!("a generator first: {sources:?}");
        };
        assert_eq!((&g.commerce, &g.stock), (&demo_commerce(), &demo_stock()));
        assert_eq!(g.simulated_span_hours, None, "a stream runs on the wall clock");
        g.validate().expect("valid");

        let mine = GeneratorConfig {
            commerce: CommerceConfig {
                order_fraction: 0.5,
                ..CommerceConfig::default()
            },
            events: Some(100),
            simulated_span_hours: Some(5.0),
            ..GeneratorConfig::default()
        };
        let mut sources = vec![SourceConfig::Generator(mine.clone())];
        demo_sources(&mut sources, &DemoFlags::default());
        let SourceConfig::Generator(g) = &sources[0] else {
            panic!("the configured generator: {sources:?}");
        };
        assert_eq!(g.commerce, mine.commerce, "configured commerce is kept");
        assert_eq!(g.simulated_span_hours, Some(5.0), "a configured span is kept");
    }

    #[test]
    fn demo_with_300k_events_has_every_anomaly_kind() {
        let mut sources = Vec::new();
        let flags = DemoFlags {
            events: Some(300_000),
            ..DemoFlags::default()
        };
        demo_sources(&mut sources, &flags);
        let SourceConfig::Generator(c) = &sources[0] else {
            panic!("a generator first: {sources:?}");
        };
        let clock = Arc::new(ManualClock::new(1_740_830_400_000));
        let mut g = EventGenerator::with_clock(c, clock).expect("valid");
        // Per stock series: whether it was ever reordered, and whether it ever stood at 0.
        let mut series: HashMap<(i64, i64), (bool, bool)> = HashMap::new();
        for r in g.by_ref().filter(|g| g.record.topic == topics::INVENTORY) {
            if let Ok(Event {
                body: EventBody::Inventory(i),
                ..
            }) = decode(&r.record.value)
            {
                let seen = series.entry((i.store_id, i.sku)).or_default();
                seen.0 |= i.reason.as_deref() == Some("receipt");
                seen.1 |= i.on_hand == 0;
            }
        }
        let ran_dry = series
            .values()
            .filter(|(reordered, dry)| !reordered && *dry)
            .count();
        let st = *g.stats();
        let kinds = [
            ("payment_missing", st.payment_missing),
            ("payment_late", st.payment_late),
            ("stuck", st.stuck),
            ("cancelled", st.cancelled),
            ("fraud_card_velocity", st.fraud_card_velocity),
            ("fraud_tiny_then_large", st.fraud_tiny_then_large),
            ("fraud_above_history", st.fraud_above_history),
            ("fraud_ip_mismatch", st.fraud_ip_mismatch),
            ("fraud_hourly_total", st.fraud_hourly_total),
            ("stockout_series", st.stockout_series),
            ("series run dry", ran_dry as u64),
        ];
        for (kind, n) in kinds {
            assert!(n >= 3, "{kind}: {n} in {st:?}");
        }
        let flow_share = (st.orders + st.payments) as f64 / st.generated as f64;
        assert!((flow_share - 0.15).abs() < 0.01, "{flow_share}");
        assert!(st.in_flight_peak < 20_000, "{st:?}");
    }
}
