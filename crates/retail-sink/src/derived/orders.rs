//! The order-lifecycle pipeline: one row per order, its milestones, the order-payment join on
//! event time, payment timeouts and stuck orders (ADR 0023).
//!
//! Pure logic, run by the store inside the landing transaction: the store loads the rows of
//! the orders a batch touches (and of those with a check due), [`OrderState::apply`]s the facts
//! of the batch's *new* events (the ledger decides, as for aggregates), [`OrderState::sweep`]s
//! at the pipeline time and writes the rows and alerts back. The row is therefore exactly
//! once by the same transaction that moves the offsets, and its state lives in the store, not
//! in the process: nothing to checkpoint, nothing lost on a crash.
//!
//! # Why the row is a fold
//! Every field is a commutative function of the set of events seen (earliest time per
//! milestone, earliest payment, latest payment status), so the row does not depend on the
//! order events arrive in: `shipped` before `paid` gives the same row as the other way round.
//!
//! # Why verdicts wait for the pipeline time
//! A timeout or a stuck order is decided only once the pipeline time (the smallest watermark
//! of the `orders` and `payments` partitions, ADR 0004; idle partitions advance with the wall
//! clock) passes the deadline plus the grace period. By then every event with an earlier event
//! time has arrived (the watermark's promise), so the verdict is the one a scan of the events
//! sorted by event time gives: a payment inside the window never loses to a timeout because it
//! travelled on another partition, and a payment after the window is a late payment whatever
//! order the two arrived in. Only an event later than the watermark itself (a late event) can
//! come after its verdict; it still updates the row (and says the payment was late).

use std::sync::Arc;

use retail_core::event::{OrderStatus, PaymentStatus};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Namespace of the alert ids (UUID v5 of kind, subject and detail), so an alert raised again
/// by a replay or after a crash has the same id and lands once.
pub const ALERT_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2f1e_8b4a_4d55_9a0e_72e7_a11e_0001);

/// Milestones in lifecycle order; `cancelled` last. Index = rank.
pub const STATES: [&str; 6] = ["created", "paid", "packed", "shipped", "delivered", "cancelled"];

const CREATED: usize = 0;
const DELIVERED: usize = 4;
const CANCELLED: usize = 5;
/// States an order can be stuck in, with their index into [`OrderRules::stuck_after_ms`].
const STUCK_STATES: [usize; 3] = [1, 2, 3];

/// The pipeline's settings, as the store needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRules {
    /// How long after `created` a payment may come, milliseconds.
    pub payment_window_ms: i64,
    /// How long past a deadline the pipeline time must be before the verdict, milliseconds.
    pub grace_ms: i64,
    /// Longest time in `paid`, `packed` and `shipped` before the order is stuck (`None`: never).
    pub stuck_after_ms: [Option<i64>; 3],
}

/// What one new event says about an order.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderFactKind {
    /// An `order` event: the order reached `status`.
    Status {
        /// Milestone reached.
        status: OrderStatus,
        /// Fulfilling store.
        store_id: Option<i64>,
        /// Order total.
        amount: Option<Decimal>,
        /// Currency of the total.
        currency: Option<String>,
        /// Customer.
        customer_id: Option<String>,
    },
    /// A `payment` event for the order.
    Payment {
        /// Payment id.
        payment_id: String,
        /// New payment state.
        status: PaymentStatus,
        /// Amount.
        amount: Decimal,
        /// Currency.
        currency: String,
    },
}

/// One new event's input to the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderFact {
    /// The event, so only new events (the ledger's verdict) are applied.
    pub event_id: Uuid,
    /// The order it is about.
    pub order_id: String,
    /// Event time, epoch milliseconds.
    pub ts: i64,
    /// What it says.
    pub kind: OrderFactKind,
}

/// The pipeline's input for one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBatch {
    /// Settings the store runs the pipeline with.
    pub rules: Arc<OrderRules>,
    /// Facts of the batch's order and payment events, in log order.
    pub facts: Vec<OrderFact>,
    /// Pipeline time after the batch, epoch milliseconds (`None`: no partition delivered yet).
    pub time: Option<i64>,
}

/// The earliest authorising or capturing payment: the one the join matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchedPayment {
    /// Its event time.
    pub ts: i64,
    /// Payment id.
    pub payment_id: String,
    /// Amount.
    pub amount: Decimal,
    /// Currency.
    pub currency: String,
}

/// One order's row, as the store keeps it (serialised in the row's `state` column; the other
/// columns are derived from it for readers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    /// Order id.
    pub order_id: String,
    /// Earliest event time of each milestone, by [`STATES`] index.
    pub milestones: [Option<i64>; 6],
    /// Customer (from the `created` event, or the first event carrying one until it comes).
    pub customer_id: Option<String>,
    /// Fulfilling store.
    pub store_id: Option<i64>,
    /// Order total.
    pub amount: Option<Decimal>,
    /// Currency of the total.
    pub currency: Option<String>,
    /// Whether the attributes above came from the `created` event (which then wins).
    pub attrs_from_created: bool,
    /// The payment the join matched.
    pub payment: Option<MatchedPayment>,
    /// Latest payment event: (event time, status rank), for `payment_status`.
    pub last_payment: Option<(i64, u8)>,
    /// Whether the payment timeout fired.
    pub payment_timeout: bool,
    /// Bit per [`STATES`] index: stuck alerts raised.
    pub stuck_alerted: u8,
    /// Largest event time of the order's events.
    pub updated_at: i64,
}

/// An alert the pipeline raised, for `alerts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Deterministic id (UUID v5 of kind, subject and detail key).
    pub alert_id: Uuid,
    /// `payment_timeout`, `order_stuck`, ...
    pub kind: &'static str,
    /// `info`, `warning` or `critical`.
    pub severity: &'static str,
    /// What it is about, e.g. the order id.
    pub subject: String,
    /// Event time at which the condition became true, epoch milliseconds.
    pub at: i64,
    /// Human-readable explanation.
    pub message: String,
}

/// An alert whose condition ended: when, in event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The alert.
    pub alert_id: Uuid,
    /// Event time it ended at, epoch milliseconds.
    pub at: i64,
}

const fn status_index(s: OrderStatus) -> usize {
    match s {
        OrderStatus::Created => 0,
        OrderStatus::Paid => 1,
        OrderStatus::Packed => 2,
        OrderStatus::Shipped => 3,
        OrderStatus::Delivered => 4,
        OrderStatus::Cancelled => 5,
    }
}

/// Payment states by rank: the later in a payment's life, the higher (ties in time go to it).
pub const PAYMENT_STATES: [&str; 4] = ["failed", "authorized", "captured", "refunded"];

const fn payment_rank(s: PaymentStatus) -> u8 {
    match s {
        PaymentStatus::Failed => 0,
        PaymentStatus::Authorized => 1,
        PaymentStatus::Captured => 2,
        PaymentStatus::Refunded => 3,
    }
}

/// The id of the alert `kind` about `subject` (and `detail`, e.g. the state stuck in).
pub fn alert_id(kind: &str, subject: &str, detail: &str) -> Uuid {
    Uuid::new_v5(
        &ALERT_NAMESPACE,
        format!("{kind}\u{1f}{subject}\u{1f}{detail}").as_bytes(),
    )
}

impl OrderState {
    /// An order seen for the first time.
    pub fn new(order_id: &str) -> Self {
        Self {
            order_id: order_id.to_owned(),
            updated_at: i64::MIN,
            ..Self::default()
        }
    }

    /// Folds one fact in.
    pub fn apply(&mut self, fact: &OrderFact) {
        self.updated_at = self.updated_at.max(fact.ts);
        match &fact.kind {
            OrderFactKind::Status {
                status,
                store_id,
                amount,
                currency,
                customer_id,
            } => {
                let i = status_index(*status);
                let m = &mut self.milestones[i];
                *m = Some(m.map_or(fact.ts, |t| t.min(fact.ts)));
                let created = i == CREATED;
                if created && !self.attrs_from_created {
                    self.attrs_from_created = true;
                    self.store_id = *store_id;
                    self.amount = *amount;
                    self.currency.clone_from(currency);
                    self.customer_id.clone_from(customer_id);
                } else if !self.attrs_from_created {
                    self.store_id = self.store_id.or(*store_id);
                    self.amount = self.amount.or(*amount);
                    if self.currency.is_none() {
                        self.currency.clone_from(currency);
                    }
                    if self.customer_id.is_none() {
                        self.customer_id.clone_from(customer_id);
                    }
                }
            }
            OrderFactKind::Payment {
                payment_id,
                status,
                amount,
                currency,
            } => {
                let rank = payment_rank(*status);
                if self.last_payment.is_none_or(|last| (fact.ts, rank) > last) {
                    self.last_payment = Some((fact.ts, rank));
                }
                let pays = matches!(status, PaymentStatus::Authorized | PaymentStatus::Captured);
                let earlier =
                    |p: &MatchedPayment| (fact.ts, payment_id.as_str()) < (p.ts, p.payment_id.as_str());
                if pays && self.payment.as_ref().is_none_or(earlier) {
                    self.payment = Some(MatchedPayment {
                        ts: fact.ts,
                        payment_id: payment_id.clone(),
                        amount: *amount,
                        currency: currency.clone(),
                    });
                }
            }
        }
    }

    /// The current state: the most advanced milestone reached, `cancelled` unless delivered;
    /// `None` while only payments have been seen.
    pub fn state(&self) -> Option<usize> {
        if self.milestones[CANCELLED].is_some() && self.milestones[DELIVERED].is_none() {
            return Some(CANCELLED);
        }
        (0..CANCELLED).rev().find(|&i| self.milestones[i].is_some())
    }

    /// Since when the order is in its current state.
    pub fn state_since(&self) -> Option<i64> {
        self.state().and_then(|s| self.milestones[s])
    }

    /// When the payment is due: `created` plus the window.
    pub fn payment_due(&self, rules: &OrderRules) -> Option<i64> {
        self.milestones[CREATED].map(|t| t.saturating_add(rules.payment_window_ms))
    }

    /// Whether the matched payment came after the window.
    pub fn payment_late(&self, rules: &OrderRules) -> bool {
        match (self.payment_due(rules), &self.payment) {
            (Some(due), Some(p)) => p.ts > due,
            _ => false,
        }
    }

    /// `payment_status`: the status of the latest payment event.
    pub fn payment_status(&self) -> Option<&'static str> {
        self.last_payment
            .map(|(_, rank)| PAYMENT_STATES[usize::from(rank)])
    }

    /// The state the order is stuck in now (an alert was raised for its current state).
    pub fn stuck_state(&self) -> Option<usize> {
        self.state().filter(|s| self.stuck_alerted & (1 << s) != 0)
    }

    /// Whether a payment-timeout verdict is still to come, and when (deadline, not yet + grace).
    fn payment_deadline(&self, rules: &OrderRules) -> Option<i64> {
        if self.payment_timeout {
            return None;
        }
        let due = self.payment_due(rules)?;
        let cancelled_in_time = self.milestones[CANCELLED].is_some_and(|c| c <= due);
        let paid_in_time = self.payment.as_ref().is_some_and(|p| p.ts <= due);
        (!cancelled_in_time && !paid_in_time).then_some(due)
    }

    /// The time the order left state `s` for a later one, if it did.
    fn left(&self, s: usize) -> Option<i64> {
        (s + 1..STATES.len()).filter_map(|i| self.milestones[i]).min()
    }

    /// Stuck-state verdicts still to come: (state, deadline).
    fn stuck_deadlines<'a>(&'a self, rules: &'a OrderRules) -> impl Iterator<Item = (usize, i64)> + 'a {
        STUCK_STATES.iter().enumerate().filter_map(move |(k, &s)| {
            let limit = rules.stuck_after_ms[k]?;
            let since = self.milestones[s]?;
            if self.stuck_alerted & (1 << s) != 0 {
                return None;
            }
            let deadline = since.saturating_add(limit);
            // Left the state within the limit: never stuck there.
            if self.left(s).is_some_and(|t| t <= deadline) {
                return None;
            }
            Some((s, deadline))
        })
    }

    /// The pipeline time at which the next verdict falls due (`None`: nothing pending). The
    /// store indexes it, so a sweep reads only rows with something due.
    pub fn next_check(&self, rules: &OrderRules) -> Option<i64> {
        let payment = self.payment_deadline(rules);
        let stuck = self.stuck_deadlines(rules).map(|(_, d)| d).min();
        payment
            .into_iter()
            .chain(stuck)
            .min()
            .map(|d| d.saturating_add(rules.grace_ms))
    }

    /// Verdicts due at pipeline time `now`: raises each alert once, recording it in the row.
    pub fn sweep(&mut self, rules: &OrderRules, now: i64, alerts: &mut Vec<Alert>) {
        if let Some(due) = self.payment_deadline(rules) {
            if now >= due.saturating_add(rules.grace_ms) {
                self.payment_timeout = true;
                alerts.push(Alert {
                    alert_id: alert_id("payment_timeout", &self.order_id, ""),
                    kind: "payment_timeout",
                    severity: "warning",
                    subject: self.order_id.clone(),
                    at: due,
                    message: format!(
                        "order {} has no payment {} min after it was created",
                        self.order_id,
                        rules.payment_window_ms / 60_000
                    ),
                });
            }
        }
        let due: Vec<(usize, i64)> = self
            .stuck_deadlines(rules)
            .filter(|(_, d)| now >= d.saturating_add(rules.grace_ms))
            .collect();
        for (s, deadline) in due {
            self.stuck_alerted |= 1 << s;
            let since = self.milestones[s].unwrap_or(deadline);
            alerts.push(Alert {
                alert_id: alert_id("order_stuck", &self.order_id, STATES[s]),
                kind: "order_stuck",
                severity: "warning",
                subject: self.order_id.clone(),
                at: deadline,
                message: format!(
                    "order {} stuck in {} for more than {} min",
                    self.order_id,
                    STATES[s],
                    (deadline - since) / 60_000
                ),
            });
        }
    }

    /// Alerts of this order whose condition has ended, with when: a timed-out order's
    /// payment, a stuck state left.
    pub fn resolutions(&self) -> Vec<Resolution> {
        let mut out = Vec::new();
        if self.payment_timeout {
            if let Some(p) = &self.payment {
                out.push(Resolution {
                    alert_id: alert_id("payment_timeout", &self.order_id, ""),
                    at: p.ts,
                });
            }
        }
        for s in STUCK_STATES {
            if self.stuck_alerted & (1 << s) != 0 {
                if let Some(t) = self.left(s) {
                    out.push(Resolution {
                        alert_id: alert_id("order_stuck", &self.order_id, STATES[s]),
                        at: t,
                    });
                }
            }
        }
        out
    }
}

/// What a batch changes: the rows to write back and the alerts raised and resolved.
#[derive(Debug, Default)]
pub struct OrderChanges {
    /// Rows that changed (new facts or a verdict).
    pub rows: Vec<OrderState>,
    /// Alerts raised by this batch.
    pub alerts: Vec<Alert>,
    /// Alerts whose condition ended (idempotent: the store sets `resolved_at` once).
    pub resolutions: Vec<Resolution>,
}

impl OrderBatch {
    /// Ids of the orders the batch's new events touch, each once, sorted (the store locks and
    /// reads their rows).
    pub fn touched(&self, is_new: impl Fn(&Uuid) -> bool) -> Vec<String> {
        let mut ids: Vec<String> = self
            .facts
            .iter()
            .filter(|f| is_new(&f.event_id))
            .map(|f| f.order_id.clone())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Runs the pipeline over `loaded` (the stored rows of the touched orders and of those with
    /// a verdict due): folds in the facts of new events, then sweeps at the pipeline time.
    pub fn run(&self, loaded: Vec<OrderState>, is_new: impl Fn(&Uuid) -> bool) -> OrderChanges {
        let mut rows: std::collections::BTreeMap<String, (OrderState, bool)> = loaded
            .into_iter()
            .map(|s| (s.order_id.clone(), (s, false)))
            .collect();
        for f in self.facts.iter().filter(|f| is_new(&f.event_id)) {
            let (state, changed) = rows
                .entry(f.order_id.clone())
                .or_insert_with(|| (OrderState::new(&f.order_id), false));
            state.apply(f);
            *changed = true;
        }
        let mut out = OrderChanges::default();
        for (state, changed) in rows.values_mut() {
            if let Some(now) = self.time {
                let before = out.alerts.len();
                state.sweep(&self.rules, now, &mut out.alerts);
                *changed |= out.alerts.len() > before;
            }
        }
        for (state, changed) in rows.into_values() {
            if changed {
                out.resolutions.extend(state.resolutions());
                out.rows.push(state);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;

    fn rules() -> OrderRules {
        OrderRules {
            payment_window_ms: 30 * MIN,
            grace_ms: MIN,
            stuck_after_ms: [Some(12 * HOUR), Some(24 * HOUR), Some(96 * HOUR)],
        }
    }

    fn status(ts: i64, status: OrderStatus) -> OrderFact {
        OrderFact {
            event_id: Uuid::now_v7(),
            order_id: "O-1".into(),
            ts,
            kind: OrderFactKind::Status {
                status,
                store_id: Some(7),
                amount: Some(Decimal::new(1999, 2)),
                currency: Some("EUR".into()),
                customer_id: Some("C-1".into()),
            },
        }
    }

    fn payment(ts: i64, status: PaymentStatus) -> OrderFact {
        OrderFact {
            event_id: Uuid::now_v7(),
            order_id: "O-1".into(),
            ts,
            kind: OrderFactKind::Payment {
                payment_id: "P-1".into(),
                status,
                amount: Decimal::new(1999, 2),
                currency: "EUR".into(),
            },
        }
    }

    fn fold(facts: &[OrderFact]) -> OrderState {
        let mut s = OrderState::new("O-1");
        for f in facts {
            s.apply(f);
        }
        s
    }

    #[test]
    fn the_row_does_not_depend_on_arrival_order() {
        let facts = [
            status(0, OrderStatus::Created),
            payment(5 * MIN, PaymentStatus::Authorized),
            payment(6 * MIN, PaymentStatus::Captured),
            status(6 * MIN, OrderStatus::Paid),
            status(3 * HOUR, OrderStatus::Packed),
            status(9 * HOUR, OrderStatus::Shipped),
        ];
        let forward = fold(&facts);
        let mut reversed = facts.to_vec();
        reversed.reverse();
        assert_eq!(fold(&reversed), forward);
        assert_eq!(forward.state(), Some(3));
        assert_eq!(forward.state_since(), Some(9 * HOUR));
        assert_eq!(forward.payment.as_ref().map(|p| p.ts), Some(5 * MIN));
        assert_eq!(forward.payment_status(), Some("captured"));
    }

    #[test]
    fn an_unpaid_order_times_out_once_after_window_and_grace() {
        let r = rules();
        let mut s = fold(&[status(0, OrderStatus::Created)]);
        assert_eq!(s.next_check(&r), Some(31 * MIN));
        let mut alerts = Vec::new();
        s.sweep(&r, 31 * MIN - 1, &mut alerts);
        assert!(alerts.is_empty(), "not before window + grace");
        s.sweep(&r, 31 * MIN, &mut alerts);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].kind, "payment_timeout");
        assert_eq!(alerts[0].at, 30 * MIN);
        s.sweep(&r, 2 * HOUR, &mut alerts);
        assert_eq!(alerts.len(), 1, "once");
        // A later payment resolves it and says it was late.
        s.apply(&payment(40 * MIN, PaymentStatus::Captured));
        assert!(s.payment_late(&r));
        assert_eq!(s.resolutions()[0].at, 40 * MIN);
    }

    #[test]
    fn a_payment_in_the_window_never_times_out_whatever_it_arrives_after() {
        let r = rules();
        // The payment arrives after a later event, but before the verdict time.
        let mut s = fold(&[
            status(0, OrderStatus::Created),
            payment(29 * MIN, PaymentStatus::Authorized),
        ]);
        let mut alerts = Vec::new();
        s.sweep(&r, 10 * HOUR, &mut alerts);
        assert!(alerts.iter().all(|a| a.kind != "payment_timeout"));
        // A payment after the window, arriving before the verdict: a timeout, and late.
        let mut s = fold(&[
            status(0, OrderStatus::Created),
            payment(31 * MIN, PaymentStatus::Captured),
        ]);
        s.sweep(&r, 31 * MIN, &mut alerts);
        assert_eq!(alerts.len(), 1);
        assert!(s.payment_late(&r));
    }

    #[test]
    fn an_order_cancelled_inside_the_window_is_not_owed_a_payment() {
        let r = rules();
        let mut s = fold(&[
            status(0, OrderStatus::Created),
            status(10 * MIN, OrderStatus::Cancelled),
        ]);
        let mut alerts = Vec::new();
        s.sweep(&r, 100 * HOUR, &mut alerts);
        assert!(alerts.is_empty());
        assert_eq!(s.next_check(&r), None);
        assert_eq!(s.state(), Some(CANCELLED));
    }

    #[test]
    fn a_stuck_order_alerts_once_per_state_and_clears_when_it_moves_on() {
        let r = rules();
        let mut s = fold(&[
            status(0, OrderStatus::Created),
            payment(MIN, PaymentStatus::Captured),
            status(2 * MIN, OrderStatus::Paid),
        ]);
        let mut alerts = Vec::new();
        s.sweep(&r, 2 * MIN + 12 * HOUR + MIN - 1, &mut alerts);
        assert!(alerts.is_empty());
        s.sweep(&r, 2 * MIN + 12 * HOUR + MIN, &mut alerts);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].kind, "order_stuck");
        assert_eq!(s.stuck_state(), Some(1));
        s.sweep(&r, 50 * HOUR, &mut alerts);
        assert_eq!(alerts.len(), 1);
        s.apply(&status(20 * HOUR, OrderStatus::Packed));
        assert_eq!(s.stuck_state(), None, "moved on");
        assert_eq!(s.resolutions().len(), 1);
        assert_eq!(s.resolutions()[0].at, 20 * HOUR);
        // Packed for 30 h by now (limit 24 h): stuck again, in packed.
        s.sweep(&r, 50 * HOUR, &mut alerts);
        assert_eq!(alerts.len(), 2);
        assert_eq!(s.stuck_state(), Some(2));
    }

    #[test]
    fn an_order_that_left_a_state_late_was_stuck_there_even_if_the_verdict_comes_after() {
        let r = rules();
        // Paid at 0, packed 13 h later (limit 12 h); both seen before the sweep.
        let mut s = fold(&[
            status(0, OrderStatus::Paid),
            status(13 * HOUR, OrderStatus::Packed),
        ]);
        let mut alerts = Vec::new();
        s.sweep(&r, 14 * HOUR, &mut alerts);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].at, 12 * HOUR);
        assert_eq!(s.stuck_state(), None, "already moved on");
        // Left within the limit: never stuck.
        let mut s = fold(&[
            status(0, OrderStatus::Paid),
            status(11 * HOUR, OrderStatus::Packed),
        ]);
        let mut alerts = Vec::new();
        s.sweep(&r, 14 * HOUR, &mut alerts);
        assert!(alerts.is_empty());
    }

    #[test]
    fn a_batch_applies_only_new_events_and_sweeps_loaded_rows() {
        let r = Arc::new(rules());
        let created = status(0, OrderStatus::Created);
        let dup = status(0, OrderStatus::Created);
        let mut other = OrderState::new("O-2");
        other.apply(&OrderFact {
            order_id: "O-2".into(),
            ..status(0, OrderStatus::Created)
        });
        let batch = OrderBatch {
            rules: r,
            facts: vec![created.clone(), dup.clone()],
            time: Some(HOUR),
        };
        assert_eq!(batch.touched(|id| *id != dup.event_id), ["O-1"]);
        let changes = batch.run(vec![other], |id| *id != dup.event_id);
        assert_eq!(changes.rows.len(), 2);
        assert_eq!(changes.alerts.len(), 2, "both unpaid past window + grace");
        assert!(changes.resolutions.is_empty());
        // Nothing new and nothing due: nothing to write.
        let quiet = OrderBatch {
            rules: Arc::new(rules()),
            facts: vec![],
            time: Some(HOUR),
        };
        assert!(quiet.run(changes.rows, |_| true).rows.is_empty());
    }

    #[test]
    fn alert_ids_are_stable() {
        assert_eq!(
            alert_id("order_stuck", "O-1", "paid"),
            alert_id("order_stuck", "O-1", "paid")
        );
        assert_ne!(
            alert_id("order_stuck", "O-1", "paid"),
            alert_id("order_stuck", "O-1", "packed")
        );
    }

    #[test]
    fn the_state_round_trips_through_its_stored_form() {
        let s = fold(&[
            status(0, OrderStatus::Created),
            payment(MIN, PaymentStatus::Captured),
        ]);
        let json = serde_json::to_string(&s).expect("serialise");
        let back: OrderState = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, s);
    }
}
