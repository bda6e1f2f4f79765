//! The SQL of an aggregate table, generated from its definition for each dialect: the DDL, the
//! upsert that adds a batch's delta to a row, and the distinct-count side table statements.
//!
//! Names are quoted, and the processor's config only accepts plain identifiers for them, so no
//! generated statement can be bent by a name.

use super::fold::{Acc, DeltaRow};
use super::{AggregateTable, ColumnType, Merge, StoredType, Value};

/// Which SQL to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: arrays and `unnest` for multi-row statements.
    Postgres,
    /// SQLite: one row per execution of a prepared statement.
    Sqlite,
}

/// A column the upsert writes, in parameter order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// Window start.
    WindowStart,
    /// Window end.
    WindowEnd,
    /// Key column `i`.
    Key(usize),
    /// The stored value of measure `i`.
    Measure(usize),
    /// Hidden running sum of average measure `i`.
    AvgSum(usize),
    /// Hidden running count of average measure `i`.
    AvgCount(usize),
}

/// Every statement of one aggregate table.
#[derive(Debug, Clone)]
pub struct TableSql {
    /// `CREATE TABLE IF NOT EXISTS` and the ranking view, in order.
    pub create: Vec<String>,
    /// The columns the table must have, for the check against an existing table.
    pub columns: Vec<String>,
    /// The upsert; its parameters are [`Self::params`] in order (arrays for PostgreSQL).
    pub upsert: String,
    /// What each upsert parameter is.
    pub params: Vec<Param>,
    /// Side-table insert for distinct counts: window start, keys, measure name, value text.
    pub distinct_insert: Option<String>,
    /// Recount of each distinct measure `(measure index, statement)`: parameters are window
    /// start then keys (arrays for PostgreSQL).
    pub distinct_recount: Vec<(usize, String)>,
}

fn q(name: &str) -> String {
    format!("\"{name}\"")
}

/// The SQL type name of a key column.
const fn key_type(d: Dialect, t: ColumnType) -> &'static str {
    match (d, t) {
        (Dialect::Postgres, ColumnType::Int) => "bigint",
        (Dialect::Postgres, ColumnType::Decimal) => "numeric",
        (Dialect::Postgres, ColumnType::Text) => "text",
        (Dialect::Sqlite, ColumnType::Int) => "INTEGER",
        // Integer cents (ADR 0020).
        (Dialect::Sqlite, ColumnType::Decimal) => "INTEGER",
        (Dialect::Sqlite, ColumnType::Text) => "TEXT",
    }
}

const fn stored_type(d: Dialect, t: StoredType) -> &'static str {
    match (d, t) {
        (Dialect::Postgres, StoredType::Int) => "bigint",
        (Dialect::Postgres, StoredType::Decimal) => "numeric",
        (Dialect::Postgres, StoredType::Text) => "text",
        (Dialect::Postgres, StoredType::Float) => "double precision",
        // Decimals are integer cents (ADR 0020); only averages are floating point.
        (Dialect::Sqlite, StoredType::Int | StoredType::Decimal) => "INTEGER",
        (Dialect::Sqlite, StoredType::Float) => "REAL",
        (Dialect::Sqlite, StoredType::Text) => "TEXT",
    }
}

/// SQLite turns an integer sum that overflows `i64` into a REAL, silently: the check makes such a
/// write a constraint error instead, which refuses the batch (ADR 0008, 0020). PostgreSQL
/// raises `bigint out of range` by itself and keeps `numeric` exact.
fn integer_only(d: Dialect, ty: &str, column: &str) -> String {
    if d == Dialect::Sqlite && ty == "INTEGER" {
        format!(" CHECK (typeof({column}) IN ('integer', 'null'))")
    } else {
        String::new()
    }
}

const fn ts_type(d: Dialect) -> &'static str {
    match d {
        Dialect::Postgres => "timestamptz",
        Dialect::Sqlite => "TEXT",
    }
}

const fn now(d: Dialect) -> &'static str {
    match d {
        Dialect::Postgres => "now()",
        Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    }
}

impl TableSql {
    /// Generates the statements of `t` in dialect `d`.
    pub fn new(t: &AggregateTable, d: Dialect) -> Self {
        let name = q(&t.name);
        let keys: Vec<String> = t.keys.iter().map(|k| q(&k.name)).collect();
        let pk = std::iter::once("window_start".to_owned())
            .chain(keys.iter().cloned())
            .collect::<Vec<_>>()
            .join(", ");

        // Columns and parameters, in the same order.
        let mut cols: Vec<(String, String)> = vec![
            ("window_start".into(), format!("{} NOT NULL", ts_type(d))),
            ("window_end".into(), format!("{} NOT NULL", ts_type(d))),
        ];
        let mut params = vec![Param::WindowStart, Param::WindowEnd];
        for (i, k) in t.keys.iter().enumerate() {
            cols.push((q(&k.name), format!("{} NOT NULL", key_type(d, k.ty))));
            params.push(Param::Key(i));
        }
        for (i, m) in t.measures.iter().enumerate() {
            let ty = stored_type(d, m.stored());
            let check = integer_only(d, ty, &q(&m.name));
            let decl = match m.merge {
                Merge::Count | Merge::DistinctCount => format!("{ty} NOT NULL DEFAULT 0{check}"),
                _ => format!("{ty}{check}"),
            };
            cols.push((q(&m.name), decl));
            params.push(Param::Measure(i));
            if m.merge == Merge::Avg {
                let sum_ty = stored_type(d, StoredType::Decimal);
                let sum = q(&format!("{}__sum", m.name));
                let check = integer_only(d, sum_ty, &sum);
                cols.push((sum, format!("{sum_ty}{check}")));
                params.push(Param::AvgSum(i));
                let n_ty = stored_type(d, StoredType::Int);
                let n = q(&format!("{}__n", m.name));
                let check = integer_only(d, n_ty, &n);
                cols.push((n, format!("{n_ty} NOT NULL DEFAULT 0{check}")));
                params.push(Param::AvgCount(i));
            }
        }
        let mut create = vec![format!(
            "CREATE TABLE IF NOT EXISTS {name} ({}, updated_at {} NOT NULL DEFAULT ({}), PRIMARY KEY ({pk}))",
            cols.iter()
                .map(|(c, decl)| format!("{c} {decl}"))
                .collect::<Vec<_>>()
                .join(", "),
            ts_type(d),
            now(d),
        )];
        if t.has_distinct() {
            let key_decls: String = t
                .keys
                .iter()
                .map(|k| format!("{} {} NOT NULL, ", q(&k.name), key_type(d, k.ty)))
                .collect();
            create.push(format!(
                "CREATE TABLE IF NOT EXISTS {} (window_start {} NOT NULL, {key_decls}measure {} NOT NULL, \
                 value {} NOT NULL, PRIMARY KEY ({pk}, measure, value))",
                q(&format!("{}__distinct", t.name)),
                ts_type(d),
                key_type(d, ColumnType::Text),
                key_type(d, ColumnType::Text),
            ));
        }
        if let Some(rank) = &t.rank {
            let view = q(&format!("{}_ranked", t.name));
            let within = std::iter::once("window_start".to_owned())
                .chain(rank.within.iter().map(|w| q(w)))
                .collect::<Vec<_>>()
                .join(", ");
            let select = format!(
                "SELECT *, rank() OVER (PARTITION BY {within} ORDER BY {} DESC) AS rank FROM {name}",
                q(&rank.by)
            );
            match d {
                Dialect::Postgres => create.push(format!("CREATE OR REPLACE VIEW {view} AS {select}")),
                Dialect::Sqlite => {
                    create.push(format!("DROP VIEW IF EXISTS {view}"));
                    create.push(format!("CREATE VIEW {view} AS {select}"));
                }
            }
        }

        // The upsert.
        let col_names: Vec<&str> = cols.iter().map(|(c, _)| c.as_str()).collect();
        let source = match d {
            Dialect::Postgres => {
                let arrays: Vec<String> = params
                    .iter()
                    .enumerate()
                    .map(|(i, p)| format!("${}::{}[]", i + 1, pg_param_type(t, *p)))
                    .collect();
                format!("SELECT * FROM unnest({})", arrays.join(", "))
            }
            Dialect::Sqlite => format!(
                "VALUES ({})",
                (1..=params.len())
                    .map(|i| format!("?{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut sets: Vec<String> = Vec::new();
        let old = |c: &str| format!("{name}.{c}");
        for m in &t.measures {
            let c = q(&m.name);
            let (o, n) = (old(&c), format!("excluded.{c}"));
            match m.merge {
                Merge::Count => sets.push(format!("{c} = {o} + {n}")),
                Merge::Sum => sets.push(format!("{c} = COALESCE({o} + {n}, {o}, {n})")),
                Merge::Min | Merge::Max => {
                    let f = match (d, m.merge) {
                        (Dialect::Postgres, Merge::Min) => "LEAST",
                        (Dialect::Postgres, _) => "GREATEST",
                        (Dialect::Sqlite, Merge::Min) => "MIN",
                        (Dialect::Sqlite, _) => "MAX",
                    };
                    sets.push(format!("{c} = COALESCE({f}({o}, {n}), {o}, {n})"));
                }
                Merge::Avg => {
                    let s = q(&format!("{}__sum", m.name));
                    let k = q(&format!("{}__n", m.name));
                    let (os, ns, ok, nk) =
                        (old(&s), format!("excluded.{s}"), old(&k), format!("excluded.{k}"));
                    let float = stored_type(d, StoredType::Float);
                    // SQLite's running sum is in cents.
                    let unit = match d {
                        Dialect::Postgres => "",
                        Dialect::Sqlite => " / 100.0",
                    };
                    sets.push(format!(
                        "{c} = CAST(COALESCE({os}, 0) + COALESCE({ns}, 0) AS {float}){unit} / NULLIF({ok} + {nk}, 0)"
                    ));
                    sets.push(format!("{s} = COALESCE({os} + {ns}, {os}, {ns})"));
                    sets.push(format!("{k} = {ok} + {nk}"));
                }
                Merge::DistinctCount => {} // recounted from the side table
            }
        }
        sets.push(format!("updated_at = {}", now(d)));
        let upsert = format!(
            "INSERT INTO {name} ({}) {source} ON CONFLICT ({pk}) DO UPDATE SET {}",
            col_names.join(", "),
            sets.join(", ")
        );

        // Distinct counts.
        let key_params = t.keys.len();
        let (distinct_insert, distinct_recount) = if t.has_distinct() {
            let side = q(&format!("{}__distinct", t.name));
            let insert_cols = format!(
                "window_start, {}measure, value",
                keys.iter().map(|k| format!("{k}, ")).collect::<String>()
            );
            let insert = match d {
                Dialect::Postgres => {
                    let mut arrays = vec!["$1::timestamptz[]".to_owned()];
                    for (i, k) in t.keys.iter().enumerate() {
                        arrays.push(format!("${}::{}[]", i + 2, key_type(d, k.ty)));
                    }
                    arrays.push(format!("${}::text[]", key_params + 2));
                    arrays.push(format!("${}::text[]", key_params + 3));
                    format!(
                        "INSERT INTO {side} ({insert_cols}) SELECT * FROM unnest({}) ON CONFLICT DO NOTHING",
                        arrays.join(", ")
                    )
                }
                Dialect::Sqlite => format!(
                    "INSERT INTO {side} ({insert_cols}) VALUES ({}) ON CONFLICT DO NOTHING",
                    (1..=key_params + 3)
                        .map(|i| format!("?{i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            let mut recount = Vec::new();
            for (i, m) in t.measures.iter().enumerate() {
                if m.merge != Merge::DistinctCount {
                    continue;
                }
                let c = q(&m.name);
                let join: String = keys.iter().map(|k| format!(" AND d.{k} = {name}.{k}")).collect();
                let count = format!(
                    "(SELECT count(*) FROM {side} d WHERE d.window_start = {name}.window_start{join} AND d.measure = '{}')",
                    m.name
                );
                let stmt = match d {
                    Dialect::Postgres => {
                        let mut arrays = vec!["$1::timestamptz[]".to_owned()];
                        for (j, k) in t.keys.iter().enumerate() {
                            arrays.push(format!("${}::{}[]", j + 2, key_type(d, k.ty)));
                        }
                        format!(
                            "UPDATE {name} SET {c} = {count} WHERE ({pk}) IN (SELECT * FROM unnest({}))",
                            arrays.join(", ")
                        )
                    }
                    Dialect::Sqlite => {
                        let conds: String = std::iter::once("window_start".to_owned())
                            .chain(keys.iter().cloned())
                            .enumerate()
                            .map(|(j, c)| format!(" AND {c} = ?{}", j + 1))
                            .collect();
                        format!("UPDATE {name} SET {c} = {count} WHERE 1 = 1{conds}")
                    }
                };
                recount.push((i, stmt));
            }
            (Some(insert), recount)
        } else {
            (None, Vec::new())
        };

        let mut columns: Vec<String> = cols.iter().map(|(c, _)| c.trim_matches('"').to_owned()).collect();
        columns.push("updated_at".to_owned());
        Self {
            create,
            columns,
            upsert,
            params,
            distinct_insert,
            distinct_recount,
        }
    }
}

/// One value of an upsert row, typed for binding.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// Whole number.
    Int(i64),
    /// Exact decimal.
    Decimal(rust_decimal::Decimal),
    /// Floating point.
    Float(f64),
    /// Text.
    Text(std::sync::Arc<str>),
    /// A timestamp, epoch milliseconds.
    Ts(i64),
}

impl Cell {
    /// The cell of a key or measure value.
    pub fn of(v: &Value) -> Self {
        match v {
            Value::Null => Self::Null,
            Value::Int(i) => Self::Int(*i),
            Value::Decimal(d) => Self::Decimal(*d),
            Value::Text(t) => Self::Text(t.clone()),
        }
    }
}

/// The value of upsert parameter `p` for `row` of table `t`.
pub fn cell(t: &AggregateTable, p: Param, row: &DeltaRow) -> Cell {
    let _ = t;
    match p {
        Param::WindowStart => Cell::Ts(row.window_start),
        Param::WindowEnd => Cell::Ts(row.window_end),
        Param::Key(i) => row.key.get(i).map_or(Cell::Null, Cell::of),
        Param::Measure(i) => match row.acc.get(i) {
            Some(Acc::Count(n)) => Cell::Int(*n),
            Some(Acc::Sum(v) | Acc::Min(v) | Acc::Max(v)) => Cell::of(v),
            Some(Acc::Avg { sum, n }) if *n > 0 => {
                let mean = *sum / rust_decimal::Decimal::from(*n);
                Cell::Float(rust_decimal::prelude::ToPrimitive::to_f64(&mean).unwrap_or(f64::NAN))
            }
            Some(Acc::Distinct(_)) => Cell::Int(0),
            Some(Acc::Avg { .. }) | None => Cell::Null,
        },
        Param::AvgSum(i) => match row.acc.get(i) {
            Some(Acc::Avg { sum, n }) if *n > 0 => Cell::Decimal(*sum),
            _ => Cell::Null,
        },
        Param::AvgCount(i) => match row.acc.get(i) {
            Some(Acc::Avg { n, .. }) => Cell::Int(*n),
            _ => Cell::Int(0),
        },
    }
}

/// A distinct value as the side table stores it.
pub fn distinct_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Int(i) => i.to_string(),
        Value::Decimal(d) => d.normalize().to_string(),
        Value::Text(t) => t.to_string(),
    }
}

/// An existing table must have exactly the columns the definition needs.
pub fn check_columns(table: &str, existing: &[String], needed: &[String]) -> crate::Result<()> {
    let mut have: Vec<&str> = existing.iter().map(String::as_str).collect();
    let mut want: Vec<&str> = needed.iter().map(String::as_str).collect();
    have.sort_unstable();
    want.sort_unstable();
    if have == want {
        return Ok(());
    }
    Err(crate::Error::Config(format!(
        "aggregate {table}: the table {table} exists with columns [{}] but the aggregate's definition \
         needs [{}]; drop the table (it is rebuilt by `retail-etl replay`) or give the aggregate another name",
        existing.join(", "),
        needed.join(", ")
    )))
}

/// The names an aggregate table `name` occupies in the store: the table, its ranking view and
/// its distinct side table. Nothing else may use them, and a replay must not drop them for a
/// live aggregate.
pub fn object_names(name: &str) -> [String; 3] {
    [
        name.to_owned(),
        format!("{name}_ranked"),
        format!("{name}__distinct"),
    ]
}

/// Statements that remove an aggregate table, its ranking view and its distinct side table.
pub fn drop_statements(t: &AggregateTable) -> Vec<String> {
    let [table, view, side] = object_names(&t.name);
    vec![
        format!("DROP VIEW IF EXISTS {}", q(&view)),
        format!("DROP TABLE IF EXISTS {}", q(&side)),
        format!("DROP TABLE IF EXISTS {}", q(&table)),
    ]
}

/// The PostgreSQL element type of an upsert parameter.
fn pg_param_type(t: &AggregateTable, p: Param) -> &'static str {
    match p {
        Param::WindowStart | Param::WindowEnd => "timestamptz",
        Param::Key(i) => key_type(Dialect::Postgres, t.keys[i].ty),
        Param::Measure(i) => stored_type(Dialect::Postgres, t.measures[i].stored()),
        Param::AvgSum(_) => "numeric",
        Param::AvgCount(_) => "bigint",
    }
}

#[cfg(test)]
mod tests {
    use super::super::{KeyColumn, MeasureColumn, Rank};
    use super::*;

    #[test]
    fn postgres_upsert_adds_sums_and_keeps_the_smaller_minimum() {
        let t = AggregateTable {
            name: "agg".into(),
            keys: vec![KeyColumn {
                name: "store_id".into(),
                ty: ColumnType::Int,
            }],
            measures: vec![
                MeasureColumn {
                    name: "units".into(),
                    input: ColumnType::Int,
                    merge: Merge::Sum,
                },
                MeasureColumn {
                    name: "cheapest".into(),
                    input: ColumnType::Decimal,
                    merge: Merge::Min,
                },
            ],
            rank: Some(Rank {
                by: "units".into(),
                within: vec![],
            }),
        };
        let sql = TableSql::new(&t, Dialect::Postgres);
        assert_eq!(
            sql.upsert,
            "INSERT INTO \"agg\" (window_start, window_end, \"store_id\", \"units\", \"cheapest\") \
             SELECT * FROM unnest($1::timestamptz[], $2::timestamptz[], $3::bigint[], $4::bigint[], $5::numeric[]) \
             ON CONFLICT (window_start, \"store_id\") DO UPDATE SET \
             \"units\" = COALESCE(\"agg\".\"units\" + excluded.\"units\", \"agg\".\"units\", excluded.\"units\"), \
             \"cheapest\" = COALESCE(LEAST(\"agg\".\"cheapest\", excluded.\"cheapest\"), \"agg\".\"cheapest\", excluded.\"cheapest\"), \
             updated_at = now()"
        );
        assert_eq!(
            sql.columns,
            [
                "window_start",
                "window_end",
                "store_id",
                "units",
                "cheapest",
                "updated_at"
            ]
        );
        assert!(sql.create[1].starts_with("CREATE OR REPLACE VIEW \"agg_ranked\""));
    }
}
