//! `bench --compare-avro`: what decoding an event costs in Avro (Confluent wire format) against
//! JSON, measured in one run on the same events (issue 16).
//!
//! Both sides do what the landing does per record and nothing else: JSON goes through
//! `decode_versioned`; Avro through the wire header, the registry's schema by id (the landing's
//! lock-free read), the Avro body to the event's JSON (`retail_schema::avro::to_json`), then the
//! same `decode_versioned`. The events are the generator's sales (fixed seed), encoded once in
//! each format before the clock starts. Rounds alternate which side goes first, and each
//! round's ratio is reported with their median, as the other `--compare-*` benches do.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use retail_core::event::{decode_versioned, topics};
use retail_schema::{avro, builtin, wire, MemoryStore, SchemaRegistry};
use retail_source::generator::{EventGenerator, GeneratorConfig};
use serde::Serialize;
use uuid::Uuid;

use crate::cli::BenchArgs;

/// The figures of one run.
#[derive(Debug, Serialize)]
struct AvroComparison {
    events: u64,
    json_bytes_per_event: f64,
    avro_bytes_per_event: f64,
    /// Per round: events decoded per second from JSON, from Avro, and Avro over JSON.
    rounds: Vec<Round>,
    /// The median of the rounds' `avro_to_json`.
    avro_to_json_median: f64,
}

#[derive(Debug, Serialize)]
struct Round {
    json_events_per_s: f64,
    avro_events_per_s: f64,
    avro_to_json: f64,
}

/// Runs the comparison and prints its JSON.
pub async fn run(args: &BenchArgs) -> Result<()> {
    let registry = SchemaRegistry::open(Arc::new(MemoryStore::new()), &builtin::subjects())
        .await
        .context("opening an in-memory schema registry")?;
    let sales = builtin::BUILTINS
        .iter()
        .find(|b| b.subject == "sales-value")
        .context("the built-in sales schema")?;
    let id = registry
        .lookup(sales.subject, sales.schema, None, retail_schema::Deleted::Hidden)
        .await?
        .id;
    let schema = registry.schema(id).context("the sales schema by id")?;

    let config = GeneratorConfig {
        seed: 7,
        events: Some(args.events),
        ..GeneratorConfig::default()
    };
    let json: Vec<Vec<u8>> = EventGenerator::new(&config)?
        .filter(|g| !g.catalog && g.record.topic == topics::SALES)
        .map(|g| g.record.value)
        .collect();
    let avro: Vec<Vec<u8>> = json
        .iter()
        .map(|j| avro::from_json(&schema, j).map(|body| wire::frame(id, &body)))
        .collect::<Result<_, _>>()
        .context("encoding the generator's sales as Avro")?;
    let n = json.len();
    anyhow::ensure!(n > 0, "bench --compare-avro: the generator gave no sales");

    let mut rounds = Vec::new();
    for round in 0..args.rounds.max(1) {
        let (json_rate, avro_rate) = if round % 2 == 0 {
            let j = time(|| decode_json(&json));
            (j?, time(|| decode_avro(&avro, &registry))?)
        } else {
            let a = time(|| decode_avro(&avro, &registry));
            let a = a?;
            (time(|| decode_json(&json))?, a)
        };
        let (json_rate, avro_rate) = (n as f64 / json_rate, n as f64 / avro_rate);
        eprintln!(
            "round {}: JSON {json_rate:.0} events/s, Avro {avro_rate:.0} events/s, ratio {:.2}",
            round + 1,
            avro_rate / json_rate
        );
        rounds.push(Round {
            json_events_per_s: json_rate,
            avro_events_per_s: avro_rate,
            avro_to_json: avro_rate / json_rate,
        });
    }
    let mut ratios: Vec<f64> = rounds.iter().map(|r| r.avro_to_json).collect();
    ratios.sort_by(f64::total_cmp);
    let report = AvroComparison {
        events: n as u64,
        json_bytes_per_event: json.iter().map(Vec::len).sum::<usize>() as f64 / n as f64,
        avro_bytes_per_event: avro.iter().map(Vec::len).sum::<usize>() as f64 / n as f64,
        avro_to_json_median: ratios[ratios.len() / 2],
        rounds,
    };
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(path) = &args.json {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Seconds `f` took.
fn time(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let started = Instant::now();
    f()?;
    Ok(started.elapsed().as_secs_f64())
}

fn decode_json(events: &[Vec<u8>]) -> Result<()> {
    for e in events {
        let v = decode_versioned(e, "bench", |_| Uuid::nil());
        std::hint::black_box(v.map_err(|e| anyhow::anyhow!("a generated sale did not decode: {e}"))?);
    }
    Ok(())
}

fn decode_avro(events: &[Vec<u8>], registry: &SchemaRegistry) -> Result<()> {
    for e in events {
        let (id, body) = wire::split(e)?;
        let schema = registry
            .schema(id)
            .with_context(|| format!("schema id {id} missing"))?;
        let json = avro::to_json(&schema, body)?;
        let v = decode_versioned(&json, "bench", |_| Uuid::nil());
        std::hint::black_box(v.map_err(|e| anyhow::anyhow!("an Avro sale did not decode: {e}"))?);
    }
    Ok(())
}
