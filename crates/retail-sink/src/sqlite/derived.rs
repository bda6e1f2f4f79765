//! The derived half of a batch in SQLite: aggregate upserts, late events, partition
//! watermarks and catalog dimensions inside the batch's transaction; plus creating the
//! aggregate tables and reading watermarks and the catalog back.
//!
//! Decimals (money) are stored as INTEGER cents and summed by SQLite's integer arithmetic, so
//! they are as exact as PostgreSQL's `numeric`; a decimal with more than two places, or a sum
//! past `i64` cents, is refused, never rounded (ADR 0020, [`super::money`]).

use chrono::DateTime;
use retail_core::TopicPartition;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::error::sqlite_error;
use super::money::{from_cents, to_cents};
use super::rows::ts_text;
use crate::derived::fold::{fold, Acc, DeltaRow};
use crate::derived::sql::{cell, check_columns, distinct_text, Cell, Dialect, Param, TableSql};
use crate::derived::{ms_to_time, AggregateTable, CatalogRow, Derived, Value};
use crate::{CatalogSnapshot, Error, PartitionWatermark, Result};

/// The SQLite value of a cell; `Err` holds a decimal that is not a whole number of cents.
fn sql_value(c: Cell) -> Result<SqlValue, Decimal> {
    Ok(match c {
        Cell::Null => SqlValue::Null,
        Cell::Int(i) => SqlValue::Integer(i),
        Cell::Decimal(d) => SqlValue::Integer(to_cents(d).ok_or(d)?),
        Cell::Float(f) => SqlValue::Real(f),
        Cell::Text(t) => SqlValue::Text(t.to_string()),
        Cell::Ts(ms) => SqlValue::Text(ts(ms)),
    })
}

/// The values of `cells` (columns named by `column`), or the refusal naming the first decimal
/// that has no exact place in integer cents.
fn sql_values(path: &str, table: &str, cells: impl Iterator<Item = (String, Cell)>) -> Result<Vec<SqlValue>> {
    cells
        .map(|(column, c)| {
            sql_value(c).map_err(|d| Error::Refused {
                message: format!(
                    "sqlite {path}: aggregate {table}: {column} = {d} is not a whole number of cents \
                     (SQLite keeps money as integer cents, ADR 0020)"
                ),
            })
        })
        .collect()
}

/// The column an upsert parameter writes, for messages.
fn param_column(t: &AggregateTable, p: Param) -> String {
    match p {
        Param::WindowStart => "window_start".to_owned(),
        Param::WindowEnd => "window_end".to_owned(),
        Param::Key(i) => t.keys.get(i).map_or_else(String::new, |k| k.name.clone()),
        Param::Measure(i) => t.measures.get(i).map_or_else(String::new, |m| m.name.clone()),
        Param::AvgSum(i) => t
            .measures
            .get(i)
            .map_or_else(String::new, |m| format!("{}__sum", m.name)),
        Param::AvgCount(i) => t
            .measures
            .get(i)
            .map_or_else(String::new, |m| format!("{}__n", m.name)),
    }
}

fn ts(ms: i64) -> String {
    let mut out = String::with_capacity(24);
    ts_text(&ms_to_time(ms), &mut out);
    out
}

fn parse_ts(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
}

/// Creates or checks each table; returns their statements.
pub(super) fn prepare(conn: &Connection, path: &str, tables: &[AggregateTable]) -> Result<Vec<TableSql>> {
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let sql = TableSql::new(t, Dialect::Sqlite);
        let existing: Vec<String> = {
            let mut stmt = conn
                .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
                .map_err(|e| sqlite_error(path, "pragma_table_info", &e))?;
            let rows = stmt
                .query_map([&t.name], |r| r.get(0))
                .map_err(|e| sqlite_error(path, "pragma_table_info", &e))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(|e| sqlite_error(path, "pragma_table_info", &e))?
        };
        if !existing.is_empty() {
            check_columns(&t.name, &existing, &sql.columns)?;
        }
        for stmt in &sql.create {
            conn.execute_batch(stmt)
                .map_err(|e| sqlite_error(path, &format!("aggregate {}: {stmt}", t.name), &e))?;
        }
        out.push(sql);
    }
    Ok(out)
}

/// Writes `derived` for the events `is_new` accepts; returns (aggregate rows, late rows).
pub(super) fn write(
    conn: &Connection,
    path: &str,
    tables: &[AggregateTable],
    sqls: &[TableSql],
    derived: &Derived,
    is_new: impl Fn(&Uuid) -> bool,
) -> Result<(u64, u64)> {
    let err = |what: String| move |e: rusqlite::Error| sqlite_error(path, &what, &e);
    let mut agg_rows = 0u64;
    let deltas = fold(tables, &derived.contributions, &is_new).map_err(|e| Error::Refused {
        message: e.to_string(),
    })?;
    for delta in deltas {
        let i = usize::from(delta.table);
        let (t, sql) = (&tables[i], &sqls[i]);
        let mut stmt = conn
            .prepare_cached(&sql.upsert)
            .map_err(err(format!("prepare upsert into {}", t.name)))?;
        for row in &delta.rows {
            let values = sql_values(
                path,
                &t.name,
                sql.params.iter().map(|p| (param_column(t, *p), cell(t, *p, row))),
            )?;
            agg_rows += stmt
                .execute(params_from_iter(values))
                .map_err(err(format!("upsert into aggregate {}", t.name)))? as u64;
        }
        if let Some(insert) = &sql.distinct_insert {
            distinct(conn, path, t, sql, insert, &delta.rows)?;
        }
    }

    let mut late_rows = 0u64;
    let late: Vec<_> = derived.late.iter().filter(|l| is_new(&l.event_id)).collect();
    if !late.is_empty() {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO late_events (aggregate, event_id, window_start, window_end, event_ts, watermark, \
                 reason, topic, \"partition\", \"offset\") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT DO NOTHING",
            )
            .map_err(err("prepare INSERT INTO late_events".into()))?;
        for l in late {
            late_rows += stmt
                .execute(params![
                    &*l.aggregate,
                    l.event_id.hyphenated().to_string(),
                    ts(l.window_start),
                    ts(l.window_end),
                    ts(l.event_ts),
                    ts(l.watermark),
                    l.reason,
                    l.tp.topic,
                    l.tp.partition,
                    l.offset
                ])
                .map_err(err("INSERT INTO late_events".into()))? as u64;
        }
    }
    Ok((agg_rows, late_rows))
}

/// Records the watermarks of `group`.
pub(super) fn write_watermarks(
    conn: &Connection,
    path: &str,
    group: &str,
    marks: &[PartitionWatermark],
) -> Result<()> {
    let err = |e: rusqlite::Error| sqlite_error(path, "INSERT INTO partition_watermarks", &e);
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO partition_watermarks (group_id, topic, \"partition\", max_event_ts) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (group_id, topic, \"partition\") DO UPDATE SET max_event_ts = excluded.max_event_ts, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .map_err(err)?;
    for m in marks {
        stmt.execute(params![group, m.tp.topic, m.tp.partition, ts(m.max_event_ts)])
            .map_err(err)?;
    }
    Ok(())
}

/// Upserts catalog rows, the last of each key winning.
pub(super) fn write_catalog(conn: &Connection, path: &str, rows: &[CatalogRow]) -> Result<()> {
    let err = |e: rusqlite::Error| sqlite_error(path, "upsert catalog dimension", &e);
    for row in rows {
        match row {
            CatalogRow::Store {
                store_id,
                name,
                city,
                country,
            } => conn
                .prepare_cached(
                    "INSERT INTO store_dim (store_id, name, city, country) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (store_id) DO UPDATE SET name = excluded.name, city = excluded.city, \
                     country = excluded.country, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                )
                .and_then(|mut s| s.execute(params![store_id, name, city, country])),
            CatalogRow::Seller {
                seller_id,
                store_id,
                name,
            } => conn
                .prepare_cached(
                    "INSERT INTO seller_dim (seller_id, store_id, name) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (seller_id) DO UPDATE SET store_id = excluded.store_id, name = excluded.name, \
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                )
                .and_then(|mut s| s.execute(params![seller_id, store_id, name])),
            CatalogRow::Product {
                sku,
                name,
                category,
                price,
            } => {
                let cents = match price.map(|p| to_cents(p).ok_or(p)).transpose() {
                    Ok(cents) => cents,
                    Err(p) => {
                        return Err(Error::Refused {
                            message: format!(
                                "sqlite {path}: product_dim: price {p} of sku {sku} is not a whole number \
                                 of cents (money is stored as integer cents, ADR 0020)"
                            ),
                        })
                    }
                };
                conn.prepare_cached(
                    "INSERT INTO product_dim (sku, name, category, price) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (sku) DO UPDATE SET name = excluded.name, category = excluded.category, \
                     price = excluded.price, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                )
                .and_then(|mut s| s.execute(params![sku, name, category, cents]))
            }
        }
        .map_err(err)?;
    }
    Ok(())
}

/// A group's watermarks.
pub(super) fn watermarks(conn: &Connection, path: &str, group: &str) -> Result<Vec<PartitionWatermark>> {
    let err = |e: rusqlite::Error| sqlite_error(path, "SELECT FROM partition_watermarks", &e);
    let mut stmt = conn
        .prepare_cached(
            "SELECT topic, \"partition\", max_event_ts FROM partition_watermarks WHERE group_id = ?1",
        )
        .map_err(err)?;
    let rows = stmt
        .query_map([group], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i32>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(err)?;
    let mut out = Vec::new();
    for row in rows {
        let (topic, partition, at) = row.map_err(err)?;
        let max_event_ts = parse_ts(&at).ok_or_else(|| Error::Sqlite {
            path: path.to_owned(),
            message: format!(
                "partition_watermarks: {topic}/{partition} has an unreadable max_event_ts {at:?}"
            ),
            retryable: false,
        })?;
        out.push(PartitionWatermark {
            tp: TopicPartition::new(topic, partition),
            max_event_ts,
        });
    }
    Ok(out)
}

/// Every catalog dimension row.
pub(super) fn catalog(conn: &Connection, path: &str) -> Result<CatalogSnapshot> {
    let err = |e: rusqlite::Error| sqlite_error(path, "read catalog dimensions", &e);
    let mut rows = Vec::new();
    let mut stmt = conn
        .prepare("SELECT store_id, name, city, country FROM store_dim")
        .map_err(err)?;
    for r in stmt
        .query_map([], |r| {
            Ok(CatalogRow::Store {
                store_id: r.get(0)?,
                name: r.get(1)?,
                city: r.get(2)?,
                country: r.get(3)?,
            })
        })
        .map_err(err)?
    {
        rows.push(r.map_err(err)?);
    }
    let mut stmt = conn
        .prepare("SELECT seller_id, store_id, name FROM seller_dim")
        .map_err(err)?;
    for r in stmt
        .query_map([], |r| {
            Ok(CatalogRow::Seller {
                seller_id: r.get(0)?,
                store_id: r.get(1)?,
                name: r.get(2)?,
            })
        })
        .map_err(err)?
    {
        rows.push(r.map_err(err)?);
    }
    let mut stmt = conn
        .prepare("SELECT sku, name, category, price FROM product_dim")
        .map_err(err)?;
    for r in stmt
        .query_map([], |r| {
            Ok(CatalogRow::Product {
                sku: r.get(0)?,
                name: r.get(1)?,
                category: r.get(2)?,
                price: r.get::<_, Option<i64>>(3)?.map(from_cents),
            })
        })
        .map_err(err)?
    {
        rows.push(r.map_err(err)?);
    }
    Ok(CatalogSnapshot { rows })
}

fn key_values(path: &str, t: &AggregateTable, key: &[Value]) -> Result<Vec<SqlValue>> {
    sql_values(
        path,
        &t.name,
        t.keys.iter().zip(key).map(|(k, v)| (k.name.clone(), Cell::of(v))),
    )
}

fn distinct(
    conn: &Connection,
    path: &str,
    t: &AggregateTable,
    sql: &TableSql,
    insert: &str,
    rows: &[DeltaRow],
) -> Result<()> {
    let err = |what: String| move |e: rusqlite::Error| sqlite_error(path, &what, &e);
    let mut ins = conn
        .prepare_cached(insert)
        .map_err(err(format!("prepare insert into {}__distinct", t.name)))?;
    for row in rows {
        for (m, acc) in t.measures.iter().zip(&row.acc) {
            let Acc::Distinct(values) = acc else { continue };
            for v in values {
                let mut p = vec![SqlValue::Text(ts(row.window_start))];
                p.extend(key_values(path, t, &row.key)?);
                p.push(SqlValue::Text(m.name.clone()));
                p.push(SqlValue::Text(distinct_text(v)));
                ins.execute(params_from_iter(p))
                    .map_err(err(format!("insert into {}__distinct", t.name)))?;
            }
        }
        for (_, stmt) in &sql.distinct_recount {
            let mut p = vec![SqlValue::Text(ts(row.window_start))];
            p.extend(key_values(path, t, &row.key)?);
            conn.prepare_cached(stmt)
                .and_then(|mut s| s.execute(params_from_iter(p)))
                .map_err(err(format!("recount distinct of {}", t.name)))?;
        }
    }
    Ok(())
}

/// Drops `tables` and forgets `group`'s offsets and watermarks and the tables' late events.
pub(super) fn reset(conn: &Connection, path: &str, tables: &[AggregateTable], group: &str) -> Result<()> {
    for t in tables {
        for stmt in crate::derived::sql::drop_statements(t) {
            conn.execute_batch(&stmt)
                .map_err(|e| sqlite_error(path, &stmt, &e))?;
        }
        conn.execute("DELETE FROM late_events WHERE aggregate = ?1", [&t.name])
            .map_err(|e| sqlite_error(path, "DELETE FROM late_events", &e))?;
    }
    for table in ["consumer_offsets", "partition_watermarks"] {
        conn.execute(&format!("DELETE FROM {table} WHERE group_id = ?1"), [group])
            .map_err(|e| sqlite_error(path, &format!("DELETE FROM {table}"), &e))?;
    }
    Ok(())
}
