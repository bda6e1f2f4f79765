//! The engine: per event, the windows it falls in, whether each is still open, and what it
//! contributes; per partition, the watermark.
//!
//! # Lateness is judged per partition
//! A partition's watermark is the largest event time it has delivered minus the allowed
//! out-of-orderness. An event is late for a window when `window end + grace <= watermark` of
//! its own partition, taken before the event. That depends only on the partition's record
//! order, which the log fixes forever, so the verdict is the same on the first run, after a
//! crash (the watermark state commits with the batch), after a rebalance to another instance,
//! and on a replay. A stalled or idle partition cannot hold another partition's windows open,
//! because no partition waits for another (ADR 0004). The combined watermark (minimum over
//! partitions that are not idle) says which windows are final everywhere; it is reported, not
//! used to drop data.
//!
//! The engine is pure: no I/O, no clock but the `Instant` a caller passes, so golden-file tests
//! drive it exactly.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use retail_core::event::topics;
use retail_core::{Event, TopicPartition};
use retail_sink::derived::fast_hash::{FastMap, FastSet};
use retail_sink::derived::orders::{OrderBatch, OrderFact, OrderRules};
use retail_sink::derived::{AggregateTable, Derived, LateEvent, PartitionWatermark, Value};
use uuid::Uuid;

use super::catalog::{row_of, Catalog};
use super::compile::{Compiled, Filter};
use super::field::{Dimension, Field};
use super::spec::{LatePolicy, ProcessingConfig};
use crate::pipelines::fraud::{self, FraudPipeline};
use crate::pipelines::orders::{self, idle_advance, OrderPipeline};
use crate::pipelines::stock::{self, StockPipeline};
use retail_sink::derived::fraud::{FraudBatch, FraudRule, PaymentFact};
use retail_sink::derived::stock::{StockBatch, StockFact, StockRules};
use retail_sink::outbox::Routes;

/// How much an idle pipeline time must advance before a batch with no records carries it to the
/// store (the store then sweeps for verdicts due).
const TICK_STEP_MS: i64 = 1_000;

/// How long the engine remembers event ids to skip duplicates before the store's ledger does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupScope {
    /// Within one batch (the landing: the store's ledger covers the rest).
    Batch,
    /// For the whole run (a replay writes no raw rows, so no ledger sees its events).
    Run,
}

#[derive(Debug, Clone, Copy)]
struct Clock {
    max_event_ts: i64,
    last_record: Instant,
}

/// Counts of late events, by aggregate and what was done with them.
pub type LateCounts = HashMap<(Arc<str>, &'static str), u64>;

/// The stream processor's state.
#[derive(Debug)]
pub struct Engine {
    aggregates: Vec<Compiled>,
    out_of_orderness: i64,
    // The maps looked up per event use the fast hasher (profiled: SipHash was the largest cost).
    clocks: FastMap<TopicPartition, Clock>,
    touched: FastSet<TopicPartition>,
    /// Topics some aggregate reads; only their partitions keep a watermark.
    topics: FastSet<String>,
    /// Dimensions each topic's aggregates join.
    dimensions: HashMap<String, HashSet<Dimension>>,
    catalog: Catalog,
    seen: FastSet<Uuid>,
    scope: DedupScope,
    late: LateCounts,
    /// Reused per event for the group key and measure inputs, so computing them allocates
    /// nothing once the buffers have grown.
    scratch: Scratch,
    /// The order-lifecycle pipeline, when on (its rows live in the store).
    orders: Option<OrderPipeline>,
    /// The inventory-at-risk pipeline, when on (its rows live in the store).
    stock: Option<StockPipeline>,
    /// The fraud rules, when on (their rows live in the store).
    fraud: Option<FraudPipeline>,
    idle_timeout: Duration,
    /// The `now` of the last event processed: the batch's.
    last_now: Option<Instant>,
    /// The notification channels the pipelines' alerts go to (ADR 0026), handed to the store
    /// with every batch that carries a pipeline's input.
    notifications: Option<Arc<Routes>>,
}

#[derive(Debug, Default)]
struct Scratch {
    key: Vec<Value>,
    values: Vec<Value>,
    /// The current event's field values by [`Field`] index, each computed once however many
    /// aggregates read it (the built-in four read `amount` and `country` several times).
    fields: Vec<Option<Value>>,
    /// Sizes of the last batch's contributions, to reserve the next batch's buffers at once.
    last_sizes: (usize, usize),
}

impl Scratch {
    fn field(&mut self, f: Field, event: &Event, catalog: &Catalog) -> Value {
        if self.fields.len() < Field::COUNT {
            self.fields.resize(Field::COUNT, None);
        }
        self.fields[f as usize]
            .get_or_insert_with(|| f.value(event, catalog))
            .clone()
    }
}

impl Engine {
    /// An engine running `aggregates`.
    pub fn new(aggregates: Vec<Compiled>, config: &ProcessingConfig, scope: DedupScope) -> Self {
        let mut topics: FastSet<String> = aggregates.iter().map(|a| a.topic.clone()).collect();
        let orders = config.orders.enabled.then(|| OrderPipeline::new(&config.orders));
        if orders.is_some() {
            // Their partitions keep a watermark: the pipeline time is made of them.
            topics.insert(topics::ORDERS.to_owned());
            topics.insert(topics::PAYMENTS.to_owned());
        }
        let stock = config.stock.enabled.then(|| StockPipeline::new(&config.stock));
        if stock.is_some() {
            topics.insert(topics::SALES.to_owned());
            topics.insert(topics::INVENTORY.to_owned());
        }
        // The rules were checked when the configuration was loaded (`check-config`, start).
        let fraud = config
            .fraud
            .enabled
            .then(|| FraudPipeline::with_rules(config.fraud.compile().unwrap_or_default()));
        if fraud.is_some() {
            topics.insert(topics::PAYMENTS.to_owned());
        }
        let mut dimensions: HashMap<String, HashSet<Dimension>> = HashMap::new();
        for a in &aggregates {
            dimensions
                .entry(a.topic.clone())
                .or_default()
                .extend(a.dimensions());
        }
        Self {
            aggregates,
            out_of_orderness: i64::try_from(config.max_out_of_orderness_ms).unwrap_or(i64::MAX),
            clocks: FastMap::default(),
            touched: FastSet::default(),
            topics,
            dimensions,
            catalog: Catalog::default(),
            seen: FastSet::default(),
            scope,
            late: HashMap::new(),
            scratch: Scratch::default(),
            orders,
            stock,
            fraud,
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            last_now: None,
            notifications: None,
        }
    }

    /// Routes the alerts the retail pipelines raise to these channels: the store writes each
    /// new alert's deliveries in the batch's transaction (ADR 0026).
    pub fn with_notifications(mut self, routes: Routes) -> Self {
        self.notifications = (!routes.is_empty()).then(|| Arc::new(routes));
        self
    }

    /// The tables the store must create, in contribution index order.
    pub fn tables(&self) -> Vec<AggregateTable> {
        self.aggregates.iter().map(|a| a.table_def.clone()).collect()
    }

    /// Whether no aggregate runs (then the landing prepares no tables: the store's list of
    /// aggregate tables is another landing's).
    pub fn is_idle(&self) -> bool {
        self.aggregates.is_empty()
    }

    /// Whether partition watermarks matter: an aggregate or a retail pipeline runs, so the
    /// landing restores them on assignment.
    pub fn keeps_watermarks(&self) -> bool {
        !self.aggregates.is_empty() || self.orders.is_some() || self.stock.is_some() || self.fraud.is_some()
    }

    /// The catalog (for refreshes after a join miss).
    pub fn catalog_mut(&mut self) -> &mut Catalog {
        &mut self.catalog
    }

    /// Restores partition watermarks from the store (on start and on assignment).
    pub fn restore(&mut self, marks: &[PartitionWatermark], now: Instant) {
        for m in marks {
            self.clocks.insert(
                m.tp.clone(),
                Clock {
                    max_event_ts: m.max_event_ts,
                    last_record: now,
                },
            );
        }
    }

    /// Drops a partition's state (it was revoked).
    pub fn forget(&mut self, tp: &TopicPartition) {
        self.clocks.remove(tp);
        self.touched.remove(tp);
    }

    /// Whether `event` from `topic` needs a catalog row the catalog lacks: the caller may
    /// refresh the catalog and wait a bounded time before processing it.
    pub fn misses_join(&self, topic: &str, event: &Event) -> bool {
        let Some(dims) = self.dimensions.get(topic) else {
            return false;
        };
        let retail_core::EventBody::Sale(s) = &event.body else {
            return false;
        };
        dims.iter().any(|d| match d {
            Dimension::Store => self.catalog.store(s.store_id).is_none(),
            Dimension::Seller => s.seller_id.is_some_and(|id| self.catalog.seller(id).is_none()),
            Dimension::Product => self.catalog.product(s.sku).is_none(),
        })
    }

    /// Processes one valid event read at `offset` of `tp`, adding what it derives to `out`.
    pub fn process(
        &mut self,
        tp: &TopicPartition,
        offset: i64,
        event: &Event,
        now: Instant,
        out: &mut Derived,
    ) {
        if let Some(row) = row_of(&event.body) {
            self.catalog.apply(&row);
            out.catalog.push(row);
            return;
        }
        if !self.topics.contains(&tp.topic) {
            return;
        }
        self.last_now = Some(now);
        if let Some(p) = self.orders.as_mut() {
            p.facts.extend(orders::fact_of(event));
        }
        if let Some(p) = self.stock.as_mut() {
            p.facts.extend(stock::fact_of(event));
        }
        if let Some(p) = self.fraud.as_mut() {
            p.facts.extend(fraud::fact_of(event));
        }
        let ts = event.ts.timestamp_millis();
        let watermark = self
            .clocks
            .get(tp)
            .map(|c| c.max_event_ts.saturating_sub(self.out_of_orderness));
        if self.seen.insert(event.event_id) {
            if out.contributions.is_empty() {
                let (entries, values) = self.scratch.last_sizes;
                out.contributions.reserve(entries, values);
            }
            self.scratch.fields.fill(None);
            for a in self.aggregates.iter().filter(|a| a.topic == tp.topic) {
                contribute(
                    a,
                    tp,
                    offset,
                    event,
                    ts,
                    watermark,
                    &self.catalog,
                    out,
                    &mut self.late,
                    &mut self.scratch,
                );
            }
        }
        // Per-event path: look up before inserting, so the partition name is cloned only the
        // first time a partition is seen, not per event.
        match self.clocks.get_mut(tp) {
            Some(clock) => {
                clock.max_event_ts = clock.max_event_ts.max(ts);
                clock.last_record = now;
            }
            None => {
                self.clocks.insert(
                    tp.clone(),
                    Clock {
                        max_event_ts: ts,
                        last_record: now,
                    },
                );
            }
        }
        if !self.touched.contains(tp) {
            self.touched.insert(tp.clone());
        }
    }

    /// Ends a batch: the watermark state of every partition it touched goes into `out`, so it
    /// commits with the batch.
    pub fn end_batch(&mut self, out: &mut Derived) {
        self.scratch.last_sizes = (out.contributions.len(), out.contributions.value_count());
        for tp in self.touched.drain() {
            if let Some(c) = self.clocks.get(&tp) {
                out.watermarks.push(PartitionWatermark {
                    tp,
                    max_event_ts: c.max_event_ts,
                });
            }
        }
        out.watermarks.sort_by(|a, b| a.tp.cmp(&b.tp));
        if self.scope == DedupScope::Batch {
            self.seen.clear();
        }
        let now = self.last_now;
        let time = now.and_then(|now| self.order_time(now));
        out.orders = self.orders.as_mut().and_then(|p| p.end_batch(time, order_batch));
        let time = now.and_then(|now| self.fraud_time(now));
        out.fraud = self.fraud.as_mut().and_then(|p| p.end_batch(time, fraud_batch));
        let time = now.and_then(|now| self.stock_time(now));
        out.stock = self.stock.as_mut().and_then(|p| p.end_batch(time, stock_batch));
        if out.orders.is_some() || out.stock.is_some() || out.fraud.is_some() {
            out.notifications.clone_from(&self.notifications);
        }
    }

    /// The fraud rules' time at `now`: the smallest watermark of the `payments` partitions.
    pub fn fraud_time(&self, now: Instant) -> Option<i64> {
        self.fraud.as_ref()?;
        self.pipeline_time(&[topics::PAYMENTS], now)
    }

    /// The stock pipeline's time at `now`: the smallest watermark of the `sales` and
    /// `inventory` partitions, idle ones advancing with the wall clock.
    pub fn stock_time(&self, now: Instant) -> Option<i64> {
        self.stock.as_ref()?;
        self.pipeline_time(&[topics::SALES, topics::INVENTORY], now)
    }

    fn pipeline_time(&self, of: &[&str], now: Instant) -> Option<i64> {
        self.clocks
            .iter()
            .filter(|(tp, _)| of.contains(&tp.topic.as_str()))
            .map(|(_, c)| {
                let idle = idle_advance(now.saturating_duration_since(c.last_record), self.idle_timeout);
                c.max_event_ts
                    .saturating_sub(self.out_of_orderness)
                    .saturating_add(idle)
            })
            .min()
    }

    /// The order pipeline's time at `now` (see `pipelines::orders`): the smallest watermark
    /// of the `orders` and `payments` partitions, idle ones advancing with the wall clock.
    pub fn order_time(&self, now: Instant) -> Option<i64> {
        self.orders.as_ref()?;
        self.pipeline_time(&[topics::ORDERS, topics::PAYMENTS], now)
    }

    /// With no records arriving: the derived data of an empty batch that carries the retail
    /// pipelines' times forward, when idleness moved one by a second or more (so verdicts of a
    /// quiet stream still fall due). `None`: nothing to hand over.
    pub fn tick(&mut self, now: Instant) -> Option<Derived> {
        let mut out = Derived::default();
        let time = self.order_time(now);
        out.orders = self
            .orders
            .as_mut()
            .and_then(|p| p.tick(time, TICK_STEP_MS, order_batch));
        let time = self.stock_time(now);
        out.stock = self
            .stock
            .as_mut()
            .and_then(|p| p.tick(time, TICK_STEP_MS, stock_batch));
        let time = self.fraud_time(now);
        out.fraud = self
            .fraud
            .as_mut()
            .and_then(|p| p.tick(time, TICK_STEP_MS, fraud_batch));
        if out.is_empty() {
            return None;
        }
        out.notifications.clone_from(&self.notifications);
        Some(out)
    }

    /// Late events counted since the last call, by aggregate and outcome (`recorded`, `applied`).
    pub fn take_late_counts(&mut self) -> LateCounts {
        std::mem::take(&mut self.late)
    }

    /// A partition's watermark, if it delivered anything.
    pub fn watermark(&self, tp: &TopicPartition) -> Option<i64> {
        self.clocks
            .get(tp)
            .map(|c| c.max_event_ts.saturating_sub(self.out_of_orderness))
    }

    /// The combined watermark: the smallest watermark of partitions that delivered a record
    /// within `idle_timeout` of `now`; when every partition is idle, the largest (nothing is
    /// arriving that could be held back). Windows ending (plus grace) at or before it are final.
    pub fn combined_watermark(&self, now: Instant, idle_timeout: Duration) -> Option<i64> {
        let active = self
            .clocks
            .values()
            .filter(|c| now.saturating_duration_since(c.last_record) < idle_timeout)
            .map(|c| c.max_event_ts)
            .min();
        active
            .or_else(|| self.clocks.values().map(|c| c.max_event_ts).max())
            .map(|m| m.saturating_sub(self.out_of_orderness))
    }
}

/// Moves `time` forward to `candidate` (never back); whether it moved.
/// What each retail pipeline hands the store.
fn order_batch(rules: Arc<OrderRules>, facts: Vec<OrderFact>, time: Option<i64>) -> OrderBatch {
    OrderBatch { rules, facts, time }
}

fn stock_batch(rules: Arc<StockRules>, facts: Vec<StockFact>, time: Option<i64>) -> StockBatch {
    StockBatch { rules, facts, time }
}

fn fraud_batch(rules: Arc<Vec<FraudRule>>, facts: Vec<PaymentFact>, time: Option<i64>) -> FraudBatch {
    FraudBatch { rules, facts, time }
}

fn matches(filter: &Filter, event: &Event, catalog: &Catalog) -> bool {
    filter.iter().all(|(f, allowed)| f.is_in(event, catalog, allowed))
}

#[allow(clippy::too_many_arguments)]
fn contribute(
    a: &Compiled,
    tp: &TopicPartition,
    offset: i64,
    event: &Event,
    ts: i64,
    watermark: Option<i64>,
    catalog: &Catalog,
    out: &mut Derived,
    late: &mut LateCounts,
    scratch: &mut Scratch,
) {
    if !matches(&a.filter, event, catalog) {
        return;
    }
    let mut key = std::mem::take(&mut scratch.key);
    key.clear();
    for f in &a.keys {
        key.push(scratch.field(*f, event, catalog));
    }
    if key.contains(&Value::Null) {
        scratch.key = key;
        return; // like SQL's GROUP BY over rows WHERE key IS NOT NULL: documented in ADR 0004
    }
    let mut values = std::mem::take(&mut scratch.values);
    values.clear();
    for m in &a.measures {
        values.push(if !matches(&m.filter, event, catalog) {
            Value::Null
        } else {
            m.field
                .map_or(Value::Int(1), |f: Field| scratch.field(f, event, catalog))
        });
    }
    for (start, end) in a.window.containing(ts) {
        let closed = watermark.is_some_and(|w| end.saturating_add(a.grace) <= w);
        if closed {
            let outcome = match a.late {
                LatePolicy::Record => "recorded",
                LatePolicy::Update => "applied",
            };
            *late.entry((a.name.clone(), outcome)).or_default() += 1;
            if a.late == LatePolicy::Record {
                out.late.push(LateEvent {
                    event_id: event.event_id,
                    aggregate: a.name.clone(),
                    window_start: start,
                    window_end: end,
                    event_ts: ts,
                    watermark: watermark.unwrap_or(i64::MIN),
                    reason: format!(
                        "window closed: window end + grace ({} ms) was at or before the partition watermark",
                        a.grace
                    ),
                    tp: tp.clone(),
                    offset,
                });
                continue;
            }
        }
        out.contributions
            .add(event.event_id, a.table, (start, end), &key, &values);
    }
    scratch.key = key;
    scratch.values = values;
}
