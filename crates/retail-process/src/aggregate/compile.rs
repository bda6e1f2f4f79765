//! Turns `[[aggregates]]` blocks into what the engine runs and the store creates, checking
//! everything at start: a bad field, window or measure is an error naming the aggregate and
//! the key, never a surprise at the first event.

use std::collections::HashSet;
use std::sync::Arc;

use retail_sink::derived::{AggregateTable, ColumnType, KeyColumn, MeasureColumn, Merge, Rank, Value};

use super::field::{Dimension, Field};
use super::spec::{AggregateSpec, FilterValue, LatePolicy, MeasureFn, Scalar, WindowKind};
use super::window::Window;

/// Column names every aggregate table has.
const FIXED_COLUMNS: &[&str] = &["window_start", "window_end", "updated_at", "rank"];

/// A filter: every field must equal one of its values.
pub type Filter = Vec<(Field, Vec<Value>)>;

/// A measure ready to run.
#[derive(Debug, Clone)]
pub struct Measure {
    /// The field measured; `None` for `count`.
    pub field: Option<Field>,
    /// Only events matching this count.
    pub filter: Filter,
}

/// An aggregate ready to run.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// Name (and table name).
    pub name: Arc<str>,
    /// Index of its table in the list the store was prepared with.
    pub table: u16,
    /// Topic read.
    pub topic: String,
    /// Event filter.
    pub filter: Filter,
    /// Group-by fields.
    pub keys: Vec<Field>,
    /// Window.
    pub window: Window,
    /// Grace after the window end, milliseconds.
    pub grace: i64,
    /// Late policy.
    pub late: LatePolicy,
    /// Measures.
    pub measures: Vec<Measure>,
    /// The table the store creates.
    pub table_def: AggregateTable,
}

impl Compiled {
    /// The catalog dimensions this aggregate joins.
    pub fn dimensions(&self) -> impl Iterator<Item = Dimension> + '_ {
        self.keys
            .iter()
            .copied()
            .chain(self.filter.iter().map(|(f, _)| *f))
            .chain(self.measures.iter().filter_map(|m| m.field))
            .chain(
                self.measures
                    .iter()
                    .flat_map(|m| m.filter.iter().map(|(f, _)| *f)),
            )
            .filter_map(Field::dimension)
    }
}

/// Most windows one event may fall in (`size / advance` of a hopping window): each is a
/// contribution computed and written per event, so more would stall the landing (issue 18).
pub const MAX_WINDOWS_PER_EVENT: i64 = 10_000;

/// Longest window, 3660 days: events are accepted from 2000 to 2100, and longer windows only
/// invite arithmetic at the edge of the time range.
pub const MAX_WINDOW_MS: i64 = 3660 * 86_400_000;

/// Compiles `specs` in order; table indexes follow that order.
pub fn compile(specs: &[AggregateSpec]) -> Result<Vec<Compiled>, String> {
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let at = |key: &str, msg: String| format!("aggregate {:?}: {key}: {msg}", spec.name);
        identifier(&spec.name).map_err(|m| at("name", m))?;
        if retail_sink::STORE_TABLES.contains(&spec.name.as_str()) {
            return Err(at(
                "name",
                "is a table the system owns; choose another name".into(),
            ));
        }
        if !names.insert(spec.name.clone()) {
            return Err(at("name", "is defined twice".into()));
        }
        let fields = Field::of_topic(&spec.topic);
        if fields.is_empty() {
            return Err(at(
                "topic",
                format!(
                    "unknown topic {:?} (expected sales, orders, payments, inventory or devices)",
                    spec.topic
                ),
            ));
        }
        let field = |key: &str, name: &str| -> Result<Field, String> {
            fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, f)| *f)
                .ok_or_else(|| {
                    at(
                        key,
                        format!(
                            "unknown field {name:?} of topic {} (fields: {})",
                            spec.topic,
                            fields.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                        ),
                    )
                })
        };
        let filter_of = |key: &str,
                         filter: &std::collections::BTreeMap<String, FilterValue>|
         -> Result<Filter, String> {
            filter
                .iter()
                .map(|(name, v)| {
                    let f = field(&format!("{key}.{name}"), name)?;
                    let scalars = match v {
                        FilterValue::One(s) => vec![s.clone()],
                        FilterValue::Any(list) => list.clone(),
                    };
                    let values = scalars
                        .into_iter()
                        .map(|s| match (f.ty(), s) {
                            (ColumnType::Int, Scalar::Int(i)) => Ok(Value::Int(i)),
                            (ColumnType::Text, Scalar::Text(t)) => Ok(Value::Text(t.as_str().into())),
                            (ColumnType::Decimal, Scalar::Int(i)) => Ok(Value::Decimal(i.into())),
                            (ColumnType::Decimal, Scalar::Text(t)) => t
                                .parse()
                                .map(Value::Decimal)
                                .map_err(|_| at(&format!("{key}.{name}"), format!("{t:?} is not a decimal"))),
                            (ty, s) => Err(at(
                                &format!("{key}.{name}"),
                                format!("{s:?} does not match the field's type {ty:?}"),
                            )),
                        })
                        .collect::<Result<Vec<_>, String>>()?;
                    Ok((f, values))
                })
                .collect()
        };

        let filter = filter_of("filter", &spec.filter)?;
        let mut keys = Vec::new();
        let mut key_cols = Vec::new();
        let mut columns: HashSet<&str> = FIXED_COLUMNS.iter().copied().collect();
        for name in &spec.group_by {
            let f = field("group_by", name)?;
            if !columns.insert(name) {
                return Err(at("group_by", format!("{name:?} is listed twice")));
            }
            keys.push(f);
            key_cols.push(KeyColumn {
                name: name.clone(),
                ty: f.ty(),
            });
        }

        let size = duration(&spec.window.size).map_err(|m| at("window.size", m))?;
        if size > MAX_WINDOW_MS {
            return Err(at(
                "window.size",
                format!(
                    "{:?} is longer than {} days, the longest window accepted",
                    spec.window.size,
                    MAX_WINDOW_MS / 86_400_000
                ),
            ));
        }
        let window = match (spec.window.kind, &spec.window.advance) {
            (WindowKind::Tumbling, None) => Window { size, advance: size },
            (WindowKind::Tumbling, Some(_)) => {
                return Err(at(
                    "window.advance",
                    "only hopping windows have an advance".into(),
                ));
            }
            (WindowKind::Hopping, None) => {
                return Err(at(
                    "window.advance",
                    "a hopping window needs an advance, e.g. \"1m\"".into(),
                ));
            }
            (WindowKind::Hopping, Some(a)) => {
                let advance = duration(a).map_err(|m| at("window.advance", m))?;
                if advance > size {
                    return Err(at(
                        "window.advance",
                        format!("{a:?} is longer than the window size {:?}", spec.window.size),
                    ));
                }
                // Each event lands in size/advance windows: a tiny advance is a hang.
                let per_event = (size + advance - 1) / advance;
                if per_event > MAX_WINDOWS_PER_EVENT {
                    return Err(at(
                        "window.advance",
                        format!(
                            "{a:?} puts each event in {per_event} windows of {:?}; at most {MAX_WINDOWS_PER_EVENT} are accepted (use a larger advance)",
                            spec.window.size
                        ),
                    ));
                }
                Window { size, advance }
            }
        };
        let grace = duration_or_zero(&spec.grace).map_err(|m| at("grace", m))?;

        if spec.measures.is_empty() {
            return Err(at("measures", "an aggregate needs at least one measure".into()));
        }
        let mut measures = Vec::new();
        let mut measure_cols = Vec::new();
        for (j, m) in spec.measures.iter().enumerate() {
            let key = format!("measures[{j}]");
            identifier(&m.name).map_err(|e| at(&format!("{key}.name"), e))?;
            if !columns.insert(&m.name) || m.name.ends_with("__sum") || m.name.ends_with("__n") {
                return Err(at(
                    &format!("{key}.name"),
                    format!("{:?} clashes with another column", m.name),
                ));
            }
            let f = match (m.func, &m.field) {
                (MeasureFn::Count, None) => None,
                (MeasureFn::Count, Some(_)) => {
                    return Err(at(
                        &format!("{key}.field"),
                        "count takes no field (use a filter to count some events)".into(),
                    ));
                }
                (_, None) => return Err(at(&format!("{key}.field"), format!("{:?} needs a field", m.func))),
                (func, Some(name)) => {
                    let f = field(&format!("{key}.field"), name)?;
                    if matches!(func, MeasureFn::Sum | MeasureFn::Avg) && f.ty() == ColumnType::Text {
                        return Err(at(
                            &format!("{key}.field"),
                            format!("{name:?} is text; {func:?} needs a number"),
                        ));
                    }
                    Some(f)
                }
            };
            let merge = match m.func {
                MeasureFn::Count => Merge::Count,
                MeasureFn::Sum => Merge::Sum,
                MeasureFn::Min => Merge::Min,
                MeasureFn::Max => Merge::Max,
                MeasureFn::Avg => Merge::Avg,
                MeasureFn::DistinctCount => Merge::DistinctCount,
            };
            measures.push(Measure {
                field: f,
                filter: filter_of(&format!("{key}.filter"), &m.filter)?,
            });
            measure_cols.push(MeasureColumn {
                name: m.name.clone(),
                input: f.map_or(ColumnType::Int, Field::ty),
                merge,
            });
        }

        let rank = match &spec.rank {
            None => None,
            Some(r) => {
                if !spec.measures.iter().any(|m| m.name == r.by) {
                    return Err(at(
                        "rank.by",
                        format!("{:?} is not a measure of this aggregate", r.by),
                    ));
                }
                for w in &r.within {
                    if !spec.group_by.contains(w) {
                        return Err(at("rank.within", format!("{w:?} is not a group_by field")));
                    }
                }
                Some(Rank {
                    by: r.by.clone(),
                    within: r.within.clone(),
                })
            }
        };

        out.push(Compiled {
            name: spec.name.as_str().into(),
            table: u16::try_from(i).map_err(|_| at("name", "too many aggregates".into()))?,
            topic: spec.topic.clone(),
            filter,
            keys,
            window,
            grace,
            late: spec.late,
            measures,
            table_def: AggregateTable {
                name: spec.name.clone(),
                keys: key_cols,
                measures: measure_cols,
                rank,
            },
        });
    }
    Ok(out)
}

/// The same aggregates writing to `<name><suffix>` tables (a replay's fresh tables).
pub fn renamed(aggregates: Vec<Compiled>, suffix: &str) -> Result<Vec<Compiled>, String> {
    aggregates
        .into_iter()
        .map(|mut a| {
            let name = format!("{}{suffix}", a.name);
            identifier(&name).map_err(|m| format!("replay table name: {m}"))?;
            a.name = name.as_str().into();
            a.table_def.name = name;
            Ok(a)
        })
        .collect()
}

/// A table or column name: lower-case letters, digits and `_`, starting with a letter.
fn identifier(name: &str) -> Result<(), String> {
    let ok = name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a plain name (lower-case letters, digits and _, starting with a letter, at most 48)"
        ))
    }
}

/// A positive duration such as `"1m"`, `"1h"`, `"30d"`, in milliseconds.
fn duration(text: &str) -> Result<i64, String> {
    let ms = duration_or_zero(text)?;
    if ms == 0 {
        return Err(format!("{text:?} must be longer than zero"));
    }
    Ok(ms)
}

fn duration_or_zero(text: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as \"30s\", \"1m\", \"1h\", \"30d\" ({e})"))?;
    i64::try_from(d.as_millis()).map_err(|_| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::spec::builtin;

    fn one(toml_text: &str) -> Result<Vec<Compiled>, String> {
        #[derive(serde::Deserialize)]
        struct F {
            aggregates: Vec<AggregateSpec>,
        }
        let f: F = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        compile(&f.aggregates)
    }

    #[test]
    fn builtins_compile() {
        let c = compile(&builtin()).expect("builtins compile");
        assert_eq!(c.len(), 4);
        assert_eq!(c[2].window.size, 86_400_000);
        assert_eq!(c[3].window.size, 30 * 86_400_000);
    }

    #[test]
    fn errors_name_the_aggregate_and_the_key() {
        let base = |extra: &str| {
            format!(
                "[[aggregates]]\nname = \"a\"\ngroup_by = [\"store_id\"]\n{extra}\nmeasures = [{{ name = \"n\", fn = \"count\" }}]\n"
            )
        };
        let err = one(&base("window = { kind = \"tumbling\", size = \"one minute\" }"))
            .expect_err("must be refused");
        assert!(
            err.starts_with("aggregate \"a\": window.size: \"one minute\" is not a duration"),
            "{err}"
        );
        let err = one(&base("window = { kind = \"hopping\", size = \"1m\" }")).expect_err("must be refused");
        assert!(
            err.starts_with("aggregate \"a\": window.advance: a hopping window needs an advance"),
            "{err}"
        );
        let err = one(&base(
            "window = { kind = \"tumbling\", size = \"1m\" }\nfilter = { colour = \"red\" }",
        ))
        .expect_err("must be refused");
        assert!(
            err.starts_with("aggregate \"a\": filter.colour: unknown field \"colour\" of topic sales"),
            "{err}"
        );
    }

    /// A hopping window with a tiny advance puts one event in billions of windows (`30d` by
    /// `1ms` is 2.6e9): refused at load, naming the key (issue 18, item 8).
    #[test]
    fn windows_that_would_hang_the_process_are_refused() {
        let base = |window: &str| {
            format!(
                "[[aggregates]]\nname = \"a\"\ngroup_by = [\"store_id\"]\nwindow = {window}\nmeasures = [{{ name = \"n\", fn = \"count\" }}]\n"
            )
        };
        let err = one(&base(r#"{ kind = "hopping", size = "30d", advance = "1ms" }"#)).expect_err("refused");
        assert!(
            err.starts_with("aggregate \"a\": window.advance: \"1ms\" puts each event in 2592000000 windows"),
            "{err}"
        );
        assert!(one(&base(r#"{ kind = "hopping", size = "1d", advance = "10s" }"#)).is_ok());
        let err = one(&base(r#"{ kind = "tumbling", size = "20000d" }"#)).expect_err("refused");
        assert!(
            err.starts_with("aggregate \"a\": window.size: \"20000d\" is longer than"),
            "{err}"
        );
    }
}
