//! The deterministic event stream: the catalog of the simulated world, then sales and returns
//! with injected faults (duplicates, out-of-order and late event times, malformed records),
//! each already encoded as the [`ProducerRecord`] the log stores. No I/O and no pacing, so it
//! is tested and benchmarked on its own; `source.rs` paces it onto the log.
//!
//! Determinism: the same seed and settings give the same sequence of event ids and payloads.
//! Only `ts` is the wall clock (read through a [`Clock`]), so event-time-to-store latency
//! means something. With `time_of_day_curve` on, the clock's hour also decides which stores
//! are busy; for byte-exact reproducibility use a [`ManualClock`] or turn the curve off. The
//! draws come from separate ChaCha8 streams of the seed (world, ids, sales, faults), so the
//! world depends on the seed and the world settings alone, never on the rate, the fault
//! fractions or the clock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use retail_core::event::{Event, EventBody, Sale, SaleKind, MAX_EVENT_BYTES, SCHEMA_VERSION};
use retail_log::ProducerRecord;
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use super::config::GeneratorConfig;
use super::model::{below, unit, StoreMix, World};
use crate::Result;

/// Where event time comes from. [`SystemClock`] in production; tests inject a
/// [`ManualClock`] to make every byte reproducible.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in epoch milliseconds.
    fn now_ms(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis()
    }
}

/// A clock that shows what it was set to.
#[derive(Debug, Default)]
pub struct ManualClock {
    ms: AtomicI64,
}

impl ManualClock {
    /// A clock stopped at `ms` (epoch milliseconds).
    pub const fn new(ms: i64) -> Self {
        Self {
            ms: AtomicI64::new(ms),
        }
    }

    /// Moves the clock to `ms`.
    pub fn set(&self, ms: i64) {
        self.ms.store(ms, Ordering::Relaxed);
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.ms.fetch_add(ms, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::Relaxed)
    }
}

/// The ways a malformed record is broken, produced in rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MalformedKind {
    /// A valid event cut in half: not JSON.
    BrokenJson,
    /// `"qty":"two"`: a field of the wrong type.
    WrongType,
    /// `"type":"refund_request"`: a type no decoder knows.
    UnknownType,
    /// A sale without its `store_id`.
    MissingStoreId,
    /// A valid sale padded past [`MAX_EVENT_BYTES`].
    Oversized,
}

impl MalformedKind {
    /// Every kind, in the order they rotate.
    pub const ALL: [Self; 5] = [
        Self::BrokenJson,
        Self::WrongType,
        Self::UnknownType,
        Self::MissingStoreId,
        Self::Oversized,
    ];

    /// The [`retail_core::DecodeError::kind`] the landing reports for it.
    pub const fn decode_error_kind(self) -> &'static str {
        match self {
            Self::BrokenJson => "malformed_json",
            Self::WrongType | Self::MissingStoreId => "invalid_field",
            Self::UnknownType => "unknown_type",
            Self::Oversized => "oversized",
        }
    }
}

/// A fault injected into one data record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// An exact copy (same bytes, same `event_id`) of an earlier record.
    Duplicate,
    /// Event time moved back by `by_ms` (at most `out_of_order_max_ms`).
    OutOfOrder {
        /// Shift, milliseconds.
        by_ms: i64,
    },
    /// Event time moved back by `late_by_ms`.
    Late {
        /// Shift, milliseconds.
        by_ms: i64,
    },
    /// Bytes that are not a valid event.
    Malformed(MalformedKind),
}

/// One produced record and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The record, ready to append.
    pub record: ProducerRecord,
    /// Whether it is a catalog entry (store, seller, product) rather than a data event.
    pub catalog: bool,
    /// The fault injected, if any.
    pub fault: Option<Fault>,
}

/// Counts of what was produced. The generator fills everything but `appended`, which the
/// source sets once the log has the records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GeneratorStats {
    /// Catalog records (stores, sellers, products) produced.
    pub catalog: u64,
    /// Data records produced: sales, returns, duplicates and malformed records. This is what
    /// `events` limits.
    pub generated: u64,
    /// Records (catalog and data) durably appended to the log.
    pub appended: u64,
    /// Valid sales (not counting duplicates).
    pub sales: u64,
    /// Valid returns (not counting duplicates).
    pub returns: u64,
    /// Exact re-sends of an earlier record.
    pub duplicates: u64,
    /// Records that fail decoding.
    pub malformed: u64,
    /// Valid events with an event time moved back a little.
    pub out_of_order: u64,
    /// Valid events with an event time moved back by `late_by_ms`.
    pub late: u64,
    /// Distinct valid `event_id`s among the data records (= sales + returns): the row count a
    /// correct landing leaves in `sales_raw`, whatever it does with duplicates and garbage.
    pub distinct: u64,
}

/// The ChaCha8 stream of each kind of draw (see the module docs).
const WORLD_STREAM: u64 = 0;
const ID_STREAM: u64 = 1;
const SALE_STREAM: u64 = 2;
const FAULT_STREAM: u64 = 3;

fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// SplitMix64's finaliser: spreads a seed over 64 bits.
const fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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

/// How many recent sales a duplicate is copied from.
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
    recent: Vec<SaleDraw>,
    recent_next: usize,
    stats: GeneratorStats,
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
            stats: GeneratorStats::default(),
        })
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
    /// append without keeping a copy of every batch.
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

    /// The next data record (a sale or return, possibly faulty), `None` once `events` records
    /// were produced.
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
        let event = Event {
            event_id: self.ids.next(),
            ts: timestamp(now),
            source: self.source.clone(),
            schema_version: SCHEMA_VERSION,
            body,
        };
        Some(Generated {
            record: self.record(&event),
            catalog: true,
            fault: None,
        })
    }

    fn data_at(&mut self, now: i64) -> Option<Generated> {
        if self.data_remaining() == Some(0) {
            return None;
        }
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
            });
        }
        if u < cuts.duplicate && !self.recent.is_empty() {
            let draw = self.recent[below(&mut self.fault_rng, self.recent.len())];
            self.stats.duplicates += 1;
            return Some(Generated {
                record: self.encode_sale(&draw),
                catalog: false,
                fault: Some(Fault::Duplicate),
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
        let draw = self.draw_sale(now, ts);
        match draw.kind {
            SaleKind::Sale => self.stats.sales += 1,
            SaleKind::Return | SaleKind::Void => self.stats.returns += 1,
        }
        self.stats.distinct += 1;
        if self.recent.len() < RECENT {
            self.recent.push(draw);
        } else {
            self.recent[self.recent_next] = draw;
            self.recent_next = (self.recent_next + 1) % RECENT;
        }
        Some(Generated {
            record: self.encode_sale(&draw),
            catalog: false,
            fault,
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
        let event = Event {
            event_id: d.event_id,
            ts: timestamp(d.ts_ms),
            source: self.source.clone(),
            schema_version: SCHEMA_VERSION,
            body: EventBody::Sale(Sale {
                kind: d.kind,
                store_id: d.store_id,
                sku: d.sku,
                qty: d.qty,
                unit_price: d.unit_price,
                seller_id: Some(d.seller_id),
            }),
        };
        self.record(&event)
    }

    /// A sale broken as `kind` says; it stays on the sales topic with the sale's key, as a
    /// buggy till would send it.
    fn malformed(&self, d: &SaleDraw, kind: MalformedKind) -> ProducerRecord {
        let mut record = self.encode_sale(d);
        let v = &mut record.value;
        let done = match kind {
            MalformedKind::BrokenJson => false,
            MalformedKind::WrongType => replace_field(v, "qty", Some(b"\"two\"")),
            MalformedKind::UnknownType => {
                let unknown = "refund_request";
                record.headers[0].value = unknown.as_bytes().to_vec();
                replace_field(v, "type", Some(format!("\"{unknown}\"").as_bytes()))
            }
            MalformedKind::MissingStoreId => replace_field(v, "store_id", None),
            MalformedKind::Oversized => {
                let mut padding = Vec::with_capacity(MAX_EVENT_BYTES + 32);
                padding.extend_from_slice(b"\"comment\":\"");
                padding.resize(padding.len() + MAX_EVENT_BYTES, b'x');
                padding.extend_from_slice(b"\",");
                v.splice(1..1, padding);
                true
            }
        };
        if !done {
            // A strict prefix of a JSON object is never valid JSON.
            v.truncate(v.len() / 2);
        }
        record
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

/// Replaces the value of the top-level field `name` of a flat JSON object we encoded (values
/// are numbers or strings without escapes), or removes the field when `value` is `None`.
/// Returns false when the field is not there.
fn replace_field(json: &mut Vec<u8>, name: &str, value: Option<&[u8]>) -> bool {
    let pattern = format!("\"{name}\":");
    let Some(start) = json.windows(pattern.len()).position(|w| w == pattern.as_bytes()) else {
        return false;
    };
    let value_start = start + pattern.len();
    let value_end = if json.get(value_start) == Some(&b'"') {
        match json[value_start + 1..].iter().position(|&b| b == b'"') {
            Some(i) => value_start + 1 + i + 1,
            None => return false,
        }
    } else {
        match json[value_start..].iter().position(|&b| b == b',' || b == b'}') {
            Some(i) => value_start + i,
            None => return false,
        }
    };
    match value {
        Some(v) => {
            json.splice(value_start..value_end, v.iter().copied());
        }
        None if json.get(value_end) == Some(&b',') => {
            json.drain(start..=value_end);
        }
        None if start > 0 && json[start - 1] == b',' => {
            json.drain(start - 1..value_end);
        }
        None => {
            json.drain(start..value_end);
        }
    }
    true
}

#[cfg(test)]
#[path = "generate_tests.rs"]
mod tests;
