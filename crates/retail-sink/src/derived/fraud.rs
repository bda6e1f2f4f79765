//! Fraud rules as data: each rule watches payments per key (a card or a customer) and raises a
//! `fraud_alerts` row, with the payment ids that tripped it, at most once per rule, key and
//! window (ADR 0025).
//!
//! Pure logic, run by the store inside the landing transaction like the stock pipeline
//! ([`super::stock`]): one row per rule and key, payments applied in `(ts, payment id)` order
//! once the pipeline time (the smallest watermark of the `payments` partitions) passes them, so
//! the alerts are those of a scan of the payments sorted by event time, and a replay or a
//! restart raises each once (deterministic ids). Only `authorized` payments are judged: each
//! payment is authorised once, so a capture does not count it twice.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::orders::{alert_id, Alert};

/// What a rule measures over a key's payments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Number of payments in the window.
    Count,
    /// Sum of the amounts in the window.
    Sum,
    /// A payment under `tiny_below` followed within the window by one over the threshold.
    TinyThenLarge,
    /// The payment's amount divided by the key's average of all earlier payments (after at
    /// least `min_history` of them).
    AmountOverHistory,
    /// The payment's IP country differs from its billing country (threshold unused).
    CountryMismatch,
}

/// One rule, as the store runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FraudRule {
    /// Rule name (alerts and rows carry it).
    pub name: String,
    /// `card_id` or `customer_id`.
    pub key: KeyField,
    /// Window length, milliseconds; an alert of this rule and key is raised at most once per
    /// window.
    pub window_ms: i64,
    /// What is measured.
    pub measure: Measure,
    /// `true`: `>=`; `false`: `>`.
    pub inclusive: bool,
    /// The limit.
    pub threshold: Decimal,
    /// For `tiny_then_large`: what counts as tiny (strictly below).
    pub tiny_below: Decimal,
    /// For `amount_over_history`: earlier payments needed before judging.
    pub min_history: u32,
    /// `info`, `warning` or `critical`.
    pub severity: &'static str,
}

/// The payment field a rule keys on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyField {
    /// The card token.
    Card,
    /// The customer.
    Customer,
}

/// An authorised payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFact {
    /// The event.
    pub event_id: Uuid,
    /// Event time, epoch milliseconds.
    pub ts: i64,
    /// Payment id.
    pub payment_id: String,
    /// Amount.
    pub amount: Decimal,
    /// Card token.
    pub card_id: Option<String>,
    /// Customer.
    pub customer_id: Option<String>,
    /// IP country.
    pub ip_country: Option<String>,
    /// Billing country.
    pub billing_country: Option<String>,
}

impl PaymentFact {
    fn key(&self, k: KeyField) -> Option<&str> {
        match k {
            KeyField::Card => self.card_id.as_deref(),
            KeyField::Customer => self.customer_id.as_deref(),
        }
    }
}

/// The pipeline's input for one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct FraudBatch {
    /// The rules.
    pub rules: Arc<Vec<FraudRule>>,
    /// Authorised payments of the batch, in log order.
    pub facts: Vec<PaymentFact>,
    /// Pipeline time after the batch.
    pub time: Option<i64>,
}

/// A payment as a rule's window keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Event time.
    pub ts: i64,
    /// Payment id.
    pub payment_id: String,
    /// Amount.
    pub amount: Decimal,
}

/// One rule and key's row (serialised in the `fold` column of `fraud_state`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FraudState {
    /// Rule name.
    pub rule: String,
    /// Key value.
    pub key: String,
    /// Payments not yet released.
    pub pending: Vec<PaymentFact>,
    /// Pipeline time up to which payments are applied.
    pub released_until: i64,
    /// Payments within the window of the latest applied one.
    pub window: VecDeque<Seen>,
    /// Count and sum of every applied payment (for `amount_over_history`).
    pub history: (u64, Decimal),
    /// Event time of the last alert, if any.
    pub last_alert: Option<i64>,
}

/// A fraud alert, for `fraud_alerts` (and `alerts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FraudAlert {
    /// The alert (id, kind `fraud`, severity, subject `rule:key`, time, message).
    pub alert: Alert,
    /// Rule.
    pub rule: String,
    /// Key value.
    pub key: String,
    /// Payments that tripped it.
    pub payment_ids: Vec<String>,
}

fn over(rule: &FraudRule, value: Decimal) -> bool {
    if rule.inclusive {
        value >= rule.threshold
    } else {
        value > rule.threshold
    }
}

impl FraudState {
    /// A row seen for the first time.
    pub fn new(rule: &str, key: &str) -> Self {
        Self {
            rule: rule.to_owned(),
            key: key.to_owned(),
            released_until: i64::MIN,
            ..Self::default()
        }
    }

    fn apply_now(&mut self, rule: &FraudRule, p: &PaymentFact, out: &mut Vec<FraudAlert>) {
        let from = p.ts.saturating_sub(rule.window_ms);
        let tripped: Option<(Vec<String>, String)> = match rule.measure {
            Measure::Count | Measure::Sum => {
                self.push(p);
                self.window.retain(|s| s.ts > from);
                let in_window = self.window.iter().filter(|s| s.ts <= p.ts);
                let (n, sum) = in_window.fold((0u64, Decimal::ZERO), |(n, s), w| (n + 1, s + w.amount));
                let value = if rule.measure == Measure::Count {
                    Decimal::from(n)
                } else {
                    sum
                };
                over(rule, value).then(|| {
                    let ids = self
                        .window
                        .iter()
                        .filter(|s| s.ts <= p.ts)
                        .map(|s| s.payment_id.clone());
                    (
                        ids.collect(),
                        format!(
                            "{} {value} in {} min",
                            measure_name(rule.measure),
                            rule.window_ms / 60_000
                        ),
                    )
                })
            }
            Measure::TinyThenLarge => {
                let tiny = self
                    .window
                    .iter()
                    .filter(|s| s.ts > from && s.ts <= p.ts && s.amount < rule.tiny_below)
                    .map(|s| s.payment_id.clone())
                    .next();
                let result = tiny.filter(|_| over(rule, p.amount)).map(|t| {
                    (
                        vec![t, p.payment_id.clone()],
                        format!(
                            "a payment under {} then {} within {} s",
                            rule.tiny_below,
                            p.amount,
                            rule.window_ms / 1000
                        ),
                    )
                });
                self.push(p);
                self.window.retain(|s| s.ts > from);
                result
            }
            Measure::AmountOverHistory => {
                let (n, sum) = self.history;
                let result = (n >= u64::from(rule.min_history) && !sum.is_zero())
                    .then(|| p.amount * Decimal::from(n) / sum)
                    .filter(|ratio| over(rule, *ratio))
                    .map(|ratio| {
                        (
                            vec![p.payment_id.clone()],
                            format!(
                                "{} is {:.1} times the average of {n} earlier payments",
                                p.amount, ratio
                            ),
                        )
                    });
                self.history = (n + 1, sum + p.amount);
                result
            }
            Measure::CountryMismatch => match (&p.ip_country, &p.billing_country) {
                (Some(ip), Some(bill)) if ip != bill => Some((
                    vec![p.payment_id.clone()],
                    format!("IP country {ip}, billing country {bill}"),
                )),
                _ => None,
            },
        };
        if let Some((payment_ids, what)) = tripped {
            if self.last_alert.is_none_or(|last| p.ts - last >= rule.window_ms) {
                self.last_alert = Some(p.ts);
                let subject = format!("{}:{}", rule.name, self.key);
                out.push(FraudAlert {
                    alert: Alert {
                        alert_id: alert_id("fraud", &subject, &p.payment_id),
                        kind: "fraud",
                        severity: rule.severity,
                        message: format!("{} on {}: {what}", rule.name, self.key),
                        subject,
                        at: p.ts,
                    },
                    rule: rule.name.clone(),
                    key: self.key.clone(),
                    payment_ids,
                });
            }
        }
    }

    fn push(&mut self, p: &PaymentFact) {
        let at = self
            .window
            .partition_point(|s| (s.ts, s.payment_id.as_str()) <= (p.ts, p.payment_id.as_str()));
        self.window.insert(
            at,
            Seen {
                ts: p.ts,
                payment_id: p.payment_id.clone(),
                amount: p.amount,
            },
        );
    }

    /// Takes a new payment: pending until the pipeline time passes it, at once if it did.
    pub fn take(&mut self, rule: &FraudRule, p: PaymentFact, out: &mut Vec<FraudAlert>) {
        if p.ts <= self.released_until {
            self.apply_now(rule, &p, out); // late: out of order
        } else {
            self.pending.push(p);
        }
    }

    /// Applies, in `(ts, payment id)` order, the pending payments the pipeline time passed.
    pub fn release(&mut self, rule: &FraudRule, now: i64, out: &mut Vec<FraudAlert>) {
        if now <= self.released_until {
            return;
        }
        self.released_until = now;
        let (mut due, keep): (Vec<PaymentFact>, Vec<PaymentFact>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.ts <= now);
        self.pending = keep;
        due.sort_by(|a, b| (a.ts, &a.payment_id).cmp(&(b.ts, &b.payment_id)));
        for p in &due {
            self.apply_now(rule, p, out);
        }
    }

    /// The pipeline time at which pending payments fall due.
    pub fn next_check(&self) -> Option<i64> {
        self.pending.iter().map(|p| p.ts).min()
    }
}

const fn measure_name(m: Measure) -> &'static str {
    match m {
        Measure::Count => "count",
        Measure::Sum => "total",
        Measure::TinyThenLarge => "tiny then large",
        Measure::AmountOverHistory => "amount over history",
        Measure::CountryMismatch => "country mismatch",
    }
}

/// What a batch changes.
#[derive(Debug, Default)]
pub struct FraudChanges {
    /// Rows that changed.
    pub rows: Vec<FraudState>,
    /// Alerts raised.
    pub alerts: Vec<FraudAlert>,
}

impl FraudBatch {
    /// The (rule, key) rows the batch's new payments touch, each once, sorted.
    pub fn touched(&self, is_new: impl Fn(&Uuid) -> bool) -> Vec<(String, String)> {
        let mut keys: Vec<(String, String)> = Vec::new();
        for p in self.facts.iter().filter(|p| is_new(&p.event_id)) {
            for r in self.rules.iter() {
                if let Some(k) = p.key(r.key) {
                    keys.push((r.name.clone(), k.to_owned()));
                }
            }
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Runs every rule over `loaded` (the stored rows of touched keys and of those with
    /// payments due).
    pub fn run(&self, loaded: Vec<FraudState>, is_new: impl Fn(&Uuid) -> bool) -> FraudChanges {
        let mut rows: BTreeMap<(String, String), (FraudState, bool)> = loaded
            .into_iter()
            .map(|s| ((s.rule.clone(), s.key.clone()), (s, false)))
            .collect();
        let by_name: BTreeMap<&str, &FraudRule> = self.rules.iter().map(|r| (r.name.as_str(), r)).collect();
        let mut out = FraudChanges::default();
        let mut seen = HashSet::new();
        for p in self.facts.iter().filter(|p| is_new(&p.event_id)) {
            if !seen.insert(p.event_id) {
                continue;
            }
            for r in self.rules.iter() {
                let Some(k) = p.key(r.key) else { continue };
                let (state, changed) = rows
                    .entry((r.name.clone(), k.to_owned()))
                    .or_insert_with(|| (FraudState::new(&r.name, k), false));
                state.take(r, p.clone(), &mut out.alerts);
                *changed = true;
            }
        }
        if let Some(now) = self.time {
            for (state, changed) in rows.values_mut() {
                let Some(rule) = by_name.get(state.rule.as_str()) else {
                    continue;
                };
                let before = (state.pending.len(), out.alerts.len());
                state.release(rule, now, &mut out.alerts);
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

    fn rule(measure: Measure, window_ms: i64, threshold: i64) -> FraudRule {
        FraudRule {
            name: "r".into(),
            key: KeyField::Card,
            window_ms,
            measure,
            inclusive: false,
            threshold: Decimal::from(threshold),
            tiny_below: Decimal::ONE,
            min_history: 5,
            severity: "critical",
        }
    }

    fn pay(n: u32, ts: i64, amount: Decimal) -> PaymentFact {
        PaymentFact {
            event_id: Uuid::from_u128(u128::from(n)),
            ts,
            payment_id: format!("P-{n:03}"),
            amount,
            card_id: Some("card-1".into()),
            customer_id: Some("C-1".into()),
            ip_country: Some("DE".into()),
            billing_country: Some("DE".into()),
        }
    }

    fn run(rule: FraudRule, pays: &[PaymentFact], cut: usize) -> Vec<FraudAlert> {
        let rules = Arc::new(vec![rule]);
        let mut rows = Vec::new();
        let mut alerts = Vec::new();
        let mut max = i64::MIN;
        for chunk in pays.chunks(cut) {
            max = max.max(chunk.iter().map(|p| p.ts).max().unwrap_or(max));
            let b = FraudBatch {
                rules: rules.clone(),
                facts: chunk.to_vec(),
                time: Some(max - 1),
            };
            let mut changes = b.run(std::mem::take(&mut rows), |_| true);
            alerts.append(&mut changes.alerts);
            rows = changes.rows;
        }
        let fin = FraudBatch {
            rules,
            facts: Vec::new(),
            time: Some(i64::MAX / 2),
        };
        alerts.extend(fin.run(rows, |_| true).alerts);
        alerts
    }

    #[test]
    fn velocity_fires_once_per_window_whatever_the_cut_or_order() {
        let r = rule(Measure::Count, 600_000, 5);
        let pays: Vec<PaymentFact> = (0..14)
            .map(|i| pay(i, i64::from(i) * 60_000, Decimal::TEN))
            .collect();
        let base = run(r.clone(), &pays, pays.len());
        // 6 payments by minute 5: fires (ids of the six); again only 10 min later (minute 15: none).
        assert_eq!(base.len(), 1, "{base:#?}");
        assert_eq!(base[0].payment_ids.len(), 6);
        assert_eq!(base[0].alert.at, 5 * 60_000);
        for cut in [1, 3] {
            assert_eq!(run(r.clone(), &pays, cut), base, "cut {cut}");
        }
        let mut rev = pays.clone();
        rev.reverse();
        assert_eq!(run(r, &rev, rev.len()), base, "reversed in one batch");
    }

    #[test]
    fn tiny_then_large_needs_the_tiny_one_first_within_the_window() {
        let r = rule(Measure::TinyThenLarge, 60_000, 500);
        let hit = run(
            r.clone(),
            &[pay(1, 0, Decimal::new(50, 2)), pay(2, 30_000, Decimal::from(800))],
            2,
        );
        assert_eq!(hit.len(), 1);
        assert_eq!(hit[0].payment_ids, ["P-001", "P-002"]);
        let too_slow = run(
            r.clone(),
            &[pay(1, 0, Decimal::new(50, 2)), pay(2, 61_000, Decimal::from(800))],
            2,
        );
        assert!(too_slow.is_empty());
        let wrong_order = run(
            r,
            &[pay(1, 0, Decimal::from(800)), pay(2, 1_000, Decimal::new(50, 2))],
            2,
        );
        assert!(wrong_order.is_empty());
    }

    #[test]
    fn amount_over_history_needs_a_history_and_compares_with_earlier_payments_only() {
        let r = rule(Measure::AmountOverHistory, 3_600_000, 20);
        let mut pays: Vec<PaymentFact> = (0..5)
            .map(|i| pay(i, i64::from(i) * 1000, Decimal::TEN))
            .collect();
        pays.push(pay(9, 10_000, Decimal::from(210)));
        let alerts = run(r.clone(), &pays, 1);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].payment_ids, ["P-009"]);
        // With four earlier payments only: no judgement yet.
        let short: Vec<PaymentFact> = pays[1..].to_vec();
        assert!(run(r, &short, 1).is_empty());
    }

    #[test]
    fn country_mismatch_and_a_sum_over_the_limit() {
        let mut p = pay(1, 0, Decimal::TEN);
        p.ip_country = Some("BR".into());
        let alerts = run(
            rule(Measure::CountryMismatch, 3_600_000, 0),
            &[p, pay(2, 1, Decimal::TEN)],
            1,
        );
        assert_eq!(alerts.len(), 1);
        assert!(alerts[0].alert.message.contains("IP country BR"));
        let big: Vec<PaymentFact> = (0..3)
            .map(|i| pay(i, i64::from(i) * 1000, Decimal::from(800)))
            .collect();
        let alerts = run(rule(Measure::Sum, 3_600_000, 2000), &big, 1);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].payment_ids.len(), 3);
    }

    #[test]
    fn the_state_round_trips_and_ids_are_stable() {
        let mut s = FraudState::new("r", "card-1");
        let mut out = Vec::new();
        s.take(&rule(Measure::Count, 1000, 0), pay(1, 5, Decimal::ONE), &mut out);
        let back: FraudState = serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("back");
        assert_eq!(back, s);
        let a = run(rule(Measure::Count, 1000, 0), &[pay(1, 5, Decimal::ONE)], 1);
        let b = run(rule(Measure::Count, 1000, 0), &[pay(1, 5, Decimal::ONE)], 1);
        assert_eq!(a[0].alert.alert_id, b[0].alert.alert_id);
    }
}
