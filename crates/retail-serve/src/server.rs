//! Binding and running the HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use retail_core::{Health, Metrics, Shutdown};
use tokio::net::TcpListener;
use tracing::info;

use crate::live::{LiveInputs, Ticker};

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct ServeState {
    /// The pipeline's metrics.
    pub metrics: Metrics,
    /// Each component's state.
    pub health: Health,
    /// Process start, for uptime.
    pub started: Instant,
}

/// Binds `listen` and serves in a background task until `shutdown`. Returns the bound address
/// (useful with port 0) and the task.
pub async fn serve(
    listen: SocketAddr,
    state: ServeState,
    live: Arc<dyn LiveInputs>,
    shutdown: Shutdown,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    info!(message = "serving /health and /metrics", %addr);
    let snapshots = Ticker::spawn(
        state.metrics.clone(),
        state.health.clone(),
        live,
        shutdown.clone(),
    );
    let app = crate::routes::router(state).merge(crate::live::router(snapshots));
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await
    });
    Ok((addr, task))
}
