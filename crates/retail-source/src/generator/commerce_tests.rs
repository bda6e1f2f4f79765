//! Tests of the order flows, fraud patterns and stock series in the stream: determinism, that
//! every event decodes, that anomalies come at their fractions and with the shape that trips
//! their rule, that ordinary flows trip none, and that the simulated span holds.

use std::collections::{BTreeMap, HashMap, HashSet};

use retail_core::event::{decode, Inventory, Order, OrderStatus, Payment, PaymentStatus};

use super::*;
use crate::generator::{CommerceConfig, FraudPattern, ManualClock, StockConfig, CURRENCY};

/// 2025-03-01T12:00:00Z: the end of every simulated span here.
const NOON: i64 = 1_740_830_400_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// 100k events over three days, with every anomaly kind frequent enough to count.
fn shop() -> GeneratorConfig {
    GeneratorConfig {
        events: Some(100_000),
        simulated_span_hours: Some(72.0),
        commerce: CommerceConfig {
            order_fraction: 0.3,
            payment_missing_fraction: 0.05,
            payment_late_fraction: 0.05,
            stuck_fraction: 0.05,
            cancel_fraction: 0.05,
            fraud_fraction: 0.05,
            ..CommerceConfig::default()
        },
        stock: StockConfig {
            series_per_store: 10,
            stockout_fraction: 0.1,
            ..StockConfig::default()
        },
        ..GeneratorConfig::default()
    }
}

fn run(config: &GeneratorConfig) -> (Vec<Generated>, GeneratorStats) {
    let mut g = EventGenerator::with_clock(config, Arc::new(ManualClock::new(NOON))).expect("valid");
    let all: Vec<Generated> = g.by_ref().filter(|g| !g.catalog).collect();
    (all, *g.stats())
}

/// One order or payment event, decoded, with its event time and the flow's anomaly.
#[derive(Debug, Clone)]
enum Step {
    Order(Order),
    Payment(Payment),
}

#[derive(Debug, Clone)]
struct Seen {
    ts: i64,
    step: Step,
    anomaly: Option<Anomaly>,
}

/// Every valid order and payment event (not duplicates) by order id, in stream order.
fn flows(all: &[Generated]) -> BTreeMap<String, Vec<Seen>> {
    let mut by_order: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
    for g in all.iter().filter(|g| g.fault != Some(Fault::Duplicate)) {
        let Ok(e) = decode(&g.record.value) else { continue };
        let ts = e.ts.timestamp_millis();
        let (id, step) = match e.body {
            EventBody::Order(o) => (o.order_id.clone(), Step::Order(o)),
            EventBody::Payment(p) => (p.order_id.clone(), Step::Payment(p)),
            _ => continue,
        };
        by_order.entry(id).or_default().push(Seen {
            ts,
            step,
            anomaly: g.anomaly,
        });
    }
    by_order
}

fn first(seen: &[Seen], want: impl Fn(&Step) -> bool) -> Option<i64> {
    seen.iter().find(|s| want(&s.step)).map(|s| s.ts)
}

fn order_at(seen: &[Seen], status: OrderStatus) -> Option<i64> {
    first(seen, |s| matches!(s, Step::Order(o) if o.status == status))
}

fn payment_at(seen: &[Seen], status: PaymentStatus) -> Option<i64> {
    first(seen, |s| matches!(s, Step::Payment(p) if p.status == status))
}

fn payments(seen: &[Seen]) -> impl Iterator<Item = (i64, &Payment)> {
    seen.iter().filter_map(|s| match &s.step {
        Step::Payment(p) if p.status == PaymentStatus::Authorized => Some((s.ts, p)),
        _ => None,
    })
}

#[test]
fn the_same_seed_gives_the_same_bytes_with_orders_and_stock() {
    let c = GeneratorConfig {
        duplicate_fraction: 0.05,
        out_of_order_fraction: 0.05,
        late_fraction: 0.02,
        malformed_fraction: 0.01,
        events: Some(30_000),
        ..shop()
    };
    let (a, _) = run(&c);
    let (b, _) = run(&c);
    assert!(a == b, "every byte matches");
    let (other, _) = run(&GeneratorConfig { seed: 7, ..c });
    assert!(a != other);
}

#[test]
fn every_order_payment_and_inventory_event_decodes_onto_its_topic() {
    let c = GeneratorConfig {
        duplicate_fraction: 0.05,
        out_of_order_fraction: 0.05,
        late_fraction: 0.02,
        malformed_fraction: 0.01,
        ..shop()
    };
    let (all, st) = run(&c);
    let mut per_topic: HashMap<String, u64> = HashMap::new();
    for g in &all {
        *per_topic.entry(g.record.topic.clone()).or_default() += 1;
        if g.record.topic == topics::SALES {
            continue;
        }
        let e = decode(&g.record.value)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&g.record.value)));
        assert_eq!(g.record.topic, e.topic());
        assert_eq!(g.record.key.as_deref(), Some(e.partition_key().as_bytes()));
        match e.body {
            EventBody::Order(o) => {
                assert!(o.order_id.starts_with("O-") && o.order_id.len() >= 8, "{o:?}");
                assert!(o.customer_id.as_deref().is_some_and(|c| c.starts_with("C-")));
                assert_eq!(o.currency.as_deref(), Some(CURRENCY));
                assert!(o.amount.is_some_and(|a| a > Decimal::ZERO));
            }
            EventBody::Payment(p) => {
                assert_eq!(p.payment_id, format!("P-{}-1", &p.order_id[2..]));
                let card = p.card_id.expect("card");
                assert!(card.starts_with("card-") && card.len() == 21, "a token: {card}");
                assert!(p.ip_country.is_some() && p.billing_country.is_some());
            }
            EventBody::Inventory(i) => {
                assert!(matches!(i.reason.as_deref(), Some("snapshot" | "receipt")));
                assert!(i.lead_time_days.is_some_and(|d| (2..=7).contains(&d)));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let on = |t: &str| per_topic.get(t).copied().unwrap_or(0);
    assert!(on(topics::ORDERS) > 10_000 && on(topics::PAYMENTS) > 5_000 && on(topics::INVENTORY) > 1000);
    assert_eq!(st.generated, 100_000);
    assert_eq!(
        st.sales + st.returns + st.orders + st.payments + st.inventory,
        st.distinct,
        "every valid event is counted once by kind"
    );
    assert_eq!(st.distinct + st.duplicates + st.malformed, st.generated);
    let flow_share = (st.orders + st.payments) as f64 / st.generated as f64;
    assert!(
        (flow_share - 0.3).abs() < 0.01,
        "order and payment events {flow_share}"
    );
}

#[test]
fn anomalies_come_at_their_fractions_and_their_tags_match_the_stats() {
    let c = shop();
    let (all, st) = run(&c);
    let flows_started = st.order_flows as f64;
    assert!(flows_started > 3000.0, "{st:?}");
    let fraud = st.fraud_card_velocity
        + st.fraud_tiny_then_large
        + st.fraud_above_history
        + st.fraud_ip_mismatch
        + st.fraud_hourly_total;
    // Normal flows are the non-fraud ones; each anomaly is a fraction of all flows.
    for (kind, counted, expected) in [
        ("payment_missing", st.payment_missing, 0.05 * 0.95),
        ("payment_late", st.payment_late, 0.05 * 0.95),
        ("stuck", st.stuck, 0.05 * 0.95),
        ("cancelled", st.cancelled, 0.05 * 0.95),
        ("fraud", fraud, 0.05),
    ] {
        let f = counted as f64 / flows_started;
        assert!((f - expected).abs() < 0.02, "{kind}: {f} vs {expected}");
    }
    // The patterns rotate.
    let patterns = [
        st.fraud_card_velocity,
        st.fraud_tiny_then_large,
        st.fraud_above_history,
        st.fraud_ip_mismatch,
        st.fraud_hourly_total,
    ];
    assert!(patterns
        .iter()
        .max()
        .zip(patterns.iter().min())
        .is_some_and(|(a, b)| a - b <= 1));

    // The tags on the events agree with the counts: one order per ordinary flow, one
    // customer per fraud pattern.
    let mut orders: HashMap<&str, HashSet<String>> = HashMap::new();
    let mut fraudsters: HashMap<FraudPattern, HashSet<String>> = HashMap::new();
    for (id, seen) in flows(&all) {
        let Some(anomaly) = seen[0].anomaly else { continue };
        let kind = match anomaly {
            Anomaly::PaymentMissing => "payment_missing",
            Anomaly::PaymentLate => "payment_late",
            Anomaly::Stuck(_) => "stuck",
            Anomaly::Cancelled(_) => "cancelled",
            Anomaly::Fraud(p) => {
                let Step::Order(o) = &seen[0].step else {
                    panic!("an order starts with created")
                };
                fraudsters
                    .entry(p)
                    .or_default()
                    .insert(o.customer_id.clone().unwrap_or_default());
                continue;
            }
        };
        orders.entry(kind).or_default().insert(id);
    }
    let n = |k: &str| orders.get(k).map_or(0, HashSet::len) as u64;
    assert_eq!(
        (
            n("payment_missing"),
            n("payment_late"),
            n("stuck"),
            n("cancelled")
        ),
        (st.payment_missing, st.payment_late, st.stuck, st.cancelled)
    );
    assert_eq!(fraudsters.values().map(|c| c.len() as u64).sum::<u64>(), fraud);

    let stockouts = st.stockout_series as f64 / st.stock_series as f64;
    assert_eq!(st.stock_series, 50 * 10);
    assert!((stockouts - 0.1).abs() < 0.05, "stockout series {stockouts}");
}

#[test]
fn normal_flows_stay_inside_the_pipeline_limits_and_anomalies_break_them() {
    let (all, _) = run(&shop());
    let end = NOON;
    let mut normal = 0;
    let mut completed = 0;
    for (id, seen) in flows(&all) {
        let created = order_at(&seen, OrderStatus::Created).expect("every order starts created");
        let authorized = payment_at(&seen, PaymentStatus::Authorized);
        let paid = order_at(&seen, OrderStatus::Paid);
        let packed = order_at(&seen, OrderStatus::Packed);
        let shipped = order_at(&seen, OrderStatus::Shipped);
        let delivered = order_at(&seen, OrderStatus::Delivered);
        // How long the order sat in a state: until the next one, or the end of the run.
        let sat = |from: Option<i64>, to: Option<i64>| from.map(|f| to.unwrap_or(end) - f);
        let waited_for_payment = authorized.unwrap_or(end) - created;
        match seen[0].anomaly {
            None | Some(Anomaly::Fraud(_)) => {
                normal += 1;
                assert!(
                    waited_for_payment <= 30 * MINUTE,
                    "{id}: paid after {waited_for_payment} ms"
                );
                if let Some(p) = payment_at(&seen, PaymentStatus::Captured) {
                    assert!(p - authorized.expect("authorized first") <= MINUTE, "{id}");
                }
                assert!(sat(paid, packed).is_none_or(|d| d <= 12 * HOUR), "{id}: {seen:?}");
                assert!(sat(packed, shipped).is_none_or(|d| d <= 24 * HOUR), "{id}");
                assert!(sat(shipped, delivered).is_none_or(|d| d <= 96 * HOUR), "{id}");
                assert!(order_at(&seen, OrderStatus::Cancelled).is_none());
                completed += usize::from(delivered.is_some());
            }
            Some(Anomaly::PaymentMissing) => {
                assert_eq!(seen.len(), 1, "{id}: only created: {seen:?}");
            }
            Some(Anomaly::PaymentLate) => match authorized {
                Some(a) => assert!((45 * MINUTE..=180 * MINUTE).contains(&(a - created)), "{id}"),
                None => assert!(end - created < 180 * MINUTE, "{id}: still to come"),
            },
            Some(Anomaly::Stuck(state)) => {
                let at = order_at(&seen, state);
                let Some(Step::Order(last)) = seen.iter().rev().find_map(|s| match &s.step {
                    Step::Order(_) => Some(s.step.clone()),
                    Step::Payment(_) => None,
                }) else {
                    panic!("{id}: no order event")
                };
                if at.is_some() {
                    assert_eq!(last.status, state, "{id}: nothing after the stuck state");
                }
                assert!(delivered.is_none());
            }
            Some(Anomaly::Cancelled(state)) => {
                let cancelled = order_at(&seen, OrderStatus::Cancelled);
                if state == OrderStatus::Created {
                    assert!(authorized.is_none(), "{id}");
                    assert!(cancelled.is_none_or(|c| c - created <= 20 * MINUTE + MINUTE));
                } else if let Some(c) = cancelled {
                    assert!(c - paid.expect("paid first") <= 6 * HOUR + MINUTE);
                    assert!(packed.is_none());
                }
            }
        }
    }
    assert!(
        normal > 2000 && completed > 500,
        "{normal} normal, {completed} delivered"
    );
}

#[test]
fn each_fraud_pattern_has_the_shape_that_trips_its_rule_and_ordinary_orders_trip_none() {
    let (all, _) = run(&shop());
    let by_order = flows(&all);
    // Authorized payments per card and per customer, with the pattern of their order.
    let mut by_card: HashMap<String, Vec<(i64, Decimal, Option<Anomaly>)>> = HashMap::new();
    let mut by_customer: HashMap<String, Vec<(i64, Decimal, Option<Anomaly>)>> = HashMap::new();
    let mut mismatched: HashMap<Option<Anomaly>, u64> = HashMap::new();
    for seen in by_order.values() {
        for (ts, p) in payments(seen) {
            let a = seen[0].anomaly;
            by_card
                .entry(p.card_id.clone().unwrap_or_default())
                .or_default()
                .push((ts, p.amount, a));
            by_customer
                .entry(p.customer_id.clone().unwrap_or_default())
                .or_default()
                .push((ts, p.amount, a));
            if p.ip_country != p.billing_country {
                *mismatched.entry(a).or_default() += 1;
            }
        }
    }
    let fraud = |a: Option<Anomaly>| match a {
        Some(Anomaly::Fraud(p)) => Some(p),
        _ => None,
    };
    let mut tripped: HashMap<(&str, Option<FraudPattern>), u64> = HashMap::new();
    let mut trip = |rule: &'static str, of: &[(i64, Decimal, Option<Anomaly>)]| {
        *tripped.entry((rule, fraud(of[0].2))).or_default() += 1;
    };
    for pays in by_card.values_mut() {
        pays.sort_by_key(|p| p.0);
        // Card velocity: 6 payments within 10 minutes.
        if pays.windows(6).any(|w| w[5].0 - w[0].0 <= 10 * MINUTE) {
            trip("velocity", pays);
        }
        // Tiny then large: 0.50-1.00, then over 500 within a minute.
        let tiny = |d: Decimal| d >= Decimal::new(50, 2) && d <= Decimal::ONE;
        if pays
            .windows(2)
            .any(|w| tiny(w[0].1) && w[1].1 > Decimal::from(500) && w[1].0 - w[0].0 <= MINUTE)
        {
            trip("tiny_then_large", pays);
        }
    }
    for pays in by_customer.values_mut() {
        pays.sort_by_key(|p| p.0);
        // Far above history: after 5 payments, one of more than 20 times their average.
        let above = (5..pays.len()).any(|i| {
            let avg = pays[..i].iter().map(|p| p.1).sum::<Decimal>() / Decimal::from(i);
            pays[i].1 > avg * Decimal::from(20)
        });
        if above {
            trip("above_history", pays);
        }
        // Over 2,000 within an hour.
        let hourly = (0..pays.len()).any(|i| {
            let window = pays[i..].iter().take_while(|p| p.0 - pays[i].0 < HOUR);
            window.map(|p| p.1).sum::<Decimal>() > Decimal::from(2000)
        });
        if hourly {
            trip("hourly_total", pays);
        }
    }
    let count = |rule: &str, p: Option<FraudPattern>| tripped.get(&(rule, p)).copied().unwrap_or(0);
    for (rule, pattern) in [
        ("velocity", FraudPattern::CardVelocity),
        ("tiny_then_large", FraudPattern::TinyThenLarge),
        ("above_history", FraudPattern::AboveHistory),
        ("hourly_total", FraudPattern::HourlyTotal),
    ] {
        assert!(
            count(rule, Some(pattern)) >= 5,
            "{rule} by {pattern:?}: {tripped:?}"
        );
        assert_eq!(
            count(rule, None),
            0,
            "{rule} tripped by ordinary orders: {tripped:?}"
        );
        for other in FraudPattern::ALL.into_iter().filter(|p| *p != pattern) {
            assert_eq!(
                count(rule, Some(other)),
                0,
                "{rule} tripped by {other:?}: {tripped:?}"
            );
        }
    }
    let ip = |p: Option<FraudPattern>| {
        mismatched
            .iter()
            .filter(|(a, _)| fraud(**a) == p)
            .map(|(_, n)| *n)
            .sum::<u64>()
    };
    assert!(ip(Some(FraudPattern::IpMismatch)) >= 5, "{mismatched:?}");
    assert_eq!(
        ip(None) + ip(Some(FraudPattern::CardVelocity)),
        0,
        "{mismatched:?}"
    );
    // The other fraud flows are "ordinary" but for their pattern: unmarked orders and the
    // other patterns' orders have ip = billing.
    assert_eq!(
        mismatched.values().sum::<u64>(),
        ip(Some(FraudPattern::IpMismatch))
    );
}

#[test]
fn stock_never_shows_below_zero_and_stockout_series_run_dry() {
    let c = GeneratorConfig {
        stores: 10,
        simulated_span_hours: Some(30.0 * 24.0),
        stock: StockConfig {
            series_per_store: 5,
            stockout_fraction: 0.3,
            ..StockConfig::default()
        },
        ..shop()
    };
    let mut g = EventGenerator::with_clock(&c, Arc::new(ManualClock::new(NOON))).expect("valid");
    let stockouts: HashSet<(i64, i64)> = g
        .stock
        .as_ref()
        .expect("stock on")
        .stockouts()
        .into_iter()
        .collect();
    assert!(!stockouts.is_empty());
    let mut levels: HashMap<(i64, i64), Vec<Inventory>> = HashMap::new();
    for r in g
        .by_ref()
        .filter(|g| !g.catalog && g.fault != Some(Fault::Duplicate))
    {
        if let Ok(Event {
            body: EventBody::Inventory(i),
            ..
        }) = decode(&r.record.value)
        {
            levels.entry((i.store_id, i.sku)).or_default().push(i);
        }
    }
    assert_eq!(levels.len(), 50, "every series reports");
    let st = *g.stats();
    assert!(st.restocks > 0, "ordinary series are reordered");
    let mut ordinary_zero = 0;
    for (series, seen) in &levels {
        assert!(seen.iter().all(|i| i.on_hand >= 0), "{series:?}");
        let lead: HashSet<_> = seen.iter().map(|i| i.lead_time_days).collect();
        assert_eq!(lead.len(), 1, "one lead time per series");
        let receipts = seen
            .iter()
            .filter(|i| i.reason.as_deref() == Some("receipt"))
            .count();
        if stockouts.contains(series) {
            assert_eq!(receipts, 0, "{series:?} is never reordered");
            // A return may put one back on the shelf afterwards.
            assert!(
                seen.iter().any(|i| i.on_hand == 0),
                "{series:?} runs dry: {seen:?}"
            );
        } else {
            ordinary_zero += seen.iter().filter(|i| i.on_hand == 0).count();
        }
    }
    let snapshots = levels.values().flatten().count();
    assert!(
        ordinary_zero * 100 < snapshots,
        "ordinary series rarely hit 0: {ordinary_zero} of {snapshots}"
    );
    // Every 6 hours over 30 days: 120 counts per series.
    let per_series = snapshots as f64 / 50.0;
    assert!((115.0..=130.0).contains(&per_series), "{per_series}");
}

#[test]
fn in_flight_orders_stay_under_the_cap() {
    // On a stopped clock without a span nothing ever comes due, so flows pile up to the cap.
    let c = GeneratorConfig {
        events: Some(20_000),
        simulated_span_hours: None,
        commerce: CommerceConfig {
            max_in_flight: 100,
            ..shop().commerce
        },
        ..shop()
    };
    let (all, st) = run(&c);
    assert!(st.in_flight_peak <= 100, "{st:?}");
    assert!(st.in_flight_peak >= 100 - 8, "{st:?}");
    assert_eq!(st.in_flight_orders, st.in_flight_peak);
    let sales = all.iter().filter(|g| g.record.topic == topics::SALES).count();
    assert!(sales > 19_000, "sales fill the slots: {sales}");
}

#[test]
fn a_simulated_span_spreads_event_time_over_that_many_hours() {
    let c = GeneratorConfig {
        events: Some(50_000),
        simulated_span_hours: Some(48.0),
        out_of_order_fraction: 0.05,
        ..shop()
    };
    let (all, _) = run(&c);
    let span = 48 * HOUR;
    let ts: Vec<i64> = all.iter().filter_map(|g| g.record.timestamp_ms).collect();
    let (min, max) = (ts.iter().min().copied(), ts.iter().max().copied());
    assert!(min.is_some_and(|m| m >= NOON - span - 5000), "{min:?}");
    assert!(max.is_some_and(|m| m < NOON), "{max:?}");
    // Unshifted sales sit at their even share of the span; a due order or stock event carries
    // the time it was due, at most 30 s before the slot that emits it.
    for (i, g) in all.iter().enumerate() {
        let slot = NOON - span + span * i as i64 / 50_000;
        let ts = g.record.timestamp_ms.unwrap_or_default();
        match (g.fault, g.record.topic.as_str()) {
            (None, topics::SALES) => assert_eq!(ts, slot, "event {i}"),
            (None, _) => assert!((slot - 30_000..=slot).contains(&ts), "event {i}"),
            _ => {}
        }
    }
}

#[test]
fn late_and_malformed_stay_on_sales_while_duplicates_and_disorder_reach_every_topic() {
    let c = GeneratorConfig {
        duplicate_fraction: 0.05,
        out_of_order_fraction: 0.05,
        late_fraction: 0.05,
        malformed_fraction: 0.02,
        ..shop()
    };
    let (all, st) = run(&c);
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for g in &all {
        let fault = match g.fault {
            Some(Fault::Duplicate) => "duplicate",
            Some(Fault::OutOfOrder { .. }) => "out_of_order",
            Some(Fault::Late { .. }) => "late",
            Some(Fault::Malformed(_)) => "malformed",
            None => "none",
        };
        seen.insert((g.record.topic.as_str(), fault));
    }
    for topic in [topics::ORDERS, topics::PAYMENTS, topics::INVENTORY] {
        assert!(seen.contains(&(topic, "duplicate")), "{topic}");
        assert!(seen.contains(&(topic, "out_of_order")), "{topic}");
        assert!(!seen.contains(&(topic, "late")), "{topic}");
        assert!(!seen.contains(&(topic, "malformed")), "{topic}");
    }
    // Late and malformed are drawn over every slot, so they keep their fractions.
    assert!((st.late as f64 / 100_000.0 - 0.05).abs() < 0.0035);
    assert!((st.malformed as f64 / 100_000.0 - 0.02).abs() < 0.0035);
}

#[test]
fn the_defaults_produce_sales_only_and_rewind_cheaply() {
    let c = GeneratorConfig {
        duplicate_fraction: 0.05,
        out_of_order_fraction: 0.05,
        late_fraction: 0.02,
        malformed_fraction: 0.01,
        events: Some(50_000),
        ..GeneratorConfig::default()
    };
    let g = EventGenerator::with_clock(&c, Arc::new(ManualClock::new(NOON))).expect("valid");
    assert_eq!(g.topics(), vec![topics::CATALOG, topics::SALES]);
    assert!(g.rewinds_cheaply());
    let (all, st) = run(&c);
    assert!(all
        .iter()
        .all(|g| g.record.topic == topics::SALES && g.anomaly.is_none()));
    assert_eq!(
        (st.orders, st.payments, st.inventory, st.order_flows),
        (0, 0, 0, 0)
    );
    assert_eq!((st.stock_series, st.in_flight_peak), (0, 0));
    assert_eq!(st.sales + st.returns, st.distinct);

    let on = EventGenerator::with_clock(&shop(), Arc::new(ManualClock::new(NOON))).expect("valid");
    assert_eq!(
        on.topics(),
        vec![
            topics::CATALOG,
            topics::SALES,
            topics::ORDERS,
            topics::PAYMENTS,
            topics::INVENTORY
        ]
    );
    assert!(!on.rewinds_cheaply());
}

#[test]
fn extreme_settings_generate_without_panicking() {
    let one_country = vec![crate::generator::CountryConfig {
        code: "DE".to_owned(),
        utc_offset_minutes: 60,
        cities: vec!["Berlin".to_owned()],
    }];
    let cases = [
        // A huge count over a few seconds: demand estimates near the top of their range.
        GeneratorConfig {
            events: Some(u64::MAX),
            simulated_span_hours: Some(0.001),
            ..shop()
        },
        // Ten years of event time in a few events.
        GeneratorConfig {
            events: Some(3000),
            simulated_span_hours: Some(87_600.0),
            ..shop()
        },
        // One country: an IP abroad is `ZZ`; one store, one SKU, everything an anomaly.
        GeneratorConfig {
            countries: one_country,
            stores: 1,
            sellers_per_store: 1,
            skus: 1,
            commerce: CommerceConfig {
                order_fraction: 1.0,
                payment_missing_fraction: 0.25,
                payment_late_fraction: 0.25,
                stuck_fraction: 0.25,
                cancel_fraction: 0.25,
                fraud_fraction: 1.0,
                customers: 1,
                max_in_flight: 16,
            },
            stock: StockConfig {
                series_per_store: 1,
                interval_hours: 0.01,
                stockout_fraction: 1.0,
            },
            ..shop()
        },
    ];
    for c in cases {
        c.validate().expect("valid");
        let g = EventGenerator::with_clock(&c, Arc::new(ManualClock::new(NOON))).expect("valid");
        let all: Vec<Generated> = g.take(20_000).collect();
        assert!(all
            .iter()
            .all(|g| g.fault.is_some() || decode(&g.record.value).is_ok()));
    }
}
