//! The simulated web shop: customers, the lifecycle of each order (`created` -> payment
//! `authorized`, `captured` -> `paid` -> `packed` -> `shipped` -> `delivered`), the anomalies
//! injected into some of them (a payment missing or late, an order stuck, a cancellation) and
//! the five fraud patterns. Read this to change what an order flow looks like; when its events
//! are emitted is the generator's business (`generate.rs`, through `schedule.rs`).
//!
//! A flow is one order. Its whole plan (the steps and the delays between them) is drawn when
//! it starts, so a flow in flight is a fixed-size record with no allocation; its next step
//! waits in the [`Schedule`]. A fraud pattern starts several flows at once with staggered
//! first steps. Customers are not stored either: the traits of customer `n` (home country,
//! cards, usual spend) are a hash of the seed and `n`.

use rand_chacha::ChaCha8Rng;
use retail_core::event::{EventBody, Order, OrderStatus, Payment, PaymentStatus};
use rust_decimal::Decimal;

use super::config::{CommerceConfig, GeneratorConfig};
use super::model::{below, mix64, unit, World};
use super::schedule::{Due, Schedule};
use super::GeneratorStats;

/// Every order is in this currency, so amount thresholds mean one thing across countries.
pub const CURRENCY: &str = "EUR";

/// What an order flow was injected with; [`super::Generated::anomaly`] carries it on each of
/// the flow's events, so tests can tell which orders should raise which alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Anomaly {
    /// The order never gets a payment.
    PaymentMissing,
    /// The payment comes 45-180 minutes after the order was created.
    PaymentLate,
    /// The order stops in this state (`paid`, `packed` or `shipped`) for good.
    Stuck(OrderStatus),
    /// The order is cancelled in this state (`created` or `paid`).
    Cancelled(OrderStatus),
    /// The order is part of this fraud pattern.
    Fraud(FraudPattern),
}

/// The fraud patterns, each made to trip one rule (and only that one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FraudPattern {
    /// One card pays 6-8 orders within 10 minutes.
    CardVelocity,
    /// A payment of 0.50-1.00, then one over 500 on the same card within a minute.
    TinyThenLarge,
    /// Five ordinary payments, then one of 21 times the customer's average (just over 20x).
    AboveHistory,
    /// The payer's IP address is in another country than the card's billing address.
    IpMismatch,
    /// Three orders of 700-900 within an hour: over 2,000 per customer and hour.
    HourlyTotal,
}

impl FraudPattern {
    /// Every pattern, in the order they rotate.
    pub const ALL: [Self; 5] = [
        Self::CardVelocity,
        Self::TinyThenLarge,
        Self::AboveHistory,
        Self::IpMismatch,
        Self::HourlyTotal,
    ];
}

const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Normal timings, each the delay after the step before. They stay inside the pipeline's
/// limits (payment within 30 min, at most 12 h paid, 24 h packed, 96 h shipped) with room for
/// the small lag between a step being due and the generator reaching it.
const AUTHORIZE_AFTER: (i64, i64) = (10 * SECOND, 10 * MINUTE);
const CAPTURE_AFTER: (i64, i64) = (SECOND, MINUTE);
const PAID_AFTER: (i64, i64) = (0, 2 * SECOND);
const PACKED_AFTER: (i64, i64) = (HOUR, 10 * HOUR);
const SHIPPED_AFTER: (i64, i64) = (HOUR, 20 * HOUR);
const DELIVERED_AFTER: (i64, i64) = (DAY, 3 * DAY);
/// A late payment's authorization, after `created`: past the 30 min payment window.
const LATE_AUTHORIZE_AFTER: (i64, i64) = (45 * MINUTE, 180 * MINUTE);
const CANCEL_UNPAID_AFTER: (i64, i64) = (MINUTE, 20 * MINUTE);
const CANCEL_PAID_AFTER: (i64, i64) = (10 * MINUTE, 6 * HOUR);
const REFUND_AFTER: (i64, i64) = (SECOND, MINUTE);

/// Ordinary orders are kept within this band (cents), so no ordinary payment looks tiny
/// (tiny-then-large) or large (over 500), and no ordinary customer reaches 2,000 an hour.
const ORDER_CENTS: (i64, i64) = (500, 40_000);
/// A customer's usual order (cents): ordinary orders are within half and twice of it, so the
/// largest is at most four times their average, far from the 20x of the history rule.
const USUAL_CENTS: (i64, i64) = (1_500, 11_500);

/// Most steps of one flow: created, authorized, captured, paid, packed, shipped, delivered.
const MAX_STEPS: usize = 7;
/// Most flows one start makes (the card velocity pattern): a start needs this much room.
pub(crate) const MAX_FLOWS_PER_START: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Order(OrderStatus),
    Payment(PaymentStatus),
}

/// The steps of one flow and the delay before each (the first one's from the start of its
/// pattern), in a fixed array so a flow in flight allocates nothing.
#[derive(Debug, Clone, Copy)]
struct Plan {
    steps: [(i64, Step); MAX_STEPS],
    len: u8,
    next: u8,
}

impl Plan {
    const fn new(first_after: i64) -> Self {
        Self {
            steps: [(first_after, Step::Order(OrderStatus::Created)); MAX_STEPS],
            len: 1,
            next: 0,
        }
    }

    fn push(&mut self, rng: &mut ChaCha8Rng, after: (i64, i64), step: Step) {
        if usize::from(self.len) < MAX_STEPS {
            self.steps[usize::from(self.len)] = (between(rng, after), step);
            self.len += 1;
        }
    }

    /// The normal life after payment: packed, shipped, delivered, unless stuck on the way.
    fn fulfil(&mut self, rng: &mut ChaCha8Rng, stuck: Option<OrderStatus>) {
        for (after, status) in [
            (PACKED_AFTER, OrderStatus::Packed),
            (SHIPPED_AFTER, OrderStatus::Shipped),
            (DELIVERED_AFTER, OrderStatus::Delivered),
        ] {
            if stuck.map(Step::Order) == Some(self.last()) {
                return;
            }
            self.push(rng, after, Step::Order(status));
        }
    }

    /// A payment authorized `authorize` after the step before, captured `capture` later, then
    /// the order paid.
    fn pay(&mut self, rng: &mut ChaCha8Rng, authorize: (i64, i64), capture: (i64, i64)) {
        self.push(rng, authorize, Step::Payment(PaymentStatus::Authorized));
        self.push(rng, capture, Step::Payment(PaymentStatus::Captured));
        self.push(rng, PAID_AFTER, Step::Order(OrderStatus::Paid));
    }

    const fn last(&self) -> Step {
        self.steps[self.len as usize - 1].1
    }
}

/// One order of a fraud pattern, as drawn before its flow is planned.
#[derive(Debug, Clone, Copy)]
struct PatternOrder {
    /// Delay of its `created` after the pattern's start.
    at: i64,
    cents: i64,
    /// Delay of the authorization after `created`, and of the capture after that.
    authorize: (i64, i64),
    capture: (i64, i64),
}

impl PatternOrder {
    const fn new(at: i64, cents: i64, authorize: (i64, i64), capture: (i64, i64)) -> Self {
        Self {
            at,
            cents,
            authorize,
            capture,
        }
    }
}

/// One order in flight.
#[derive(Debug, Clone, Copy)]
struct Flow {
    number: u64,
    anomaly: Option<Anomaly>,
    store_id: i64,
    amount: Decimal,
    customer: u64,
    card: u64,
    billing: u32,
    ip: u32,
    plan: Plan,
}

/// A customer's traits, derived from the seed and their number.
#[derive(Debug, Clone, Copy)]
struct Customer {
    number: u64,
    country: u32,
    cards: u64,
    usual_cents: i64,
}

/// The shop: starts flows, and emits each flow's steps as they come due.
#[derive(Debug, Clone)]
pub(crate) struct Commerce {
    seed: u64,
    config: CommerceConfig,
    /// Country codes: the world's, then `ZZ` if the world has only one (an IP abroad needs a
    /// second country).
    countries: Vec<String>,
    homes: usize,
    stores: usize,
    rng: ChaCha8Rng,
    slots: Vec<Option<Flow>>,
    free: Vec<u32>,
    in_flight: usize,
    next_order: u64,
    next_fraud_customer: u64,
    next_pattern: usize,
}

impl Commerce {
    /// The shop `config` describes; `None` when orders are off.
    pub(crate) fn new(config: &GeneratorConfig, rng: ChaCha8Rng) -> Option<Self> {
        if !config.commerce_on() {
            return None;
        }
        let mut countries: Vec<String> = config.countries.iter().map(|c| c.code.clone()).collect();
        let homes = countries.len();
        if homes < 2 {
            countries.push("ZZ".to_owned());
        }
        Some(Self {
            seed: config.seed,
            config: config.commerce.clone(),
            countries,
            homes,
            stores: config.stores as usize,
            rng,
            slots: Vec::new(),
            free: Vec::new(),
            in_flight: 0,
            next_order: 1,
            next_fraud_customer: 1,
            next_pattern: 0,
        })
    }

    /// Fraction of data events that should be order and payment events.
    pub(crate) const fn order_fraction(&self) -> f64 {
        self.config.order_fraction
    }

    /// Orders in flight (started, with steps still to come).
    pub(crate) const fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether a start fits under `max_in_flight`.
    pub(crate) fn can_start(&self) -> bool {
        self.in_flight + MAX_FLOWS_PER_START <= self.config.max_in_flight as usize
    }

    /// Starts a flow (an ordinary order, maybe with an anomaly, or a fraud pattern) at `now`:
    /// its first step is due at once, the others of a pattern a little later.
    pub(crate) fn start(
        &mut self,
        now: i64,
        world: &World,
        schedule: &mut Schedule,
        stats: &mut GeneratorStats,
    ) {
        stats.order_flows += 1;
        if unit(&mut self.rng) < self.config.fraud_fraction {
            let pattern = FraudPattern::ALL[self.next_pattern % FraudPattern::ALL.len()];
            self.next_pattern += 1;
            self.fraud(pattern, now, schedule, stats);
            return;
        }
        let c = &self.config;
        let u = unit(&mut self.rng);
        let cuts = [
            c.payment_missing_fraction,
            c.payment_late_fraction,
            c.stuck_fraction,
            c.cancel_fraction,
        ];
        let kind = cuts
            .iter()
            .scan(0.0, |sum, f| {
                *sum += f;
                Some(*sum)
            })
            .position(|cut| u < cut);
        let anomaly = match kind {
            Some(0) => Some(Anomaly::PaymentMissing),
            Some(1) => Some(Anomaly::PaymentLate),
            Some(2) => {
                const STATES: [OrderStatus; 3] =
                    [OrderStatus::Paid, OrderStatus::Packed, OrderStatus::Shipped];
                Some(Anomaly::Stuck(STATES[below(&mut self.rng, 3)]))
            }
            Some(3) => Some(Anomaly::Cancelled(if below(&mut self.rng, 2) == 0 {
                OrderStatus::Created
            } else {
                OrderStatus::Paid
            })),
            _ => None,
        };
        match anomaly {
            Some(Anomaly::PaymentMissing) => stats.payment_missing += 1,
            Some(Anomaly::PaymentLate) => stats.payment_late += 1,
            Some(Anomaly::Stuck(_)) => stats.stuck += 1,
            Some(Anomaly::Cancelled(_)) => stats.cancelled += 1,
            Some(Anomaly::Fraud(_)) | None => {}
        }
        let number = below(&mut self.rng, self.config.customers as usize) as u64 + 1;
        let customer = self.customer(number);
        let mut plan = Plan::new(0);
        match anomaly {
            Some(Anomaly::PaymentMissing) => {}
            Some(Anomaly::Cancelled(OrderStatus::Created)) => {
                plan.push(
                    &mut self.rng,
                    CANCEL_UNPAID_AFTER,
                    Step::Order(OrderStatus::Cancelled),
                );
            }
            Some(Anomaly::Cancelled(_)) => {
                plan.pay(&mut self.rng, AUTHORIZE_AFTER, CAPTURE_AFTER);
                plan.push(
                    &mut self.rng,
                    CANCEL_PAID_AFTER,
                    Step::Order(OrderStatus::Cancelled),
                );
                plan.push(
                    &mut self.rng,
                    REFUND_AFTER,
                    Step::Payment(PaymentStatus::Refunded),
                );
            }
            Some(Anomaly::PaymentLate) => {
                plan.pay(&mut self.rng, LATE_AUTHORIZE_AFTER, CAPTURE_AFTER);
                plan.fulfil(&mut self.rng, None);
            }
            Some(Anomaly::Stuck(state)) => {
                plan.pay(&mut self.rng, AUTHORIZE_AFTER, CAPTURE_AFTER);
                plan.fulfil(&mut self.rng, Some(state));
            }
            Some(Anomaly::Fraud(_)) | None => {
                plan.pay(&mut self.rng, AUTHORIZE_AFTER, CAPTURE_AFTER);
                plan.fulfil(&mut self.rng, None);
            }
        }
        let amount = self.ordinary_amount(&customer, world);
        let card = below(&mut self.rng, customer.cards as usize) as u64;
        self.add(
            now,
            schedule,
            Flow {
                number: 0,
                anomaly,
                store_id: 0,
                amount,
                customer: customer.number,
                card: self.card(customer.number, card),
                billing: customer.country,
                ip: customer.country,
                plan,
            },
        );
    }

    /// Starts the flows of one fraud pattern, for a customer and card of its own (numbered
    /// after the shop's customers), so no other order blurs the rule it is made to trip.
    fn fraud(
        &mut self,
        pattern: FraudPattern,
        now: i64,
        schedule: &mut Schedule,
        stats: &mut GeneratorStats,
    ) {
        match pattern {
            FraudPattern::CardVelocity => stats.fraud_card_velocity += 1,
            FraudPattern::TinyThenLarge => stats.fraud_tiny_then_large += 1,
            FraudPattern::AboveHistory => stats.fraud_above_history += 1,
            FraudPattern::IpMismatch => stats.fraud_ip_mismatch += 1,
            FraudPattern::HourlyTotal => stats.fraud_hourly_total += 1,
        }
        let number = u64::from(self.config.customers) + self.next_fraud_customer;
        self.next_fraud_customer += 1;
        let country = below(&mut self.rng, self.homes) as u32;
        let card = self.card(number, 0);
        let mut orders: Vec<PatternOrder> = Vec::new();
        let quick = (SECOND, 10 * SECOND);
        match pattern {
            FraudPattern::CardVelocity => {
                // 6-8 payments 20-40 s apart, each within 30 s of its order: all inside 6 min.
                let n = 6 + below(&mut self.rng, 3) as i64;
                let mut at = 0;
                for _ in 0..n {
                    let cents = between(&mut self.rng, (2_000, 10_000));
                    orders.push(PatternOrder::new(at, cents, (10 * SECOND, 30 * SECOND), quick));
                    at += between(&mut self.rng, (20 * SECOND, 40 * SECOND));
                }
            }
            FraudPattern::TinyThenLarge => {
                // The large payment 0-30 s after the tiny one (both captured within 10 s).
                let tiny = between(&mut self.rng, (50, 100));
                let large = between(&mut self.rng, (60_000, 150_000));
                let second = between(&mut self.rng, (5 * SECOND, 20 * SECOND));
                orders.push(PatternOrder::new(0, tiny, (5 * SECOND, 15 * SECOND), quick));
                orders.push(PatternOrder::new(second, large, (5 * SECOND, 15 * SECOND), quick));
            }
            FraudPattern::AboveHistory => {
                // Five ordinary orders 20-60 min apart (no velocity), then 21x their average:
                // at most 1,260, so neither over 2,000 an hour nor after a tiny payment.
                let mut at = 0;
                let mut sum = 0;
                for _ in 0..5 {
                    let cents = between(&mut self.rng, (2_000, 6_000));
                    sum += cents;
                    orders.push(PatternOrder::new(at, cents, AUTHORIZE_AFTER, CAPTURE_AFTER));
                    at += between(&mut self.rng, (20 * MINUTE, 60 * MINUTE));
                }
                // 21 times the average (rounded up), so a rule at 20x trips with > and >=.
                let cents = (sum * 21 + 4) / 5;
                orders.push(PatternOrder::new(at, cents, AUTHORIZE_AFTER, CAPTURE_AFTER));
            }
            FraudPattern::IpMismatch => {
                let cents = between(&mut self.rng, (2_000, 20_000));
                orders.push(PatternOrder::new(0, cents, AUTHORIZE_AFTER, CAPTURE_AFTER));
            }
            FraudPattern::HourlyTotal => {
                // Three orders within 50 minutes, 2,100-2,700 together.
                let second = between(&mut self.rng, (5 * MINUTE, 20 * MINUTE));
                let third = between(&mut self.rng, (25 * MINUTE, 50 * MINUTE));
                for at in [0, second, third] {
                    let cents = between(&mut self.rng, (70_000, 90_000));
                    orders.push(PatternOrder::new(
                        at,
                        cents,
                        (10 * SECOND, 2 * MINUTE),
                        CAPTURE_AFTER,
                    ));
                }
            }
        }
        let ip = if pattern == FraudPattern::IpMismatch {
            // Any other country of the world (or `ZZ` in a world of one).
            let other = below(&mut self.rng, self.countries.len() - 1) as u32;
            if other >= country {
                other + 1
            } else {
                other
            }
        } else {
            country
        };
        for PatternOrder {
            at,
            cents,
            authorize,
            capture,
        } in orders
        {
            let mut plan = Plan::new(at);
            plan.pay(&mut self.rng, authorize, capture);
            plan.fulfil(&mut self.rng, None);
            self.add(
                now,
                schedule,
                Flow {
                    number: 0,
                    anomaly: Some(Anomaly::Fraud(pattern)),
                    store_id: 0,
                    amount: Decimal::new(cents, 2),
                    customer: number,
                    card,
                    billing: country,
                    ip,
                    plan,
                },
            );
        }
    }

    /// Numbers `flow`, gives it a store, and queues its first step.
    fn add(&mut self, now: i64, schedule: &mut Schedule, mut flow: Flow) {
        flow.number = self.next_order;
        self.next_order += 1;
        flow.store_id = below(&mut self.rng, self.stores) as i64 + 1;
        let first = now.saturating_add(flow.plan.steps[0].0);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(flow);
                slot
            }
            None => {
                self.slots.push(Some(flow));
                (self.slots.len() - 1) as u32
            }
        };
        self.in_flight += 1;
        schedule.push(first, Due::Flow(slot));
    }

    /// The event of the next step of the flow in `slot`, emitted at `now`; queues the step
    /// after it, or ends the flow. `None` if the slot is empty (it never is when the schedule
    /// says it is due).
    pub(crate) fn step(
        &mut self,
        slot: u32,
        now: i64,
        schedule: &mut Schedule,
    ) -> Option<(EventBody, Option<Anomaly>)> {
        let flow = self.slots.get_mut(slot as usize)?.as_mut()?;
        let (_, step) = flow.plan.steps[usize::from(flow.plan.next)];
        flow.plan.next += 1;
        let flow = *flow;
        let body = self.body(&flow, step);
        let anomaly = flow.anomaly;
        if flow.plan.next < flow.plan.len {
            let after = flow.plan.steps[usize::from(flow.plan.next)].0;
            schedule.push(now.saturating_add(after), Due::Flow(slot));
        } else {
            self.slots[slot as usize] = None;
            self.free.push(slot);
            self.in_flight -= 1;
        }
        Some((body, anomaly))
    }

    fn body(&self, flow: &Flow, step: Step) -> EventBody {
        let order_id = format!("O-{:06}", flow.number);
        let customer_id = Some(format!("C-{:05}", flow.customer));
        match step {
            Step::Order(status) => EventBody::Order(Order {
                order_id,
                status,
                store_id: Some(flow.store_id),
                amount: Some(flow.amount),
                currency: Some(CURRENCY.to_owned()),
                customer_id,
                channel: "web",
            }),
            Step::Payment(status) => EventBody::Payment(Payment {
                payment_id: format!("P-{:06}-1", flow.number),
                order_id,
                amount: flow.amount,
                currency: CURRENCY.to_owned(),
                status,
                card_id: Some(format!("card-{:016x}", flow.card)),
                customer_id,
                ip_country: Some(self.countries[flow.ip as usize].clone()),
                billing_country: Some(self.countries[flow.billing as usize].clone()),
            }),
        }
    }

    /// Customer `number`'s traits.
    fn customer(&self, number: u64) -> Customer {
        let h = mix64(self.seed ^ mix64(number ^ 0x6375_7374_6f6d_6572));
        Customer {
            number,
            country: (h % self.homes as u64) as u32,
            cards: 1 + (h >> 32) % 2,
            usual_cents: USUAL_CENTS.0 + ((h >> 40) % (USUAL_CENTS.1 - USUAL_CENTS.0) as u64) as i64,
        }
    }

    /// The token of a customer's `k`-th card (never a card number).
    fn card(&self, customer: u64, k: u64) -> u64 {
        mix64(self.seed ^ mix64(customer ^ 0x6361_7264) ^ k)
    }

    /// A few popular products' prices, brought within the customer's usual band and the band
    /// of ordinary orders.
    fn ordinary_amount(&mut self, customer: &Customer, world: &World) -> Decimal {
        let lines = 1 + below(&mut self.rng, 3);
        let mut cents = 0;
        for _ in 0..lines {
            let mut price = world.popular_product(&mut self.rng).price.unwrap_or_default();
            price.rescale(2);
            let qty = 1 + below(&mut self.rng, 2) as i64;
            cents += i64::try_from(price.mantissa()).unwrap_or(0) * qty;
        }
        let cents = cents
            .clamp(customer.usual_cents / 2, customer.usual_cents * 2)
            .clamp(ORDER_CENTS.0, ORDER_CENTS.1);
        Decimal::new(cents, 2)
    }
}

/// A uniform whole number of `range.0..=range.1`.
fn between(rng: &mut ChaCha8Rng, range: (i64, i64)) -> i64 {
    let span = (range.1 - range.0).max(0) as usize + 1;
    range.0 + below(rng, span) as i64
}
