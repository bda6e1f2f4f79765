//! `retail-etl replay`: rebuilds the aggregates from the log into fresh tables.
//!
//! The replay reads the data topics from `--from` (an offset, or an RFC 3339 time; default: the
//! beginning) to the end of the log as it is when the replay starts, runs the same engine as the
//! landing, and writes only what it derives into `<aggregate><suffix>` tables (dropped and
//! recreated first), their late events, and its own offsets and watermarks under the group
//! `replay<suffix>`. Raw rows are not touched, and a suffix that would make a target (or its
//! view or side table) a table the store owns or a live aggregate's is refused before anything
//! is opened. The embedded log lets the replay's group go once it stays idle
//! (`log.embedded.group_idle_expiry_ms`), so a finished replay does not hold retention back. Because lateness depends only on each
//! partition's record order, a replay from the beginning gives the same tables as the live run
//! (ADR 0004); duplicates are skipped by an in-memory set of the replay's event ids, since the
//! ledger has seen them all.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use retail_core::{Health, Metrics, Shutdown};
use retail_process::aggregate::{renamed, Compiled, DedupScope, Engine};
use retail_process::{Landing, LandingConfig, StartAt};
use retail_sink::derived::sql::object_names;

use crate::cli::ReplayArgs;
use crate::config::Config;
use crate::pipeline;

/// Runs a replay and prints a one-line summary.
pub async fn run(args: ReplayArgs) -> Result<()> {
    let config = Config::load_with_overrides(
        args.config.as_deref(),
        args.data_dir.as_deref(),
        args.store.as_deref(),
        args.log.as_deref(),
    )?;
    config.validate()?;
    let start = parse_from(args.from.as_deref())?;
    let live = config.aggregates()?;
    let aggregates = renamed(live.clone(), &args.suffix)
        .map_err(|e| anyhow::anyhow!("replay --suffix {:?}: {e}", args.suffix))?;
    let group = format!("replay{}", args.suffix);
    // Before anything is opened: a refused replay leaves no trace.
    check_targets(&live, &aggregates, &args.suffix, &group, &config.landing.group)?;
    let tables: Vec<String> = aggregates.iter().map(|a| a.name.to_string()).collect();

    let (metrics, health) = (Metrics::new(), Health::new());
    let log = pipeline::log(&config, &metrics, &health).await?;
    let store = pipeline::sink(&config, &health, &Shutdown::new()).await?;
    // A replay rebuilds aggregates only: the retail pipelines keep their rows in the live
    // tables, and folding their facts in again would count sales twice.
    let mut processing = config.processing.clone();
    processing.orders.enabled = false;
    processing.stock.enabled = false;
    processing.fraud.enabled = false;
    let engine = Engine::new(aggregates, &processing, DedupScope::Run);
    store
        .reset_aggregates(&engine.tables(), &group)
        .await
        .context("dropping the previous replay's tables")?;

    // Avro records of the log decode with the schemas they were written with.
    let schemas = pipeline::schema_registry(&store).await?;
    let started = Instant::now();
    let landing = Landing::new(
        log,
        store,
        LandingConfig {
            group,
            ..config.landing.clone()
        },
        metrics,
        health,
    )
    .with_schemas(schemas)
    .with_engine(engine, processing)
    .as_replay(start);
    let handle = landing.handle();
    landing.run(Shutdown::new()).await.context("replay")?;
    let p = handle.progress();
    println!(
        "replayed={} batches={} tables={} elapsed_s={:.1}",
        p.records,
        p.batches,
        tables.join(","),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Refuses a replay that would hurt live data (issue 18, item 3). A replay drops its target
/// tables (with their ranking views and side tables), their late events, and its group's
/// offsets and watermarks before rebuilding them, so no target may be a table the store owns
/// (raw tables, dimensions, ledger, offsets, dead letters, late events, watermarks) or anything
/// a live aggregate occupies, and the replay's group may not be one the landing uses.
fn check_targets(
    live: &[Compiled],
    replay: &[Compiled],
    suffix: &str,
    group: &str,
    landing_group: &str,
) -> Result<()> {
    let mut taken: HashMap<String, &str> = HashMap::new();
    for a in live {
        for name in object_names(&a.name) {
            taken.insert(name, &a.name);
        }
    }
    for (original, target) in live.iter().zip(replay) {
        for name in object_names(&target.name) {
            if let Some(table) = retail_sink::store_table(&name) {
                bail!(
                    "replay --suffix {suffix:?}: aggregate {:?} would be rebuilt into {name:?}, which is the \
                     store's table {table:?}; a replay drops its target tables first. Choose another \
                     suffix (the default is \"_replay\")",
                    original.name
                );
            }
            if let Some(owner) = taken.get(&name) {
                bail!(
                    "replay --suffix {suffix:?}: aggregate {:?} would be rebuilt into {name:?}, which belongs \
                     to the live aggregate {owner:?}; a replay drops its target tables first. Choose another \
                     suffix (the default is \"_replay\")",
                    original.name
                );
            }
        }
    }
    let catalog_group = format!("{landing_group}.catalog");
    if group == landing_group || group == catalog_group {
        bail!(
            "replay --suffix {suffix:?}: the replay's consumer group {group:?} is the landing's (key \
             landing.group), whose offsets and watermarks the replay would reset. Choose another suffix"
        );
    }
    Ok(())
}

/// `--from`: a log offset (every partition) or an RFC 3339 time.
pub(crate) fn parse_from(from: Option<&str>) -> Result<Option<StartAt>> {
    let Some(text) = from else {
        return Ok(None);
    };
    if let Ok(offset) = text.parse::<i64>() {
        if offset < 0 {
            bail!("--from {text}: an offset cannot be negative");
        }
        return Ok(Some(StartAt::Offset(offset)));
    }
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(t) => Ok(Some(StartAt::Timestamp(t.timestamp_millis()))),
        Err(e) => bail!(
            "--from {text:?}: neither an offset nor an RFC 3339 time such as 2026-11-21T10:00:00Z ({e})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `check_targets` for the built-in aggregates renamed with `suffix`.
    fn check(suffix: &str, landing_group: &str) -> Result<()> {
        let live = Config::default().aggregates().expect("built-ins compile");
        let replay = renamed(live.clone(), suffix).expect("plain names");
        check_targets(&live, &replay, suffix, &format!("replay{suffix}"), landing_group)
    }

    #[test]
    fn a_replay_onto_live_tables_or_the_landing_group_is_refused_naming_both() {
        check("_replay", "landing").expect("the default suffix is fine");
        let e = check("", "landing")
            .expect_err("no suffix rebuilds the live tables")
            .to_string();
        assert!(
            e.contains("--suffix \"\"") && e.contains("\"sales_agg_minute\"") && e.contains("live aggregate"),
            "{e}"
        );
        // The live aggregate's ranking view is taken too.
        let e = check("_ranked", "landing").expect_err("a live view").to_string();
        assert!(e.contains("\"sales_agg_minute_ranked\""), "{e}");
        let e = check("_x", "replay_x")
            .expect_err("the landing's group")
            .to_string();
        assert!(e.contains("\"replay_x\"") && e.contains("landing.group"), "{e}");
    }
}
