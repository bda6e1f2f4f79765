//! What the live dashboard reads from the pipeline besides the metrics: the store's figures and
//! the controls. The server starts before the store and the sources exist (so `/health`
//! answers while they open), so both are filled in as the stages start.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use retail_process::LandingHandle;
use retail_serve::live::{LiveInputs, StoreFigures};
use retail_source::generator::GeneratorHandle;
use serde_json::{json, Value};

/// Filled in by [`crate::pipeline::start`] as each stage starts.
#[derive(Debug, Default)]
pub struct PipelineLive {
    generators: OnceLock<Vec<(String, GeneratorHandle)>>,
    landing: OnceLock<LandingHandle>,
}

impl PipelineLive {
    /// A shared, empty slot set.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The sources have started: each source's name and handle.
    pub fn set_generators(&self, generators: Vec<(String, GeneratorHandle)>) {
        let _ = self.generators.set(generators);
    }

    /// The landing has started.
    pub fn set_landing(&self, landing: LandingHandle) {
        let _ = self.landing.set(landing);
    }
}

#[async_trait]
impl LiveInputs for PipelineLive {
    async fn store_figures(&self, _now: DateTime<Utc>) -> Option<Result<StoreFigures, String>> {
        None
    }

    fn controls(&self) -> Value {
        let mut list: Vec<Value> = self
            .generators
            .get()
            .into_iter()
            .flatten()
            .map(|(name, g)| json!({"name": name, "kind": "source", "paused": g.is_paused(), "rate": g.rate()}))
            .collect();
        if let Some(l) = self.landing.get() {
            list.push(json!({"name": "landing", "kind": "landing", "paused": l.is_paused(), "rate": null}));
        }
        Value::Array(list)
    }
}
