//! The accept loop and each connection (ADR 0016): what `axum::serve` does, plus a cap on
//! connections, a header-read timeout, an idle timeout and TLS.
//!
//! - **Cap**: a connection takes one of `max_connections` permits before it is accepted. At
//!   the cap the loop stops calling `accept`, so new connections wait in the kernel's listen
//!   backlog (and are served, in order, as permits free up) rather than being accepted and
//!   closed: a client sees a slow answer, not a reset it may not retry. Past the backlog the
//!   kernel refuses them.
//! - **Timeouts**, as Go's `net/http` defines them: a new connection has
//!   `header_read_timeout` from its accept to a complete request head (a TLS handshake
//!   included); between requests a keep-alive connection may stay silent for `idle_timeout`,
//!   and once the next request's first byte arrives its head must be complete within
//!   `header_read_timeout`. Either closes the connection. While a request is being answered
//!   neither runs: the API's request timeout ([`crate::routes`]) bounds that, and the live
//!   stream and `/ingest` are left to run.
//! - **Shutdown**: the loop stops accepting; each connection finishes the request it is
//!   answering and closes (idle ones at once); after [`DRAIN`] the rest are dropped.
//!
//! hyper has one timer for both waits (its `header_read_timeout` runs from the moment it waits
//! for a head, idle time included), so the two are kept here: the socket is wrapped to see
//! the first byte of a head, the service to see a request start and its response end.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use retail_core::Shutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::ServeOptions;

/// How long shutdown waits for connections still answering before dropping them.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Accepts until `shutdown`, then drains.
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: Shutdown,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let tls = options.tls.as_ref().map(|t| TlsAcceptor::from(t.0.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so the set does not grow with the server's uptime.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            biased;
            () = shutdown.wait() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // Out of file descriptors and the like: accepting again at once would
                        // spin; axum::serve waits a second too.
                        warn!(message = "accept failed; retrying in 1 s", error = %e);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
        };
        connections.spawn(connection(
            stream,
            peer,
            tls.clone(),
            app.clone(),
            options.clone(),
            stop_rx.clone(),
            permit,
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(DRAIN, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!(
            message = "connections still open after the shutdown drain; dropping them",
            open = connections.len(),
            drain_seconds = DRAIN.as_secs()
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Errors of one connection that `accept` reports; the next accept is unaffected.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: Router,
    options: ServeOptions,
    stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let accepted = Instant::now();
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = tls else {
        return http(stream, peer, accepted, app, &options, stop).await;
    };
    let handshake = tokio::time::timeout_at(accepted + options.header_read_timeout, acceptor.accept(stream));
    match handshake.await {
        Ok(Ok(stream)) => http(stream, peer, accepted, app, &options, stop).await,
        Ok(Err(e)) => debug!(message = "TLS handshake failed", %peer, error = %e),
        Err(_) => debug!(message = "TLS handshake timed out", %peer),
    }
}

/// Serves HTTP/1.1 on one connection until the client closes it, a timeout closes it, or
/// shutdown.
async fn http<IO>(
    io: IO,
    peer: SocketAddr,
    accepted: Instant,
    app: Router,
    options: &ServeOptions,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new(accepted));
    let io = TokioIo::new(Watched {
        inner: io,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            activity.request_started();
            let app = app.clone();
            let activity = activity.clone();
            async move {
                let response = match app.oneshot(request.map(Body::new)).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                Ok::<_, std::convert::Infallible>(response.map(|body| Tracked {
                    inner: body,
                    activity: Some(activity),
                }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The timeouts are kept here (see the module's notes); hyper's own would also run while a
    // keep-alive connection is idle.
    builder.timer(TokioTimer::new()).header_read_timeout(None);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        let deadline = activity.deadline(options);
        tokio::select! {
            done = connection.as_mut() => {
                if let Err(e) = done {
                    debug!(message = "connection ended with an error", %peer, error = %e);
                }
                return;
            }
            changed = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
            () = activity.changed.notified() => {}
            () = sleep_until(deadline) => {
                if let Some(what) = activity.expired(options) {
                    debug!(message = "closing connection", %peer, reason = what);
                    return;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Where a connection is between requests, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of the next request.
    Idle,
    /// Reading a request head (from accept, or from the first byte of a later request).
    Head,
    /// Answering this many requests (HTTP/1.1: one, the response being written).
    Busy(u32),
}

#[derive(Debug)]
struct Activity {
    state: Mutex<(Phase, Instant)>,
    /// Woken when the phase changes, so the deadline is recomputed.
    changed: Notify,
}

impl Activity {
    fn new(accepted: Instant) -> Self {
        Self {
            state: Mutex::new((Phase::Head, accepted)),
            changed: Notify::new(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut (Phase, Instant))) {
        if let Ok(mut s) = self.state.lock() {
            let before = s.0;
            f(&mut s);
            if s.0 != before {
                self.changed.notify_one();
            }
        }
    }

    fn bytes_read(&self) {
        self.update(|s| {
            if s.0 == Phase::Idle {
                *s = (Phase::Head, Instant::now());
            }
        });
    }

    fn request_started(&self) {
        self.update(|s| {
            s.0 = match s.0 {
                Phase::Busy(n) => Phase::Busy(n + 1),
                Phase::Idle | Phase::Head => Phase::Busy(1),
            };
        });
    }

    fn response_done(&self) {
        self.update(|s| {
            *s = match s.0 {
                Phase::Busy(n) if n > 1 => (Phase::Busy(n - 1), s.1),
                _ => (Phase::Idle, Instant::now()),
            };
        });
    }

    fn deadline(&self, options: &ServeOptions) -> Option<Instant> {
        let (phase, since) = *self.state.lock().ok()?;
        match phase {
            Phase::Idle => Some(since + options.idle_timeout),
            Phase::Head => Some(since + options.header_read_timeout),
            Phase::Busy(_) => None,
        }
    }

    /// Which timeout has run out, if one has.
    fn expired(&self, options: &ServeOptions) -> Option<&'static str> {
        let (phase, _) = *self.state.lock().ok()?;
        let deadline = self.deadline(options)?;
        (Instant::now() >= deadline).then_some(match phase {
            Phase::Idle => "idle timeout",
            _ => "header read timeout",
        })
    }
}

/// The socket, reporting each read to [`Activity`].
struct Watched<IO> {
    inner: IO,
    activity: Arc<Activity>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_read();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A response body that tells [`Activity`] when it is done (written, or dropped).
struct Tracked {
    inner: Body,
    activity: Option<Arc<Activity>>,
}

impl Tracked {
    fn done(&mut self) {
        if let Some(a) = self.activity.take() {
            a.response_done();
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.done();
    }
}

impl hyper::body::Body for Tracked {
    type Data = <Body as hyper::body::Body>::Data;
    type Error = <Body as hyper::body::Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.done();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
