//! The pipeline, assembled: (1) sources -> (2) log -> (3) process -> (4) sink -> (5) serve.
//!
//! Each stage has a function below, in the order events travel. [`start`] calls them in the
//! order they depend on each other: serve first (so `/health` answers while the rest opens),
//! then the log and the store, then the landing that joins them, then the sources that feed the
//! log. Stages talk only through the log and the store, so any of them could run elsewhere.
//! Lineage (the jobs' OpenLineage runs) starts once every stage runs and ends with them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use retail_core::event::topics;
use retail_core::health::State;
use retail_core::{Health, Metrics, Shutdown, TopicPartition};
use retail_log::metered::MeteredLog;
use retail_log::Log;
use retail_process::aggregate::{DedupScope, Engine};
use retail_process::{Landing, LandingConfig, LandingHandle};
use retail_schema::SchemaRegistry;
use retail_serve::{
    ControlKind, Controllable, LandingStatus, LogStatus, PartitionStatus, PipelineStatus, Probe, ServeState,
};
use retail_sink::{RegistryTables, Store, StoreUrl};
use retail_source::{Backlog, Routes, SourceContext, SourceHandle};
use tokio::task::JoinHandle;
use tracing::warn;

use crate::config::Config;
use crate::lineage::Lineage;

/// A started pipeline: handles on each stage and their tasks.
#[derive(Debug)]
pub struct Pipeline {
    /// The log.
    pub log: Arc<dyn Log>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The landing's progress and controls.
    pub landing: LandingHandle,
    /// Each source's handle: state, counters, pause, rate.
    pub sources: Vec<SourceHandle>,
    /// Where `/health`, `/metrics`, the API and the docs answer.
    pub http: SocketAddr,
    /// The sources' tasks, each with its source's handle.
    pub source_tasks: Vec<(SourceHandle, SourceTask)>,
    /// The landing's task; `None` once it was awaited.
    pub landing_task: Option<JoinHandle<retail_process::Result<()>>>,
    /// The HTTP server's task.
    pub serve_task: JoinHandle<std::io::Result<()>>,
    /// The notification dispatchers, one per channel (ADR 0026).
    notify_tasks: Vec<JoinHandle<()>>,
    /// Stops the dispatchers, after the landing (they drain what is due first).
    notify_stop: Shutdown,
    /// Stops the sources (the caller's signal: Ctrl-C, --duration, done).
    sources_stop: Shutdown,
    /// Tells the landing to drain the log and stop; only after every source stopped.
    landing_stop: Shutdown,
    /// Stops the HTTP server, last.
    serve_stop: Shutdown,
    /// Partitions of every data topic.
    pub partitions: Vec<TopicPartition>,
    /// Each job's OpenLineage run: START now, COMPLETE or FAIL as its task ends.
    pub lineage: Lineage,
    /// The flags that point `retail-etl log skip` at this pipeline's log and store, for the
    /// hint a landing stopped by a damaged log record prints.
    skip_flags: String,
    /// The exclusive lock on `<data-dir>/sources` (ledgers, journals, cursors), held while the
    /// pipeline lives: the log's own lock covers only an embedded log in the data directory.
    _sources_lock: std::fs::File,
}

/// Starts every stage of `config`. `shutdown` stops the sources; [`Pipeline::stop`] then stops
/// the rest in order.
pub async fn start(
    config: &Config,
    metrics: Metrics,
    health: Health,
    shutdown: Shutdown,
) -> Result<Pipeline> {
    // First of all: a second process on this data directory must not touch anything.
    let sources_dir = config.data_dir.join("sources");
    std::fs::create_dir_all(&sources_dir).with_context(|| format!("creating {}", sources_dir.display()))?;
    let sources_lock = retail_log::embedded::lock_dir(&sources_dir)?;
    let (landing_stop, serve_stop) = (Shutdown::new(), Shutdown::new());
    let (http, serve_state, serve_task) = serve(config, &metrics, &health, &serve_stop).await?;
    let log = log(config, &metrics, &health).await?;
    serve_state.set_log(log.clone());
    let store = sink(config, &health, &shutdown).await?;
    let reader = retail_sink::open_reader(&config.store_url()?)
        .await
        .context("opening the store's reader for the API")?;
    serve_state.set_reader(reader);
    // The order endpoints report time in state on this group's pipeline clock.
    serve_state.set_landing_group(config.landing.group.clone());
    let schemas = schema_registry(&store).await?;
    serve_state.set_schemas(schemas.clone());
    let (landing_handle, landing_task) =
        process(config, &log, &store, &schemas, &metrics, &health, &landing_stop)?;
    let notify_stop = Shutdown::new();
    let notify_tasks = notify(config, &store, &log, &schemas, &metrics, &health, &notify_stop).await?;
    let landing_task = Some(landing_task);
    let mut partitions = Vec::new();
    for topic in topics::ALL {
        for p in 0..config.log.partitions {
            partitions.push(TopicPartition::new(topic, p));
        }
    }
    let view = View {
        log: log.clone(),
        partitions: partitions.clone(),
        landing: landing_handle.clone(),
        sources: Vec::new(),
    };
    if log.disk_budget().is_some() {
        tokio::spawn(show_disk_budget(
            log.clone(),
            health.clone(),
            landing_stop.clone(),
        ));
    }
    let backlog = Backlog::default();
    tokio::spawn(sample_backlog(
        view.clone(),
        backlog.clone(),
        landing_stop.clone(),
    ));
    let cx = SourceContext {
        log: log.clone(),
        metrics: metrics.clone(),
        health: health.clone(),
        shutdown: shutdown.clone(),
        data_dir: config.data_dir.clone(),
        partitions: config.log.partitions,
        routes: Routes::default(),
        backlog,
        loopback: http.ip().is_loopback(),
    };
    let source_tasks = sources(config, &cx).await?;
    let handles: Vec<SourceHandle> = source_tasks.iter().map(|(h, _)| h.clone()).collect();
    serve_state.set_ingest(cx.routes.merged());
    register_controls(&serve_state, &handles, &landing_handle);
    serve_state.set_probe(Arc::new(View {
        sources: handles.clone(),
        ..view
    }));
    let lineage = Lineage::start(config, &metrics, &handles, &landing_handle)?;
    serve_state.set_lineage(lineage.view());
    Ok(Pipeline {
        log,
        store,
        landing: landing_handle,
        sources: handles,
        http,
        source_tasks,
        landing_task,
        serve_task,
        notify_tasks,
        notify_stop,
        sources_stop: shutdown,
        landing_stop,
        serve_stop,
        partitions,
        lineage,
        skip_flags: skip_flags(config)?,
        _sources_lock: sources_lock,
    })
}

type SourceTask = JoinHandle<retail_source::Result<()>>;

/// `--config F` when the configuration came from a file, and the log and store URLs (which
/// flags like `demo --store` may have set). A store URL with a password is left to the file:
/// it only shows masked.
fn skip_flags(config: &Config) -> Result<String> {
    let mut flags = Vec::new();
    if let Some(file) = &config.source_file {
        flags.push(format!("--config {}", file.display()));
    }
    flags.push(format!("--log {}", config.shown_log_url()));
    let store = config.store_url()?.to_string();
    if !store.contains("***") {
        flags.push(format!("--store {store}"));
    }
    Ok(flags.join(" "))
}

/// (1) Sources: each configured `[[sources]]` block is built with the shared context (its
/// routes mount on the main server) and runs in its own task.
async fn sources(config: &Config, cx: &SourceContext) -> Result<Vec<(SourceHandle, SourceTask)>> {
    let mut started = Vec::new();
    for source in &config.sources {
        let built = source
            .build(cx)
            .await
            .with_context(|| format!("starting source {:?} (type {})", source.name(), source.kind()))?;
        started.push((built.handle, tokio::spawn(built.task)));
    }
    Ok(started)
}

/// Keeps the sources' view of the landing's backlog fresh (webhooks refuse work above their
/// bound), until the landing stops.
async fn sample_backlog(view: View, backlog: Backlog, stop: Shutdown) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => backlog.set(view.lag().await),
            () = stop.wait() => return,
        }
    }
}

/// Shows on `/health` (component `log`) while the log's disk budget holds the sources back, and
/// why, until the landing has caught up enough (the sources show it too, on their next append).
async fn show_disk_budget(log: Arc<dyn Log>, health: Health, stop: Shutdown) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut held = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.wait() => return,
        }
        let Some((backlog, budget)) = log.disk_budget() else {
            return;
        };
        if backlog >= budget {
            held = true;
            health.set(
                "log",
                State::Retrying,
                format!(
                    "disk budget reached: {backlog} bytes not yet landed, log.embedded.disk_budget_bytes = {budget}; \
                     sources are held back until the landing catches up"
                ),
            );
        } else if held {
            held = false;
            health.set("log", State::Running, "");
        }
    }
}

/// (2) The log, metered, with every data topic created (or checked) at the configured partition
/// count.
pub(crate) async fn log(config: &Config, metrics: &Metrics, health: &Health) -> Result<Arc<dyn Log>> {
    health.set("log", State::Starting, "opening");
    let url = config.log_url()?;
    let log = retail_log::open(&url, &config.log.embedded, &config.log.kafka)
        .await
        .with_context(|| format!("opening log {}", config.shown_log_url()))?;
    let log = MeteredLog::wrap(log, metrics.clone());
    for topic in topics::ALL.into_iter().chain(topics::SIDE) {
        log.ensure_topic(topic, config.log.partitions)
            .await
            .with_context(|| format!("topic {topic}"))?;
    }
    health.set("log", State::Running, "");
    Ok(log)
}

/// (4b) Notifications: a dispatcher per channel draining the store's outbox of alert
/// deliveries, and the watch raising the pipeline's own alerts (ADR 0026). The alerts topic
/// in Avro writes with the schema registered under `alerts-value`.
async fn notify(
    config: &Config,
    store: &Arc<dyn Store>,
    log: &Arc<dyn Log>,
    schemas: &SchemaRegistry,
    metrics: &Metrics,
    health: &Health,
    shutdown: &Shutdown,
) -> Result<Vec<JoinHandle<()>>> {
    let avro_alerts = match config.notifications.alerts_topic_format {
        retail_notify::config::TopicFormat::Json => None,
        retail_notify::config::TopicFormat::Avro => {
            use retail_schema::builtin::{ALERTS_SUBJECT, ALERT_SCHEMA};
            let id = schemas
                .lookup(ALERTS_SUBJECT, ALERT_SCHEMA, None, retail_schema::Deleted::Hidden)
                .await
                .with_context(|| {
                    format!("notifications.alerts_topic_format = \"avro\": the schema of {ALERTS_SUBJECT} is not in the registry")
                })?
                .id;
            let schema = schemas
                .schema(id)
                .with_context(|| format!("schema id {id} of {ALERTS_SUBJECT}"))?;
            Some(retail_notify::topic::AvroAlerts { id, schema })
        }
    };
    retail_notify::spawn_all(
        &config.notifications,
        store,
        log,
        metrics,
        health,
        shutdown,
        avro_alerts,
    )
    .map_err(anyhow::Error::msg)
}

/// (3) Processing: the landing of the data topics with the aggregates, and the landing of the
/// catalog topic in its own consumer group (so that every instance's join sees the whole
/// catalog, ADR 0004). They share one handle: progress, committed offsets and pause.
/// The schema registry (issue 16), kept in the store's tables, with the built-in event types'
/// schemas registered: the REST API's and the landing's, one instance.
pub(crate) async fn schema_registry(store: &Arc<dyn Store>) -> Result<Arc<SchemaRegistry>> {
    let tables = Arc::new(RegistryTables(store.clone()));
    let registry = SchemaRegistry::open(tables, &retail_schema::builtin::subjects())
        .await
        .context("opening the schema registry")?;
    Ok(Arc::new(registry))
}

fn process(
    config: &Config,
    log: &Arc<dyn Log>,
    store: &Arc<dyn Store>,
    schemas: &Arc<SchemaRegistry>,
    metrics: &Metrics,
    health: &Health,
    shutdown: &Shutdown,
) -> Result<(LandingHandle, JoinHandle<retail_process::Result<()>>)> {
    let engine = Engine::new(config.aggregates()?, &config.processing, DedupScope::Batch)
        .with_notifications(config.notifications.routes());
    // The catalog topic belongs to the catalog group even if `landing.topics` lists it.
    let data_config = LandingConfig {
        topics: config
            .landing
            .topics
            .iter()
            .filter(|t| *t != topics::CATALOG)
            .cloned()
            .collect(),
        ..config.landing.clone()
    };
    let data = Landing::new(
        log.clone(),
        store.clone(),
        data_config,
        metrics.clone(),
        health.clone(),
    )
    .with_schemas(schemas.clone())
    .with_engine(engine, config.processing.clone());
    let handle = data.handle();
    let catalog_config = LandingConfig {
        group: format!("{}.catalog", config.landing.group),
        topics: vec![topics::CATALOG.to_owned()],
        ..config.landing.clone()
    };
    let catalog = Landing::new(
        log.clone(),
        store.clone(),
        catalog_config,
        metrics.clone(),
        health.clone(),
    )
    .with_handle(handle.clone())
    .with_schemas(schemas.clone())
    .with_engine(
        Engine::new(Vec::new(), &config.processing, DedupScope::Batch),
        config.processing.clone(),
    );
    // Registered before the tasks run, so `/health` lists the landings from the first answer.
    for landing in [&data, &catalog] {
        health.set(&landing.component(), State::Starting, "starting");
    }
    let shutdown = shutdown.clone();
    let task = tokio::spawn(async move {
        // The first failure ends both: a landing that cannot go on must be seen at once.
        tokio::try_join!(data.run(shutdown.clone()), catalog.run(shutdown)).map(|_| ())
    });
    Ok((handle, task))
}

/// (4) The store. An unreachable store is retried until shutdown: it is infrastructure, and
/// the log holds the data meanwhile.
pub(crate) async fn sink(config: &Config, health: &Health, shutdown: &Shutdown) -> Result<Arc<dyn Store>> {
    let url = config.store_url()?;
    if let StoreUrl::Sqlite(path) = &url {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    health.set("store", State::Starting, "connecting");
    let mut delay = Duration::from_millis(200);
    loop {
        match retail_sink::open_with(&url, config.store_options()).await {
            Ok(store) => {
                health.set("store", State::Running, store.kind());
                return Ok(store);
            }
            Err(e) if e.is_retryable() && !shutdown.is_triggered() => {
                warn!(message = "store unavailable, retrying", store = %url, error = %e);
                health.set("store", State::Retrying, e.public_message());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                health.set("store", State::Failed, e.public_message());
                return Err(e).with_context(|| format!("opening the store {url}"));
            }
        }
    }
}

/// (5) Serve: `/health`, `/metrics`, the API and its docs. Starts first; the log, the reader,
/// the controls and the probe are put into the returned state as they open.
async fn serve(
    config: &Config,
    metrics: &Metrics,
    health: &Health,
    shutdown: &Shutdown,
) -> Result<(SocketAddr, ServeState, JoinHandle<std::io::Result<()>>)> {
    let access = config.serve.access()?;
    let state = ServeState::new(metrics.clone(), health.clone(), access);
    let options = config.serve.options()?;
    let (addr, task) =
        retail_serve::serve_with(config.serve.listen, state.clone(), options, shutdown.clone())
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (key serve.listen / --listen)",
                    config.serve.listen
                )
            })?;
    Ok((addr, state, task))
}

/// Registers each source by name and the landing with the control API.
fn register_controls(state: &ServeState, sources: &[SourceHandle], landing: &LandingHandle) {
    for handle in sources {
        state
            .controls
            .register(handle.name().to_owned(), Arc::new(SourceControl(handle.clone())));
    }
    state.controls.register(
        retail_serve::controls::LANDING,
        Arc::new(LandingControl(landing.clone())),
    );
}

/// Any source as the control API sees it: one adapter for every type.
#[derive(Debug)]
struct SourceControl(SourceHandle);

impl Controllable for SourceControl {
    fn kind(&self) -> ControlKind {
        ControlKind::Source
    }
    fn pause(&self) {
        self.0.pause();
    }
    fn resume(&self) {
        self.0.resume();
    }
    fn is_paused(&self) -> bool {
        self.0.is_paused()
    }
    fn rate(&self) -> Option<f64> {
        self.0.rate()
    }
    fn set_rate(&self, rate: f64) -> std::result::Result<(), String> {
        self.0.set_rate(rate).map_err(|e| e.to_string())
    }
    fn accepted(&self) -> Option<u64> {
        Some(self.0.counts().accepted)
    }
    fn received(&self) -> Option<u64> {
        Some(self.0.counts().received)
    }
    fn rejected(&self) -> Option<u64> {
        Some(self.0.counts().rejected)
    }
    fn source_type(&self) -> Option<&'static str> {
        Some(self.0.kind())
    }
    fn state(&self) -> Option<State> {
        Some(self.0.state())
    }
}

/// The landing as the control API sees it.
#[derive(Debug)]
struct LandingControl(LandingHandle);

impl Controllable for LandingControl {
    fn kind(&self) -> ControlKind {
        ControlKind::Landing
    }
    fn pause(&self) {
        self.0.pause();
    }
    fn resume(&self) {
        self.0.resume();
    }
    fn is_paused(&self) -> bool {
        self.0.is_paused()
    }
    fn accepted(&self) -> Option<u64> {
        Some(self.0.progress().records)
    }
}

/// A cheap, cloneable view of a running pipeline for progress reporting.
#[derive(Debug, Clone)]
pub struct View {
    log: Arc<dyn Log>,
    partitions: Vec<TopicPartition>,
    /// The landing.
    pub landing: LandingHandle,
    /// The sources.
    pub sources: Vec<SourceHandle>,
}

#[async_trait::async_trait]
impl Probe for View {
    async fn status(&self) -> PipelineStatus {
        let committed = self.landing.committed();
        let mut partitions = Vec::with_capacity(self.partitions.len());
        for tp in &self.partitions {
            let Ok((low, high)) = self.log.watermarks(tp).await else {
                continue;
            };
            let at = committed.get(tp).copied().unwrap_or(low);
            partitions.push(PartitionStatus {
                topic: tp.topic.clone(),
                partition: tp.partition,
                low,
                high,
                committed: at,
                lag: (high - at).max(0),
            });
        }
        let lag = partitions.iter().map(|p| p.lag).sum();
        let progress = self.landing.progress();
        let latency = self.landing.latency();
        PipelineStatus {
            landing: LandingStatus {
                paused: self.landing.is_paused(),
                batches: progress.batches,
                records: progress.records,
                sales_landed: progress.sales_landed,
                events_landed: progress.events_landed,
                duplicates_skipped: progress.duplicates_skipped,
                dead_letters: progress.dead_letters,
                latency_p50_ms: latency.p50_ms,
                latency_p95_ms: latency.p95_ms,
                latency_p99_ms: latency.p99_ms,
                latency_objective_ms: retail_serve::probe::LATENCY_OBJECTIVE_MS,
                watermark: self
                    .landing
                    .watermark()
                    .and_then(chrono::DateTime::from_timestamp_millis),
            },
            log: LogStatus { partitions, lag },
        }
    }
}

impl View {
    /// Records appended but not yet landed, over every data partition.
    pub async fn lag(&self) -> i64 {
        let committed = self.landing.committed();
        let mut lag = 0;
        for tp in &self.partitions {
            if let Ok((low, high)) = self.log.watermarks(tp).await {
                lag += (high - committed.get(tp).copied().unwrap_or(low)).max(0);
            }
        }
        lag
    }
}

impl Pipeline {
    /// Stops in the order data flows, so that everything acknowledged lands: the sources stop
    /// and are awaited (their last append may still be in flight), then the landing drains the
    /// log to its end and stops, then the server. Returns the first error of any stage.
    pub async fn stop(&mut self) -> Result<()> {
        self.sources_stop.trigger();
        let mut first: Option<anyhow::Error> = None;
        for (handle, task) in self.source_tasks.drain(..) {
            let failed = match task.await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(anyhow::Error::new(e).context("source")),
                Err(e) => Some(anyhow::Error::new(e).context("source task")),
            };
            self.lineage
                .source_ended(handle.name(), failed.as_ref().map(|e| format!("{e:#}")));
            first = first.or(failed);
        }
        self.landing_stop.trigger();
        if let Some(task) = self.landing_task.take() {
            let failed = match task.await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(anyhow::Error::new(e).context("landing")),
                Err(e) => Some(anyhow::Error::new(e).context("landing task")),
            };
            self.lineage
                .landing_ended(failed.as_ref().map(|e| format!("{e:#}")));
            first = first.or(failed);
        }
        self.notify_stop.trigger();
        for task in self.notify_tasks.drain(..) {
            let _ = task.await;
        }
        self.lineage.finish().await;
        self.serve_stop.trigger();
        let _ = (&mut self.serve_task).await;
        first.map_or(Ok(()), Err)
    }

    /// Resolves when the landing task ended on its own (it only does on an error it cannot
    /// retry), returning why. Pending forever once the task was taken.
    pub async fn landing_failed(&mut self) -> anyhow::Error {
        let Some(task) = self.landing_task.as_mut() else {
            return std::future::pending().await;
        };
        let result = task.await;
        self.landing_task = None;
        let e = match result {
            Ok(Ok(())) => anyhow::anyhow!("landing stopped unexpectedly"),
            Ok(Err(retail_process::Error::Log(e @ retail_log::Error::DamagedRecord { .. }))) => {
                let hint = match &e {
                    retail_log::Error::DamagedRecord { tp, offset, .. } => format!(
                        "landing stopped at a damaged log record (it never skips one on its own); to \
                         record it in dead_letters and move past it, with the pipeline stopped run: \
                         retail-etl log skip {} --topic {} --partition {} --offset {offset}",
                        self.skip_flags, tp.topic, tp.partition
                    ),
                    _ => "landing".to_owned(),
                };
                anyhow::Error::new(e).context(hint)
            }
            Ok(Err(e)) => anyhow::Error::new(e).context("landing"),
            Err(e) => anyhow::Error::new(e).context("landing task"),
        };
        self.lineage.landing_ended(Some(format!("{e:#}")));
        e
    }

    /// A source's task ended on its own (a bounded source is done): its run ends too.
    pub fn source_ended(&self, name: &str, result: &Result<()>) {
        self.lineage
            .source_ended(name, result.as_ref().err().map(|e| format!("{e:#}")));
    }

    /// A view for progress reporting.
    pub fn view(&self) -> View {
        View {
            log: self.log.clone(),
            partitions: self.partitions.clone(),
            landing: self.landing.clone(),
            sources: self.sources.clone(),
        }
    }

    /// The end of every data partition now: what the landing must reach to have landed all
    /// that was appended so far.
    pub async fn ends(&self) -> Result<HashMap<TopicPartition, i64>> {
        let mut ends = HashMap::new();
        for tp in &self.partitions {
            ends.insert(tp.clone(), self.log.watermarks(tp).await?.1);
        }
        Ok(ends)
    }
}
