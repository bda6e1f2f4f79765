//! The load and chaos generator: a seeded, simulated retail world selling at a chosen rate,
//! with duplicates, disorder, late and malformed records mixed in on demand. It feeds demos
//! and benchmarks, and its exact stats let tests check the rest of the pipeline end to end.
//!
//! - `config.rs`: [`GeneratorConfig`], which builds the source.
//! - `model.rs`: the simulated [`World`] of stores, sellers and products.
//! - `generate.rs`: the deterministic [`EventGenerator`] (no I/O).
//! - `source.rs`: the paced [`GeneratorSource`] task and its [`GeneratorHandle`].

mod config;
mod generate;
mod model;
mod source;

pub use config::{default_countries, CountryConfig, GeneratorConfig};
pub use generate::{
    Clock, EventGenerator, Fault, Generated, GeneratorStats, MalformedKind, ManualClock, SystemClock,
};
pub use model::{activity, Store, World, SKU_BASE};
pub use source::{GeneratorHandle, GeneratorSource, MAX_BATCH, TICK};
