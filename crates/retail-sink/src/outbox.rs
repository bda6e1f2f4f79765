//! The notification outbox (ADR 0026): which channels an alert goes to, written as rows of
//! `notification_deliveries` in the same transaction as the alert, so an alert is never
//! committed without its deliveries nor a delivery without its alert.
//!
//! A dispatcher per channel (crate `retail-notify`) then claims due deliveries
//! ([`crate::Store::claim_deliveries`]), sends them and records the attempt
//! ([`crate::Store::finish_delivery`]). Every delivery ends in exactly one final state:
//! `sent`, `dead` (retries exhausted, with the last error) or `suppressed` (a repeat of a
//! delivery on the same channel with the same dedup key within the channel's window; it names
//! the delivery it repeats and nothing is sent).
//!
//! This file holds the routing ([`Routes`]), the deterministic ids and the de-duplication,
//! as pure functions both backends call ([`plan`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::derived::orders::Alert;

/// Where a delivery is on its way.
pub mod state {
    /// Waiting for its next attempt (or its first).
    pub const PENDING: &str = "pending";
    /// The channel accepted it.
    pub const SENT: &str = "sent";
    /// Every attempt failed; `last_error` says why.
    pub const DEAD: &str = "dead";
    /// A repeat within the dedup window; `duplicate_of` names the delivery it repeats.
    pub const SUPPRESSED: &str = "suppressed";
}

/// An alert's severity, ordered: a route takes alerts at or above its minimum.
pub fn severity_rank(severity: &str) -> Option<u8> {
    match severity {
        "info" => Some(0),
        "warning" => Some(1),
        "critical" => Some(2),
        _ => None,
    }
}

/// One channel's routing: which alerts it takes and how long a repeat is suppressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The channel's name (the `channel` column of its deliveries).
    pub channel: String,
    /// Alert kinds it takes (`payment_timeout`, `order_stuck`, `stock_risk`, `fraud`, ...);
    /// empty: every kind.
    pub kinds: Vec<String>,
    /// The lowest severity it takes (`info`, `warning`, `critical`).
    pub min_severity: String,
    /// An alert with the same dedup key (kind, severity, subject) as one this channel got less
    /// than this long before or after it, in event time, is suppressed. 0: never.
    pub dedup_window_ms: i64,
}

impl Route {
    /// Whether this channel takes `alert`.
    pub fn takes(&self, alert: &Alert) -> bool {
        let kind_ok = self.kinds.is_empty() || self.kinds.iter().any(|k| k == alert.kind);
        let min = severity_rank(&self.min_severity).unwrap_or(0);
        kind_ok && severity_rank(alert.severity).unwrap_or(u8::MAX) >= min
    }
}

/// Every channel's route. Empty: alerts are written with no deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// One per channel, names unique.
    pub routes: Vec<Route>,
}

/// No channel at all, for batches that carry no routes.
pub static NO_ROUTES: Routes = Routes { routes: Vec::new() };

impl Routes {
    /// Whether no channel is configured.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// A delivery's id: UUID v5 of the alert's id and the channel, so the same alert routed
/// again (a re-run, a replayed batch) is the same delivery, and receivers can use it as an
/// idempotency key.
pub fn delivery_id(alert_id: Uuid, channel: &str) -> Uuid {
    let mut name = alert_id.as_bytes().to_vec();
    name.extend_from_slice(channel.as_bytes());
    Uuid::new_v5(&Uuid::NAMESPACE_OID, &name)
}

/// What makes two alerts "the same" for a channel's dedup window.
pub fn dedup_key(alert: &Alert) -> String {
    format!("{}|{}|{}", alert.kind, alert.severity, alert.subject)
}

/// A delivery row to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// [`delivery_id`] of the alert and channel.
    pub delivery_id: Uuid,
    /// The alert.
    pub alert_id: Uuid,
    /// The channel.
    pub channel: String,
    /// [`dedup_key`] of the alert.
    pub dedup_key: String,
    /// The alert's event time, epoch milliseconds.
    pub alert_at: i64,
    /// `Some`: suppressed as a repeat of this delivery.
    pub duplicate_of: Option<Uuid>,
}

/// The last delivery (not suppressed) per (channel, dedup key) the store holds: its alert's
/// event time and its id. The backend loads it for the keys of a batch's new alerts.
pub type LastSent = HashMap<(String, String), (i64, Uuid)>;

/// Plans the deliveries of `alerts` (each new: inserted by this transaction) over `routes`,
/// given `last` (from the store, for the same keys). Alerts are taken in event-time order
/// (then by id), so the same alerts give the same plan whatever order they were raised in.
pub fn plan(routes: &Routes, alerts: &[&Alert], mut last: LastSent) -> Vec<Planned> {
    let mut sorted: Vec<&Alert> = alerts.to_vec();
    sorted.sort_by_key(|a| (a.at, a.alert_id));
    let mut out = Vec::new();
    for alert in sorted {
        let key = dedup_key(alert);
        for route in routes.routes.iter().filter(|r| r.takes(alert)) {
            let delivery_id = delivery_id(alert.alert_id, &route.channel);
            let slot = (route.channel.clone(), key.clone());
            let duplicate_of = match last.get(&slot) {
                Some(&(at, id))
                    if route.dedup_window_ms > 0 && (alert.at - at).abs() < route.dedup_window_ms =>
                {
                    Some(id)
                }
                _ => None,
            };
            if duplicate_of.is_none() {
                last.insert(slot, (alert.at, delivery_id));
            }
            out.push(Planned {
                delivery_id,
                alert_id: alert.alert_id,
                channel: route.channel.clone(),
                dedup_key: key.clone(),
                alert_at: alert.at,
                duplicate_of,
            });
        }
    }
    out
}

/// The (channel, dedup key) pairs `alerts` may need from the store for [`plan`].
pub fn keys(routes: &Routes, alerts: &[&Alert]) -> (Vec<String>, Vec<String>) {
    let mut channels = Vec::new();
    let mut keys = Vec::new();
    for alert in alerts {
        for route in routes
            .routes
            .iter()
            .filter(|r| r.takes(alert) && r.dedup_window_ms > 0)
        {
            channels.push(route.channel.clone());
            keys.push(dedup_key(alert));
        }
    }
    (channels, keys)
}

/// A delivery a dispatcher claimed, with its alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The idempotency key receivers see.
    pub delivery_id: Uuid,
    /// The channel.
    pub channel: String,
    /// This attempt's number, from 1 (the claim counted it).
    pub attempt: u32,
    /// The alert.
    pub alert_id: Uuid,
    /// Its kind.
    pub kind: String,
    /// Its severity.
    pub severity: String,
    /// What it is about.
    pub subject: String,
    /// Event time the condition became true.
    pub at: DateTime<Utc>,
    /// Human-readable explanation.
    pub message: String,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The channel accepted it: final state `sent`.
    Sent,
    /// It failed; `retry_at` is when to try again, or `None` for final state `dead`.
    Failed {
        /// What went wrong, for `last_error`.
        error: String,
        /// Next attempt (wall clock), or `None`: give up.
        retry_at: Option<DateTime<Utc>>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(kind: &'static str, severity: &'static str, subject: &str, at: i64) -> Alert {
        Alert {
            alert_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{kind}{subject}{at}").as_bytes()),
            kind,
            severity,
            subject: subject.to_owned(),
            at,
            message: String::new(),
        }
    }

    fn route(channel: &str, kinds: &[&str], min: &str, window: i64) -> Route {
        Route {
            channel: channel.to_owned(),
            kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
            min_severity: min.to_owned(),
            dedup_window_ms: window,
        }
    }

    #[test]
    fn routes_by_kind_and_minimum_severity() {
        let routes = Routes {
            routes: vec![
                route("hook", &[], "info", 0),
                route("mail", &["fraud"], "info", 0),
                route("pager", &[], "critical", 0),
            ],
        };
        let fraud = alert("fraud", "critical", "card-1", 1_000);
        let stuck = alert("order_stuck", "warning", "o-1", 2_000);
        let plan = plan(&routes, &[&fraud, &stuck], LastSent::new());
        let pairs: Vec<(&str, Uuid)> = plan.iter().map(|p| (p.channel.as_str(), p.alert_id)).collect();
        assert_eq!(
            pairs,
            vec![
                ("hook", fraud.alert_id),
                ("mail", fraud.alert_id),
                ("pager", fraud.alert_id),
                ("hook", stuck.alert_id),
            ]
        );
        assert!(plan.iter().all(|p| p.duplicate_of.is_none()));
        assert_eq!(plan[0].delivery_id, delivery_id(fraud.alert_id, "hook"));
        assert_ne!(plan[0].delivery_id, plan[1].delivery_id);
    }

    #[test]
    fn a_repeat_within_the_window_is_suppressed_whatever_the_arrival_order() {
        let routes = Routes {
            routes: vec![route("hook", &[], "info", 600_000), route("raw", &[], "info", 0)],
        };
        let first = alert("stock_risk", "warning", "s1/sku", 1_000_000);
        let again = alert("stock_risk", "warning", "s1/sku", 1_300_000);
        let later = alert("stock_risk", "warning", "s1/sku", 1_700_000);
        for order in [[&first, &again, &later], [&later, &again, &first]] {
            let plan = plan(&routes, &order, LastSent::new());
            let hook: Vec<_> = plan.iter().filter(|p| p.channel == "hook").collect();
            assert_eq!(hook.len(), 3);
            assert_eq!(hook[0].duplicate_of, None);
            assert_eq!(hook[1].duplicate_of, Some(hook[0].delivery_id));
            // 700 s after the last one sent: outside the window.
            assert_eq!(hook[2].duplicate_of, None);
            assert!(plan
                .iter()
                .filter(|p| p.channel == "raw")
                .all(|p| p.duplicate_of.is_none()));
        }
        // What the store already sent counts too.
        let mut last = LastSent::new();
        let earlier = Uuid::from_u128(7);
        last.insert(("hook".into(), dedup_key(&first)), (900_000, earlier));
        let plan = plan(&routes, &[&first], last);
        assert_eq!(plan[0].duplicate_of, Some(earlier));
    }

    #[test]
    fn another_severity_or_subject_is_not_a_repeat() {
        let routes = Routes {
            routes: vec![route("hook", &[], "info", 600_000)],
        };
        let low = alert("stock_risk", "warning", "s1/sku", 1_000_000);
        let critical = alert("stock_risk", "critical", "s1/sku", 1_000_001);
        let other = alert("stock_risk", "warning", "s2/sku", 1_000_002);
        let plan = plan(&routes, &[&low, &critical, &other], LastSent::new());
        assert!(plan.iter().all(|p| p.duplicate_of.is_none()));
    }
}
