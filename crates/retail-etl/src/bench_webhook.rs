//! `bench-webhook`: how many events the webhook receiver takes to a durable acknowledgement
//! (the 202 an append to the embedded log returned before), and how long a sender waits for it.
//!
//! The receiver is mounted exactly as the pipeline mounts it: a [`WebhookConfig`] built with a
//! [`SourceContext`] over the embedded log, its routes handed to the main server
//! (`retail_serve::serve`, with its request metrics) under `/ingest/<path>`, listening on
//! `127.0.0.1:0`. No landing runs: the measure ends at the acknowledgement.
//!
//! The load generator runs in the same process on its own thread and single-threaded runtime:
//! keep-alive HTTP/1.1 connections on loopback, one request in flight on each, written from
//! pre-built request bytes whose events are made distinct in place (a fixed-width counter in
//! `event_id` and `seller_id`), and answers read just far enough to know the status and the
//! body's end. A minimal client on purpose: on a 2-core machine every cycle it spends is one the
//! receiver does not get.
//!
//! Two phases by default: as fast as the connections go (the maximum), then a fixed offered
//! load at half the measured maximum for the latency (open loop: each request's latency counts
//! from when it was due, so a slow answer that delays the next request is not hidden). `--rate`
//! runs only the fixed-load phase.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use hdrhistogram::Histogram;
use retail_core::{Health, Metrics, Shutdown};
use retail_log::embedded::FsyncPolicy;
use retail_serve::{Access, ServeState};
use retail_source::webhook::WebhookConfig;
use retail_source::{Backlog, BuildSource, Routes, SourceContext};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cli::BenchWebhookArgs;
use crate::config::Config;
use crate::pipeline;

/// The embedded log's fsync policy for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fsync {
    /// fsync every group-commit batch before the append returns (the default configuration).
    #[value(name = "every_batch")]
    EveryBatch,
    /// Acknowledge after `write()`, fsync in the background every few milliseconds.
    #[value(name = "interval")]
    Interval,
}

impl Fsync {
    fn policy(self) -> FsyncPolicy {
        match self {
            Self::EveryBatch => FsyncPolicy::EveryBatch,
            Self::Interval => FsyncPolicy::Interval,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::EveryBatch => "every_batch",
            Self::Interval => "interval",
        }
    }
}

/// The figures of a run.
#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    /// `ndjson` (batches) or `json` (one event per request).
    body: &'static str,
    events_per_request: usize,
    connections: usize,
    fsync: &'static str,
    partitions: i32,
    event_ids: &'static str,
    /// As fast as the connections go.
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<Phase>,
    /// At a fixed offered load (half the maximum unless `--rate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    fixed_rate: Option<Phase>,
}

/// One measured phase.
#[derive(Debug, Serialize)]
struct Phase {
    /// Offered events/s; 0 for as fast as possible.
    target_events_per_s: f64,
    duration_s: f64,
    requests: u64,
    events: u64,
    requests_per_s: f64,
    events_per_s: f64,
    /// Answers other than 202 (each is also counted in `statuses`).
    errors: u64,
    statuses: std::collections::BTreeMap<u16, u64>,
    /// From when a request was due (or sent, at full speed) to its whole answer, ms.
    latency_ms: Latency,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

/// Runs the webhook benchmark described by `args`.
pub async fn run(args: BenchWebhookArgs) -> Result<()> {
    if args.batch == 0 || args.connections == 0 || args.duration == 0 {
        bail!("--batch, --connections and --duration must be at least 1");
    }
    if args.connections > 4000 {
        bail!("--connections must be at most 4000");
    }
    let scratch = args.data_dir.join(format!(
        "bench-webhook-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    ));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let result = measure(&args, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let report = result?;

    let json = serde_json::to_string(&report)?;
    println!("{json}");
    if let Some(path) = &args.json {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    for (what, phase) in [("max", &report.max), ("fixed rate", &report.fixed_rate)] {
        if let Some(p) = phase {
            eprintln!(
                "  {what:<10} {:>9.0} events/s {:>8.0} requests/s  latency p50/p99/p99.9 {:.2} / {:.2} / {:.2} ms  errors {}",
                p.events_per_s, p.requests_per_s, p.latency_ms.p50, p.latency_ms.p99, p.latency_ms.p999, p.errors
            );
        }
    }
    Ok(())
}

async fn measure(args: &BenchWebhookArgs, scratch: &std::path::Path) -> Result<Report> {
    let mut config = Config {
        data_dir: scratch.to_path_buf(),
        ..Config::default()
    };
    config.log.embedded.fsync = args.fsync.policy();
    if let Some(p) = args.partitions {
        config.log.partitions = p;
    }
    config.validate()?;

    let (metrics, health) = (Metrics::new(), Health::new());
    let (sources_stop, serve_stop) = (Shutdown::new(), Shutdown::new());
    let log = pipeline::log(&config, &metrics, &health).await?;
    let state = ServeState::new(
        metrics.clone(),
        health.clone(),
        Access::new(Vec::new(), Vec::new()),
    );
    let (addr, serve_task) = retail_serve::serve("127.0.0.1:0".parse()?, state.clone(), serve_stop.clone())
        .await
        .context("starting the server")?;
    let cx = SourceContext {
        log: log.clone(),
        metrics,
        health,
        shutdown: sources_stop.clone(),
        data_dir: config.data_dir.clone(),
        partitions: config.log.partitions,
        routes: Routes::default(),
        backlog: Backlog::default(),
        loopback: true,
    };
    let webhook = WebhookConfig::named("bench");
    webhook.validate()?;
    let built = webhook.build(&cx).await?;
    let source_task = tokio::spawn(built.task);
    state.set_ingest(cx.routes.merged());

    let load = Load {
        addr,
        path: format!("/ingest/{}", webhook.path()),
        batch: args.batch,
        connections: args.connections,
        ids: !args.no_ids,
    };
    load.check().await?;
    let warmup = Duration::from_secs(1);
    let duration = Duration::from_secs(args.duration);
    let mut report = Report {
        bench: "webhook",
        body: if args.batch == 1 { "json" } else { "ndjson" },
        events_per_request: args.batch,
        connections: args.connections,
        fsync: args.fsync.name(),
        partitions: config.log.partitions,
        event_ids: if args.no_ids {
            "derived by the receiver"
        } else {
            "sent"
        },
        max: None,
        fixed_rate: None,
    };
    let half = if args.rate > 0.0 {
        args.rate
    } else {
        let max = load.clone().run(0, 0.0, warmup, duration).await?;
        eprintln!(
            "  max        {:>9.0} events/s {:>8.0} requests/s",
            max.events_per_s, max.requests_per_s
        );
        let half = max.events_per_s / 2.0;
        report.max = Some(max);
        if args.max_only {
            0.0
        } else {
            half
        }
    };
    if half > 0.0 {
        report.fixed_rate = Some(load.clone().run(1, half, warmup, duration).await?);
    }

    sources_stop.trigger();
    source_task.await.context("webhook task")??;
    serve_stop.trigger();
    let _ = serve_task.await;
    let accepted = built.handle.counts().accepted;
    let sent: u64 = [&report.max, &report.fixed_rate]
        .into_iter()
        .flatten()
        .map(|p| p.events)
        .sum();
    // Warm-up requests were acknowledged too but are not in the phases' figures.
    if accepted < sent {
        bail!("the receiver counted {accepted} accepted events, fewer than the {sent} acknowledged");
    }
    Ok(report)
}

/// The load generator's settings.
#[derive(Debug, Clone)]
struct Load {
    addr: std::net::SocketAddr,
    path: String,
    batch: usize,
    connections: usize,
    ids: bool,
}

/// One connection's tally.
struct Tally {
    requests: u64,
    statuses: std::collections::BTreeMap<u16, u64>,
    latency_us: Histogram<u64>,
}

impl Load {
    /// One request, checked for a 202 that accepted every event: a bench of refusals would
    /// measure nothing.
    async fn check(&self) -> Result<()> {
        let mut stream = TcpStream::connect(self.addr).await?;
        let mut request = Request::new(self, 4095);
        request.stamp(4095, 0);
        stream.write_all(&request.bytes).await?;
        let mut buf = Vec::new();
        let (status, body) = read_response(&mut stream, &mut buf).await?;
        let body = String::from_utf8_lossy(&buf[body]).into_owned();
        if status != 202 {
            bail!("the receiver refused the benchmark's request ({status}): {body}");
        }
        let answer: serde_json::Value = serde_json::from_str(&body)?;
        if answer["accepted"].as_u64() != Some(self.batch as u64) {
            bail!("the receiver did not accept every event: {body}");
        }
        Ok(())
    }

    /// Runs phase number `phase` on its own thread and runtime: `warmup`, then `duration`
    /// measured. `rate` is the offered load in events/s, 0 for as fast as possible.
    async fn run(self, phase: u64, rate: f64, warmup: Duration, duration: Duration) -> Result<Phase> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("bench-load".to_owned())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(anyhow::Error::from)
                    .and_then(|rt| rt.block_on(self.phase(phase, rate, warmup, duration)));
                let _ = tx.send(result);
            })?;
        rx.await
            .context("the load generator's thread ended without an answer")?
    }

    async fn phase(self, phase: u64, rate: f64, warmup: Duration, duration: Duration) -> Result<Phase> {
        let start = Instant::now();
        let measure_from = start + warmup;
        let end = measure_from + duration;
        // Per connection, the time between two requests at the offered load.
        let interval =
            (rate > 0.0).then(|| Duration::from_secs_f64(self.connections as f64 * self.batch as f64 / rate));
        let mut tasks = tokio::task::JoinSet::new();
        for conn in 0..self.connections {
            let load = self.clone();
            // Each phase numbers its events from its own base, so no two phases send the same.
            let first = phase * (2_000_000_000 / load.batch as u64);
            tasks.spawn(async move {
                load.connection(conn, first, interval, start, measure_from, end)
                    .await
            });
        }
        let mut latency_us = histogram()?;
        let mut statuses = std::collections::BTreeMap::new();
        let mut requests = 0;
        while let Some(tally) = tasks.join_next().await {
            let tally = tally??;
            requests += tally.requests;
            latency_us.add(&tally.latency_us)?;
            for (s, n) in tally.statuses {
                *statuses.entry(s).or_insert(0) += n;
            }
        }
        let elapsed = duration.as_secs_f64();
        let ok = statuses.get(&202).copied().unwrap_or(0);
        let events = ok * self.batch as u64;
        let ms = |q: f64| latency_us.value_at_quantile(q) as f64 / 1000.0;
        Ok(Phase {
            target_events_per_s: rate,
            duration_s: elapsed,
            requests,
            events,
            requests_per_s: requests as f64 / elapsed,
            events_per_s: events as f64 / elapsed,
            errors: requests - ok,
            statuses,
            latency_ms: Latency {
                p50: ms(0.5),
                p90: ms(0.9),
                p99: ms(0.99),
                p999: ms(0.999),
                max: latency_us.max() as f64 / 1000.0,
            },
        })
    }

    /// One keep-alive connection: requests one after the other until `end`, paced by
    /// `interval` if given. Counts what was answered between `measure_from` and `end`.
    async fn connection(
        self,
        conn: usize,
        first: u64,
        interval: Option<Duration>,
        start: Instant,
        measure_from: Instant,
        end: Instant,
    ) -> Result<Tally> {
        let mut stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let mut request = Request::new(&self, conn);
        let mut buf = Vec::with_capacity(16 * 1024);
        let mut tally = Tally {
            requests: 0,
            statuses: std::collections::BTreeMap::new(),
            latency_us: histogram()?,
        };
        // Spread the connections' schedules over one interval, so the offered load is even.
        let mut due = interval.map(|iv| start + iv.mul_f64(conn as f64 / self.connections as f64));
        let mut seq = first;
        loop {
            let sent = match (&mut due, interval) {
                (Some(at), Some(iv)) => {
                    tokio::time::sleep_until((*at).into()).await;
                    let t = *at;
                    *at += iv;
                    t
                }
                _ => Instant::now(),
            };
            if sent >= end {
                break;
            }
            request.stamp(conn, seq);
            seq += 1;
            stream.write_all(&request.bytes).await?;
            let (status, _) = read_response(&mut stream, &mut buf).await?;
            let done = Instant::now();
            if sent >= measure_from && done <= end {
                tally.requests += 1;
                *tally.statuses.entry(status).or_insert(0) += 1;
                tally
                    .latency_us
                    .saturating_record(done.duration_since(sent).as_micros() as u64);
            }
        }
        Ok(tally)
    }
}

fn histogram() -> Result<Histogram<u64>> {
    // 1 µs to 60 s, 3 significant digits.
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// A request's bytes, with where each event's counters sit so [`Request::stamp`] can make its
/// events distinct in place.
struct Request {
    bytes: Vec<u8>,
    /// Offsets of the 12 hex digits ending each `event_id` (empty without ids).
    id_at: Vec<usize>,
    /// Offsets of each `seller_id`'s 15 digits.
    seller_at: Vec<usize>,
    batch: usize,
}

const ID_PREFIX: &str = "0193a0c0-0000-7000-8000-";
const SELLER_BASE: u64 = 100_000_000_000_000;

impl Request {
    fn new(load: &Load, conn: usize) -> Self {
        let ts = chrono::Utc::now().timestamp_millis();
        let mut body = String::new();
        let mut id_at = Vec::new();
        let mut seller_at = Vec::new();
        for j in 0..load.batch {
            body.push('{');
            if load.ids {
                body.push_str("\"event_id\":\"");
                body.push_str(ID_PREFIX);
                id_at.push(body.len());
                body.push_str("000000000000\",");
            }
            body.push_str(&format!(
                "\"type\":\"sale\",\"store_id\":{},\"sku\":{},\"qty\":{},\"unit_price\":\"{}.{:02}\",\"seller_id\":",
                1 + (conn + j) % 50,
                100_000 + j * 37 % 5000,
                1 + j % 3,
                1 + j % 40,
                j * 7 % 100
            ));
            seller_at.push(body.len());
            body.push_str(&SELLER_BASE.to_string());
            body.push_str(&format!(",\"ts\":{ts}}}"));
            if load.batch > 1 {
                body.push('\n');
            }
        }
        let content_type = if load.batch == 1 {
            "application/json"
        } else {
            "application/x-ndjson"
        };
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            load.path,
            load.addr,
            body.len()
        );
        let shift = head.len();
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        Self {
            bytes,
            id_at: id_at.into_iter().map(|o| o + shift).collect(),
            seller_at: seller_at.into_iter().map(|o| o + shift).collect(),
            batch: load.batch,
        }
    }

    /// Makes the events of request `seq` on connection `conn` distinct from every other's.
    fn stamp(&mut self, conn: usize, seq: u64) {
        for j in 0..self.batch {
            let n = seq * self.batch as u64 + j as u64;
            if let Some(&at) = self.id_at.get(j) {
                let v = ((conn as u64) << 36) | (n & ((1 << 36) - 1));
                write_digits(&mut self.bytes[at..at + 12], v, 16);
            }
            let v = SELLER_BASE + (conn as u64) * 10_000_000_000 + n % 10_000_000_000;
            let at = self.seller_at[j];
            write_digits(&mut self.bytes[at..at + 15], v, 10);
        }
    }
}

/// Writes `v` into `out` right-aligned in `radix`, zero-padded, lowercase.
fn write_digits(out: &mut [u8], mut v: u64, radix: u64) {
    for b in out.iter_mut().rev() {
        let d = (v % radix) as u8;
        *b = if d < 10 { b'0' + d } else { b'a' + d - 10 };
        v /= radix;
    }
}

/// Reads one answer: its status, and where its body is in `buf`. Needs `Content-Length`
/// (the server sends it for every answer of the receiver).
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(u16, std::ops::Range<usize>)> {
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..head_end]).context("answer head is not UTF-8")?;
            let status: u16 = head
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .context("answer without a status")?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .context("answer without Content-Length")?;
            let body = head_end + 4..head_end + 4 + length;
            while buf.len() < body.end {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    bail!("the server closed the connection mid-answer");
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok((status, body));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_events_are_distinct_and_decode() {
        let load = Load {
            addr: "127.0.0.1:1".parse().expect("addr"),
            path: "/ingest/bench".to_owned(),
            batch: 3,
            connections: 2,
            ids: true,
        };
        let mut seen = std::collections::HashSet::new();
        for conn in 0..2 {
            let mut r = Request::new(&load, conn);
            for seq in 0..3 {
                r.stamp(conn, seq);
                let text = String::from_utf8(r.bytes.clone()).expect("utf-8");
                let (_, body) = text.split_once("\r\n\r\n").expect("head");
                for line in body.lines() {
                    let e = retail_core::decode(line.as_bytes()).expect("decodes");
                    assert!(seen.insert(e.event_id), "{line}");
                }
            }
        }
        assert_eq!(seen.len(), 18);
    }
}
