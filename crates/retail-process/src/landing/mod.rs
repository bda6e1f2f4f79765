//! The raw landing: log -> store, exactly once.

mod config;
mod convert;
mod progress;
mod task;

pub use config::LandingConfig;
pub use progress::{AggregateProgress, LandingHandle, LandingProgress, LatencySummary};
pub use task::{Landing, StartAt};
