//! What the dashboard shows, computed twice a second by one task for every open page.
//!
//! One [`Ticker`] reads the metrics every [`TICK`] and, while someone watches, asks the store
//! for its figures and publishes a [`Snapshot`] on a `watch` channel; every server-sent-events
//! stream just forwards the latest one. So the cost does not grow with the number of open
//! pages, a slow page cannot hold anything back (a `watch` keeps only the newest value), the
//! store sees a handful of small queries a second however many people watch, and none when
//! nobody does.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use retail_core::health::Status;
use retail_core::{Health, Metrics, Shutdown};
use serde::Serialize;
use tokio::sync::watch;
use utoipa::ToSchema;

use super::figures::{quantile_between, Figures};
use crate::api::{Alert, InventoryRisk, StateOrders};
use crate::controls::ControlStatus;

/// How often a snapshot is published.
pub const TICK: Duration = Duration::from_millis(500);
/// The latency percentile is taken over this much recent history.
const LATENCY_WINDOW: Duration = Duration::from_secs(10);
/// A store answer slower than this is skipped for this tick; the page keeps the last one.
const STORE_BUDGET: Duration = Duration::from_millis(800);
/// The end-to-end objective the page measures p95 against (DESIGN.md: within seconds).
pub const LATENCY_OBJECTIVE_MS: f64 = 5_000.0;

/// Everything on the page at one moment.
#[derive(Debug, Clone, Serialize, Default, ToSchema)]
pub struct Snapshot {
    /// When it was taken (RFC 3339, UTC).
    pub at: String,
    /// Events per second the sources accepted over the last tick.
    pub in_per_s: f64,
    /// Rows per second landed over the last tick.
    pub out_per_s: f64,
    /// Totals since the process started.
    pub accepted: f64,
    /// Rows landed (sales and other events).
    pub landed: f64,
    /// Sales rows landed.
    pub sales_landed: f64,
    /// Dead letters.
    pub dead_letters: f64,
    /// Late events.
    pub late_events: f64,
    /// Records in the log not yet landed.
    pub lag: f64,
    /// Event-to-store p95 over the last seconds, in ms; `None` if nothing landed meanwhile.
    pub latency_p95_ms: Option<f64>,
    /// The objective p95 is held against.
    pub latency_objective_ms: f64,
    /// Each component's state, as on `/health`.
    #[schema(value_type = Object)]
    pub components: BTreeMap<String, Status>,
    /// Pause switches and rates, as `GET /api/v1/control` lists them.
    pub controls: Vec<ControlStatus>,
    /// The store's figures; `None` until the store answered once.
    pub store: Option<StoreFigures>,
    /// Why the store's figures are missing or old, if they are.
    pub store_error: Option<String>,
}

/// The aggregates the page shows, read from the store.
#[derive(Debug, Clone, Serialize, Default, PartialEq, ToSchema)]
pub struct StoreFigures {
    /// Today (UTC): revenue.
    pub revenue_today: f64,
    /// Today: units sold (returns subtract).
    pub units_today: i64,
    /// Today: number of sales.
    pub sales_today: i64,
    /// Today: number of returns.
    pub returns_today: i64,
    /// The last hour, per minute, all stores summed.
    pub per_minute: Vec<MinutePoint>,
    /// Today's top cities by revenue.
    pub top_cities: Vec<RankedRow>,
    /// Top sellers of the current 30-day window, every country.
    pub top_sellers: Vec<RankedRow>,
    /// Orders in each state of the order lifecycle, in lifecycle order, zero included.
    pub orders_by_state: Vec<StateOrders>,
    /// Orders of which only payments were seen (no state yet).
    pub orders_payment_only: i64,
    /// The latest alerts, newest first (`open`: the condition still holds).
    pub alerts: Vec<Alert>,
    /// Stock at risk: the worst store and SKU rows (`stockout` first, then `critical`, `low`),
    /// as `GET /api/v1/inventory-risks?at_risk=true` lists them.
    pub stock_at_risk: Vec<InventoryRisk>,
}

/// One minute of the sales chart.
#[derive(Debug, Clone, Serialize, Default, PartialEq, ToSchema)]
pub struct MinutePoint {
    /// Start of the minute, epoch ms.
    pub t: i64,
    /// Revenue in that minute.
    pub revenue: f64,
    /// Sales in that minute.
    pub sales: i64,
}

/// One row of a top-N table.
#[derive(Debug, Clone, Serialize, Default, PartialEq, ToSchema)]
pub struct RankedRow {
    /// Rank, 1 = best.
    pub rank: i64,
    /// What is ranked: "Lyon, FR" or "Ana Silva (PT)".
    pub label: String,
    /// Revenue.
    pub revenue: f64,
    /// Units.
    pub units: i64,
}

/// Where the ticker gets what the metrics do not hold.
#[async_trait]
pub trait LiveInputs: Send + Sync + 'static {
    /// The store's figures at `now`; `None` while no store is open yet.
    async fn store_figures(&self, now: DateTime<Utc>) -> Option<Result<StoreFigures, String>>;
    /// The controls' states, as `GET /api/v1/control` returns them.
    fn controls(&self) -> Vec<ControlStatus>;
}

/// Publishes a [`Snapshot`] every [`TICK`] until shutdown.
#[derive(Debug)]
pub struct Ticker;

impl Ticker {
    /// Starts the task; the receiver always holds the newest snapshot. The sender is dropped on
    /// `shutdown`, which ends every live stream, so that a graceful shutdown of the server is
    /// not held open by a page that is still connected.
    pub fn spawn(
        metrics: Metrics,
        health: Health,
        inputs: Arc<dyn LiveInputs>,
        shutdown: Shutdown,
    ) -> watch::Receiver<Arc<Snapshot>> {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        tokio::spawn(async move {
            let mut state = TickState::default();
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = shutdown.wait() => return,
                }
                // The router's slot holds one receiver; any other is a page or a request
                // waiting for a snapshot. Nobody watching: the store is not asked.
                let watched = tx.receiver_count() > 1;
                let Some(snapshot) = state.next(&metrics, &health, inputs.as_ref(), watched).await else {
                    continue;
                };
                if tx.send(Arc::new(snapshot)).is_err() {
                    // No receiver can come back once the last one (kept by the router) is gone.
                    return;
                }
            }
        });
        rx
    }
}

/// What one tick remembers for the next: previous readings for rates and latency.
#[derive(Default)]
struct TickState {
    last: Option<(Instant, Figures)>,
    history: VecDeque<(Instant, Vec<(f64, f64)>)>,
    store: Option<StoreFigures>,
}

impl TickState {
    async fn next(
        &mut self,
        metrics: &Metrics,
        health: &Health,
        inputs: &dyn LiveInputs,
        watched: bool,
    ) -> Option<Snapshot> {
        let now = Instant::now();
        let wall = Utc::now();
        let f = Figures::from_exposition(&metrics.render());
        let (in_per_s, out_per_s) = match &self.last {
            Some((then, prev)) => {
                let secs = now.duration_since(*then).as_secs_f64().max(1e-3);
                (
                    ((f.accepted - prev.accepted) / secs).max(0.0),
                    ((f.landed - prev.landed) / secs).max(0.0),
                )
            }
            None => (0.0, 0.0),
        };
        self.history.push_back((now, f.latency_buckets.clone()));
        while self
            .history
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > LATENCY_WINDOW)
        {
            self.history.pop_front();
        }
        let latency_p95_ms = self
            .history
            .front()
            .and_then(|(_, before)| quantile_between(0.95, before, &f.latency_buckets))
            .map(|s| s * 1000.0);

        if !watched {
            // The readings above keep rates and latency current for the next watcher; the
            // store's figures are only worth their queries when someone looks.
            self.last = Some((now, f));
            return None;
        }
        let store_error = match tokio::time::timeout(STORE_BUDGET, inputs.store_figures(wall)).await {
            Ok(Some(Ok(figures))) => {
                self.store = Some(figures);
                None
            }
            Ok(Some(Err(e))) => Some(e),
            Ok(None) => Some("the store is not open yet".to_owned()),
            Err(_) => Some(format!(
                "the store did not answer within {} ms",
                STORE_BUDGET.as_millis()
            )),
        };

        let snapshot = Snapshot {
            at: wall.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            in_per_s,
            out_per_s,
            accepted: f.accepted,
            landed: f.landed,
            sales_landed: f.sales_landed,
            dead_letters: f.dead_letters,
            late_events: f.late_events,
            lag: f.lag,
            latency_p95_ms,
            latency_objective_ms: LATENCY_OBJECTIVE_MS,
            components: health.snapshot(),
            controls: inputs.controls(),
            store: self.store.clone(),
            store_error,
        };
        self.last = Some((now, f));
        Some(snapshot)
    }
}
