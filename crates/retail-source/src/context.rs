//! What a source is given when it is built: the log, metrics, health, shutdown, its own state
//! directory, a place to mount HTTP routes on the main server, and the landing's backlog.
//!
//! Everything a source needs from the rest of the pipeline comes through here, so a new source
//! is one folder and one registry line, never an edit of the binary.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use retail_core::{Health, Metrics, Shutdown};
use retail_log::Log;

use crate::runtime::SourceRuntime;

/// HTTP routes sources mount on the main server (webhooks at `POST /ingest/<path>`). The
/// binary merges them into the server's router once every source is built.
#[derive(Debug, Clone, Default)]
pub struct Routes(Arc<Mutex<Vec<axum::Router>>>);

impl Routes {
    /// Adds a source's routes. Paths must not collide; the registry checks webhook paths at
    /// configuration time, because axum refuses overlapping routes with a panic.
    pub fn mount(&self, router: axum::Router) {
        if let Ok(mut v) = self.0.lock() {
            v.push(router);
        }
    }

    /// Every mounted route in one router, answering a JSON 404 for any other path.
    pub fn merged(&self) -> axum::Router {
        let routers = self
            .0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        routers
            .into_iter()
            .fold(axum::Router::new(), axum::Router::merge)
            .fallback(not_found)
    }
}

async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = serde_json::json!({
        "error": {"code": "not_found", "message": format!("no source listens on {}", uri.path())}
    });
    (axum::http::StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

/// Records on the log that the landing has not yet landed, as the binary last sampled them.
/// Sources that can ask their senders to wait (webhooks: 503 with `Retry-After`) hold back
/// when it is above their bound: the store is far behind, and more input would only grow the
/// log faster than it drains.
#[derive(Debug, Clone, Default)]
pub struct Backlog(Arc<AtomicI64>);

impl Backlog {
    /// Sets the sampled backlog.
    pub fn set(&self, records: i64) {
        self.0.store(records, Ordering::Relaxed);
    }

    /// The last sampled backlog, in records.
    pub fn records(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What every source is built with.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// The log the source appends to.
    pub log: Arc<dyn Log>,
    /// The pipeline's metrics.
    pub metrics: Metrics,
    /// Each component's state for `/health`.
    pub health: Health,
    /// Stops the sources.
    pub shutdown: Shutdown,
    /// The pipeline's data directory; each source keeps its state in
    /// [`Self::state_dir`]` = <data_dir>/sources/<name>`.
    pub data_dir: PathBuf,
    /// Partitions of every topic the source creates.
    pub partitions: i32,
    /// Where HTTP routes are mounted on the main server.
    pub routes: Routes,
    /// The landing's backlog.
    pub backlog: Backlog,
    /// Whether the main server listens on loopback only (a webhook may then go without auth).
    pub loopback: bool,
}

impl SourceContext {
    /// The state directory of the source `name`, created if missing.
    pub fn state_dir(&self, name: &str) -> crate::Result<PathBuf> {
        let dir = self.data_dir.join("sources").join(name);
        std::fs::create_dir_all(&dir).map_err(|e| {
            crate::Error::io(
                format!("source {name:?}: creating its state directory {}", dir.display()),
                e,
            )
        })?;
        Ok(dir)
    }

    /// A runtime for the source `name` of type `kind`.
    pub fn runtime(&self, name: &str, kind: &'static str) -> SourceRuntime {
        SourceRuntime::new(
            name,
            kind,
            self.log.clone(),
            &self.metrics,
            self.health.clone(),
            self.shutdown.clone(),
        )
    }
}
