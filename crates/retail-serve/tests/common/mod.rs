//! Shared by the server's tests.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use retail_serve::live::{LiveInputs, StoreFigures};

/// Inputs of a server that has no store open and no controls: what the server sees in its
/// first moments, before the pipeline's stages start.
#[derive(Debug)]
pub struct NoStore;

#[async_trait]
impl LiveInputs for NoStore {
    async fn store_figures(&self, _now: DateTime<Utc>) -> Option<Result<StoreFigures, String>> {
        None
    }

    fn controls(&self) -> serde_json::Value {
        serde_json::Value::Array(Vec::new())
    }
}
