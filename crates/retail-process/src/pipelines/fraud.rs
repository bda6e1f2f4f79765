//! The processor's half of the fraud rules (ADR 0025): `[processing.fraud]` with its rules as
//! data (the five built-in ones unless the configuration lists its own), the fact each
//! authorised payment contributes, and the pipeline time (the smallest watermark of the
//! `payments` partitions). The rows and the verdicts live in the store
//! (`retail_sink::derived::fraud`).

use retail_core::event::PaymentStatus;
use retail_core::{Event, EventBody};
use retail_sink::derived::fraud::{FraudRule, KeyField, Measure, PaymentFact};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// `[processing.fraud]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FraudConfig {
    /// Whether authorised payments are judged by the rules.
    pub enabled: bool,
    /// The rules (`[[processing.fraud.rules]]`); when none are listed, the five built-in ones:
    /// `card_velocity`, `customer_hourly_total`, `tiny_then_large`, `far_above_history`,
    /// `ip_billing_mismatch`.
    pub rules: Vec<FraudRuleSpec>,
}

impl Default for FraudConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rules: Vec::new(),
        }
    }
}

/// One `[[processing.fraud.rules]]` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FraudRuleSpec {
    /// Name: letters, digits and `_`; alerts carry it.
    pub name: String,
    /// The payment field the rule keys on: `card_id` or `customer_id`.
    pub key: String,
    /// Window in milliseconds: what `count`, `sum` and `tiny_then_large` look back over, and
    /// the least time between two alerts of one rule and key.
    pub window_ms: u64,
    /// `count`, `sum`, `tiny_then_large`, `amount_over_history` or `country_mismatch`.
    pub measure: Measure,
    /// `>` (default) or `>=`.
    #[serde(default = "greater")]
    pub comparison: String,
    /// The limit the measure is compared with (a count, an amount, or for
    /// `amount_over_history` a factor of the key's average).
    #[serde(default)]
    pub threshold: f64,
    /// `tiny_then_large`: amounts strictly below this are tiny.
    #[serde(default = "one")]
    pub tiny_below: f64,
    /// `amount_over_history`: earlier payments needed before judging.
    #[serde(default = "five")]
    pub min_history: u32,
    /// `info`, `warning` or `critical`.
    #[serde(default = "warning")]
    pub severity: String,
}

fn greater() -> String {
    ">".to_owned()
}
const fn one() -> f64 {
    1.0
}
const fn five() -> u32 {
    5
}
fn warning() -> String {
    "warning".to_owned()
}

/// The built-in rules, in the very format a user writes.
pub const BUILTIN_TOML: &str = r#"
[[rules]]
name = "card_velocity"
key = "card_id"
window_ms = 600000
measure = "count"
threshold = 5
severity = "critical"

[[rules]]
name = "customer_hourly_total"
key = "customer_id"
window_ms = 3600000
measure = "sum"
threshold = 2000
severity = "warning"

[[rules]]
name = "tiny_then_large"
key = "card_id"
window_ms = 60000
measure = "tiny_then_large"
tiny_below = 1.0
threshold = 500
severity = "critical"

[[rules]]
name = "far_above_history"
key = "customer_id"
window_ms = 86400000
measure = "amount_over_history"
threshold = 20
min_history = 5
severity = "warning"

[[rules]]
name = "ip_billing_mismatch"
key = "card_id"
window_ms = 3600000
measure = "country_mismatch"
severity = "warning"
"#;

#[derive(Deserialize)]
struct Builtin {
    rules: Vec<FraudRuleSpec>,
}

/// The built-in rules.
pub fn builtin() -> Vec<FraudRuleSpec> {
    toml::from_str::<Builtin>(BUILTIN_TOML)
        .map(|b| b.rules)
        .unwrap_or_default()
}

fn decimal(name: &str, key: &str, v: f64) -> Result<Decimal, String> {
    Decimal::from_f64_retain(v)
        .map(|d| d.round_dp(6).normalize())
        .ok_or_else(|| format!("processing.fraud.rules {name}: {key} = {v} is not a number"))
}

impl FraudConfig {
    /// The rules the store runs, checked: a bad value names the rule and the key.
    pub fn compile(&self) -> Result<Vec<FraudRule>, String> {
        let specs = if self.rules.is_empty() {
            builtin()
        } else {
            self.rules.clone()
        };
        let mut names = std::collections::HashSet::new();
        specs
            .iter()
            .map(|s| {
                let n = &s.name;
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(format!(
                        "processing.fraud.rules: name {n:?} must be letters, digits and _"
                    ));
                }
                if !names.insert(n.clone()) {
                    return Err(format!("processing.fraud.rules: {n} is listed twice"));
                }
                let key = match s.key.as_str() {
                    "card_id" => KeyField::Card,
                    "customer_id" => KeyField::Customer,
                    other => {
                        return Err(format!(
                            "processing.fraud.rules {n}: key must be card_id or customer_id, got {other:?}"
                        ))
                    }
                };
                let inclusive = match s.comparison.as_str() {
                    ">" => false,
                    ">=" => true,
                    other => {
                        return Err(format!(
                            "processing.fraud.rules {n}: comparison must be > or >=, got {other:?}"
                        ))
                    }
                };
                let severity: &'static str = match s.severity.as_str() {
                    "info" => "info",
                    "warning" => "warning",
                    "critical" => "critical",
                    other => {
                        return Err(format!(
                            "processing.fraud.rules {n}: severity must be info, warning or critical, got {other:?}"
                        ))
                    }
                };
                if s.window_ms == 0 {
                    return Err(format!("processing.fraud.rules {n}: window_ms must be above 0"));
                }
                Ok(FraudRule {
                    name: n.clone(),
                    key,
                    window_ms: i64::try_from(s.window_ms).unwrap_or(i64::MAX),
                    measure: s.measure,
                    inclusive,
                    threshold: decimal(n, "threshold", s.threshold)?,
                    tiny_below: decimal(n, "tiny_below", s.tiny_below)?,
                    min_history: s.min_history,
                    severity,
                })
            })
            .collect()
    }
}

/// The fact `event` contributes: an authorised payment.
pub fn fact_of(event: &Event) -> Option<PaymentFact> {
    let EventBody::Payment(p) = &event.body else {
        return None;
    };
    (p.status == PaymentStatus::Authorized).then(|| PaymentFact {
        event_id: event.event_id,
        ts: event.ts.timestamp_millis(),
        payment_id: p.payment_id.clone(),
        amount: p.amount,
        card_id: p.card_id.clone(),
        customer_id: p.customer_id.clone(),
        ip_country: p.ip_country.clone(),
        billing_country: p.billing_country.clone(),
    })
}

/// The rules' running state in the processor.
pub type FraudPipeline = super::Pipeline<Vec<FraudRule>, PaymentFact>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_rules_compile() {
        let rules = FraudConfig::default().compile().expect("builtin");
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "card_velocity",
                "customer_hourly_total",
                "tiny_then_large",
                "far_above_history",
                "ip_billing_mismatch"
            ]
        );
        assert_eq!(rules[2].tiny_below, Decimal::ONE);
        assert_eq!(rules[1].threshold, Decimal::from(2000));
    }

    #[test]
    fn a_bad_rule_names_itself_and_the_key() {
        let mut c = FraudConfig {
            rules: builtin(),
            ..FraudConfig::default()
        };
        c.rules[0].key = "iban".into();
        let e = c.compile().expect_err("bad key").to_string();
        assert!(e.contains("card_velocity") && e.contains("key"), "{e}");
        c.rules = builtin();
        c.rules[1].comparison = "<".into();
        let e = c.compile().expect_err("bad comparison").to_string();
        assert!(
            e.contains("customer_hourly_total") && e.contains("comparison"),
            "{e}"
        );
    }
}
