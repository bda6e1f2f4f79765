//! OpenLineage run events (spec 2-0-2) as JSON, with the few standard facets the pipeline
//! fills: `jobType` (a streaming job of this integration), `processing_engine`,
//! `errorMessage` on FAIL, `dataSource` on every dataset, and `inputStatistics` /
//! `outputStatistics` (records so far in this run) where the pipeline counts them. Facet
//! schema URLs are those of the `openlineage-python` client the tests check the events with.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};

/// Who produced the events: this binary and its version.
pub const PRODUCER: &str = concat!("urn:retail-etl:", env!("CARGO_PKG_VERSION"));
const SPEC: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const JOB_TYPE: &str = "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";
const ENGINE: &str =
    "https://openlineage.io/spec/facets/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet";
const ERROR: &str =
    "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
const DATA_SOURCE: &str =
    "https://openlineage.io/spec/facets/1-0-1/DatasourceDatasetFacet.json#/$defs/DatasourceDatasetFacet";
const INPUT_STATS: &str = "https://openlineage.io/spec/facets/1-0-0/InputStatisticsInputDatasetFacet.json#/$defs/InputStatisticsInputDatasetFacet";
const OUTPUT_STATS: &str = "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet";

/// A run's transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventType {
    /// The job started (the pipeline runs it).
    Start,
    /// Still running; the counts so far.
    Running,
    /// Stopped cleanly.
    Complete,
    /// Stopped on an error.
    Fail,
}

impl EventType {
    /// As the spec spells it (and the metric's label).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Start => "START",
            Self::Running => "RUNNING",
            Self::Complete => "COMPLETE",
            Self::Fail => "FAIL",
        }
    }

    /// Whether the run is over.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Complete | Self::Fail)
    }
}

/// A dataset a job reads or writes, with the records counted along the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetIo {
    /// OpenLineage namespace.
    pub namespace: String,
    /// Name in the namespace.
    pub name: String,
    /// `topic` or `table`.
    pub kind: &'static str,
    /// Records in this run, where counted.
    pub records: Option<u64>,
}

/// What an event says about one job.
#[derive(Debug)]
pub struct JobRun<'a> {
    /// Job namespace.
    pub namespace: &'a str,
    /// Job name.
    pub name: &'a str,
    /// `SOURCE`, `LANDING` or `AGGREGATE`.
    pub job_type: &'a str,
    /// The run id.
    pub run_id: uuid::Uuid,
    /// Inputs.
    pub inputs: &'a [DatasetIo],
    /// Outputs.
    pub outputs: &'a [DatasetIo],
    /// Why it failed, for FAIL.
    pub error: Option<&'a str>,
}

fn facet(schema: &str, fields: Value) -> Value {
    let mut v = json!({ "_producer": PRODUCER, "_schemaURL": schema });
    if let (Some(map), Value::Object(extra)) = (v.as_object_mut(), fields) {
        map.extend(extra);
    }
    v
}

fn dataset(d: &DatasetIo, stats_key: &str, stats_schema: &str) -> Value {
    let mut v = json!({
        "namespace": d.namespace,
        "name": d.name,
        "facets": { "dataSource": facet(DATA_SOURCE, json!({ "name": d.namespace, "uri": d.namespace })) },
    });
    let io_key = if stats_key == "inputStatistics" {
        "inputFacets"
    } else {
        "outputFacets"
    };
    let mut io = BTreeMap::new();
    if let Some(n) = d.records {
        io.insert(stats_key, facet(stats_schema, json!({ "rowCount": n })));
    }
    if let Some(map) = v.as_object_mut() {
        map.insert(io_key.to_owned(), json!(io));
    }
    v
}

/// The event as one line of JSON.
pub fn run_event(event_type: EventType, at: DateTime<Utc>, job: &JobRun<'_>) -> String {
    let mut run_facets = json!({
        "processing_engine": facet(ENGINE, json!({
            "name": "retail-etl",
            "version": env!("CARGO_PKG_VERSION"),
            "openlineageAdapterVersion": env!("CARGO_PKG_VERSION"),
        })),
    });
    if let (Some(message), Some(map)) = (job.error, run_facets.as_object_mut()) {
        map.insert(
            "errorMessage".to_owned(),
            facet(
                ERROR,
                json!({ "message": message, "programmingLanguage": "Rust" }),
            ),
        );
    }
    let event = json!({
        "eventType": event_type,
        "eventTime": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "producer": PRODUCER,
        "schemaURL": SPEC,
        "run": { "runId": job.run_id.to_string(), "facets": run_facets },
        "job": {
            "namespace": job.namespace,
            "name": job.name,
            "facets": { "jobType": facet(JOB_TYPE, json!({
                "processingType": "STREAMING",
                "integration": "RETAIL_ETL",
                "jobType": job.job_type,
            })) },
        },
        "inputs": job.inputs.iter().map(|d| dataset(d, "inputStatistics", INPUT_STATS)).collect::<Vec<_>>(),
        "outputs": job.outputs.iter().map(|d| dataset(d, "outputStatistics", OUTPUT_STATS)).collect::<Vec<_>>(),
    });
    event.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_has_the_spec_fields_and_counts_where_known() {
        let out = [DatasetIo {
            namespace: "sqlite:///x.db".into(),
            name: "sales_raw".into(),
            kind: "table",
            records: Some(7),
        }];
        let job = JobRun {
            namespace: "retail-etl",
            name: "landing",
            job_type: "LANDING",
            run_id: uuid::Uuid::now_v7(),
            inputs: &[],
            outputs: &out,
            error: Some("store gone"),
        };
        let v: Value = serde_json::from_str(&run_event(EventType::Fail, Utc::now(), &job)).expect("json");
        assert_eq!(v["eventType"], "FAIL");
        assert_eq!(v["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"], 7);
        assert_eq!(v["run"]["facets"]["errorMessage"]["message"], "store gone");
        assert_eq!(v["job"]["facets"]["jobType"]["processingType"], "STREAMING");
        assert!(v["eventTime"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}
