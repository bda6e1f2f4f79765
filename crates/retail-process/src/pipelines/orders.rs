//! The processor's half of the order-lifecycle pipeline (ADR 0023): `[processing.orders]`, the
//! fact each `order` and `payment` event contributes, and the pipeline time the store's sweep
//! runs at. The rows themselves live in the store (`retail_sink::derived::orders`), which folds
//! the facts of new events in the landing transaction.
//!
//! # The pipeline time
//! The smallest watermark of the `orders` and `payments` partitions that delivered anything
//! (ADR 0004), where a partition idle for longer than `idle_timeout_ms` advances with the wall
//! clock from there: a quiet stream cannot hold verdicts back forever, and a busy one is never
//! overtaken by the wall clock. It only moves forward.

use std::time::Duration;

use retail_core::{Event, EventBody};
use retail_sink::derived::orders::{OrderFact, OrderFactKind, OrderRules};
use serde::{Deserialize, Serialize};

/// `[processing.orders]`: the order-lifecycle pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrderPipelineConfig {
    /// Whether `order` and `payment` events fill `order_lifecycle` and raise order alerts.
    pub enabled: bool,
    /// How long after `created` the payment may come (event time), in milliseconds; without
    /// one by then, one `payment_timeout` alert.
    pub payment_window_ms: u64,
    /// How far the pipeline time must be past a deadline before the verdict, in milliseconds:
    /// room for events of other partitions still on their way.
    pub grace_ms: u64,
    /// Longest time an order may stay `paid` before one `order_stuck` alert, milliseconds (0: never).
    pub stuck_paid_ms: u64,
    /// Longest time in `packed`, milliseconds (0: never).
    pub stuck_packed_ms: u64,
    /// Longest time in `shipped`, milliseconds (0: never).
    pub stuck_shipped_ms: u64,
}

impl Default for OrderPipelineConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            payment_window_ms: 30 * 60_000,
            grace_ms: 60_000,
            stuck_paid_ms: 12 * 3_600_000,
            stuck_packed_ms: 24 * 3_600_000,
            stuck_shipped_ms: 96 * 3_600_000,
        }
    }
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl OrderPipelineConfig {
    /// The rules the store runs the pipeline with.
    pub fn rules(&self) -> OrderRules {
        let limit = |v: u64| (v > 0).then(|| ms(v));
        OrderRules {
            payment_window_ms: ms(self.payment_window_ms),
            grace_ms: ms(self.grace_ms),
            stuck_after_ms: [
                limit(self.stuck_paid_ms),
                limit(self.stuck_packed_ms),
                limit(self.stuck_shipped_ms),
            ],
        }
    }
}

/// The fact `event` contributes, if it is an order or a payment.
pub fn fact_of(event: &Event) -> Option<OrderFact> {
    let kind = match &event.body {
        EventBody::Order(o) => OrderFactKind::Status {
            status: o.status,
            store_id: o.store_id,
            amount: o.amount,
            currency: o.currency.clone(),
            customer_id: o.customer_id.clone(),
        },
        EventBody::Payment(p) => OrderFactKind::Payment {
            payment_id: p.payment_id.clone(),
            status: p.status,
            amount: p.amount,
            currency: p.currency.clone(),
        },
        _ => return None,
    };
    let order_id = match &event.body {
        EventBody::Order(o) => o.order_id.clone(),
        EventBody::Payment(p) => p.order_id.clone(),
        _ => return None,
    };
    Some(OrderFact {
        event_id: event.event_id,
        order_id,
        ts: event.ts.timestamp_millis(),
        kind,
    })
}

/// The pipeline's running state in the processor.
pub type OrderPipeline = super::Pipeline<OrderRules, OrderFact>;

impl OrderPipeline {
    /// A pipeline running `config`.
    pub fn new(config: &OrderPipelineConfig) -> Self {
        Self::with_rules(config.rules())
    }
}

/// How far an idle partition's watermark has advanced with the wall clock: the time it has
/// been idle beyond `idle_timeout`, in milliseconds.
pub fn idle_advance(idle_for: Duration, idle_timeout: Duration) -> i64 {
    i64::try_from(idle_for.saturating_sub(idle_timeout).as_millis()).unwrap_or(i64::MAX)
}
