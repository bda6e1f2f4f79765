//! The one emitter task: events go through a bounded channel to it, and it writes each to the
//! file and POSTs it to the endpoint, in order. The pipeline only ever `try_send`s, so a slow
//! or dead endpoint costs the pipeline nothing: when the channel is full the new event is
//! dropped and counted. A failed delivery is retried twice, then logged and counted; it never
//! stops the emitter or the pipeline.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use prometheus_client::metrics::counter::Counter;
use retail_core::Metrics;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::config::LineageConfig;
use super::event::EventType;

/// Retries of one delivery after the first attempt, and the pause before each.
const RETRIES: [Duration; 2] = [Duration::from_millis(200), Duration::from_secs(1)];

/// The emitter task and the pipeline's side of its queue.
#[derive(Debug)]
pub struct Emitter {
    sender: Sender,
    task: Option<JoinHandle<()>>,
}

/// Puts events on the emitter's queue. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sender {
    tx: Option<mpsc::Sender<(EventType, String)>>,
    dropped: Counter,
}

impl Emitter {
    /// An emitter that sends nowhere (lineage off).
    pub fn off(metrics: &Metrics) -> Self {
        Self {
            sender: Sender {
                tx: None,
                dropped: metrics.lineage_failures("dropped"),
            },
            task: None,
        }
    }

    /// Starts the emitter task for the destinations in `config`.
    pub fn spawn(config: &LineageConfig, metrics: &Metrics) -> Result<Self> {
        if !config.emits() {
            return Ok(Self::off(metrics));
        }
        let mut destinations = Vec::new();
        if let Some(path) = &config.file {
            destinations.push(Destination::File {
                path: path.clone(),
                file: None,
            });
        }
        if let Some(url) = config.endpoint_url()? {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_millis(config.timeout_ms))
                .build()
                .context("building the lineage HTTP client")?;
            destinations.push(Destination::Http { client, url });
        }
        let (tx, rx) = mpsc::channel(config.queue);
        let task = tokio::spawn(run(rx, destinations, metrics.clone()));
        Ok(Self {
            sender: Sender {
                tx: Some(tx),
                dropped: metrics.lineage_failures("dropped"),
            },
            task: Some(task),
        })
    }

    /// The sending side.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// Closes the pipeline's side of the queue (every [`Sender`] clone must be gone too) and
    /// waits up to `budget` for what is queued to be delivered.
    pub async fn close(&mut self, budget: Duration) {
        self.sender.close();
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(budget, &mut task).await.is_err() {
                warn!(
                    message = "lineage events still undelivered at exit; giving up on them",
                    budget_s = budget.as_secs()
                );
                task.abort();
            }
        }
    }
}

impl Sender {
    /// Lets go of the queue: the emitter ends once every sender did.
    pub fn close(&mut self) {
        self.tx = None;
    }

    /// Queues an event without waiting; a full queue drops it (counted).
    pub fn send(&self, event_type: EventType, body: String) {
        let Some(tx) = &self.tx else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send((event_type, body)) {
            self.dropped.inc();
            debug!(
                message = "lineage queue full, event dropped",
                event_type = event_type.as_str()
            );
        }
    }
}

#[derive(Debug)]
enum Destination {
    File {
        path: PathBuf,
        file: Option<tokio::fs::File>,
    },
    Http {
        client: reqwest::Client,
        url: reqwest::Url,
    },
}

impl Destination {
    fn describe(&self) -> String {
        match self {
            Self::File { path, .. } => path.display().to_string(),
            Self::Http { url, .. } => url.to_string(),
        }
    }

    async fn deliver(&mut self, body: &str) -> Result<(), String> {
        match self {
            Self::File { path, file } => {
                if file.is_none() {
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        tokio::fs::create_dir_all(dir)
                            .await
                            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
                    }
                    let opened = tokio::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .await
                        .map_err(|e| format!("opening {}: {e}", path.display()))?;
                    *file = Some(opened);
                }
                let Some(f) = file.as_mut() else {
                    return Err("file not open".to_owned());
                };
                let mut line = String::with_capacity(body.len() + 1);
                line.push_str(body);
                line.push('\n');
                // One write per line, so a reader never sees half an event between them.
                let written = async {
                    f.write_all(line.as_bytes()).await?;
                    f.flush().await
                }
                .await;
                written.map_err(|e| {
                    // Reopen next time: the file may have been moved or its disk remounted.
                    *file = None;
                    format!("writing {}: {e}", path.display())
                })
            }
            Self::Http { client, url } => {
                let answer = client
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_owned())
                    .send()
                    .await
                    .map_err(|e| format!("POST {url}: {e}"))?;
                let status = answer.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("POST {url}: answered {status}"))
                }
            }
        }
    }
}

async fn run(
    mut rx: mpsc::Receiver<(EventType, String)>,
    mut destinations: Vec<Destination>,
    metrics: Metrics,
) {
    let lost = metrics.lineage_failures("transport");
    let mut failing = vec![false; destinations.len()];
    while let Some((event_type, body)) = rx.recv().await {
        for (d, failing) in destinations.iter_mut().zip(failing.iter_mut()) {
            let mut outcome = d.deliver(&body).await;
            for pause in RETRIES {
                if outcome.is_ok() {
                    break;
                }
                tokio::time::sleep(pause).await;
                outcome = d.deliver(&body).await;
            }
            match outcome {
                Ok(()) => {
                    metrics.lineage_events(event_type.as_str()).inc();
                    if std::mem::take(failing) {
                        info!(message = "lineage events delivered again", to = %d.describe());
                    }
                }
                Err(error) => {
                    lost.inc();
                    if std::mem::replace(failing, true) {
                        debug!(message = "lineage event not delivered", %error);
                    } else {
                        warn!(
                            message = "lineage event not delivered; the pipeline goes on (counted in retail_lineage_failures_total)",
                            %error
                        );
                    }
                }
            }
        }
    }
}
