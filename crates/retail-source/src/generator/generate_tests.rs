//! Tests of the deterministic stream: determinism, distributions, fault fractions, and that
//! what it produces decodes (or fails to) as intended.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use retail_core::event::{decode, EventBody};

use super::*;
use crate::generator::ManualClock;

/// 2025-03-01T12:00:00Z.
const NOON: i64 = 1_740_830_400_000;

fn config() -> GeneratorConfig {
    GeneratorConfig {
        events: Some(100_000),
        ..GeneratorConfig::default()
    }
}

fn chaos() -> GeneratorConfig {
    GeneratorConfig {
        duplicate_fraction: 0.05,
        out_of_order_fraction: 0.05,
        late_fraction: 0.02,
        malformed_fraction: 0.01,
        ..config()
    }
}

fn generator(config: &GeneratorConfig, clock: Arc<dyn Clock>) -> EventGenerator {
    EventGenerator::with_clock(config, clock).expect("valid config")
}

fn fixed(config: &GeneratorConfig) -> EventGenerator {
    generator(config, Arc::new(ManualClock::new(NOON)))
}

/// `"ts":<digits>` replaced by `"ts":0`, to compare records made at different times.
fn without_ts(value: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(value);
    match text.find("\"ts\":") {
        Some(i) => {
            let digits = text[i + 5..].bytes().take_while(u8::is_ascii_digit).count();
            format!("{}\"ts\":0{}", &text[..i], &text[i + 5 + digits..]).into_bytes()
        }
        None => value.to_vec(),
    }
}

fn sale(value: &[u8]) -> Option<Sale> {
    match decode(value).ok()?.body {
        EventBody::Sale(s) => Some(s),
        _ => None,
    }
}

fn fraction(n: u64, of: u64) -> f64 {
    n as f64 / of as f64
}

#[test]
fn the_same_seed_gives_the_same_ids_and_payloads_except_ts() {
    let c = GeneratorConfig {
        events: Some(20_000),
        time_of_day_curve: false,
        ..chaos()
    };
    let clock = Arc::new(ManualClock::new(NOON));
    let ticking = clock.clone();
    let a: Vec<Generated> = generator(&c, clock).inspect(|_| ticking.advance(7)).collect();
    let b: Vec<Generated> = generator(&c, Arc::new(ManualClock::new(NOON + 86_400_000))).collect();
    assert_eq!(a.len(), b.len());
    let mut ts_differ = 0;
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.fault, y.fault);
        assert_eq!(x.record.key, y.record.key);
        assert_eq!(without_ts(&x.record.value), without_ts(&y.record.value));
        ts_differ += usize::from(x.record.value != y.record.value);
    }
    assert!(ts_differ > a.len() / 2, "only ts differs, but it does");

    // With the same clock every byte matches, the curve included.
    let c = chaos();
    let x: Vec<Generated> = fixed(&c).take(30_000).collect();
    let y: Vec<Generated> = fixed(&c).take(30_000).collect();
    assert!(x == y);
}

#[test]
fn another_seed_gives_other_ids_and_payloads() {
    let a: Vec<Generated> = fixed(&config()).take(10_000).collect();
    let b: Vec<Generated> = fixed(&GeneratorConfig { seed: 43, ..config() })
        .take(10_000)
        .collect();
    let ids = |g: &[Generated]| -> HashSet<Uuid> {
        g.iter()
            .filter_map(|g| decode(&g.record.value).ok())
            .map(|e| e.event_id)
            .collect()
    };
    assert!(ids(&a).is_disjoint(&ids(&b)));
    let same = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| without_ts(&x.record.value) == without_ts(&y.record.value))
        .count();
    assert_eq!(same, 0);
}

#[test]
fn event_ids_are_time_ordered_uuid_v7_independent_of_the_clock() {
    let ids: Vec<Uuid> = fixed(&config())
        .take(30_000)
        .map(|g| decode(&g.record.value).expect("valid").event_id)
        .collect();
    for id in &ids {
        assert_eq!(id.get_version_num(), 7, "{id}");
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{id}");
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing, so btree inserts append"
    );
    let later: Vec<Uuid> = generator(&config(), Arc::new(ManualClock::new(NOON + 1_000_000_000)))
        .take(30_000)
        .map(|g| decode(&g.record.value).expect("valid").event_id)
        .collect();
    assert_eq!(ids, later, "the wall clock does not enter the ids");
    let (secs, _) = ids[0].get_timestamp().expect("v7 has a timestamp").to_unix();
    assert!((1_704_067_200..1_704_067_200 + (1 << 35) / 1000 + 1).contains(&secs));
}

#[test]
fn the_catalog_comes_first_and_covers_everything_sales_reference() {
    let c = config();
    let mut g = fixed(&c);
    let catalog_len = g.catalog_len();
    assert_eq!(catalog_len, 50 + 50 * 8 + 5000);
    let all: Vec<Generated> = g.by_ref().collect();
    assert_eq!(
        all.len(),
        catalog_len + 100_000,
        "events counts data records only"
    );
    assert!(all[..catalog_len]
        .iter()
        .all(|g| g.catalog && g.record.topic == "catalog"));
    assert!(all[catalog_len..]
        .iter()
        .all(|g| !g.catalog && g.record.topic == "sales"));

    let (mut stores, mut sellers, mut skus) = (HashMap::new(), HashMap::new(), HashSet::new());
    for g in &all[..catalog_len] {
        match decode(&g.record.value).expect("catalog decodes").body {
            EventBody::Store(s) => {
                assert_eq!(g.record.key.as_deref(), Some(s.store_id.to_string().as_bytes()));
                stores.insert(s.store_id, s);
            }
            EventBody::Seller(s) => {
                sellers.insert(s.seller_id, s.store_id);
            }
            EventBody::Product(p) => {
                assert!(p.price.is_some());
                skus.insert(p.sku);
            }
            other => panic!("not a catalog event: {other:?}"),
        }
    }
    assert_eq!((stores.len(), sellers.len(), skus.len()), (50, 400, 5000));
    for g in &all[catalog_len..] {
        let s = sale(&g.record.value).expect("no faults configured: every record is a sale");
        assert!(stores.contains_key(&s.store_id));
        assert_eq!(
            sellers.get(&s.seller_id.expect("seller set")),
            Some(&s.store_id),
            "seller of that store"
        );
        assert!(skus.contains(&s.sku));
        assert_eq!(g.record.key.as_deref(), Some(s.store_id.to_string().as_bytes()));
    }
    assert!(g.is_finished());
    assert_eq!(g.next(), None);
}

#[test]
fn records_carry_headers_key_and_event_time() {
    for g in fixed(&chaos()).take(10_000) {
        let r = &g.record;
        let header = |k: &str| r.headers.iter().find(|h| h.key == k).map(|h| h.value.clone());
        assert_eq!(header("source").as_deref(), Some(&b"generator"[..]));
        assert_eq!(header("schema_version").as_deref(), Some(&b"1"[..]));
        assert_eq!(r.partition, None);
        let Ok(event) = decode(&r.value) else { continue };
        assert_eq!(
            header("event_type").as_deref(),
            Some(event.type_name().as_bytes())
        );
        assert_eq!(r.timestamp_ms, Some(event.ts.timestamp_millis()));
        assert_eq!(event.source, "generator");
    }
}

#[test]
fn product_popularity_follows_zipf() {
    let mut g = fixed(&config());
    let mut per_sku: HashMap<i64, u64> = HashMap::new();
    let mut per_store: HashMap<i64, u64> = HashMap::new();
    for r in g.by_ref().filter(|g| !g.catalog) {
        let s = sale(&r.record.value).expect("sale");
        *per_sku.entry(s.sku).or_default() += 1;
        *per_store.entry(s.store_id).or_default() += 1;
    }
    let mut counts: Vec<u64> = g
        .world()
        .products()
        .iter()
        .map(|p| per_sku.get(&p.sku).copied().unwrap_or(0))
        .collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let (top, median) = (counts[0], counts[counts.len() / 2]);
    assert!(top > 50 * median.max(1), "top SKU {top} vs median {median}");
    let mut stores: Vec<u64> = per_store.into_values().collect();
    stores.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(stores.len(), 50);
    assert!(
        stores[0] > 2 * stores[25],
        "store popularity is skewed: {} vs {}",
        stores[0],
        stores[25]
    );
}

#[test]
fn quantities_are_small_and_returns_are_negative_at_the_configured_fraction() {
    let mut g = fixed(&config());
    let mut qty = [0u64; 6];
    for r in g.by_ref().filter(|g| !g.catalog) {
        let s = sale(&r.record.value).expect("sale");
        assert_eq!(s.kind == SaleKind::Return, s.qty < 0, "{s:?}");
        qty[s.qty.unsigned_abs() as usize] += 1;
    }
    let st = *g.stats();
    assert_eq!(st.sales + st.returns, 100_000);
    let returns = fraction(st.returns, 100_000);
    assert!((returns - 0.03).abs() < 0.003, "returns {returns}");
    assert_eq!(qty[0], 0);
    assert!(
        qty[1] > qty[2] && qty[2] > qty[3] && qty[3] > qty[5] && qty[5] > 0,
        "{qty:?}"
    );
}

#[test]
fn faults_come_at_their_configured_fractions() {
    let c = chaos();
    let mut g = fixed(&c);
    let mut seen = HashMap::<&str, u64>::new();
    for r in g.by_ref().filter(|g| !g.catalog) {
        let kind = match r.fault {
            None => "none",
            Some(Fault::Duplicate) => "duplicate",
            Some(Fault::OutOfOrder { .. }) => "out_of_order",
            Some(Fault::Late { .. }) => "late",
            Some(Fault::Malformed(_)) => "malformed",
        };
        *seen.entry(kind).or_default() += 1;
    }
    let st = *g.stats();
    assert_eq!(st.generated, 100_000);
    for (kind, expected, counted) in [
        ("duplicate", c.duplicate_fraction, st.duplicates),
        ("out_of_order", c.out_of_order_fraction, st.out_of_order),
        ("late", c.late_fraction, st.late),
        ("malformed", c.malformed_fraction, st.malformed),
    ] {
        assert_eq!(
            seen.get(kind).copied().unwrap_or(0),
            counted,
            "{kind}: stats match the records"
        );
        let f = fraction(counted, 100_000);
        // Five standard deviations of a binomial at 100k draws is below 0.0035 for p <= 0.05.
        assert!((f - expected).abs() < 0.0035, "{kind}: {f} vs {expected}");
    }
    assert_eq!(st.distinct + st.duplicates + st.malformed, st.generated);
}

#[test]
fn shifted_event_times_stay_within_their_bounds() {
    let c = chaos();
    for r in fixed(&c).filter(|g| !g.catalog) {
        let ts = r.record.timestamp_ms.expect("ts set");
        match r.fault {
            Some(Fault::Late { by_ms }) => {
                assert_eq!(by_ms, 600_000);
                assert_eq!(ts, NOON - 600_000);
            }
            Some(Fault::OutOfOrder { by_ms }) => {
                assert!((1..=5000).contains(&by_ms));
                assert_eq!(ts, NOON - by_ms);
            }
            Some(Fault::Duplicate) => assert!(ts <= NOON),
            Some(Fault::Malformed(_)) | None => assert_eq!(ts, NOON),
        }
        if matches!(r.fault, Some(Fault::Late { .. } | Fault::OutOfOrder { .. })) {
            let e = decode(&r.record.value).expect("a shifted event is still valid");
            assert_eq!(e.ts.timestamp_millis(), ts);
        }
    }
}

#[test]
fn malformed_records_fail_decoding_and_all_others_decode() {
    let mut kinds = HashMap::<MalformedKind, u64>::new();
    for r in fixed(&GeneratorConfig {
        malformed_fraction: 0.05,
        ..chaos()
    }) {
        match (r.fault, decode(&r.record.value)) {
            (Some(Fault::Malformed(kind)), Err(e)) => {
                assert_eq!(e.kind(), kind.decode_error_kind(), "{kind:?}: {e}");
                if kind == MalformedKind::Oversized {
                    assert!(r.record.value.len() > retail_core::event::MAX_EVENT_BYTES);
                }
                *kinds.entry(kind).or_default() += 1;
            }
            (Some(Fault::Malformed(kind)), Ok(e)) => panic!("{kind:?} decoded: {e:?}"),
            (_, Err(e)) => panic!(
                "a valid record failed: {e}: {}",
                String::from_utf8_lossy(&r.record.value)
            ),
            (_, Ok(_)) => {}
        }
    }
    assert_eq!(
        kinds.len(),
        MalformedKind::ALL.len(),
        "every kind rotates in: {kinds:?}"
    );
    let (min, max) = (kinds.values().min(), kinds.values().max());
    assert!(max.zip(min).is_some_and(|(max, min)| max - min <= 1));
}

#[test]
fn duplicates_are_byte_identical_copies_of_an_earlier_record() {
    let mut earlier = HashMap::new();
    let mut duplicates = 0;
    for r in fixed(&chaos()).filter(|g| !g.catalog) {
        if r.fault == Some(Fault::Duplicate) {
            let original = earlier.get(&r.record.value);
            assert_eq!(
                original,
                Some(&r.record),
                "a copy of an earlier record, headers and key included"
            );
            duplicates += 1;
        } else {
            earlier.insert(r.record.value.clone(), r.record);
        }
    }
    assert!(duplicates > 4000);
}

#[test]
fn the_distinct_count_is_exact() {
    let mut g = fixed(&chaos());
    let mut ids = HashSet::new();
    let mut valid = 0u64;
    for r in g.by_ref().filter(|g| !g.catalog) {
        if let Ok(e) = decode(&r.record.value) {
            valid += 1;
            ids.insert(e.event_id);
        }
    }
    let st = *g.stats();
    assert_eq!(ids.len() as u64, st.distinct);
    assert_eq!(valid, st.distinct + st.duplicates);
    assert_eq!(st.catalog, g.catalog_len() as u64);
}

#[test]
fn the_limit_stops_at_exactly_n_data_records() {
    for n in [0, 1, 999, 2001] {
        let c = GeneratorConfig {
            events: Some(n),
            ..chaos()
        };
        let mut g = fixed(&c);
        let mut batch = Vec::new();
        assert_eq!(g.fill_catalog(&mut batch, usize::MAX), g.catalog_len());
        assert!(g.catalog_done());
        assert_eq!(g.fill_catalog(&mut batch, 10), 0);
        batch.clear();
        while g.fill_data(&mut batch, 500) > 0 {}
        assert_eq!(batch.len() as u64, n);
        assert_eq!(g.stats().generated, n);
        assert!(g.is_finished());
        assert_eq!(g.next_data(), None);
    }
}

/// The default settings (orders, payments and stock off) give exactly the stream they gave
/// before those existed, catalog and faults included: a digest of every record taken at
/// 132ce6b. An intended change to the default stream updates the digest in the same commit
/// and says why.
#[test]
fn the_default_stream_is_byte_for_byte_what_it_was() {
    let c = GeneratorConfig {
        events: Some(60_000),
        ..chaos()
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
    let mut eat = |b: &[u8]| {
        for x in b {
            h ^= u64::from(*x);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    };
    let clock = Arc::new(ManualClock::new(NOON));
    let ticking = clock.clone();
    for g in generator(&c, clock).inspect(|_| ticking.advance(97)) {
        let r = &g.record;
        eat(r.topic.as_bytes());
        eat(r.key.as_deref().unwrap_or_default());
        eat(&r.value);
        eat(&r.timestamp_ms.unwrap_or_default().to_le_bytes());
        for header in &r.headers {
            eat(header.key.as_bytes());
            eat(&header.value);
        }
        eat(format!("{:?}", g.fault).as_bytes());
    }
    assert_eq!(format!("{h:016x}"), "8aa1accbd8a37d96");
}

/// Throughput of generating and encoding: run with
/// `cargo test -p retail-source --release -- --ignored --nocapture generate_throughput`.
#[test]
#[ignore = "benchmark; run in release with --nocapture"]
fn generate_throughput() {
    for (name, c) in [("clean", GeneratorConfig::default()), ("chaos", chaos())] {
        let mut g = EventGenerator::new(&GeneratorConfig { events: None, ..c }).expect("valid");
        let mut batch = Vec::with_capacity(2000);
        g.fill_catalog(&mut batch, usize::MAX);
        let n = 1_000_000;
        let (start, mut bytes) = (Instant::now(), 0);
        for _ in 0..n / 2000 {
            batch.clear();
            g.fill_data(&mut batch, 2000);
            bytes += batch.iter().map(|r| r.value.len()).sum::<usize>();
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "generate+encode ({name}): {n} events in {secs:.3} s = {:.0} events/s, {:.1} MB/s of JSON",
            n as f64 / secs,
            bytes as f64 / secs / 1e6
        );
    }
}
