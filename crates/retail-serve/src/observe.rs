//! What the server itself adds to `/metrics`: HTTP requests by route and status, and the
//! gauges read at scrape time (memory, component states, log ends). Also the `/metrics`
//! handler, which answers OpenMetrics to clients that ask for it (Prometheus does) and the
//! Prometheus text format 0.0.4 to everyone else (ADR 0007).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use retail_core::event::topics;
use retail_core::{Metrics, TopicPartition};

use crate::server::ServeState;

/// Route label of requests no route matched (404s): never the raw path, which a client picks.
pub const UNMATCHED: &str = "unmatched";

/// A slow log (a Kafka broker away) must not hold the scrape: past this the log's figures keep
/// their previous values.
const LOG_SAMPLE_BUDGET: Duration = Duration::from_millis(500);

/// Counts every request of `router` by method, matched route and status, and times it.
/// Only routes present in `router` when this is applied are counted, so apply it last.
pub fn instrument<S: Clone + Send + Sync + 'static>(router: Router<S>, metrics: Metrics) -> Router<S> {
    let handles = Arc::new(RouteHandles::new(metrics));
    router.layer(axum::middleware::from_fn(move |req: Request, next: Next| {
        let handles = Arc::clone(&handles);
        async move {
            let method = method_label(req.method());
            // The route pattern (`/api/v1/sales/{id}`), so the label set stays bounded. Cloning
            // it clones an `Arc`, not the text.
            let matched = req.extensions().get::<MatchedPath>().cloned();
            let started = Instant::now();
            let response = next.run(req).await;
            let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
            handles.observe(method, route, response.status().as_u16(), started.elapsed());
            response
        }
    }))
}

/// The request metrics' handles by route, method and status, looked up with borrowed strings.
/// Asking [`Metrics`] for them builds a label set (a `String` per label) and hashes it, on
/// every request; with single-event webhooks at tens of thousands of requests a second that
/// showed in the profile. The map holds what the metric families hold (one entry per route,
/// method and status seen), so it is bounded as they are.
#[derive(Debug)]
struct RouteHandles {
    metrics: Metrics,
    routes: RwLock<HashMap<String, RouteEntry>>,
}

/// One route's handles: few methods and statuses each, so a list is the fastest lookup.
#[derive(Debug, Default)]
struct RouteEntry {
    seconds: Vec<(&'static str, Histogram)>,
    requests: Vec<(&'static str, u16, Counter)>,
}

impl RouteHandles {
    fn new(metrics: Metrics) -> Self {
        Self {
            metrics,
            routes: RwLock::new(HashMap::new()),
        }
    }

    fn observe(&self, method: &'static str, route: &str, status: u16, took: Duration) {
        let seconds = took.as_secs_f64();
        {
            let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
            if routes
                .get(route)
                .is_some_and(|e| e.record(method, status, seconds))
            {
                return;
            }
        }
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        let entry = routes.entry(route.to_owned()).or_default();
        if !entry.seconds.iter().any(|(m, _)| *m == method) {
            let h = self.metrics.http_request_seconds(method, route);
            entry.seconds.push((method, h));
        }
        if !entry
            .requests
            .iter()
            .any(|(m, s, _)| *m == method && *s == status)
        {
            let c = self.metrics.http_requests(method, route, status);
            entry.requests.push((method, status, c));
        }
        entry.record(method, status, seconds);
    }
}

impl RouteEntry {
    /// Counts and times one request; `false` when a handle is not there yet.
    fn record(&self, method: &str, status: u16, seconds: f64) -> bool {
        let timer = self.seconds.iter().find(|(m, _)| *m == method);
        let counter = self
            .requests
            .iter()
            .find(|(m, s, _)| *m == method && *s == status);
        match (timer, counter) {
            (Some((_, timer)), Some((_, _, counter))) => {
                timer.observe(seconds);
                counter.inc();
                true
            }
            _ => false,
        }
    }
}

/// Methods outside the standard set are one label value, so a client cannot grow the series.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(s): State<ServeState>, headers: HeaderMap) -> Response {
    refresh(&s).await;
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            s.metrics.render(),
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            s.metrics.render_text(),
        )
            .into_response()
    }
}

/// Sets the gauges that are read rather than counted, just before they are rendered.
pub(crate) async fn refresh(s: &ServeState) {
    let m = &s.metrics;
    m.uptime_seconds().set(s.started.elapsed().as_secs_f64());
    if let Some(bytes) = resident_memory_bytes() {
        m.resident_memory_bytes()
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
    let sources = s.controls.source_names();
    // A source that never rejected still shows 0, so `rate()` over it is 0 and not absent.
    for source in &sources {
        let _ = m.source_rejected(source);
    }
    let health = s.health.snapshot();
    m.set_component_states(
        health.iter().map(|(name, status)| (name.as_str(), status.state)),
        |name| {
            if sources.iter().any(|s| s == name) {
                "source"
            } else if name == crate::controls::LANDING || name.starts_with("landing:") {
                "landing"
            } else {
                "other"
            }
        },
    );
    if let Some(log) = s.log() {
        let _ = tokio::time::timeout(LOG_SAMPLE_BUDGET, sample_log(log.as_ref(), m)).await;
    }
}

static APPENDED_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// End offsets of every partition of every topic, and records appended per topic as the
/// sum of those ends. Read from the log itself, so appends by any writer (every source, every
/// instance on a shared Kafka) count, and the counter does not step back on a restart.
async fn sample_log(log: &dyn retail_log::Log, m: &Metrics) {
    for topic in topics::ALL {
        let Ok(partitions) = log.partitions(topic).await else {
            continue;
        };
        let mut appended = 0i64;
        for partition in 0..partitions {
            let tp = TopicPartition::new(topic, partition);
            if let Ok((_, high)) = log.watermarks(&tp).await {
                m.log_end_offset(topic, partition).set(high);
                appended += high.max(0);
            }
        }
        let counter = m.log_appended_records(topic);
        // Two scrapes at once must not both add the same growth.
        let _one_at_a_time = APPENDED_LOCK.lock();
        let grown = u64::try_from(appended).unwrap_or(0).saturating_sub(counter.get());
        counter.inc_by(grown);
    }
}

/// VmRSS from /proc/self/status, in bytes; `None` where there is no procfs.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"BREW").expect("method");
        assert_eq!(method_label(&odd), "other");
    }

    #[tokio::test]
    async fn requests_are_counted_by_route_method_and_status() {
        use tower::ServiceExt;
        let metrics = Metrics::new();
        let app = instrument(
            Router::new().route("/items/{id}", axum::routing::get(|| async { "ok" })),
            metrics.clone(),
        );
        for uri in ["/items/1", "/items/2", "/nope"] {
            let req = axum::http::Request::get(uri)
                .body(axum::body::Body::empty())
                .expect("request");
            let _ = app.clone().oneshot(req).await.expect("answer");
        }
        let text = metrics.render_text();
        for line in [
            r#"retail_http_requests_total{method="GET",route="/items/{id}",status="200"} 2"#,
            r#"retail_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
            r#"retail_http_request_duration_seconds_count{method="GET",route="/items/{id}"} 2"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn resident_memory_is_read_on_linux() {
        let rss = resident_memory_bytes().expect("VmRSS on Linux");
        assert!(rss > 1024 * 1024, "{rss}");
    }
}
