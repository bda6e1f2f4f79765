//! The deterministic event stream: the catalog of the simulated world, then sales and returns
//! with injected faults (duplicates, out-of-order and late event times, malformed records),
//! and, when switched on, the web shop's orders and payments (`commerce.rs`) and the ERP's
//! stock levels (`stock.rs`), each already encoded as the [`ProducerRecord`] the log stores.
//! No I/O and no pacing, so it is tested and benchmarked on its own; `source.rs` paces it onto
//! the log.
//!
//! Each data record fills one slot. A fault (malformed, duplicate, late) takes the slot first;
//! otherwise an order, payment or stock event that is due takes it (the `schedule.rs` queue),
//! or a new order flow starts while order and payment events are below `order_fraction` of the
//! slots; otherwise it is a sale. Duplicates copy any recent valid record and out-of-order
//! shifts apply to every event; late shifts and malformed records stay on sales, since a
//! payment behind the watermark would make the payment-timeout verdict depend on arrival
//! order (the pipeline treats such payments as late).
//!
//! Event time is the clock's `now`, or with `simulated_span_hours` an even sweep over the span
//! before the run's start, so a short run covers days of order lifecycles.
//!
//! Determinism: the same seed and settings give the same sequence of event ids and payloads.
//! Only `ts` is the wall clock (read through a [`Clock`]), so event-time-to-store latency
//! means something. With `time_of_day_curve` on, the clock's hour also decides which stores
//! are busy; for byte-exact reproducibility use a [`ManualClock`](super::ManualClock) or turn
//! the curve off. The draws come from separate ChaCha8 streams of the seed (world, ids, sales,
//! faults, commerce, stock), so the world depends on the seed and the world settings alone,
//! never on the rate, the fault fractions or the clock, and the default stream (orders and
//! stock off) is what it was before they existed.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use retail_core::event::{topics, Event, EventBody, Sale, SaleKind};
use retail_log::ProducerRecord;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::clock::{Clock, SystemClock};
use super::commerce::{Anomaly, Commerce};
use super::config::GeneratorConfig;
use super::fault::break_record;
use super::fault::{Fault, MalformedKind};
use super::model::{below, mix64, unit, StoreMix, World};
use super::schedule::{Due, Schedule};
use super::stats::GeneratorStats;
use super::stock::Stock;
use crate::Result;

/// One produced record and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The record, ready to append.
    pub record: ProducerRecord,
    /// Whether it is a catalog entry (store, seller, product) rather than a data event.
    pub catalog: bool,
    /// The fault injected, if any.
    pub fault: Option<Fault>,
    /// The anomaly of the order flow an order or payment event belongs to, if any.
    pub anomaly: Option<Anomaly>,
}

/// The ChaCha8 stream of each kind of draw (see the module docs).
const WORLD_STREAM: u64 = 0;
const ID_STREAM: u64 = 1;
const SALE_STREAM: u64 = 2;
const FAULT_STREAM: u64 = 3;
const COMMERCE_STREAM: u64 = 4;
const STOCK_STREAM: u64 = 5;

fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// 2024-01-01T00:00:00Z, the earliest time an event id's timestamp field shows.
const ID_EPOCH_MS: u64 = 1_704_067_200_000;
/// Ids per millisecond tick of the id's timestamp; fits the 12-bit counter.
const IDS_PER_MS: u64 = 1000;

/// Event ids: UUIDv7 whose 48-bit millisecond field is `base + n / 1000` and whose 12-bit
/// `rand_a` field is `n % 1000` (RFC 9562 §6.2, method 1: a dedicated counter), for the n-th
/// id, with `base` derived from the seed and 62 random bits from the seeded stream.
///
/// Why time-ordered: ids are primary keys, and a time-ordered UUID lands at the right edge of
/// the btree instead of on a random page; PostgreSQL inserts them about twice as fast as
/// random UUIDv4 (measured, see DESIGN.md). With the counter they are strictly increasing, not
/// just per millisecond.
///
/// Why not the wall clock: the same seed must give the same ids on every run, so tests can
/// replay a stream and check that duplicates land once, and benchmarks are reproducible. The
/// id's timestamp is therefore not the event time; `ts` is.
#[derive(Debug, Clone)]
struct IdSequence {
    base_ms: u64,
    n: u64,
    rng: ChaCha8Rng,
}

impl IdSequence {
    fn new(seed: u64) -> Self {
        // Up to about a year after the epoch, so different seeds rarely share a range.
        Self {
            base_ms: ID_EPOCH_MS + mix64(seed) % (1 << 35),
            n: 0,
            rng: stream(seed, ID_STREAM),
        }
    }

    fn next(&mut self) -> Uuid {
        let ms = (self.base_ms + self.n / IDS_PER_MS) & 0xffff_ffff_ffff;
        let counter = (self.n % IDS_PER_MS) as u16;
        self.n += 1;
        let random = self.rng.next_u64();
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        b[6] = 0x70 | (counter >> 8) as u8; // version 7
        b[7] = counter as u8;
        b[8..].copy_from_slice(&random.to_be_bytes());
        b[8] = 0x80 | (b[8] & 0x3f); // RFC 4122 / 9562 variant
        Uuid::from_bytes(b)
    }
}

/// Everything needed to re-encode a sale byte for byte: kept for the last [`RECENT`] sales so
/// a duplicate costs no stored copy of the record.
#[derive(Debug, Clone, Copy)]
struct SaleDraw {
    event_id: Uuid,
    ts_ms: i64,
    kind: SaleKind,
    store_id: i64,
    sku: i64,
    qty: i32,
    unit_price: Option<Decimal>,
    seller_id: i64,
}

/// A recent valid record a duplicate may copy: a sale is kept as its draw (no copy of the
/// record), any other event as its record.
#[derive(Debug, Clone)]
enum Recent {
    Sale(SaleDraw),
    Other(ProducerRecord),
}

/// Longest a due flow step or stock event may wait for a slot and still carry its due time
/// (see `commerce_at`).
const MAX_STEP_LAG_MS: i64 = 30_000;

/// How many recent records a duplicate is copied from.
const RECENT: usize = 1024;

/// Cumulative fault probabilities: one uniform draw per data record picks at most one fault.
#[derive(Debug, Clone, Copy)]
struct FaultCuts {
    malformed: f64,
    duplicate: f64,
    late: f64,
    out_of_order: f64,
}

/// Quantity 1..=5, mostly 1: cumulative probabilities.
const QTY_CUMULATIVE: [f64; 5] = [0.60, 0.80, 0.90, 0.96, 1.0];

/// The deterministic stream of generated records: first the catalog, then data events until
/// `events` is reached (forever without it). Iterate it, or pull batches with
/// [`Self::fill_catalog`] and [`Self::fill_data`].
#[derive(Clone)]
pub struct EventGenerator {
    world: Arc<World>,
    clock: Arc<dyn Clock>,
    source: String,
    events: Option<u64>,
    cuts: FaultCuts,
    return_fraction: f64,
    out_of_order_max_ms: usize,
    late_by_ms: i64,
    ids: IdSequence,
    sale_rng: ChaCha8Rng,
    fault_rng: ChaCha8Rng,
    mix: StoreMix,
    catalog_next: usize,
    recent: Vec<Recent>,
    recent_next: usize,
    stats: GeneratorStats,
    /// What comes due later: order flow steps, stock counts and deliveries.
    schedule: Schedule,
    commerce: Option<Commerce>,
    stock: Option<Stock>,
    /// `simulated_span_hours` in milliseconds, with `events` set.
    span_ms: Option<i64>,
    /// The clock at the first data event, where a simulated span ends.
    run_start: Option<i64>,
}

/// A summary: RNG states and the recent-sales ring say nothing to a reader.
impl std::fmt::Debug for EventGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventGenerator")
            .field("world", &self.world)
            .field("clock", &self.clock)
            .field("source", &self.source)
            .field("events", &self.events)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl EventGenerator {
    /// A generator on the wall clock.
    pub fn new(config: &GeneratorConfig) -> Result<Self> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// A generator reading event time from `clock`.
    pub fn with_clock(config: &GeneratorConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        config.validate()?;
        let world = World::build(config, &mut stream(config.seed, WORLD_STREAM));
        let malformed = config.malformed_fraction;
        let duplicate = malformed + config.duplicate_fraction;
        let late = duplicate + config.late_fraction;
        let out_of_order = late + config.out_of_order_fraction;
        let span_ms = config
            .simulated_span_hours
            .filter(|_| config.events.is_some())
            .map(|h| (h * 3_600_000.0).round() as i64);
        // Data events per hour of event time, to size stock levels.
        let events_per_hour = match (config.simulated_span_hours, config.events) {
            (Some(h), Some(n)) => n as f64 / h,
            _ if config.rate.is_finite() && config.rate > 0.0 => config.rate * 3600.0,
            _ => GeneratorConfig::DEFAULT_RATE * 3600.0,
        };
        let stock = Stock::new(config, &world, events_per_hour, stream(config.seed, STOCK_STREAM));
        let mut stats = GeneratorStats::default();
        if let Some(stock) = &stock {
            (stats.stock_series, stats.stockout_series) = stock.counts();
        }
        Ok(Self {
            world: Arc::new(world),
            clock,
            source: config.name.clone(),
            events: config.events,
            cuts: FaultCuts {
                malformed,
                duplicate,
                late,
                out_of_order,
            },
            return_fraction: config.return_fraction,
            out_of_order_max_ms: usize::try_from(config.out_of_order_max_ms).unwrap_or(usize::MAX),
            late_by_ms: i64::try_from(config.late_by_ms).unwrap_or(i64::MAX),
            ids: IdSequence::new(config.seed),
            sale_rng: stream(config.seed, SALE_STREAM),
            fault_rng: stream(config.seed, FAULT_STREAM),
            mix: StoreMix::new(config.time_of_day_curve),
            catalog_next: 0,
            recent: Vec::with_capacity(RECENT),
            recent_next: 0,
            stats,
            schedule: Schedule::default(),
            commerce: Commerce::new(config, stream(config.seed, COMMERCE_STREAM)),
            stock,
            span_ms,
            run_start: None,
        })
    }

    /// The topics its records go to: `catalog` and `sales`, and `orders`, `payments` and
    /// `inventory` when those are on.
    pub fn topics(&self) -> Vec<&'static str> {
        let mut t = vec![topics::CATALOG, topics::SALES];
        if self.commerce.is_some() {
            t.extend([topics::ORDERS, topics::PAYMENTS]);
        }
        if self.stock.is_some() {
            t.push(topics::INVENTORY);
        }
        t
    }

    /// Whether a clone (to rewind a batch) costs a few RNG states only: not with orders in
    /// flight or stock series, whose state grows with the world.
    pub fn rewinds_cheaply(&self) -> bool {
        self.commerce.is_none() && self.stock.is_none()
    }

    /// The simulated world the events come from.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// What was produced so far.
    pub const fn stats(&self) -> &GeneratorStats {
        &self.stats
    }

    /// Number of catalog records: one per store, seller and product.
    pub fn catalog_len(&self) -> usize {
        self.world.stores().len() + self.world.sellers().len() + self.world.products().len()
    }

    /// Whether every catalog record was produced.
    pub fn catalog_done(&self) -> bool {
        self.catalog_next >= self.catalog_len()
    }

    /// Data records still to produce; `None` without an `events` limit.
    pub fn data_remaining(&self) -> Option<u64> {
        self.events.map(|n| n.saturating_sub(self.stats.generated))
    }

    /// Whether the catalog and the `events` data records were all produced.
    pub fn is_finished(&self) -> bool {
        self.catalog_done() && self.data_remaining() == Some(0)
    }

    /// Now, on the generator's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Appends up to `max` catalog records to `out`, all stamped with one reading of the
    /// clock; returns how many.
    pub fn fill_catalog(&mut self, out: &mut Vec<ProducerRecord>, max: usize) -> usize {
        self.fill_catalog_at(out, max, self.now_ms())
    }

    /// [`Self::fill_catalog`] at event time `now_ms`. From a clone of the generator, the same
    /// call gives the same records byte for byte.
    pub fn fill_catalog_at(&mut self, out: &mut Vec<ProducerRecord>, max: usize, now_ms: i64) -> usize {
        let n = max.min(self.catalog_len().saturating_sub(self.catalog_next));
        out.reserve(n);
        out.extend((0..n).filter_map(|_| self.catalog_at(now_ms)).map(|g| g.record));
        n
    }

    /// Appends up to `max` data records to `out` (fewer once `events` is reached), all
    /// generated at one reading of the clock; returns how many.
    pub fn fill_data(&mut self, out: &mut Vec<ProducerRecord>, max: usize) -> usize {
        self.fill_data_at(out, max, self.now_ms())
    }

    /// [`Self::fill_data`] at wall-clock time `now_ms`. From a clone of the generator, the same
    /// call gives the same records byte for byte, which is how the source retries a failed
    /// append without keeping a copy of every batch (while [`Self::rewinds_cheaply`]).
    pub fn fill_data_at(&mut self, out: &mut Vec<ProducerRecord>, max: usize, now_ms: i64) -> usize {
        let n = self
            .data_remaining()
            .map_or(max, |r| max.min(usize::try_from(r).unwrap_or(usize::MAX)));
        out.reserve(n);
        out.extend((0..n).filter_map(|_| self.data_at(now_ms)).map(|g| g.record));
        n
    }

    /// The next catalog record, `None` once the catalog is complete.
    pub fn next_catalog(&mut self) -> Option<Generated> {
        self.catalog_at(self.now_ms())
    }

    /// The next data record (a sale or return, an order, payment or stock level, possibly
    /// faulty), `None` once `events` records were produced.
    pub fn next_data(&mut self) -> Option<Generated> {
        self.data_at(self.now_ms())
    }

    fn catalog_at(&mut self, now: i64) -> Option<Generated> {
        let i = self.catalog_next;
        let (stores, sellers) = (self.world.stores().len(), self.world.sellers().len());
        let body = if i < stores {
            EventBody::Store(self.world.stores()[i].info.clone())
        } else if i < stores + sellers {
            EventBody::Seller(self.world.sellers()[i - stores].clone())
        } else {
            EventBody::Product(self.world.products().get(i - stores - sellers)?.clone())
        };
        self.catalog_next += 1;
        self.stats.catalog += 1;
        let event = Event::new(self.ids.next(), timestamp(now), self.source.clone(), body);
        Some(Generated {
            record: self.record(&event),
            catalog: true,
            fault: None,
            anomaly: None,
        })
    }

    fn data_at(&mut self, now: i64) -> Option<Generated> {
        if self.data_remaining() == Some(0) {
            return None;
        }
        let now = self.event_time(now);
        self.stats.generated += 1;
        let u = unit(&mut self.fault_rng);
        let cuts = self.cuts;
        if u < cuts.malformed {
            let kind = MalformedKind::ALL[(self.stats.malformed % MalformedKind::ALL.len() as u64) as usize];
            self.stats.malformed += 1;
            let draw = self.draw_sale(now, now);
            let record = self.malformed(&draw, kind);
            return Some(Generated {
                record,
                catalog: false,
                fault: Some(Fault::Malformed(kind)),
                anomaly: None,
            });
        }
        if u < cuts.duplicate && !self.recent.is_empty() {
            let record = match &self.recent[below(&mut self.fault_rng, self.recent.len())] {
                Recent::Sale(draw) => self.encode_sale(draw),
                Recent::Other(record) => record.clone(),
            };
            self.stats.duplicates += 1;
            return Some(Generated {
                record,
                catalog: false,
                fault: Some(Fault::Duplicate),
                anomaly: None,
            });
        }
        let fault = if u < cuts.duplicate {
            None // a duplicate was due but there is nothing to copy yet
        } else if u < cuts.late {
            self.stats.late += 1;
            Some(Fault::Late {
                by_ms: self.late_by_ms,
            })
        } else if u < cuts.out_of_order {
            self.stats.out_of_order += 1;
            let by_ms = 1 + below(&mut self.fault_rng, self.out_of_order_max_ms) as i64;
            Some(Fault::OutOfOrder { by_ms })
        } else {
            None
        };
        let ts = match fault {
            Some(Fault::Late { by_ms } | Fault::OutOfOrder { by_ms }) => now.saturating_sub(by_ms),
            _ => now,
        };
        // Late shifts stay on sales: a payment behind the watermark would make the
        // payment-timeout verdict depend on arrival order.
        if !matches!(fault, Some(Fault::Late { .. })) {
            if let Some(generated) = self.commerce_at(now, fault) {
                return Some(generated);
            }
        }
        let draw = self.draw_sale(now, ts);
        match draw.kind {
            SaleKind::Sale => self.stats.sales += 1,
            SaleKind::Return | SaleKind::Void => self.stats.returns += 1,
        }
        if let Some(stock) = &mut self.stock {
            stock.on_sale(draw.store_id, draw.sku, draw.qty, now, &mut self.schedule);
        }
        self.stats.distinct += 1;
        self.remember(Recent::Sale(draw));
        Some(Generated {
            record: self.encode_sale(&draw),
            catalog: false,
            fault,
            anomaly: None,
        })
    }

    /// Where a simulated span ends, instead of the clock at the first data event: a restarted
    /// run given its first run's end sends the very same event times, so everything it sends
    /// again is an exact re-send (the store's dedup ledger keys on the event's day too).
    pub fn set_span_end(&mut self, ms: i64) {
        self.run_start = Some(ms);
    }

    /// Event time of the next data event: the clock's `now`, or with a simulated span its
    /// even share of the span before the run's start.
    fn event_time(&mut self, now: i64) -> i64 {
        let (Some(span), Some(n)) = (self.span_ms, self.events) else {
            return now;
        };
        let start = *self.run_start.get_or_insert(now);
        let swept = i128::from(span) * i128::from(self.stats.generated) / i128::from(n.max(1));
        start.saturating_sub(span).saturating_add(swept as i64)
    }

    fn remember(&mut self, recent: Recent) {
        if self.recent.len() < RECENT {
            self.recent.push(recent);
        } else {
            self.recent[self.recent_next] = recent;
            self.recent_next = (self.recent_next + 1) % RECENT;
        }
    }

    /// An order, payment or inventory event for this slot at event time `now`, if one is due
    /// or an order flow should start: due steps come first, and a new flow starts while order
    /// events are below `commerce.order_fraction` of the data events. `None` leaves the slot
    /// to a sale.
    ///
    /// A due step happened when it was due, not when the slot reached it (a few slots later
    /// when several come due together), so flow timings are exact; only after a stall of more
    /// than [`MAX_STEP_LAG_MS`] (a paused generator) does it happen now, and its flow stretches.
    fn commerce_at(&mut self, now: i64, fault: Option<Fault>) -> Option<Generated> {
        if let Some(stock) = &mut self.stock {
            stock.start(now, &mut self.schedule);
        }
        let (at, due) = match self.schedule.pop_due(now) {
            Some((at, due)) if now.saturating_sub(at) <= MAX_STEP_LAG_MS => (at, due),
            Some((_, due)) => (now, due),
            None => {
                let commerce = self.commerce.as_mut()?;
                let flow_events = (self.stats.orders + self.stats.payments) as f64;
                if flow_events >= commerce.order_fraction() * self.stats.generated as f64
                    || !commerce.can_start()
                {
                    return None;
                }
                commerce.start(now, &self.world, &mut self.schedule, &mut self.stats);
                self.schedule.pop_due(now)?
            }
        };
        let (body, anomaly) = match due {
            Due::Flow(slot) => self.commerce.as_mut()?.step(slot, at, &mut self.schedule)?,
            Due::Snapshot(i) => (
                EventBody::Inventory(self.stock.as_mut()?.snapshot(i, at, &mut self.schedule)?),
                None,
            ),
            Due::Receipt(i) => {
                self.stats.restocks += 1;
                (EventBody::Inventory(self.stock.as_mut()?.receipt(i)?), None)
            }
        };
        match &body {
            EventBody::Order(_) => self.stats.orders += 1,
            EventBody::Payment(_) => self.stats.payments += 1,
            _ => self.stats.inventory += 1,
        }
        if let Some(commerce) = &self.commerce {
            self.stats.in_flight_orders = commerce.in_flight() as u64;
            self.stats.in_flight_peak = self.stats.in_flight_peak.max(self.stats.in_flight_orders);
        }
        self.stats.distinct += 1;
        let ts = match fault {
            Some(Fault::OutOfOrder { by_ms }) => at.saturating_sub(by_ms),
            _ => at,
        };
        let event = Event::new(self.ids.next(), timestamp(ts), self.source.clone(), body);
        let record = self.record(&event);
        self.remember(Recent::Other(record.clone()));
        Some(Generated {
            record,
            catalog: false,
            fault,
            anomaly,
        })
    }

    /// A fresh sale line: store by popularity (and local hour at `now_ms`), one of its
    /// sellers, a product by Zipf popularity, a small quantity.
    fn draw_sale(&mut self, now_ms: i64, ts_ms: i64) -> SaleDraw {
        let event_id = self.ids.next();
        let store = self.mix.pick(&self.world, now_ms, unit(&mut self.sale_rng));
        let sellers = self.world.sellers_of(store);
        // u^2 favours the first sellers of a store: some salespeople sell more.
        let u = unit(&mut self.sale_rng);
        let seller = &sellers[((u * u * sellers.len() as f64) as usize).min(sellers.len() - 1)];
        let product = self.world.popular_product(&mut self.sale_rng);
        let u = unit(&mut self.sale_rng);
        let qty = QTY_CUMULATIVE.iter().position(|&c| u < c).unwrap_or(0) as i32 + 1;
        let is_return = unit(&mut self.sale_rng) < self.return_fraction;
        SaleDraw {
            event_id,
            ts_ms,
            kind: if is_return {
                SaleKind::Return
            } else {
                SaleKind::Sale
            },
            store_id: seller.store_id,
            sku: product.sku,
            qty: if is_return { -qty } else { qty },
            unit_price: product.price,
            seller_id: seller.seller_id,
        }
    }

    fn encode_sale(&self, d: &SaleDraw) -> ProducerRecord {
        let event = Event::new(
            d.event_id,
            timestamp(d.ts_ms),
            self.source.clone(),
            EventBody::Sale(Sale {
                kind: d.kind,
                store_id: d.store_id,
                sku: d.sku,
                qty: d.qty,
                unit_price: d.unit_price,
                seller_id: Some(d.seller_id),
            }),
        );
        self.record(&event)
    }

    /// A sale broken as `kind` says (see [`break_record`]).
    fn malformed(&self, d: &SaleDraw, kind: MalformedKind) -> ProducerRecord {
        break_record(self.encode_sale(d), kind)
    }

    /// Through the one record builder, so generated records are exactly what any source
    /// writes for the same event.
    fn record(&self, event: &Event) -> ProducerRecord {
        debug_assert_eq!(event.source, self.source);
        crate::record::event_record(event)
    }
}

impl Iterator for EventGenerator {
    type Item = Generated;

    /// The catalog first, then data records.
    fn next(&mut self) -> Option<Generated> {
        self.next_catalog().or_else(|| self.next_data())
    }
}

fn timestamp(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

#[cfg(test)]
#[path = "generate_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "commerce_tests.rs"]
mod commerce_tests;
