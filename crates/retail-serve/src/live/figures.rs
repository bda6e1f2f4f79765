//! The pipeline's own numbers for the dashboard, read from the metrics exposition.
//!
//! The dashboard reads the same text Prometheus scrapes, so the page and Grafana can never
//! disagree, and no stage needs a second channel to the dashboard: whatever a component counts
//! for `/metrics` the page can show. Families are summed over their labels (every source, every
//! table, every partition); the latency histogram is kept per bucket so that the caller can take
//! a percentile over a recent interval from the difference of two readings.

/// One reading of the counters and gauges the dashboard shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Events the sources accepted onto the log (`retail_source_accepted_events_total`).
    pub accepted: f64,
    /// Rows landed in `sales_raw` and `events_raw` (`retail_landing_rows_total`).
    pub landed: f64,
    /// Sales rows landed (`retail_landing_rows_total{table="sales_raw"}`).
    pub sales_landed: f64,
    /// Dead letters, every stage and kind (`retail_dead_letters_total`).
    pub dead_letters: f64,
    /// Late events, every aggregate and reason (`retail_late_events_total`).
    pub late_events: f64,
    /// Records appended but not landed, every group and partition (`retail_consumer_lag_records`).
    pub lag: f64,
    /// Event-to-store latency: cumulative count per upper bound in seconds, ascending, summed
    /// over tables; the last bound is `+Inf`.
    pub latency_buckets: Vec<(f64, f64)>,
}

const ACCEPTED: &str = "retail_source_accepted_events_total";
const LANDED: &str = "retail_landing_rows_total";
const DEAD_LETTERS: &str = "retail_dead_letters_total";
const LATE_EVENTS: &str = "retail_late_events_total";
const LAG: &str = "retail_consumer_lag_records";
const LATENCY_BUCKET: &str = "retail_event_to_store_latency_seconds_bucket";

impl Figures {
    /// Reads the families above out of a Prometheus or OpenMetrics text exposition. Lines it
    /// does not know are skipped, so new metrics never break the dashboard.
    pub fn from_exposition(text: &str) -> Self {
        let mut f = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, labels, value)) = sample(line) else {
                continue;
            };
            match name {
                ACCEPTED => f.accepted += value,
                LANDED => {
                    let table = label(labels, "table");
                    if table == Some("sales_raw") {
                        f.sales_landed += value;
                    }
                    if matches!(table, Some("sales_raw" | "events_raw")) {
                        f.landed += value;
                    }
                }
                DEAD_LETTERS => f.dead_letters += value,
                LATE_EVENTS => f.late_events += value,
                LAG => f.lag += value,
                LATENCY_BUCKET => {
                    let le = match label(labels, "le") {
                        Some("+Inf") => f64::INFINITY,
                        Some(v) => match v.parse() {
                            Ok(v) => v,
                            Err(_) => continue,
                        },
                        None => continue,
                    };
                    match f.latency_buckets.iter_mut().find(|(b, _)| *b == le) {
                        Some((_, n)) => *n += value,
                        None => f.latency_buckets.push((le, value)),
                    }
                }
                _ => {}
            }
        }
        f.latency_buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        f
    }
}

/// `name{labels} value [timestamp]` -> (name, labels without braces, value).
fn sample(line: &str) -> Option<(&str, &str, f64)> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = open + line[open..].find('}')?;
            (&line[..open], &line[open + 1..close], &line[close + 1..])
        }
        None => {
            let (name, rest) = line.split_once(' ')?;
            (name, "", rest)
        }
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name, labels, value))
}

/// The value of `key` in `a="x",b="y"`. Our label values never contain `",`.
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split("\",").find_map(|pair| {
        let (k, v) = pair.split_once("=\"")?;
        (k.trim() == key).then(|| v.trim_end_matches('"'))
    })
}

/// The `q` quantile of the observations counted between two readings of the same cumulative
/// histogram, interpolated linearly inside the bucket as PromQL's `histogram_quantile` does.
/// `None` when nothing was observed in between. A quantile in the `+Inf` bucket is reported
/// as the highest finite bound (the histogram cannot say more).
pub fn quantile_between(q: f64, before: &[(f64, f64)], after: &[(f64, f64)]) -> Option<f64> {
    let count =
        |buckets: &[(f64, f64)], le: f64| buckets.iter().find(|(b, _)| *b == le).map_or(0.0, |(_, n)| *n);
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|&(le, n)| (le, (n - count(before, le)).max(0.0)))
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, cumulative) in &delta {
        if cumulative >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let inside = cumulative - below;
            let share = if inside > 0.0 {
                (rank - below) / inside
            } else {
                1.0
            };
            return Some(lower + (le - lower) * share);
        }
        (lower, below) = (le, cumulative);
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP retail_source_accepted_events Events accepted.
# TYPE retail_source_accepted_events counter
retail_source_accepted_events_total{source="generator"} 120
retail_source_accepted_events_total{source="webhook"} 5
retail_landing_rows_total{table="sales_raw"} 100
retail_landing_rows_total{table="events_raw"} 20
retail_landing_rows_total{table="dead_letters"} 3
retail_dead_letters_total{stage="landing",kind="malformed"} 3
retail_late_events_total{aggregate="sales_agg_minute",reason="window_closed"} 2
retail_consumer_lag_records{group="landing",topic="sales",partition="0"} 7
retail_consumer_lag_records{group="landing",topic="sales",partition="1"} 1
retail_event_to_store_latency_seconds_bucket{table="sales_raw",le="0.1"} 10
retail_event_to_store_latency_seconds_bucket{table="sales_raw",le="1.0"} 90
retail_event_to_store_latency_seconds_bucket{table="sales_raw",le="+Inf"} 100
retail_event_to_store_latency_seconds_bucket{table="events_raw",le="0.1"} 5
retail_event_to_store_latency_seconds_bucket{table="events_raw",le="1.0"} 5
retail_event_to_store_latency_seconds_bucket{table="events_raw",le="+Inf"} 5
retail_event_to_store_latency_seconds_count{table="sales_raw"} 100
# EOF
"#;

    #[test]
    fn families_are_summed_over_their_labels() {
        let f = Figures::from_exposition(TEXT);
        assert_eq!(f.accepted, 125.0);
        assert_eq!(f.landed, 120.0, "dead letters are not landed events");
        assert_eq!(f.sales_landed, 100.0);
        assert_eq!(f.dead_letters, 3.0);
        assert_eq!(f.late_events, 2.0);
        assert_eq!(f.lag, 8.0);
        assert_eq!(
            f.latency_buckets,
            vec![(0.1, 15.0), (1.0, 95.0), (f64::INFINITY, 105.0)]
        );
    }

    #[test]
    fn unknown_and_malformed_lines_are_skipped() {
        let f = Figures::from_exposition(
            "retail_other_total 5\nretail_landing_rows_total{table=\"sales_raw\"} nope\ngarbage\n",
        );
        assert_eq!(f, Figures::default());
    }

    #[test]
    fn quantiles_come_from_the_difference_of_two_readings() {
        let before = [(0.1, 10.0), (1.0, 10.0), (f64::INFINITY, 10.0)];
        // 100 new observations: 50 under 0.1 s, 40 in (0.1, 1], 10 above 1 s.
        let after = [(0.1, 60.0), (1.0, 100.0), (f64::INFINITY, 110.0)];
        let p50 = quantile_between(0.5, &before, &after).expect("data");
        assert!((p50 - 0.1).abs() < 1e-9, "{p50}");
        let p70 = quantile_between(0.7, &before, &after).expect("data");
        assert!((p70 - 0.55).abs() < 1e-9, "{p70}");
        let p95 = quantile_between(0.95, &before, &after).expect("data");
        assert_eq!(p95, 1.0, "the +Inf bucket reports the highest finite bound");
        assert_eq!(quantile_between(0.95, &after, &after), None);
        assert_eq!(quantile_between(0.95, &[], &[]), None);
    }
}
