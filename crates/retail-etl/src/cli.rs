//! Commands and flags. Flags override the configuration file, which overrides the defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::config::Config;

/// A real-time streaming ETL for retail: sources -> durable log -> processing -> store -> API.
#[derive(Debug, Parser)]
#[command(name = "retail-etl", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything in one process with embedded defaults and the generator on.
    Demo(DemoArgs),
    /// Runs the pipeline described by a configuration file.
    Run {
        /// The TOML configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Checks a configuration file and prints the effective configuration.
    CheckConfig {
        /// The TOML configuration file.
        config: PathBuf,
    },
    /// Measures landing throughput, latency and memory against the store's bare bulk-load rate.
    Bench(BenchArgs),
    /// Measures the webhook receiver: events/s and requests/s to a durable acknowledgement
    /// (202 after the append to the embedded log), and acknowledgement latency at a fixed load.
    BenchWebhook(BenchWebhookArgs),
    /// Rebuild the aggregates from the log into fresh `<name><suffix>` tables.
    Replay(ReplayArgs),
    /// Operator commands on the log (run with the pipeline stopped).
    #[command(subcommand)]
    Log(LogCommand),
}

/// `log ...`.
#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Moves the landing past a damaged record of the embedded log, the one it stopped at:
    /// records it in dead_letters and moves the stored offset to the next readable record,
    /// in one store transaction.
    Skip(crate::skip::SkipArgs),
}

/// Flags of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Optional configuration file; the flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Generated events per second. 0 switches the generator off (only the webhook and the
    /// CSV inbox feed the pipeline). Default 50, or as fast as possible with `--events`.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Generate exactly N events (as fast as possible unless `--rate` is given), wait until
    /// all have landed, print a summary and exit.
    #[arg(long)]
    pub events: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Generator seed: the same seed gives the same event_ids.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Store URL: sqlite://<path> or postgres://... (default sqlite://<data-dir>/retail.db).
    #[arg(long)]
    pub store: Option<String>,
    /// Log URL: embedded://<dir> (default embedded://<data-dir>/log) or kafka://host:port[,host:port]
    /// (a binary built with `--features kafka`).
    #[arg(long)]
    pub log: Option<String>,
    /// Directory for the embedded log and the SQLite file.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// HTTP address for /health and /metrics.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Fraction of events re-sent as exact duplicates.
    #[arg(long)]
    pub duplicate_fraction: Option<f64>,
    /// Fraction of malformed events (they go to dead_letters).
    #[arg(long)]
    pub malformed_fraction: Option<f64>,
    /// Fraction of events arriving out of order.
    #[arg(long)]
    pub out_of_order_fraction: Option<f64>,
    /// Fraction of late events.
    #[arg(long)]
    pub late_fraction: Option<f64>,
    /// Generate sales only, on the wall clock: no e-commerce orders, payments or ERP stock,
    /// and no simulated span of event time (`demo` otherwise runs the whole retail world, and
    /// with `--events` covers 72 hours of event time).
    #[arg(long)]
    pub sales_only: bool,
}

/// Flags of `bench`.
/// `replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Configuration file (its aggregates, store and log).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Start at this offset of every data partition, or at this RFC 3339 time; default: the
    /// beginning of the log.
    #[arg(long)]
    pub from: Option<String>,
    /// Appended to each aggregate's name to name its fresh table.
    #[arg(long, default_value = "_replay")]
    pub suffix: String,
    /// Store URL (overrides the configuration).
    #[arg(long)]
    pub store: Option<String>,
    /// Log URL (overrides the configuration).
    #[arg(long)]
    pub log: Option<String>,
    /// Data directory (overrides the configuration).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Store URL to land into (default sqlite://<data-dir>/bench.db). For PostgreSQL the bench
    /// works in a scratch schema it drops afterwards.
    #[arg(long)]
    pub store: Option<String>,
    /// Events to land.
    #[arg(long, default_value_t = 2_000_000)]
    pub events: u64,
    /// Fixed rate in events/s for a latency run (0 = as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Records per store transaction, for the landing and the baseline alike.
    #[arg(long, default_value_t = 20_000)]
    pub batch: usize,
    /// Rows for the bare bulk-load baseline (default: as many as `--events`, so both runs fill
    /// tables of the same size).
    #[arg(long)]
    pub baseline_rows: Option<usize>,
    /// Directory for the bench's embedded log (a fresh sub-directory is used and removed).
    #[arg(long, default_value = "./retail-data")]
    pub data_dir: PathBuf,
    /// Also write the JSON result to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Land raw rows only, without the built-in aggregates (to measure what they cost).
    #[arg(long)]
    pub no_aggregates: bool,
    /// Measure what the aggregates cost in one invocation: for each round, land the events
    /// once as raw rows only and once with the built-in aggregates (alternating which goes
    /// first), each into its own scratch store, and print the throughput ratio. Skips the
    /// bare bulk load.
    #[arg(long, conflicts_with = "no_aggregates")]
    pub compare_aggregates: bool,
    /// Rounds of `--compare-aggregates`, `--compare-pipelines` or `--compare-avro`.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Generate the whole retail world (web orders with their payments and anomalies, ERP
    /// stock, as `demo` does, over 72 hours of event time) instead of sales alone, so the order,
    /// stock and fraud pipelines have work.
    #[arg(long)]
    pub retail_world: bool,
    /// Measure what the retail pipelines cost in one invocation: for each round, land the same
    /// number of events once as sales alone and once as the whole retail world (alternating
    /// which goes first), both with the built-in aggregates, each into its own scratch store,
    /// and print the throughput ratio. Skips the bare bulk load.
    #[arg(long, conflicts_with_all = ["compare_aggregates", "retail_world"])]
    pub compare_pipelines: bool,
    /// Measure what decoding an event costs in Avro (Confluent wire format) against JSON: the
    /// generator's sales decoded both ways in one invocation, as the landing decodes them,
    /// `--rounds` times alternating which goes first. Decoding only: no log, no store.
    #[arg(long, conflicts_with_all = ["compare_aggregates", "compare_pipelines", "log", "duration"])]
    pub compare_avro: bool,
    /// Land through this log too: with `kafka://host:port` the same events are landed once
    /// through the embedded log and once through Kafka, back to back in one invocation, and
    /// both figures are reported with their ratio. The Kafka topics must be empty (a fresh
    /// broker): the landing would read what they already hold.
    #[arg(long, conflicts_with = "compare_aggregates")]
    pub log: Option<String>,
    /// Soak: run at `--rate` for this many seconds (events = rate x duration) and sample
    /// throughput, resident memory and open file descriptors every `--sample-every` seconds, to
    /// show they stay flat. Skips the bare bulk load.
    #[arg(long, conflicts_with_all = ["compare_aggregates", "log"])]
    pub duration: Option<u64>,
    /// Seconds between two soak samples.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub sample_every: u64,
}

/// Flags of `bench-webhook`.
#[derive(Debug, Args)]
pub struct BenchWebhookArgs {
    /// Events per request: 1 posts single JSON objects (`application/json`), more posts NDJSON
    /// batches (`application/x-ndjson`).
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Keep-alive HTTP/1.1 connections on loopback, one request in flight on each.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Seconds each phase is measured (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Offered load in events/s for a latency run only. Default: measure the maximum, then the
    /// latency at half of it.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Measure the maximum only, without the half-load latency phase.
    #[arg(long, conflicts_with = "rate")]
    pub max_only: bool,
    /// The embedded log's fsync policy (the configuration's default is every_batch).
    #[arg(long, value_enum, default_value = "every_batch")]
    pub fsync: crate::bench_webhook::Fsync,
    /// Partitions per topic (default: the configuration's default).
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Send events without `event_id`, so the receiver derives each id from the event's bytes.
    #[arg(long)]
    pub no_ids: bool,
    /// Directory for the bench's embedded log (a fresh sub-directory is used and removed).
    #[arg(long, default_value = "./retail-data")]
    pub data_dir: PathBuf,
    /// Also write the JSON result to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub async fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo(args) => {
            let config = Config::for_demo(&args)?;
            crate::demo::run(config, args.duration.map(std::time::Duration::from_secs)).await
        }
        Command::Run { config } => {
            let config = Config::load(Some(&config))?;
            crate::demo::run(config, None).await
        }
        Command::CheckConfig { config } => {
            let config = Config::load(Some(&config))?;
            config.validate()?;
            println!("{}", config.to_json()?);
            eprintln!("{}: OK", config_path_display(&config));
            Ok(())
        }
        Command::Bench(args) => crate::bench::run(args).await,
        Command::BenchWebhook(args) => crate::bench_webhook::run(args).await,
        Command::Replay(args) => crate::replay::run(args).await,
        Command::Log(LogCommand::Skip(args)) => crate::skip::run(args).await,
    }
}

fn config_path_display(config: &Config) -> String {
    config
        .source_file
        .as_ref()
        .map_or_else(|| "defaults".to_owned(), |p| p.display().to_string())
}
