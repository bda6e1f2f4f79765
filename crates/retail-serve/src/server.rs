//! Binding and running the HTTP server, and [`ServeState`], what every handler reads.
//!
//! The server starts before the log and the store are open (so `/health` answers while they
//! open, or while the store is retried), so the parts that arrive later sit in slots the
//! binary fills once they exist: until then the API answers 503 saying what it waits for.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use retail_core::{Health, Metrics, Shutdown};
use retail_log::Log;
use retail_sink::Reader;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

use crate::access::Access;
use crate::controls::Controls;
use crate::lineage::LineageView;
use crate::live::{Snapshot, Ticker};
use crate::probe::{PipelineStatus, Probe};

/// The parts of the pipeline that exist only after the server started.
#[derive(Debug, Default)]
struct Slots {
    reader: OnceLock<Arc<dyn Reader>>,
    log: OnceLock<Arc<dyn Log>>,
    probe: OnceLock<Arc<dyn Probe>>,
    live: OnceLock<watch::Receiver<Arc<Snapshot>>>,
    ingest: OnceLock<axum::Router>,
    schemas: OnceLock<(Arc<retail_schema::SchemaRegistry>, axum::Router)>,
    lineage: OnceLock<Arc<dyn LineageView>>,
    landing_group: OnceLock<String>,
}

/// What the handlers read. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServeState {
    /// The pipeline's metrics.
    pub metrics: Metrics,
    /// Each component's state.
    pub health: Health,
    /// Process start, for uptime.
    pub started: Instant,
    /// Who may call what.
    pub access: Arc<Access>,
    /// Pause, resume and rate of each source and the landing.
    pub controls: Controls,
    /// Permits of the open live streams: each holds a connection and a task for as long as a
    /// page stays open, so their number is bounded ([`MAX_LIVE_STREAMS`] by default).
    pub live_streams: Arc<tokio::sync::Semaphore>,
    slots: Arc<Slots>,
}

/// Where the schema registry's Confluent REST API is served: Confluent's clients take a base URL
/// with a path (`schema.registry.url = http://host:8080/schema-registry`).
pub const SCHEMA_REGISTRY: &str = "/schema-registry";

/// Live streams open at once by default; one more is answered 503 until one closes.
pub const MAX_LIVE_STREAMS: usize = 256;

impl ServeState {
    /// A state with nothing open yet: the API answers 503 until the slots are filled.
    pub fn new(metrics: Metrics, health: Health, access: Access) -> Self {
        Self {
            metrics,
            health,
            started: Instant::now(),
            access: Arc::new(access),
            controls: Controls::default(),
            live_streams: Arc::new(tokio::sync::Semaphore::new(MAX_LIVE_STREAMS)),
            slots: Arc::default(),
        }
    }

    /// The same state with at most `n` live streams open at once.
    #[must_use]
    pub fn with_max_live_streams(mut self, n: usize) -> Self {
        self.live_streams = Arc::new(tokio::sync::Semaphore::new(n));
        self
    }

    /// The store's read side, once the store is open.
    pub fn reader(&self) -> Option<Arc<dyn Reader>> {
        self.slots.reader.get().cloned()
    }

    /// Fills the reader slot (later calls are ignored).
    pub fn set_reader(&self, reader: Arc<dyn Reader>) {
        let _ = self.slots.reader.set(reader);
    }

    /// The log, once open (resubmitting appends to it).
    pub fn log(&self) -> Option<Arc<dyn Log>> {
        self.slots.log.get().cloned()
    }

    /// Fills the log slot (later calls are ignored).
    pub fn set_log(&self, log: Arc<dyn Log>) {
        let _ = self.slots.log.set(log);
    }

    /// Fills the pipeline probe slot (later calls are ignored).
    pub fn set_probe(&self, probe: Arc<dyn Probe>) {
        let _ = self.slots.probe.set(probe);
    }

    /// The lineage graph's source, once the pipeline runs.
    pub fn lineage(&self) -> Option<Arc<dyn LineageView>> {
        self.slots.lineage.get().cloned()
    }

    /// Fills the lineage slot (later calls are ignored).
    pub fn set_lineage(&self, view: Arc<dyn LineageView>) {
        let _ = self.slots.lineage.set(view);
    }

    /// The landing's consumer group, whose pipeline clock the order endpoints report.
    pub fn landing_group(&self) -> Option<String> {
        self.slots.landing_group.get().cloned()
    }

    /// Fills the landing group slot (later calls are ignored).
    pub fn set_landing_group(&self, group: impl Into<String>) {
        let _ = self.slots.landing_group.set(group.into());
    }

    /// The schema registry's Confluent REST API, nested at `/schema-registry`, once the
    /// registry is open.
    pub fn schemas(&self) -> Option<axum::Router> {
        self.slots.schemas.get().map(|(_, routes)| routes.clone())
    }

    /// The schema registry, once it is open.
    pub fn schema_registry(&self) -> Option<Arc<retail_schema::SchemaRegistry>> {
        self.slots.schemas.get().map(|(registry, _)| Arc::clone(registry))
    }

    /// Fills the schema registry slot (later calls are ignored).
    pub fn set_schemas(&self, registry: Arc<retail_schema::SchemaRegistry>) {
        let routes = axum::Router::new().nest(
            SCHEMA_REGISTRY,
            retail_schema::rest::router(Arc::clone(&registry)),
        );
        let _ = self.slots.schemas.set((registry, routes));
    }

    /// The sources' routes under `/ingest/` (webhooks), once every source is built.
    pub fn ingest(&self) -> Option<axum::Router> {
        self.slots.ingest.get().cloned()
    }

    /// Fills the ingest slot with the sources' merged routes (later calls are ignored).
    pub fn set_ingest(&self, routes: axum::Router) {
        let _ = self.slots.ingest.set(routes);
    }

    /// The dashboard's snapshots, once [`serve`] started their ticker.
    pub fn live(&self) -> Option<watch::Receiver<Arc<Snapshot>>> {
        self.slots.live.get().cloned()
    }

    /// The pipeline's report, once it runs.
    pub async fn pipeline_status(&self) -> Option<PipelineStatus> {
        let probe = self.slots.probe.get().cloned()?;
        Some(probe.status().await)
    }
}

/// How the server holds up: its connection cap, its timeouts and TLS (`[serve]`, ADR 0016).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Connections served at once; more wait in the kernel's listen backlog until one closes.
    pub max_connections: usize,
    /// From accept (or from the first byte of a later request) to a complete request head,
    /// the TLS handshake included; then the connection is closed.
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may wait silently for its next request.
    pub idle_timeout: Duration,
    /// How long an API request may take to answer (503 after); not the live stream, not
    /// `/ingest`.
    pub request_timeout: Duration,
    /// HTTPS when set; plain HTTP otherwise.
    pub tls: Option<crate::tls::TlsConfig>,
}

impl ServeOptions {
    /// Default [`ServeOptions::max_connections`].
    pub const MAX_CONNECTIONS: usize = 1024;
    /// Default [`ServeOptions::header_read_timeout`].
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default [`ServeOptions::idle_timeout`].
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default [`ServeOptions::request_timeout`].
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_connections: Self::MAX_CONNECTIONS,
            header_read_timeout: Self::HEADER_READ_TIMEOUT,
            idle_timeout: Self::IDLE_TIMEOUT,
            request_timeout: Self::REQUEST_TIMEOUT,
            tls: None,
        }
    }
}

/// [`serve_with`] with the default [`ServeOptions`] (plain HTTP).
pub async fn serve(
    listen: SocketAddr,
    state: ServeState,
    shutdown: Shutdown,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    serve_with(listen, state, ServeOptions::default(), shutdown).await
}

/// Binds `listen` and serves in a background task until `shutdown`. Returns the bound address
/// (useful with port 0) and the task.
pub async fn serve_with(
    listen: SocketAddr,
    state: ServeState,
    options: ServeOptions,
    shutdown: Shutdown,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    info!(
        message = "serving /health, /metrics, /api and /docs",
        %addr,
        tls = options.tls.is_some(),
        max_connections = options.max_connections
    );
    // The ticker reads the store and the controls through this same state (see live/inputs.rs).
    let snapshots = Ticker::spawn(
        state.metrics.clone(),
        state.health.clone(),
        Arc::new(state.clone()),
        shutdown.clone(),
    );
    let _ = state.slots.live.set(snapshots);
    let app = crate::routes::router(state, options.request_timeout);
    let task = tokio::spawn(crate::conn::run(listener, app, options, shutdown));
    Ok((addr, task))
}
