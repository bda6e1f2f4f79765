//! The embedded segment-file log (to be implemented).

mod config;

pub use config::{EmbeddedConfig, FsyncPolicy};

/// Placeholder until the backend lands.
#[derive(Debug)]
pub struct EmbeddedLog;
