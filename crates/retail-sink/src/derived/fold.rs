//! Folds the contributions of new events into one delta row per table, window and group, so an
//! upsert touches each aggregate row once per batch however many events it absorbed.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use uuid::Uuid;

use super::{AggregateTable, Contributions, Merge, Value};

/// A measure's partial result over the batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Acc {
    /// Count of non-null inputs.
    Count(i64),
    /// Sum (`Null` when every input was null).
    Sum(Value),
    /// Minimum (`Null` when every input was null).
    Min(Value),
    /// Maximum (`Null` when every input was null).
    Max(Value),
    /// Sum and count of non-null inputs.
    Avg {
        /// Sum.
        sum: Decimal,
        /// Count.
        n: i64,
    },
    /// The distinct non-null inputs of the batch.
    Distinct(BTreeSet<Value>),
}

/// One aggregate row's change.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaRow {
    /// Window start, epoch milliseconds.
    pub window_start: i64,
    /// Window end, epoch milliseconds.
    pub window_end: i64,
    /// Group key.
    pub key: Vec<Value>,
    /// One partial result per measure.
    pub acc: Vec<Acc>,
}

/// The changes to one table, sorted by `(window_start, key)` so that concurrent writers lock
/// rows in the same order and cannot deadlock.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDelta {
    /// Index into the prepared tables.
    pub table: u16,
    /// Changed rows.
    pub rows: Vec<DeltaRow>,
}

/// A sum that does not fit its type: the batch cannot be written as it is. Names the table, the
/// measure, the window and the event whose input overflowed, so the landing can set it aside
/// (ADR 0008).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("aggregate {table}: the sum of {measure} overflows in window {window_start} (event {event_id})")]
pub struct Overflow {
    /// Aggregate table.
    pub table: String,
    /// Measure column.
    pub measure: String,
    /// Window start, epoch milliseconds.
    pub window_start: i64,
    /// The event whose input made the sum overflow.
    pub event_id: Uuid,
}

/// Folds every contribution whose event `is_new`. Contributions naming a table that does not
/// exist are ignored (the processor and the store were prepared with the same list). Groups are
/// already distinct in `contributions`, so folding indexes them instead of hashing keys.
pub fn fold(
    tables: &[AggregateTable],
    contributions: &Contributions,
    is_new: impl Fn(&Uuid) -> bool,
) -> Result<Vec<TableDelta>, Overflow> {
    const NONE: usize = usize::MAX;
    let groups = contributions.groups();
    // Group index -> its row in `per_table[group.table]`.
    let mut row_of = vec![NONE; groups.len()];
    let mut per_table: Vec<Vec<DeltaRow>> = vec![Vec::new(); tables.len()];
    for e in contributions.entries() {
        let Some(g) = groups.get(e.group as usize) else {
            continue;
        };
        let Some(table) = tables.get(usize::from(g.table)) else {
            continue;
        };
        if !is_new(&e.event_id) {
            continue;
        }
        let rows = &mut per_table[usize::from(g.table)];
        let at = &mut row_of[e.group as usize];
        if *at == NONE {
            rows.push(DeltaRow {
                window_start: g.window_start,
                window_end: g.window_end,
                key: g.key.clone(),
                acc: table.measures.iter().map(|m| empty(m.merge)).collect(),
            });
            *at = rows.len() - 1;
        }
        for ((acc, v), m) in rows[*at]
            .acc
            .iter_mut()
            .zip(contributions.values(e))
            .zip(&table.measures)
        {
            if absorb(acc, v).is_none() {
                return Err(Overflow {
                    table: table.name.clone(),
                    measure: m.name.clone(),
                    window_start: g.window_start,
                    event_id: e.event_id,
                });
            }
        }
    }
    Ok(per_table
        .into_iter()
        .enumerate()
        .filter(|(_, rows)| !rows.is_empty())
        .map(|(i, mut rows)| {
            rows.sort_by(|a, b| (a.window_start, &a.key).cmp(&(b.window_start, &b.key)));
            TableDelta {
                table: i as u16,
                rows,
            }
        })
        .collect())
}

const fn empty(merge: Merge) -> Acc {
    match merge {
        Merge::Count => Acc::Count(0),
        Merge::Sum => Acc::Sum(Value::Null),
        Merge::Min => Acc::Min(Value::Null),
        Merge::Max => Acc::Max(Value::Null),
        Merge::Avg => Acc::Avg {
            sum: Decimal::ZERO,
            n: 0,
        },
        Merge::DistinctCount => Acc::Distinct(BTreeSet::new()),
    }
}

/// Adds `v` to `acc`; `None` when a sum or a count overflows.
fn absorb(acc: &mut Acc, v: &Value) -> Option<()> {
    if *v == Value::Null {
        return Some(());
    }
    match acc {
        Acc::Count(n) => *n = n.checked_add(1)?,
        Acc::Sum(s) => *s = add(s, v)?,
        Acc::Min(m) => {
            if *m == Value::Null || v < m {
                *m = v.clone();
            }
        }
        Acc::Max(m) => {
            if *m == Value::Null || v > m {
                *m = v.clone();
            }
        }
        Acc::Avg { sum, n } => {
            *sum = sum.checked_add(as_decimal(v))?;
            *n = n.checked_add(1)?;
        }
        Acc::Distinct(set) => {
            set.insert(v.clone());
        }
    }
    Some(())
}

/// `a + b` for numbers; `Null` is the empty sum; `None` when the sum does not fit (a saturated
/// sum would be a wrong number nobody notices).
pub fn add(a: &Value, b: &Value) -> Option<Value> {
    Some(match (a, b) {
        (Value::Null, x) | (x, Value::Null) => x.clone(),
        (Value::Int(x), Value::Int(y)) => Value::Int(x.checked_add(*y)?),
        (x, y) => Value::Decimal(as_decimal(x).checked_add(as_decimal(y))?),
    })
}

/// A number as a decimal (text counts as zero; the config only allows numeric sums).
pub fn as_decimal(v: &Value) -> Decimal {
    match v {
        Value::Int(i) => Decimal::from(*i),
        Value::Decimal(d) => *d,
        Value::Null | Value::Text(_) => Decimal::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ColumnType, Contribution, KeyColumn, MeasureColumn};
    use super::*;

    fn table() -> AggregateTable {
        let m = |name: &str, merge| MeasureColumn {
            name: name.into(),
            input: ColumnType::Int,
            merge,
        };
        AggregateTable {
            name: "t".into(),
            keys: vec![KeyColumn {
                name: "store_id".into(),
                ty: ColumnType::Int,
            }],
            measures: vec![
                m("n", Merge::Count),
                m("s", Merge::Sum),
                m("lo", Merge::Min),
                m("hi", Merge::Max),
                m("avg", Merge::Avg),
                m("d", Merge::DistinctCount),
            ],
            rank: None,
        }
    }

    fn c(id: u128, store: i64, v: Value) -> Contribution {
        Contribution {
            event_id: Uuid::from_u128(id),
            table: 0,
            window_start: 0,
            window_end: 60_000,
            key: vec![Value::Int(store)],
            values: vec![v; 6],
        }
    }

    #[test]
    fn folds_each_group_once_and_skips_old_events_and_nulls() {
        let cs = vec![
            c(1, 7, Value::Int(5)),
            c(2, 7, Value::Int(-2)),
            c(3, 7, Value::Null),
            c(4, 7, Value::Int(5)),
            c(5, 8, Value::Int(1)),
        ];
        let deltas = fold(&[table()], &cs.into(), |id| *id != Uuid::from_u128(4)).expect("fold");
        assert_eq!(deltas.len(), 1);
        let rows = &deltas[0].rows;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].key, vec![Value::Int(7)]);
        assert_eq!(
            rows[0].acc,
            vec![
                Acc::Count(2),
                Acc::Sum(Value::Int(3)),
                Acc::Min(Value::Int(-2)),
                Acc::Max(Value::Int(5)),
                Acc::Avg {
                    sum: Decimal::from(3),
                    n: 2
                },
                Acc::Distinct([Value::Int(-2), Value::Int(5)].into_iter().collect()),
            ]
        );
        assert_eq!(rows[1].key, vec![Value::Int(8)]);
    }

    /// A sum past i64 is an error naming the table and the measure, not a saturated (wrong)
    /// number and not a panic; so is a decimal sum past rust_decimal's range.
    #[test]
    fn an_overflowing_sum_is_an_error_naming_the_measure() {
        let cs = vec![c(1, 7, Value::Int(i64::MAX)), c(2, 7, Value::Int(1))];
        let err = fold(&[table()], &cs.into(), |_| true).expect_err("i64 overflow");
        assert_eq!(
            err.to_string(),
            "aggregate t: the sum of s overflows in window 0 (event 00000000-0000-0000-0000-000000000002)"
        );
        let big = Value::Decimal(Decimal::MAX);
        let cs = vec![c(1, 7, big.clone()), c(2, 7, big)];
        let err = fold(&[table()], &cs.into(), |_| true).expect_err("decimal overflow");
        assert!(err.to_string().contains("the sum of s overflows"), "{err}");
    }
}
