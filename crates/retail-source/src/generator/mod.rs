//! The load and chaos generator: a seeded, simulated retail world selling at a chosen rate,
//! with duplicates, disorder, late and malformed records mixed in on demand. It feeds demos
//! and benchmarks, and its exact stats let tests check the rest of the pipeline end to end.
//!
//! - `config.rs`: [`GeneratorConfig`], which builds the source.
//! - `model.rs`: the simulated [`World`] of stores, sellers and products.
//! - `generate.rs`: the deterministic [`EventGenerator`] (no I/O): catalog, sales and faults,
//!   and the simulated clock that interleaves them with what `schedule.rs` says is due;
//!   `clock.rs` ([`Clock`]) is where event time comes from, `fault.rs` ([`Fault`]) what can
//!   go wrong with a record, `stats.rs` ([`GeneratorStats`]) what was produced.
//! - `commerce.rs`: order flows (order, payment lifecycle), their [`Anomaly`]s and the
//!   [`FraudPattern`]s.
//! - `stock.rs`: ERP stock series per store and SKU, counted, sold down and restocked.
//! - `schedule.rs`: the due-time queue of flow steps, stock counts and deliveries.
//! - `source.rs`: the paced [`GeneratorSource`] task and its [`GeneratorHandle`].

mod clock;
mod commerce;
mod config;
mod fault;
mod generate;
mod model;
mod schedule;
mod source;
mod stats;
mod stock;

pub use clock::{Clock, ManualClock, SystemClock};
pub use commerce::{Anomaly, FraudPattern, CURRENCY};
pub use config::{default_countries, CommerceConfig, CountryConfig, GeneratorConfig, StockConfig};
pub use fault::{Fault, MalformedKind};
pub use generate::{EventGenerator, Generated};
pub use model::{activity, Store, World, SKU_BASE};
pub use source::{GeneratorHandle, GeneratorSource, MAX_BATCH, TICK};
pub use stats::GeneratorStats;
