//! The inventory-at-risk pipeline: one row per store and SKU with the last ERP stock snapshot,
//! the units sold after it, the projected stock, the 7-day velocity, days of cover and a risk
//! level that alerts only when it gets worse (ADR 0024).
//!
//! Pure logic, run by the store inside the landing transaction like the order pipeline
//! ([`super::orders`]). The difference: a risk level is a judgement *at a point in time*, so
//! events are applied in event-time order. Each row keeps the events newer than the pipeline
//! time in a small pending list (a few seconds of events: the out-of-orderness), and releases
//! them in `(ts, event id)` order once the pipeline time (the smallest watermark of the `sales`
//! and `inventory` partitions) passes them. The row and its alerts are then those of a scan of
//! the events sorted by event time, whatever order they arrived in and however the batches
//! were cut. An event that arrives after the pipeline time passed it (a late event) is applied
//! at once, out of order.
//!
//! Only series the ERP reports on have a row: a sale of a SKU whose store never sent a
//! snapshot is not stock information. When a series' first snapshot comes, the store hands
//! over its sales already in `sales_raw` from the velocity window before it (the backfill), so
//! the velocity counts them and a sale that arrived before the snapshot but happened after it
//! still counts against it: the row is the same whichever came first.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::orders::{alert_id, Alert};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Risk levels, from best to worst. Index = rank.
pub const LEVELS: [&str; 4] = ["ok", "low", "critical", "stockout"];

/// The pipeline's settings, as the store needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct StockRules {
    /// Days of sales the velocity is measured over.
    pub velocity_days: i64,
    /// Lead time of a series whose snapshots do not say, days.
    pub default_lead_time_days: i64,
    /// Days of cover beyond the lead time under which a series is `low`.
    pub safety_days: i64,
}

/// What one new event says about a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StockFactKind {
    /// An ERP stock level.
    Snapshot {
        /// Units on hand.
        on_hand: i64,
        /// Reorder lead time, days, if the ERP sent one.
        lead_time_days: Option<i64>,
    },
    /// A sale (positive) or a return or void (negative) of the series.
    Sale {
        /// Units, signed.
        qty: i64,
    },
}

/// One new event's input to the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockFact {
    /// The event (also the tie-break between events of one millisecond).
    pub event_id: Uuid,
    /// Store.
    pub store_id: i64,
    /// SKU.
    pub sku: i64,
    /// Event time, epoch milliseconds.
    pub ts: i64,
    /// What it says.
    pub kind: StockFactKind,
}

/// The pipeline's input for one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct StockBatch {
    /// Settings.
    pub rules: Arc<StockRules>,
    /// Facts of the batch's inventory events and sales, in log order.
    pub facts: Vec<StockFact>,
    /// Pipeline time after the batch (`None`: nothing delivered yet).
    pub time: Option<i64>,
}

/// The snapshot a row projects from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Its event time.
    pub ts: i64,
    /// Units on hand then.
    pub on_hand: i64,
    /// Lead time it gave, days.
    pub lead_time_days: Option<i64>,
}

/// One series' row (serialised in the row's `fold` column).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StockState {
    /// Store.
    pub store_id: i64,
    /// SKU.
    pub sku: i64,
    /// Events not yet released (event time after the pipeline time when they came).
    pub pending: Vec<StockFact>,
    /// The pipeline time up to which events are applied.
    pub released_until: i64,
    /// The latest snapshot applied.
    pub snapshot: Option<Snapshot>,
    /// Units sold (net) with event time after the snapshot.
    pub sold_after: i64,
    /// Net units per hour (epoch hour index) over the velocity window ending at `as_of`.
    /// Stored densely (first hour, then one number per hour): a map of 168 hours as JSON
    /// object keys made each row about 2.5 KB, past PostgreSQL's TOAST threshold, and the
    /// compression of every row version was most of the pipeline's cost (measured with `bench
    /// --compare-pipelines`).
    #[serde(with = "dense_hours")]
    pub hours: BTreeMap<i64, i64>,
    /// Event time of the latest applied event.
    pub as_of: i64,
    /// Current risk level, by [`LEVELS`] index.
    pub level: u8,
    /// Event time the series first left `ok` in its current non-ok episode.
    pub first_flagged_at: Option<i64>,
}

impl StockState {
    /// A series seen for the first time.
    pub fn new(store_id: i64, sku: i64) -> Self {
        Self {
            store_id,
            sku,
            released_until: i64::MIN,
            as_of: i64::MIN,
            ..Self::default()
        }
    }

    /// Units over the velocity window ending at `as_of`.
    pub fn units_in_window(&self) -> i64 {
        self.hours.values().sum()
    }

    /// Units per day over the window (`units / days`).
    pub fn velocity(&self, rules: &StockRules) -> f64 {
        self.units_in_window() as f64 / rules.velocity_days.max(1) as f64
    }

    /// Stock on hand now: the snapshot minus what sold after it.
    pub fn projected(&self) -> Option<i64> {
        self.snapshot.map(|s| s.on_hand - self.sold_after)
    }

    /// Days the projected stock lasts at the velocity; `None` when nothing sells (never
    /// "zero days": no sales is not a stock-out).
    pub fn days_of_cover(&self, rules: &StockRules) -> Option<f64> {
        let v = self.velocity(rules);
        let p = self.projected()?;
        (v > 0.0).then(|| p.max(0) as f64 / v)
    }

    /// The lead time in force, days.
    pub fn lead_time(&self, rules: &StockRules) -> i64 {
        self.snapshot
            .and_then(|s| s.lead_time_days)
            .unwrap_or(rules.default_lead_time_days)
    }

    /// Units that last the lead time at the velocity (rounded up).
    pub fn reorder_point(&self, rules: &StockRules) -> i64 {
        (self.velocity(rules) * self.lead_time(rules) as f64).ceil() as i64
    }

    /// The level the row is at: `stockout` when nothing is left, `critical` when it runs out
    /// by the time a reorder placed now arrives (cover <= lead time), `low` when it does within
    /// the safety days after that, else `ok` (also when nothing sells: cover unknown).
    pub fn judge(&self, rules: &StockRules) -> u8 {
        let Some(p) = self.projected() else { return 0 };
        if p <= 0 {
            return 3;
        }
        let lead = self.lead_time(rules) as f64;
        match self.days_of_cover(rules) {
            Some(c) if c <= lead => 2,
            Some(c) if c <= lead + rules.safety_days as f64 => 1,
            _ => 0,
        }
    }

    fn apply_now(&mut self, f: &StockFact, rules: &StockRules, alerts: &mut Vec<Alert>) {
        match f.kind {
            StockFactKind::Snapshot {
                on_hand,
                lead_time_days,
            } => {
                if self.snapshot.is_none_or(|s| f.ts >= s.ts) {
                    self.snapshot = Some(Snapshot {
                        ts: f.ts,
                        on_hand,
                        lead_time_days,
                    });
                    self.sold_after = 0;
                }
            }
            StockFactKind::Sale { qty } => {
                if self.snapshot.is_some_and(|s| f.ts > s.ts) {
                    self.sold_after += qty;
                }
                let window_start = self.as_of.max(f.ts).div_euclid(HOUR_MS) - rules.velocity_days * 24 + 1;
                let hour = f.ts.div_euclid(HOUR_MS);
                if hour >= window_start {
                    *self.hours.entry(hour).or_default() += qty;
                }
            }
        }
        self.as_of = self.as_of.max(f.ts);
        let window_start = self.as_of.div_euclid(HOUR_MS) - rules.velocity_days * 24 + 1;
        self.hours = self.hours.split_off(&window_start);
        let level = self.judge(rules);
        if level > self.level {
            let snap = self.snapshot.map_or(0, |s| s.ts);
            let subject = format!("{}:{}", self.store_id, self.sku);
            alerts.push(Alert {
                alert_id: alert_id(
                    "stock_risk",
                    &subject,
                    &format!("{}:{snap}", LEVELS[usize::from(level)]),
                ),
                kind: "stock_risk",
                severity: if level >= 2 { "critical" } else { "warning" },
                message: format!(
                    "store {} SKU {}: stock {} ({} projected on hand, {} days of cover, lead time {} days)",
                    self.store_id,
                    self.sku,
                    LEVELS[usize::from(level)],
                    self.projected().unwrap_or(0),
                    self.days_of_cover(rules)
                        .map_or_else(|| "unknown".to_owned(), |c| format!("{c:.1}")),
                    self.lead_time(rules)
                ),
                subject,
                at: f.ts,
            });
        }
        if level > 0 && self.level == 0 {
            self.first_flagged_at = Some(f.ts);
        } else if level == 0 {
            self.first_flagged_at = None;
        }
        self.level = level;
    }

    /// Takes a new fact: pending until the pipeline time passes it, at once if it already did.
    pub fn take(&mut self, f: StockFact, rules: &StockRules, alerts: &mut Vec<Alert>) {
        if f.ts <= self.released_until {
            self.apply_now(&f, rules, alerts); // late: out of order
        } else {
            self.pending.push(f);
        }
    }

    /// Applies, in `(ts, event id)` order, the pending events the pipeline time `now` passed.
    pub fn release(&mut self, now: i64, rules: &StockRules, alerts: &mut Vec<Alert>) {
        if now <= self.released_until {
            return;
        }
        self.released_until = now;
        if self.pending.iter().all(|f| f.ts > now) {
            return;
        }
        let mut due: Vec<StockFact> = Vec::new();
        self.pending.retain(|f| {
            let keep = f.ts > now;
            if !keep {
                due.push(*f);
            }
            keep
        });
        due.sort_by_key(|f| (f.ts, f.event_id));
        for f in &due {
            self.apply_now(f, rules, alerts);
        }
    }

    /// The pipeline time at which pending events fall due (`None`: nothing pending).
    pub fn next_check(&self) -> Option<i64> {
        self.pending.iter().map(|f| f.ts).min()
    }
}

/// `hours` as `[first_hour, units of first_hour, units of the next hour, ...]`.
mod dense_hours {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hours: &BTreeMap<i64, i64>, s: S) -> Result<S::Ok, S::Error> {
        let mut dense = Vec::new();
        if let (Some((&first, _)), Some((&last, _))) = (hours.first_key_value(), hours.last_key_value()) {
            dense.reserve(usize::try_from(last - first + 2).unwrap_or(0));
            dense.push(first);
            dense.extend((first..=last).map(|h| hours.get(&h).copied().unwrap_or(0)));
        }
        s.collect_seq(dense)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<i64, i64>, D::Error> {
        let dense = Vec::<i64>::deserialize(d)?;
        let Some((&first, units)) = dense.split_first() else {
            return Ok(BTreeMap::new());
        };
        Ok((first..)
            .zip(units.iter().copied())
            .filter(|&(_, u)| u != 0)
            .collect())
    }
}

/// What a batch changes.
#[derive(Debug, Default)]
pub struct StockChanges {
    /// Rows that changed.
    pub rows: Vec<StockState>,
    /// Alerts raised.
    pub alerts: Vec<Alert>,
}

impl StockBatch {
    /// The series the batch's new facts touch, each once, sorted.
    pub fn touched(&self, is_new: impl Fn(&Uuid) -> bool) -> Vec<(i64, i64)> {
        let mut keys: Vec<(i64, i64)> = self
            .facts
            .iter()
            .filter(|f| is_new(&f.event_id))
            .map(|f| (f.store_id, f.sku))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// The series this batch creates: touched by a snapshot of a new event, with no row in
    /// `loaded`. The store reads their backfill (sales in `sales_raw` from the velocity window
    /// before the snapshot on) and passes it to [`Self::run`].
    pub fn created(&self, loaded: &[StockState], is_new: impl Fn(&Uuid) -> bool) -> Vec<(i64, i64, i64)> {
        let mut out: BTreeMap<(i64, i64), i64> = BTreeMap::new();
        for f in self.facts.iter().filter(|f| is_new(&f.event_id)) {
            if matches!(f.kind, StockFactKind::Snapshot { .. })
                && !loaded.iter().any(|s| (s.store_id, s.sku) == (f.store_id, f.sku))
            {
                let from = f.ts - self.rules.velocity_days * DAY_MS;
                let e = out.entry((f.store_id, f.sku)).or_insert(from);
                *e = (*e).min(from);
            }
        }
        out.into_iter()
            .map(|((store, sku), from)| (store, sku, from))
            .collect()
    }

    /// Runs the pipeline over `loaded` (stored rows of touched series and of those with
    /// pending events due) and `backfill` (the stored sales of the series this batch
    /// creates). A sale of a series with no row and no snapshot in the batch is not stock
    /// information and is passed over (the backfill picks it up if a snapshot comes later).
    pub fn run(
        &self,
        loaded: Vec<StockState>,
        backfill: Vec<StockFact>,
        is_new: impl Fn(&Uuid) -> bool,
    ) -> StockChanges {
        let rules = &*self.rules;
        let mut rows: BTreeMap<(i64, i64), (StockState, bool)> = loaded
            .into_iter()
            .map(|s| ((s.store_id, s.sku), (s, false)))
            .collect();
        let mut out = StockChanges::default();
        let mut seen = std::collections::HashSet::new();
        let snapshots: std::collections::HashSet<(i64, i64)> = self
            .facts
            .iter()
            .filter(|f| matches!(f.kind, StockFactKind::Snapshot { .. }))
            .map(|f| (f.store_id, f.sku))
            .collect();
        let facts = backfill
            .iter()
            .chain(self.facts.iter().filter(|f| is_new(&f.event_id)));
        for f in facts {
            if !seen.insert(f.event_id) {
                continue; // the same event twice in one batch: once
            }
            let key = (f.store_id, f.sku);
            if !rows.contains_key(&key) && !snapshots.contains(&key) {
                continue;
            }
            let (state, changed) = rows
                .entry(key)
                .or_insert_with(|| (StockState::new(f.store_id, f.sku), false));
            state.take(*f, rules, &mut out.alerts);
            *changed = true;
        }
        if let Some(now) = self.time {
            for (state, changed) in rows.values_mut() {
                let before = (state.pending.len(), out.alerts.len());
                state.release(now, rules, &mut out.alerts);
                *changed |= (state.pending.len(), out.alerts.len()) != before;
            }
        }
        out.rows = rows.into_values().filter(|(_, c)| *c).map(|(s, _)| s).collect();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Arc<StockRules> {
        Arc::new(StockRules {
            velocity_days: 7,
            default_lead_time_days: 3,
            safety_days: 3,
        })
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn snap(n: u128, ts: i64, on_hand: i64) -> StockFact {
        StockFact {
            event_id: id(n),
            store_id: 1,
            sku: 2,
            ts,
            kind: StockFactKind::Snapshot {
                on_hand,
                lead_time_days: None,
            },
        }
    }

    fn sale(n: u128, ts: i64, qty: i64) -> StockFact {
        StockFact {
            event_id: id(n),
            store_id: 1,
            sku: 2,
            ts,
            kind: StockFactKind::Sale { qty },
        }
    }

    /// Runs `facts` in batches of `cut`, the time after each batch being its largest event
    /// time (minus nothing), then a final sweep far ahead.
    fn run(facts: &[StockFact], cut: usize) -> (StockState, Vec<Uuid>) {
        let mut rows: Vec<StockState> = Vec::new();
        let mut alerts = Vec::new();
        let mut max = i64::MIN;
        for chunk in facts.chunks(cut) {
            max = max.max(chunk.iter().map(|f| f.ts).max().unwrap_or(max));
            let batch = StockBatch {
                rules: rules(),
                facts: chunk.to_vec(),
                time: Some(max - 1),
            };
            let changes = batch.run(std::mem::take(&mut rows), Vec::new(), |_| true);
            alerts.extend(changes.alerts.iter().map(|a| a.alert_id));
            rows = changes.rows;
            if rows.is_empty() {
                panic!("the series must exist from its first snapshot on");
            }
        }
        let fin = StockBatch {
            rules: rules(),
            facts: Vec::new(),
            time: Some(i64::MAX / 2),
        };
        let changes = fin.run(rows.clone(), Vec::new(), |_| true);
        alerts.extend(changes.alerts.iter().map(|a| a.alert_id));
        let row = changes.rows.into_iter().next().unwrap_or_else(|| rows.remove(0));
        alerts.sort();
        (row, alerts)
    }

    #[test]
    fn only_sales_after_the_snapshot_count_and_no_sales_is_not_a_stockout() {
        let r = rules();
        let (row, alerts) = run(&[snap(1, 10 * HOUR_MS, 50)], 1);
        assert_eq!(row.projected(), Some(50));
        assert_eq!(row.days_of_cover(&r), None, "nothing sold: unknown, not zero");
        assert_eq!(row.judge(&r), 0);
        assert!(alerts.is_empty());
        let (row, _) = run(
            &[
                snap(1, 10 * HOUR_MS, 50),
                sale(2, 10 * HOUR_MS, 5),
                sale(3, 11 * HOUR_MS, 4),
            ],
            1,
        );
        assert_eq!(
            row.projected(),
            Some(46),
            "the sale at the snapshot's own time is in it"
        );
        assert_eq!(row.units_in_window(), 9, "both count for the velocity");
        let (row, alerts) = run(&[snap(1, 10 * HOUR_MS, 0)], 1);
        assert_eq!(row.level, 3, "nothing on hand is a stock-out");
        assert_eq!(alerts.len(), 1);
    }

    #[test]
    fn the_row_and_alerts_do_not_depend_on_arrival_order_or_batch_cuts() {
        // 7 units a day for a week, a snapshot of 40, then sales drain it.
        let mut facts = vec![snap(1, 0, 40)];
        for h in 0..200 {
            if h == 150 {
                facts.push(snap(2, 150 * HOUR_MS, 30));
            }
            facts.push(sale(
                100 + h as u128,
                h * HOUR_MS + 1,
                if h % 3 == 0 { 1 } else { 0 },
            ));
        }
        let (base, base_alerts) = run(&facts, facts.len());
        assert!(!base_alerts.is_empty());
        for cut in [1, 7, 50] {
            let (row, alerts) = run(&facts, cut);
            assert_eq!(row.projected(), base.projected(), "cut {cut}");
            assert_eq!(row.hours, base.hours, "cut {cut}");
            assert_eq!(alerts, base_alerts, "cut {cut}");
        }
        let mut shuffled = facts.clone();
        shuffled[1..].reverse();
        // Reversed after the first snapshot, in one batch: released in event-time order.
        let (row, alerts) = run(&shuffled, shuffled.len());
        assert_eq!(row.projected(), base.projected());
        assert_eq!(alerts, base_alerts);
    }

    #[test]
    fn an_alert_only_when_the_level_gets_worse_once_per_level_and_snapshot() {
        let r = rules();
        let mut row = StockState::new(1, 2);
        let mut alerts = Vec::new();
        row.take(snap(1, 0, 100), &r, &mut alerts);
        row.release(0, &r, &mut alerts);
        // 70 units over the week: 10 a day; 100 on hand at first is 10 days of cover: ok.
        for d in 0..7 {
            row.take(sale(10 + d as u128, d * DAY_MS + 1, 10), &r, &mut alerts);
        }
        row.release(7 * DAY_MS, &r, &mut alerts);
        assert_eq!(row.projected(), Some(30));
        assert_eq!(
            LEVELS[usize::from(row.level)],
            "critical",
            "3 days of cover = lead time"
        );
        let levels: Vec<&str> = alerts
            .iter()
            .map(|a| a.message.split(' ').nth(5).unwrap_or(""))
            .collect();
        assert_eq!(levels, ["low", "critical"], "{alerts:#?}");
        // A receipt brings it back to ok: no alert; sold down again: alerts again.
        row.take(snap(2, 7 * DAY_MS + 10, 200), &r, &mut alerts);
        row.release(7 * DAY_MS + 10, &r, &mut alerts);
        assert_eq!(row.level, 0);
        assert_eq!(row.first_flagged_at, None);
        assert_eq!(alerts.len(), 2);
        row.take(sale(50, 7 * DAY_MS + 20, 200), &r, &mut alerts);
        row.release(7 * DAY_MS + 20, &r, &mut alerts);
        assert_eq!(row.level, 3);
        assert_eq!(alerts.len(), 3, "straight to stockout: one alert");
        assert_eq!(row.first_flagged_at, Some(7 * DAY_MS + 20));
    }

    #[test]
    fn a_new_series_takes_its_backfill_once() {
        let batch = StockBatch {
            rules: rules(),
            facts: vec![snap(1, 10 * HOUR_MS, 20), sale(2, 11 * HOUR_MS, 3)],
            time: Some(12 * HOUR_MS),
        };
        assert_eq!(batch.created(&[], |_| true), [(1, 2, 10 * HOUR_MS - 7 * DAY_MS)]);
        // The backfill holds the batch's own sale (already in sales_raw) and an earlier one.
        let backfill = vec![
            sale(2, 11 * HOUR_MS, 3),
            sale(3, 12 * HOUR_MS - 1, 2),
            sale(4, HOUR_MS, 5),
        ];
        let changes = batch.run(Vec::new(), backfill, |_| true);
        let row = &changes.rows[0];
        assert_eq!(row.projected(), Some(15), "3 + 2 after the snapshot, once each");
        assert_eq!(row.units_in_window(), 10);
    }

    #[test]
    fn the_state_round_trips_through_its_dense_stored_form() {
        let mut row = StockState::new(1, 2);
        row.hours = [(100, 3), (101, -1), (140, 7)].into_iter().collect();
        row.pending.push(sale(9, 5, 1));
        let json = serde_json::to_string(&row).expect("json");
        assert!(json.contains("\"hours\":[100,3,-1,"), "{json}");
        assert_eq!(serde_json::from_str::<StockState>(&json).expect("back"), row);
        let empty = StockState::new(1, 2);
        let back: StockState =
            serde_json::from_str(&serde_json::to_string(&empty).expect("json")).expect("back");
        assert_eq!(back, empty);
    }

    #[test]
    fn a_sale_of_a_series_without_a_snapshot_makes_no_row() {
        let batch = StockBatch {
            rules: rules(),
            facts: vec![sale(1, 0, 1)],
            time: Some(10),
        };
        assert!(batch.run(Vec::new(), Vec::new(), |_| true).rows.is_empty());
    }
}
