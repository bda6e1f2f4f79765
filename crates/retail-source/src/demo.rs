//! The sources `demo` runs with no configuration, and how its flags change them. Kept here so
//! the binary knows no source type: it hands over its flags and gets `[[sources]]` back.

use crate::csv::CsvConfig;
use crate::generator::GeneratorConfig;
use crate::registry::SourceConfig;
use crate::webhook::WebhookConfig;

/// The name (and path) of the webhook `demo` adds: `POST /ingest/pos`.
pub const DEMO_WEBHOOK: &str = "pos";
/// The name of the CSV folder `demo` adds at `<data-dir>/inbox`.
pub const DEMO_INBOX: &str = "inbox";

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
}

/// Completes `sources` for `demo`: a generator unless one is configured or `--rate 0`
/// switches it off, with the flags applied to every generator; a webhook at
/// `POST /ingest/pos` unless a webhook is configured; a CSV folder at `<data-dir>/inbox`
/// unless a CSV source is configured.
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
    use super::*;

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
    }
}
