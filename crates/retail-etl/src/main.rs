//! `retail-etl`: one binary for the whole retail streaming ETL.
//!
//! Wiring only. The stages live in their crates, in the order events travel:
//! (1) `retail-source` -> (2) `retail-log` -> (3) `retail-process` -> (4) `retail-sink` ->
//! (5) `retail-serve`. [`pipeline`] assembles them in that order.
//!
//! # Layout
//! - [`cli`]: the commands and flags.
//! - [`config`]: the TOML configuration, layered defaults -> file -> `RETAIL__...` variables.
//! - [`pipeline`]: opens the log and the store, starts serve, landing and sources.
//! - [`demo`]: `demo` and `run`: the pipeline with a live progress line and a summary.
//! - [`lineage`]: OpenLineage run events of every source, the landing and each aggregate, to
//!   an HTTP endpoint or a file, and the graph `/api/v1/lineage` serves.
//! - [`replay`]: `replay`: rebuild the aggregates from the log into fresh tables.
//! - [`skip`]: `log skip`: move the landing past a damaged log record, recording it as a dead
//!   letter.
//! - [`bench`]: `bench`: throughput, latency, memory and the store's bare bulk-load rate.
//! - [`bench_webhook`]: `bench-webhook`: the webhook receiver's events/s and requests/s to a
//!   durable acknowledgement, and its acknowledgement latency, with a load generator in-process.

mod bench;
mod bench_avro;
mod bench_webhook;
mod cli;
mod config;
mod demo;
mod lineage;
mod pipeline;
mod replay;
mod skip;

use clap::Parser;

/// jemalloc instead of glibc malloc: the pipeline allocates per record on several threads, and
/// glibc's arena locking and consolidation took about a third of the process's CPU in `perf`.
/// (mimalloc fixed the locking but returns freed pages to the OS after 10 ms, so every batch
/// faulted fresh zeroed pages back in; jemalloc keeps them for seconds.)
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    raise_open_files_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::dispatch(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Raises the soft limit on open files to the hard limit. Each HTTP connection and each log
/// segment holds a descriptor, and the common soft limit of 1024 equals the server's default
/// connection cap (`serve.max_connections`): at the cap, the next segment the log rolls to could
/// not be created, and that stops the log writer. `serve.max_connections` is then checked
/// against what was obtained (see `config::ServeConfig::options`).
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(message = "open files limit", limit),
        Err(e) => tracing::warn!(message = "could not raise the open files limit", error = %e),
    }
}
