//! The processor's half of the inventory-at-risk pipeline (ADR 0024): `[processing.stock]`,
//! the fact each sale and `inventory` event contributes, and its pipeline time (the smallest
//! watermark of the `sales` and `inventory` partitions, idle ones advancing with the wall
//! clock, as for orders). The rows live in the store (`retail_sink::derived::stock`).

use retail_core::{Event, EventBody};
use retail_sink::derived::stock::{StockFact, StockFactKind, StockRules};
use serde::{Deserialize, Serialize};

/// `[processing.stock]`: the inventory-at-risk pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StockPipelineConfig {
    /// Whether `inventory` events and sales fill `inventory_risks` and raise `stock_risk` alerts.
    pub enabled: bool,
    /// Days of sales the velocity is measured over.
    pub velocity_days: u32,
    /// Reorder lead time of a series whose snapshots do not carry `lead_time_days`.
    pub default_lead_time_days: u32,
    /// Days of cover beyond the lead time under which a series is `low`.
    pub safety_days: u32,
}

impl Default for StockPipelineConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            velocity_days: 7,
            default_lead_time_days: 3,
            safety_days: 3,
        }
    }
}

impl StockPipelineConfig {
    /// The rules the store runs the pipeline with.
    pub fn rules(&self) -> StockRules {
        StockRules {
            velocity_days: i64::from(self.velocity_days.max(1)),
            default_lead_time_days: i64::from(self.default_lead_time_days),
            safety_days: i64::from(self.safety_days),
        }
    }
}

/// The fact `event` contributes, if it is a sale line or a stock level.
pub fn fact_of(event: &Event) -> Option<StockFact> {
    let (store_id, sku, kind) = match &event.body {
        EventBody::Sale(s) => (
            s.store_id,
            s.sku,
            StockFactKind::Sale {
                qty: i64::from(s.qty),
            },
        ),
        EventBody::Inventory(i) => (
            i.store_id,
            i.sku,
            StockFactKind::Snapshot {
                on_hand: i.on_hand,
                lead_time_days: i.lead_time_days,
            },
        ),
        _ => return None,
    };
    Some(StockFact {
        event_id: event.event_id,
        store_id,
        sku,
        ts: event.ts.timestamp_millis(),
        kind,
    })
}

/// The pipeline's running state in the processor.
pub type StockPipeline = super::Pipeline<StockRules, StockFact>;

impl StockPipeline {
    /// A pipeline running `config`.
    pub fn new(config: &StockPipelineConfig) -> Self {
        Self::with_rules(config.rules())
    }
}
