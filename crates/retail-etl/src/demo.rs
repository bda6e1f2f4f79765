//! `demo` and `run`: start the pipeline, show a live progress line on a terminal, stop on
//! Ctrl-C, SIGTERM, `--duration` or, once every source that ends by itself (a generator with
//! `--events N`) has ended and all it appended has landed; then print the summary line
//! `generated=N landed=M duplicates_skipped=K ...`, where `generated` counts what every source
//! received.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use retail_core::{Health, Metrics, Shutdown};
use tracing::info;

use crate::config::Config;
use crate::pipeline::{self, Pipeline};

/// Runs the pipeline until it is told to stop (or, with a fixed event count, until done).
pub async fn run(config: Config, duration: Option<Duration>) -> Result<()> {
    let (metrics, health, shutdown) = (Metrics::new(), Health::new(), Shutdown::new());
    let started = Instant::now();
    spawn_stop_signals(shutdown.clone())?;
    let mut p = pipeline::start(&config, metrics, health, shutdown.clone()).await?;
    let fixed_count = p.sources.iter().any(|s| s.is_bounded());
    let at = p.http;
    let scheme = if config.serve.tls.is_some() {
        "https"
    } else {
        "http"
    };
    eprintln!(
        "retail-etl: dashboard at {scheme}://{at}/, API docs at {scheme}://{at}/docs, health at \
         {scheme}://{at}/health, metrics at {scheme}://{at}/metrics; log {}, store {}",
        config.shown_log_url(),
        config.store_url()?,
    );
    for source in &p.sources {
        eprintln!(
            "retail-etl: source {} ({}): {}",
            source.name(),
            source.kind(),
            source.describe()
        );
    }
    if config.serve.is_open() {
        eprintln!(
            "retail-etl: no API tokens configured (serve.read_tokens, serve.admin_tokens, [serve.jwt]): the API, control \
             included, is open to anyone who can connect, so it listens on loopback only ({})",
            p.http
        );
    }
    if let Some(d) = duration {
        let s = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            s.trigger();
        });
    }
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| tokio::spawn(progress_line(p.view(), shutdown.clone())));

    let outcome = if fixed_count {
        until_all_landed(&mut p, &shutdown).await
    } else {
        until_stopped(&mut p, &shutdown).await
    };
    let stopped = p.stop().await;
    if let Some(t) = progress {
        let _ = t.await;
    }
    outcome?;
    stopped?;

    let generated: u64 = p.sources.iter().map(|s| s.counts().received).sum();
    let l = p.landing.progress();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "generated={generated} landed={} duplicates_skipped={} dead_letters={} other_events={} elapsed_s={secs:.1}",
        l.sales_landed, l.duplicates_skipped, l.dead_letters, l.events_landed
    );
    Ok(())
}

/// `--events N`: the sources that end by themselves finish, then the landing must reach the
/// end of every partition.
async fn until_all_landed(p: &mut Pipeline, shutdown: &Shutdown) -> Result<()> {
    let sources = std::mem::take(&mut p.source_tasks);
    let (bounded, unbounded): (Vec<_>, Vec<_>) = sources.into_iter().partition(|(h, _)| h.is_bounded());
    // The sources that do not end by themselves are stopped (and awaited) by `Pipeline::stop`.
    p.source_tasks = unbounded;
    let mut bounded = bounded.into_iter();
    while let Some((handle, mut task)) = bounded.next() {
        tokio::select! {
            r = &mut task => {
                let r = r
                    .context("source task")
                    .and_then(|r| r.with_context(|| format!("source {}", handle.name())));
                p.source_ended(handle.name(), &r);
                r?;
            }
            e = p.landing_failed() => return Err(e),
            () = shutdown.wait() => {
                p.source_tasks.push((handle, task));
                p.source_tasks.extend(bounded);
                return Ok(());
            }
        }
    }
    let ends = p.ends().await?;
    info!(message = "sources done, waiting for the landing to reach the end of the log");
    let landing = p.landing.clone();
    tokio::select! {
        () = landing.wait_for(&ends) => Ok(()),
        e = p.landing_failed() => Err(e),
        () = shutdown.wait() => Ok(()),
    }
}

/// Runs until a stop signal, `--duration`, or a stage failing.
async fn until_stopped(p: &mut Pipeline, shutdown: &Shutdown) -> Result<()> {
    tokio::select! {
        () = shutdown.wait() => Ok(()),
        e = p.landing_failed() => Err(e),
    }
}

/// Installs the Ctrl-C and SIGTERM handlers now, before the caller announces where it listens:
/// a signal that arrives before a handler exists would kill the process without landing what
/// was acknowledged. (`tokio::signal::ctrl_c()` only registers when first polled, so the Unix
/// streams are created here, synchronously.)
fn spawn_stop_signals(shutdown: Shutdown) -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            eprintln!("\nretail-etl: stopping; landing what was acknowledged...");
            shutdown.trigger();
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("\nretail-etl: stopping; landing what was acknowledged...");
        shutdown.trigger();
    });
    Ok(())
}

/// One line, rewritten every second: rate in, landed, lag, dead letters.
async fn progress_line(view: pipeline::View, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_in = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.wait() => { eprintln!(); return; }
        }
        let appended: u64 = view.sources.iter().map(|s| s.counts().accepted).sum();
        let l = view.landing.progress();
        eprint!(
            "\r in {:>7} ev/s | landed {:>10} | duplicates {:>7} | dead letters {:>6} | lag {:>8}   ",
            appended.saturating_sub(last_in),
            l.sales_landed,
            l.duplicates_skipped,
            l.dead_letters,
            view.lag().await
        );
        let _ = std::io::stderr().flush();
        last_in = appended;
    }
}
