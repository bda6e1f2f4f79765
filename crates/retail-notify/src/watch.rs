//! The pipeline's own alerts: a component (a source, the landing, the log) that stays
//! `retrying` or `failed` longer than `notifications.pipeline_alert_after_ms` raises one alert
//! of kind `pipeline` (severity `critical` once failed, else `warning`), resolved when the
//! component is back. They go through the same outbox as the retail pipelines' alerts
//! ([`retail_sink::Store::raise_alerts`]); an alert that cannot be written (the store is what
//! fails) waits and is written with its resolution once the store answers again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use retail_core::health::{State, Status};
use retail_core::{Health, Shutdown};
use retail_sink::derived::orders::{alert_id, Alert, Resolution};
use retail_sink::outbox::Routes;
use retail_sink::Store;
use tracing::warn;

/// The kind of the pipeline's own alerts.
pub const PIPELINE_KIND: &str = "pipeline";

/// One component's current bad episode.
#[derive(Debug, Clone)]
struct Episode {
    since: Instant,
    since_at: DateTime<Utc>,
    alert: Option<uuid::Uuid>,
    severity: &'static str,
}

/// Decides the pipeline's own alerts from successive health snapshots. Pure: times come in.
#[derive(Debug)]
pub struct PipelineWatch {
    after: Duration,
    episodes: BTreeMap<String, Episode>,
}

impl PipelineWatch {
    /// Alerts for components bad longer than `after`.
    pub fn new(after: Duration) -> Self {
        Self {
            after,
            episodes: BTreeMap::new(),
        }
    }

    /// The alerts and resolutions `components` (as of `now`, `at` on the wall clock) raise.
    pub fn observe(
        &mut self,
        components: &BTreeMap<String, Status>,
        now: Instant,
        at: DateTime<Utc>,
    ) -> (Vec<Alert>, Vec<Resolution>) {
        let (mut alerts, mut resolutions) = (Vec::new(), Vec::new());
        for (name, status) in components {
            let bad = matches!(status.state, State::Retrying | State::Failed);
            if !bad {
                if let Some(ended) = self.episodes.remove(name) {
                    if let Some(id) = ended.alert {
                        resolutions.push(Resolution {
                            alert_id: id,
                            at: at.timestamp_millis(),
                        });
                    }
                }
                continue;
            }
            let severity = if status.state == State::Failed {
                "critical"
            } else {
                "warning"
            };
            let episode = self.episodes.entry(name.clone()).or_insert_with(|| Episode {
                since: now,
                since_at: at,
                alert: None,
                severity,
            });
            // A component that went from retrying to failed is news: a critical alert too.
            if episode.alert.is_some() && (episode.severity == "critical" || episode.severity == severity) {
                continue;
            }
            if now.saturating_duration_since(episode.since) < self.after {
                continue;
            }
            let since = episode
                .since_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let id = alert_id(PIPELINE_KIND, name, &format!("{since}|{severity}"));
            if let Some(previous) = episode.alert.replace(id) {
                resolutions.push(Resolution {
                    alert_id: previous,
                    at: at.timestamp_millis(),
                });
            }
            episode.severity = severity;
            alerts.push(Alert {
                alert_id: id,
                kind: PIPELINE_KIND,
                severity,
                subject: name.clone(),
                at: episode.since_at.timestamp_millis(),
                message: format!(
                    "{name} is {} since {since}: {}",
                    status.state.as_str(),
                    status.detail
                ),
            });
        }
        // Components gone from the map (a source removed) end their episodes too.
        self.episodes.retain(|name, e| {
            let keep = components.contains_key(name);
            if !keep {
                if let Some(id) = e.alert {
                    resolutions.push(Resolution {
                        alert_id: id,
                        at: at.timestamp_millis(),
                    });
                }
            }
            keep
        });
        (alerts, resolutions)
    }
}

/// Watches `health` until `shutdown` (every quarter of `after`, between 0.1 and 1 s) and
/// writes what [`PipelineWatch`] decides, keeping what the store refused for the next round.
pub async fn run(health: Health, store: Arc<dyn Store>, routes: Routes, after: Duration, shutdown: Shutdown) {
    let mut watch = PipelineWatch::new(after);
    let every = (after / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let (mut alerts, mut resolutions): (Vec<Alert>, Vec<Resolution>) = (Vec::new(), Vec::new());
    while !shutdown.is_triggered() {
        let (a, r) = watch.observe(&health.snapshot(), Instant::now(), Utc::now());
        alerts.extend(a);
        resolutions.extend(r);
        if !alerts.is_empty() || !resolutions.is_empty() {
            match store.raise_alerts(&alerts, &resolutions, &routes).await {
                Ok(()) => {
                    alerts.clear();
                    resolutions.clear();
                }
                Err(e) => warn!(message = "could not write the pipeline's own alerts; retrying", error = %e),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.wait() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: State) -> Status {
        Status {
            state,
            detail: "connection refused".into(),
        }
    }

    #[test]
    fn one_alert_per_episode_after_the_delay_resolved_when_back() {
        let mut w = PipelineWatch::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let at = |s: i64| DateTime::from_timestamp(1_790_000_000 + s, 0).expect("time");
        let mut map = BTreeMap::new();
        map.insert("source.lanes".to_owned(), status(State::Retrying));
        map.insert("landing".to_owned(), status(State::Running));
        assert_eq!(w.observe(&map, t0, at(0)), (vec![], vec![]));
        assert_eq!(w.observe(&map, t0 + Duration::from_secs(29), at(29)).0, vec![]);
        let (alerts, _) = w.observe(&map, t0 + Duration::from_secs(30), at(30));
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            (alerts[0].kind, alerts[0].severity, alerts[0].subject.as_str()),
            ("pipeline", "warning", "source.lanes")
        );
        assert_eq!(alerts[0].at, at(0).timestamp_millis(), "the episode's start");
        assert!(alerts[0].message.contains("retrying") && alerts[0].message.contains("connection refused"));
        // Once per episode.
        assert_eq!(
            w.observe(&map, t0 + Duration::from_secs(60), at(60)),
            (vec![], vec![])
        );
        // Failed now: a critical alert, the warning resolved.
        map.insert("source.lanes".to_owned(), status(State::Failed));
        let (critical, ended) = w.observe(&map, t0 + Duration::from_secs(61), at(61));
        assert_eq!(critical.len(), 1);
        assert_eq!(critical[0].severity, "critical");
        assert_eq!(
            ended,
            vec![Resolution {
                alert_id: alerts[0].alert_id,
                at: at(61).timestamp_millis()
            }]
        );
        assert_eq!(
            w.observe(&map, t0 + Duration::from_secs(62), at(62)),
            (vec![], vec![])
        );
        // Back: resolved; a new episode later is a new alert.
        map.insert("source.lanes".to_owned(), status(State::Running));
        let (none, ended) = w.observe(&map, t0 + Duration::from_secs(70), at(70));
        assert!(none.is_empty());
        assert_eq!(ended[0].alert_id, critical[0].alert_id);
        map.insert("source.lanes".to_owned(), status(State::Retrying));
        w.observe(&map, t0 + Duration::from_secs(80), at(80));
        let (again, _) = w.observe(&map, t0 + Duration::from_secs(110), at(110));
        assert_eq!(again.len(), 1);
        assert_ne!(again[0].alert_id, alerts[0].alert_id);
    }

    #[test]
    fn a_short_hiccup_raises_nothing() {
        let mut w = PipelineWatch::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let at = DateTime::from_timestamp(1_790_000_000, 0).expect("time");
        let mut map = BTreeMap::new();
        map.insert("landing".to_owned(), status(State::Retrying));
        w.observe(&map, t0, at);
        map.insert("landing".to_owned(), status(State::Running));
        assert_eq!(
            w.observe(&map, t0 + Duration::from_secs(40), at),
            (vec![], vec![])
        );
    }
}
