//! The configuration of stream processing: `[processing]` (watermarks, idleness, joins) and the
//! declarative `[[aggregates]]`, plus the four aggregates the system ships with, written in the
//! very format a user writes their own in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::pipelines::fraud::FraudConfig;
use crate::pipelines::orders::OrderPipelineConfig;
use crate::pipelines::stock::StockPipelineConfig;

/// `[processing]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessingConfig {
    /// How far behind the newest event of a partition an event may be and still count as on
    /// time, in milliseconds: a partition's watermark is its largest event time minus this.
    pub max_out_of_orderness_ms: u64,
    /// A partition with no new record for this long (milliseconds) stops holding back the
    /// combined watermark, so a quiet store or an idle partition does not keep windows open.
    pub idle_timeout_ms: u64,
    /// How long a batch waits for a catalog row it needs (a sale of a store not yet known)
    /// before the sale is aggregated under `unknown`, in milliseconds.
    pub join_wait_ms: u64,
    /// Whether the four built-in aggregates (sales_agg_minute, sales_agg_hour,
    /// top_sales_by_city, top_salesman_by_country) run besides `[[aggregates]]`.
    pub builtin_aggregates: bool,
    /// The order-lifecycle pipeline (`[processing.orders]`, ADR 0023).
    pub orders: OrderPipelineConfig,
    /// The inventory-at-risk pipeline (`[processing.stock]`, ADR 0024).
    pub stock: StockPipelineConfig,
    /// Fraud rules as data (`[processing.fraud]`, ADR 0025).
    pub fraud: FraudConfig,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        Self {
            max_out_of_orderness_ms: 5_000,
            idle_timeout_ms: 30_000,
            join_wait_ms: 2_000,
            builtin_aggregates: true,
            orders: OrderPipelineConfig::default(),
            stock: StockPipelineConfig::default(),
            fraud: FraudConfig::default(),
        }
    }
}

/// One `[[aggregates]]` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateSpec {
    /// Name of the aggregate and of its table: letters, digits and `_`.
    pub name: String,
    /// Topic whose events it reads (`sales`, `orders`, `payments`, `inventory`, `devices`).
    #[serde(default = "sales_topic")]
    pub topic: String,
    /// Only events whose fields equal these values (a value or a list of allowed values).
    #[serde(default)]
    pub filter: BTreeMap<String, FilterValue>,
    /// Group-by fields; each becomes a key column.
    pub group_by: Vec<String>,
    /// The window.
    pub window: WindowSpec,
    /// How long after a window's end late events are still accepted, e.g. `"30s"`.
    #[serde(default = "zero")]
    pub grace: String,
    /// What happens to events later than window end + grace: `record` (into `late_events`,
    /// the window stays as it closed) or `update` (they correct the closed window).
    #[serde(default)]
    pub late: LatePolicy,
    /// Measures; each becomes a column.
    pub measures: Vec<MeasureSpec>,
    /// Optional ranking, published as a `<name>_ranked` view.
    #[serde(default)]
    pub rank: Option<RankSpec>,
}

fn sales_topic() -> String {
    "sales".to_owned()
}

fn zero() -> String {
    "0s".to_owned()
}

/// A filter value: one scalar or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FilterValue {
    /// Equal to this.
    One(Scalar),
    /// Equal to one of these.
    Any(Vec<Scalar>),
}

/// A scalar in a filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// A whole number.
    Int(i64),
    /// Text.
    Text(String),
}

/// `window = { kind = "tumbling", size = "1m" }` or `{ kind = "hopping", size = "10m", advance = "1m" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// `tumbling` or `hopping`.
    pub kind: WindowKind,
    /// Window length, e.g. `"1m"`, `"1h"`, `"1d"`, `"30d"`.
    pub size: String,
    /// Hopping only: how far each window starts after the previous one.
    #[serde(default)]
    pub advance: Option<String>,
}

/// Window kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// Back-to-back windows of `size`.
    Tumbling,
    /// Overlapping windows of `size` starting every `advance` (a sliding window).
    Hopping,
}

/// Late-event policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatePolicy {
    /// Into `late_events`; the window keeps what it had when it closed.
    #[default]
    Record,
    /// Applied to the closed window as a correction (and counted, not recorded).
    Update,
}

/// `{ name = "revenue", fn = "sum", field = "amount", filter = { kind = "sale" } }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasureSpec {
    /// Column name.
    pub name: String,
    /// `count`, `sum`, `min`, `max`, `avg` or `distinct_count`.
    #[serde(rename = "fn")]
    pub func: MeasureFn,
    /// Field measured (not for `count`).
    #[serde(default)]
    pub field: Option<String>,
    /// Only events matching this filter count toward the measure.
    #[serde(default)]
    pub filter: BTreeMap<String, FilterValue>,
}

/// Measure functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeasureFn {
    /// Number of events.
    Count,
    /// Sum of a numeric field.
    Sum,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Mean of a numeric field.
    Avg,
    /// Number of distinct values.
    DistinctCount,
}

/// `rank = { by = "revenue", within = ["country"] }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankSpec {
    /// Measure ranked, highest first.
    pub by: String,
    /// Group-by fields the rank restarts within, besides the window.
    #[serde(default)]
    pub within: Vec<String>,
}

/// The built-in aggregates of the seeds, as TOML a user could have written. Kept in sync with
/// `config/retail.example.toml`, which shows them (commented out) as the model to copy.
pub const BUILTIN_TOML: &str = r#"
[[aggregates]]
name = "sales_agg_minute"
group_by = ["store_id"]
window = { kind = "tumbling", size = "1m" }
grace = "30s"
measures = [
  { name = "units", fn = "sum", field = "qty" },
  { name = "revenue", fn = "sum", field = "amount" },
  { name = "sales", fn = "count", filter = { kind = "sale" } },
  { name = "returns", fn = "count", filter = { kind = "return" } },
]

[[aggregates]]
name = "sales_agg_hour"
group_by = ["store_id"]
window = { kind = "tumbling", size = "1h" }
grace = "1m"
measures = [
  { name = "units", fn = "sum", field = "qty" },
  { name = "revenue", fn = "sum", field = "amount" },
  { name = "sales", fn = "count", filter = { kind = "sale" } },
  { name = "returns", fn = "count", filter = { kind = "return" } },
]

[[aggregates]]
name = "top_sales_by_city"
group_by = ["country", "city"]
window = { kind = "tumbling", size = "1d" }
grace = "5m"
measures = [
  { name = "revenue", fn = "sum", field = "amount" },
  { name = "units", fn = "sum", field = "qty" },
  { name = "sales", fn = "count", filter = { kind = "sale" } },
]
rank = { by = "revenue" }

[[aggregates]]
name = "top_salesman_by_country"
group_by = ["country", "seller_id", "seller_name"]
window = { kind = "tumbling", size = "30d" }
grace = "5m"
measures = [
  { name = "revenue", fn = "sum", field = "amount" },
  { name = "units", fn = "sum", field = "qty" },
  { name = "sales", fn = "count", filter = { kind = "sale" } },
]
rank = { by = "revenue", within = ["country"] }
"#;

/// The built-in aggregates.
pub fn builtin() -> Vec<AggregateSpec> {
    #[derive(Deserialize)]
    struct File {
        aggregates: Vec<AggregateSpec>,
    }
    // A unit test parses this constant, so it cannot fail at run time.
    toml::from_str::<File>(BUILTIN_TOML).map_or_else(|_| Vec::new(), |f| f.aggregates)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_builtin_aggregates_parse() {
        let names: Vec<String> = super::builtin().into_iter().map(|a| a.name).collect();
        assert_eq!(
            names,
            [
                "sales_agg_minute",
                "sales_agg_hour",
                "top_sales_by_city",
                "top_salesman_by_country"
            ]
        );
    }
}
