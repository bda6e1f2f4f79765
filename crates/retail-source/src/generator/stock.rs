//! ERP stock levels: for each store, its most popular SKUs are series whose level the
//! generator keeps. Each series loses what that store sells of the SKU (returns add back), is
//! counted every `stock.interval_hours` of event time (`inventory`, reason `snapshot`), and is
//! reordered when it falls under its reorder level; the delivery (reason `receipt`) arrives
//! after the series' lead time. A few series are never reordered, so they run to 0: the
//! stock-outs the pipeline should see coming.
//!
//! Levels are sized from each series' expected demand (events per hour x its store's share x
//! its rank's Zipf share), so ordinary series hold a few days of stock and are reordered with
//! two days of safety beyond their lead time, whatever the rate or the simulated span.

use std::collections::HashMap;

use rand_chacha::ChaCha8Rng;
use retail_core::event::Inventory;

use super::config::GeneratorConfig;
use super::model::{below, unit, World};
use super::schedule::{Due, Schedule};

const HOUR_MS: f64 = 3_600_000.0;
const DAY_MS: i64 = 86_400_000;
/// Mean units of a sale line (see `QTY_CUMULATIVE` in `generate.rs`).
const MEAN_QTY: f64 = 1.74;

/// One SKU in one store.
#[derive(Debug, Clone)]
struct Series {
    store_id: i64,
    sku: i64,
    level: i64,
    reorder_at: i64,
    order_qty: i64,
    lead_time_days: i64,
    /// Never reordered.
    stockout: bool,
    /// A reorder is on its way.
    pending: bool,
}

/// Every tracked series and where to find it by store and SKU.
#[derive(Debug, Clone)]
pub(crate) struct Stock {
    series: Vec<Series>,
    index: HashMap<(i64, i64), u32>,
    interval_ms: i64,
    rng: ChaCha8Rng,
    started: bool,
}

impl Stock {
    /// The series `config` asks for, sized for `events_per_hour` data events; `None` when
    /// stock is off.
    pub(crate) fn new(
        config: &GeneratorConfig,
        world: &World,
        events_per_hour: f64,
        mut rng: ChaCha8Rng,
    ) -> Option<Self> {
        if !config.stock_on() {
            return None;
        }
        let per_store = config.stock.series_per_store as usize;
        // Zipf shares of the first ranks: rank r (from 1) has weight 1 / r^s.
        let s = config.zipf_exponent;
        let total: f64 = (1..=world.products().len()).map(|r| (r as f64).powf(-s)).sum();
        let weights: f64 = world.stores().iter().map(|st| st.weight).sum();
        let sales_per_hour = events_per_hour * (1.0 - config.commerce.order_fraction).max(0.05);
        let mut series = Vec::with_capacity(world.stores().len() * per_store);
        let mut index = HashMap::with_capacity(series.capacity());
        for store in world.stores() {
            let store_share = store.weight / weights.max(f64::MIN_POSITIVE);
            for rank in 0..per_store {
                let Some(product) = world.product_at_rank(rank) else {
                    break;
                };
                let share = ((rank + 1) as f64).powf(-s) / total;
                let per_day = sales_per_hour * 24.0 * store_share * share * MEAN_QTY;
                let lead_time_days = 2 + below(&mut rng, 6) as i64;
                let stockout = unit(&mut rng) < config.stock.stockout_fraction;
                // At least one unit; at most a trillion, so sums of levels cannot overflow.
                let days = |d: f64| (per_day * d).ceil().clamp(1.0, 1e12) as i64;
                let (level, reorder_at, order_qty) = if stockout {
                    // Half a day to a day and a half of stock, and no more ever.
                    (days(0.5 + unit(&mut rng)), 0, 0)
                } else {
                    // Reordered with two days of safety beyond the lead time; two weeks a delivery.
                    let reorder_at = days(lead_time_days as f64 + 2.0);
                    (
                        reorder_at + days(2.0 + 8.0 * unit(&mut rng)),
                        reorder_at,
                        days(14.0),
                    )
                };
                index.insert((store.info.store_id, product.sku), series.len() as u32);
                series.push(Series {
                    store_id: store.info.store_id,
                    sku: product.sku,
                    level,
                    reorder_at,
                    order_qty,
                    lead_time_days,
                    stockout,
                    pending: false,
                });
            }
        }
        let interval_ms = (config.stock.interval_hours * HOUR_MS).round().max(1.0) as i64;
        Some(Self {
            series,
            index,
            interval_ms,
            rng,
            started: false,
        })
    }

    /// Number of series, and of those never reordered.
    pub(crate) fn counts(&self) -> (u64, u64) {
        let stockouts = self.series.iter().filter(|s| s.stockout).count();
        (self.series.len() as u64, stockouts as u64)
    }

    /// The (store, SKU) of every series never reordered.
    #[cfg(test)]
    pub(crate) fn stockouts(&self) -> Vec<(i64, i64)> {
        self.series
            .iter()
            .filter(|s| s.stockout)
            .map(|s| (s.store_id, s.sku))
            .collect()
    }

    /// Queues every series' first count, spread over the first interval after `now`; once.
    pub(crate) fn start(&mut self, now: i64, schedule: &mut Schedule) {
        if self.started {
            return;
        }
        self.started = true;
        for i in 0..self.series.len() {
            let offset = below(&mut self.rng, self.interval_ms as usize) as i64;
            schedule.push(now.saturating_add(offset), Due::Snapshot(i as u32));
        }
    }

    /// Books a sale line (`qty` < 0 for a return) at `now`: the level never drops below 0
    /// (what the count cannot find, the till sold from a miscount), and a series under its
    /// reorder level gets a delivery after its lead time.
    pub(crate) fn on_sale(&mut self, store_id: i64, sku: i64, qty: i32, now: i64, schedule: &mut Schedule) {
        let Some(&i) = self.index.get(&(store_id, sku)) else {
            return;
        };
        let s = &mut self.series[i as usize];
        s.level = s.level.saturating_sub(i64::from(qty)).max(0);
        if !s.stockout && !s.pending && s.level < s.reorder_at {
            s.pending = true;
            schedule.push(now.saturating_add(s.lead_time_days * DAY_MS), Due::Receipt(i));
        }
    }

    /// The count of series `i` at `now`; queues the next one.
    pub(crate) fn snapshot(&mut self, i: u32, now: i64, schedule: &mut Schedule) -> Option<Inventory> {
        schedule.push(now.saturating_add(self.interval_ms), Due::Snapshot(i));
        self.series.get(i as usize).map(|s| inventory(s, "snapshot"))
    }

    /// The delivery of series `i`'s reorder.
    pub(crate) fn receipt(&mut self, i: u32) -> Option<Inventory> {
        let s = self.series.get_mut(i as usize)?;
        s.level = s.level.saturating_add(s.order_qty);
        s.pending = false;
        Some(inventory(s, "receipt"))
    }
}

fn inventory(s: &Series, reason: &str) -> Inventory {
    Inventory {
        store_id: s.store_id,
        sku: s.sku,
        on_hand: s.level.max(0),
        reason: Some(reason.to_owned()),
        lead_time_days: Some(s.lead_time_days),
    }
}
