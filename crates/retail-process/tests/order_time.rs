//! The order pipeline's time in the engine, driven with a controllable clock (the `Instant`
//! each call is given): the smallest watermark of the `orders` and `payments` partitions; an
//! idle partition advances with the wall clock past the idle timeout, so a quiet stream still
//! moves the time, and `tick` hands it to the store only once it moved a second or more.

use std::time::{Duration, Instant};

use retail_core::{decode, TopicPartition};
use retail_process::aggregate::{DedupScope, Engine, ProcessingConfig};
use retail_sink::Derived;

const OOO: i64 = 5_000;
/// Event times are offsets from here (the decoder takes times between 2000 and 2100 only).
const BASE: i64 = 1_764_000_000_000;

fn engine() -> Engine {
    let config = ProcessingConfig {
        max_out_of_orderness_ms: 5_000,
        idle_timeout_ms: 30_000,
        builtin_aggregates: false,
        ..ProcessingConfig::default()
    };
    Engine::new(Vec::new(), &config, DedupScope::Batch)
}

fn order(n: u32, ts: i64) -> retail_core::Event {
    let json = format!(
        "{{\"type\":\"order\",\"event_id\":\"01937c40-0000-7000-8000-{n:012}\",\"ts\":{},\"order_id\":\"O-{n}\",\"status\":\"created\"}}",
        BASE + ts
    );
    decode(json.as_bytes()).expect("valid order")
}

fn payment(n: u32, ts: i64) -> retail_core::Event {
    let json = format!(
        "{{\"type\":\"payment\",\"event_id\":\"01937c40-0000-7000-9000-{n:012}\",\"ts\":{},\"payment_id\":\"P-{n}\",\
         \"order_id\":\"O-{n}\",\"amount\":\"1.00\",\"currency\":\"EUR\",\"status\":\"captured\"}}",
        BASE + ts
    );
    decode(json.as_bytes()).expect("valid payment")
}

#[test]
fn the_time_is_the_slowest_partition_and_idle_ones_advance_with_the_clock() {
    let mut e = engine();
    let start = Instant::now();
    let (orders, payments) = (
        TopicPartition::new("orders", 0),
        TopicPartition::new("payments", 0),
    );
    let mut out = Derived::default();
    e.process(&orders, 0, &order(1, 100_000), start, &mut out);
    e.process(&payments, 0, &payment(1, 40_000), start, &mut out);
    e.end_batch(&mut out);
    let batch = out.orders.expect("facts and a time go to the store");
    assert_eq!(batch.facts.len(), 2);
    assert_eq!(
        batch.time,
        Some(BASE + 40_000 - OOO),
        "the slower partition holds the time"
    );

    // Within the idle timeout nothing moves.
    assert_eq!(
        e.order_time(start + Duration::from_secs(30)),
        Some(BASE + 40_000 - OOO)
    );
    assert!(e.tick(start + Duration::from_secs(30)).is_none());
    // Idle beyond it, both partitions advance by the idle time past the timeout; the slower
    // one still holds the time.
    assert_eq!(
        e.order_time(start + Duration::from_secs(40)),
        Some(BASE + 40_000 - OOO + 10_000)
    );
    let tick: Derived = e.tick(start + Duration::from_secs(40)).expect("moved 10 s");
    let t = tick.orders.expect("orders batch");
    assert!(t.facts.is_empty());
    assert_eq!(t.time, Some(BASE + 45_000));
    // Less than a second later: no new tick; a second later: one.
    assert!(e.tick(start + Duration::from_millis(40_500)).is_none());
    assert_eq!(
        e.tick(start + Duration::from_secs(41))
            .and_then(|d| d.orders)
            .and_then(|o| o.time),
        Some(BASE + 46_000)
    );

    // A record on the slow partition: it is active again, at its own watermark; the time
    // handed over never goes back.
    let now = start + Duration::from_secs(42);
    let mut out = Derived::default();
    e.process(&payments, 1, &payment(2, 41_000), now, &mut out);
    e.end_batch(&mut out);
    let batch = out.orders.expect("a fact");
    assert_eq!(batch.facts.len(), 1);
    assert_eq!(batch.time, Some(BASE + 46_000), "monotonic");
}

#[test]
fn sales_only_batches_carry_nothing_for_the_order_pipeline_but_feed_the_stock_one() {
    let mut e = engine();
    let sale = decode(
        br#"{"type":"sale","event_id":"01937c40-0000-7000-8000-000000000009","ts":1764000001000,"store_id":1,"sku":2,"qty":1}"#,
    )
    .expect("sale");
    let mut out = Derived::default();
    e.process(
        &TopicPartition::new("sales", 0),
        0,
        &sale,
        Instant::now(),
        &mut out,
    );
    e.end_batch(&mut out);
    assert!(out.orders.is_none());
    assert!(out.stock.is_some(), "a sale is a stock fact");
    let tick = e.tick(Instant::now() + Duration::from_secs(3600));
    assert!(
        tick.is_some_and(|d| d.orders.is_none()),
        "no order partition, no order time"
    );
}

#[test]
fn a_disabled_pipeline_hands_over_nothing() {
    let mut config = ProcessingConfig::default();
    config.orders.enabled = false;
    let mut e = Engine::new(Vec::new(), &config, DedupScope::Batch);
    let mut out = Derived::default();
    e.process(
        &TopicPartition::new("orders", 0),
        0,
        &order(1, 1000),
        Instant::now(),
        &mut out,
    );
    e.end_batch(&mut out);
    assert!(out.orders.is_none());
}
