//! The derived half of a batch in PostgreSQL: aggregate upserts, late events, partition
//! watermarks and catalog dimensions, all inside the batch's transaction; plus creating the
//! aggregate tables and reading watermarks and the catalog back.
//!
//! Every multi-row statement binds one array per column and `unnest`s it, so a batch costs one
//! statement per table whatever its number of rows.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use chrono::{DateTime, Utc};
use retail_core::TopicPartition;
use rust_decimal::Decimal;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;
use uuid::Uuid;

use super::error::pg_error;
use crate::derived::fold::{fold, Acc};
use crate::derived::sql::{cell, check_columns, Cell, Dialect, Param, TableSql};
use crate::derived::{ms_to_time, AggregateTable, CatalogRow, ColumnType, Derived, Merge, StoredType};
use crate::{CatalogSnapshot, Error, PartitionWatermark, Result};

/// Key of the advisory lock that serialises creating aggregate tables.
const AGGREGATE_DDL_LOCK: i64 = 0x7265_7461_696c_0003; // "retail" + 3

/// Creates or checks each table; returns their statements. Instances starting together (a
/// scale-out group on one store) queue on an advisory lock: two concurrent
/// `CREATE TABLE IF NOT EXISTS` of one name can both miss it and one then fails on `pg_type`.
pub(super) async fn prepare(client: &Client, tables: &[AggregateTable]) -> Result<Vec<TableSql>> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&AGGREGATE_DDL_LOCK])
        .await
        .map_err(|e| pg_error("pg_advisory_lock (aggregate tables)", &e))?;
    let result = prepare_locked(client, tables).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&AGGREGATE_DDL_LOCK])
        .await
        .map_err(|e| pg_error("pg_advisory_unlock (aggregate tables)", &e));
    let out = result?;
    unlocked?;
    Ok(out)
}

async fn prepare_locked(client: &Client, tables: &[AggregateTable]) -> Result<Vec<TableSql>> {
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let sql = TableSql::new(t, Dialect::Postgres);
        let rows = client
            .query(
                "SELECT column_name FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                &[&t.name],
            )
            .await
            .map_err(|e| pg_error("read information_schema.columns", &e))?;
        let existing: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        if !existing.is_empty() {
            check_columns(&t.name, &existing, &sql.columns)?;
        }
        for stmt in &sql.create {
            client
                .batch_execute(stmt)
                .await
                .map_err(|e| pg_error(&format!("aggregate {}: {stmt}", t.name), &e))?;
        }
        out.push(sql);
    }
    Ok(out)
}

/// Writes `derived` for the events `is_new` accepts; returns (aggregate rows, late rows).
pub(super) async fn write(
    client: &Client,
    tables: &[AggregateTable],
    sqls: &[TableSql],
    derived: &Derived,
    is_new: impl Fn(&Uuid) -> bool,
) -> Result<(u64, u64)> {
    // One future per table, polled together: tokio-postgres then pipelines the upserts on the
    // connection, so a batch waits for about one round trip instead of one per table. They go
    // out in table order with sorted rows, and the distinct side tables follow one by one in
    // table order, so every writer takes its locks in the same order (no deadlock between
    // instances sharing the store).
    let deltas = fold(tables, &derived.contributions, &is_new).map_err(|e| Error::Refused {
        message: e.to_string(),
    })?;
    let upserts: Vec<Pending<'_, u64>> = deltas
        .iter()
        .map(|delta| {
            let i = usize::from(delta.table);
            let (t, sql) = (&tables[i], &sqls[i]);
            let params: Vec<Box<dyn ToSql + Sync + Send>> = sql
                .params
                .iter()
                .map(|p| array(t, *p, delta.rows.iter().map(|r| cell(t, *p, r))))
                .collect();
            Box::pin(async move {
                let refs: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect();
                client
                    .execute(&sql.upsert, &refs)
                    .await
                    .map_err(|e| pg_error(&format!("upsert into aggregate {}", t.name), &e))
            }) as Pending<'_, u64>
        })
        .collect();
    let agg_rows: u64 = join_all(upserts).await?.into_iter().sum();
    for delta in &deltas {
        let i = usize::from(delta.table);
        if let Some(insert) = &sqls[i].distinct_insert {
            distinct(client, &tables[i], &sqls[i], insert, &delta.rows).await?;
        }
    }

    let late: Vec<_> = derived.late.iter().filter(|l| is_new(&l.event_id)).collect();
    let mut late_rows = 0;
    if !late.is_empty() {
        let aggregate: Vec<&str> = late.iter().map(|l| &*l.aggregate).collect();
        let ids: Vec<Uuid> = late.iter().map(|l| l.event_id).collect();
        let ts = |f: fn(&&crate::derived::LateEvent) -> i64| -> Vec<DateTime<Utc>> {
            late.iter().map(|l| ms_to_time(f(l))).collect()
        };
        let (ws, we, et, wm) = (
            ts(|l| l.window_start),
            ts(|l| l.window_end),
            ts(|l| l.event_ts),
            ts(|l| l.watermark),
        );
        let reason: Vec<&str> = late.iter().map(|l| l.reason.as_str()).collect();
        let topic: Vec<&str> = late.iter().map(|l| l.tp.topic.as_str()).collect();
        let partition: Vec<i32> = late.iter().map(|l| l.tp.partition).collect();
        let offset: Vec<i64> = late.iter().map(|l| l.offset).collect();
        late_rows = client
            .execute(
                "INSERT INTO late_events (aggregate, event_id, window_start, window_end, event_ts, watermark, \
                 reason, topic, \"partition\", \"offset\") SELECT * FROM unnest($1::text[], $2::uuid[], \
                 $3::timestamptz[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[], $7::text[], \
                 $8::text[], $9::int[], $10::bigint[]) ON CONFLICT DO NOTHING",
                &[&aggregate, &ids, &ws, &we, &et, &wm, &reason, &topic, &partition, &offset],
            )
            .await
            .map_err(|e| super::write::copy_error("INSERT INTO late_events", &e))?;
    }
    Ok((agg_rows, late_rows))
}

/// A statement (or a few) in flight.
type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Polls every future until all are done, in order on each poll; the first error wins (the
/// caller rolls the transaction back, which ends the others).
async fn join_all<T>(mut futures: Vec<Pending<'_, T>>) -> Result<Vec<T>> {
    let mut out: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            match f.as_mut().poll(cx) {
                Poll::Ready(Ok(v)) => *slot = Some(v),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => pending = true,
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    })
    .await?;
    Ok(out.into_iter().flatten().collect())
}

/// Records the watermarks of `group`.
pub(super) async fn write_watermarks(
    client: &Client,
    group: &str,
    marks: &[PartitionWatermark],
) -> Result<()> {
    if marks.is_empty() {
        return Ok(());
    }
    let topic: Vec<&str> = marks.iter().map(|m| m.tp.topic.as_str()).collect();
    let partition: Vec<i32> = marks.iter().map(|m| m.tp.partition).collect();
    let ts: Vec<DateTime<Utc>> = marks.iter().map(|m| ms_to_time(m.max_event_ts)).collect();
    client
        .execute(
            "INSERT INTO partition_watermarks (group_id, topic, \"partition\", max_event_ts) \
             SELECT $1, * FROM unnest($2::text[], $3::int[], $4::timestamptz[]) \
             ON CONFLICT (group_id, topic, \"partition\") DO UPDATE \
             SET max_event_ts = excluded.max_event_ts, updated_at = now()",
            &[&group, &topic, &partition, &ts],
        )
        .await
        .map_err(|e| pg_error("INSERT INTO partition_watermarks", &e))?;
    Ok(())
}

/// Upserts catalog rows, the last of each key winning: one statement per dimension with one
/// array per column (a per-row statement costs a round trip each, which a 5,000-product catalog
/// turns into seconds over a slow link).
pub(super) async fn write_catalog(client: &Client, rows: &[CatalogRow]) -> Result<()> {
    use std::collections::BTreeMap;
    let (mut stores, mut sellers, mut products) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for row in rows {
        match row {
            CatalogRow::Store { store_id, .. } => _ = stores.insert(*store_id, row),
            CatalogRow::Seller { seller_id, .. } => _ = sellers.insert(*seller_id, row),
            CatalogRow::Product { sku, .. } => _ = products.insert(*sku, row),
        }
    }
    let err = |e: tokio_postgres::Error| pg_error("upsert catalog dimension", &e);
    if !stores.is_empty() {
        let (mut id, mut name, mut city, mut country) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for row in stores.values() {
            if let CatalogRow::Store {
                store_id,
                name: n,
                city: c,
                country: k,
            } = row
            {
                id.push(*store_id);
                name.push(n.as_str());
                city.push(c.as_str());
                country.push(k.as_str());
            }
        }
        client
            .execute(
                "INSERT INTO store_dim (store_id, name, city, country) \
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) \
                 ON CONFLICT (store_id) DO UPDATE SET name = excluded.name, city = excluded.city, \
                 country = excluded.country, updated_at = now()",
                &[&id, &name, &city, &country],
            )
            .await
            .map_err(err)?;
    }
    if !sellers.is_empty() {
        let (mut id, mut store, mut name) = (Vec::new(), Vec::new(), Vec::new());
        for row in sellers.values() {
            if let CatalogRow::Seller {
                seller_id,
                store_id,
                name: n,
            } = row
            {
                id.push(*seller_id);
                store.push(*store_id);
                name.push(n.as_str());
            }
        }
        client
            .execute(
                "INSERT INTO seller_dim (seller_id, store_id, name) \
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[]) \
                 ON CONFLICT (seller_id) DO UPDATE SET store_id = excluded.store_id, \
                 name = excluded.name, updated_at = now()",
                &[&id, &store, &name],
            )
            .await
            .map_err(err)?;
    }
    if !products.is_empty() {
        let (mut sku, mut name, mut category, mut price) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for row in products.values() {
            if let CatalogRow::Product {
                sku: k,
                name: n,
                category: c,
                price: p,
            } = row
            {
                sku.push(*k);
                name.push(n.as_str());
                category.push(c.as_str());
                price.push(*p);
            }
        }
        client
            .execute(
                "INSERT INTO product_dim (sku, name, category, price) \
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::numeric[]) \
                 ON CONFLICT (sku) DO UPDATE SET name = excluded.name, category = excluded.category, \
                 price = excluded.price, updated_at = now()",
                &[&sku, &name, &category, &price],
            )
            .await
            .map_err(err)?;
    }
    Ok(())
}

/// A group's watermarks.
pub(super) async fn watermarks(client: &Client, group: &str) -> Result<Vec<PartitionWatermark>> {
    let rows = client
        .query(
            "SELECT topic, \"partition\", max_event_ts FROM partition_watermarks WHERE group_id = $1",
            &[&group],
        )
        .await
        .map_err(|e| pg_error("SELECT FROM partition_watermarks", &e))?;
    rows.iter()
        .map(|r| {
            Ok(PartitionWatermark {
                tp: TopicPartition::new(r.try_get::<_, String>(0)?, r.try_get(1)?),
                max_event_ts: r.try_get::<_, DateTime<Utc>>(2)?.timestamp_millis(),
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(|e| pg_error("read partition_watermarks row", &e))
}

/// Every catalog dimension row.
pub(super) async fn catalog(client: &Client) -> Result<CatalogSnapshot> {
    let err = |e: tokio_postgres::Error| pg_error("read catalog dimensions", &e);
    let mut rows = Vec::new();
    for r in client
        .query("SELECT store_id, name, city, country FROM store_dim", &[])
        .await
        .map_err(err)?
    {
        rows.push(CatalogRow::Store {
            store_id: r.try_get(0).map_err(err)?,
            name: r.try_get(1).map_err(err)?,
            city: r.try_get(2).map_err(err)?,
            country: r.try_get(3).map_err(err)?,
        });
    }
    for r in client
        .query("SELECT seller_id, store_id, name FROM seller_dim", &[])
        .await
        .map_err(err)?
    {
        rows.push(CatalogRow::Seller {
            seller_id: r.try_get(0).map_err(err)?,
            store_id: r.try_get(1).map_err(err)?,
            name: r.try_get(2).map_err(err)?,
        });
    }
    for r in client
        .query("SELECT sku, name, category, price FROM product_dim", &[])
        .await
        .map_err(err)?
    {
        rows.push(CatalogRow::Product {
            sku: r.try_get(0).map_err(err)?,
            name: r.try_get(1).map_err(err)?,
            category: r.try_get(2).map_err(err)?,
            price: r.try_get(3).map_err(err)?,
        });
    }
    Ok(CatalogSnapshot { rows })
}

/// Side-table rows for the distinct measures of `rows`, then a recount of each.
async fn distinct(
    client: &Client,
    t: &AggregateTable,
    sql: &TableSql,
    insert: &str,
    rows: &[crate::derived::fold::DeltaRow],
) -> Result<()> {
    let mut cells: Vec<Vec<Cell>> = vec![Vec::new(); t.keys.len() + 3];
    for row in rows {
        for (m, acc) in t.measures.iter().zip(&row.acc) {
            let Acc::Distinct(values) = acc else { continue };
            for v in values {
                cells[0].push(Cell::Ts(row.window_start));
                for (k, kv) in row.key.iter().enumerate() {
                    cells[k + 1].push(Cell::of(kv));
                }
                cells[t.keys.len() + 1].push(Cell::Text(m.name.as_str().into()));
                cells[t.keys.len() + 2].push(Cell::Text(crate::derived::sql::distinct_text(v).into()));
            }
        }
    }
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![ts_array(&cells[0])];
    for (k, key) in t.keys.iter().enumerate() {
        params.push(typed_array(key_stored(key.ty), &cells[k + 1]));
    }
    params.push(typed_array(StoredType::Text, &cells[t.keys.len() + 1]));
    params.push(typed_array(StoredType::Text, &cells[t.keys.len() + 2]));
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect();
    client
        .execute(insert, &refs)
        .await
        .map_err(|e| pg_error(&format!("insert into {}__distinct", t.name), &e))?;
    let mut keys: Vec<Box<dyn ToSql + Sync + Send>> = vec![array(
        t,
        Param::WindowStart,
        rows.iter().map(|r| cell(t, Param::WindowStart, r)),
    )];
    for k in 0..t.keys.len() {
        keys.push(array(
            t,
            Param::Key(k),
            rows.iter().map(|r| cell(t, Param::Key(k), r)),
        ));
    }
    let refs: Vec<&(dyn ToSql + Sync)> = keys.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect();
    for (m, stmt) in &sql.distinct_recount {
        debug_assert_eq!(t.measures[*m].merge, Merge::DistinctCount);
        client.execute(stmt, &refs).await.map_err(|e| {
            pg_error(
                &format!("recount distinct {}.{}", t.name, t.measures[*m].name),
                &e,
            )
        })?;
    }
    Ok(())
}

const fn key_stored(t: ColumnType) -> StoredType {
    match t {
        ColumnType::Int => StoredType::Int,
        ColumnType::Decimal => StoredType::Decimal,
        ColumnType::Text => StoredType::Text,
    }
}

/// The array for upsert parameter `p`.
fn array(t: &AggregateTable, p: Param, cells: impl Iterator<Item = Cell>) -> Box<dyn ToSql + Sync + Send> {
    let cells: Vec<Cell> = cells.collect();
    match p {
        Param::WindowStart | Param::WindowEnd => ts_array(&cells),
        Param::Key(i) => typed_array(key_stored(t.keys[i].ty), &cells),
        Param::Measure(i) => typed_array(t.measures[i].stored(), &cells),
        Param::AvgSum(_) => typed_array(StoredType::Decimal, &cells),
        Param::AvgCount(_) => typed_array(StoredType::Int, &cells),
    }
}

fn ts_array(cells: &[Cell]) -> Box<dyn ToSql + Sync + Send> {
    Box::new(
        cells
            .iter()
            .map(|c| match c {
                Cell::Ts(ms) => ms_to_time(*ms),
                _ => DateTime::<Utc>::MIN_UTC,
            })
            .collect::<Vec<_>>(),
    )
}

fn typed_array(ty: StoredType, cells: &[Cell]) -> Box<dyn ToSql + Sync + Send> {
    match ty {
        StoredType::Int => Box::new(
            cells
                .iter()
                .map(|c| match c {
                    Cell::Int(i) => Some(*i),
                    _ => None,
                })
                .collect::<Vec<Option<i64>>>(),
        ),
        StoredType::Decimal => Box::new(
            cells
                .iter()
                .map(|c| match c {
                    Cell::Decimal(d) => Some(*d),
                    Cell::Int(i) => Some(Decimal::from(*i)),
                    _ => None,
                })
                .collect::<Vec<Option<Decimal>>>(),
        ),
        StoredType::Float => Box::new(
            cells
                .iter()
                .map(|c| match c {
                    Cell::Float(f) => Some(*f),
                    _ => None,
                })
                .collect::<Vec<Option<f64>>>(),
        ),
        StoredType::Text => Box::new(
            cells
                .iter()
                .map(|c| match c {
                    Cell::Text(t) => Some(t.to_string()),
                    _ => None,
                })
                .collect::<Vec<Option<String>>>(),
        ),
    }
}

/// Drops `tables` and forgets `group`'s offsets and watermarks and the tables' late events.
pub(super) async fn reset(client: &Client, tables: &[AggregateTable], group: &str) -> Result<()> {
    for t in tables {
        for stmt in crate::derived::sql::drop_statements(t) {
            client
                .batch_execute(&stmt)
                .await
                .map_err(|e| pg_error(&stmt, &e))?;
        }
        client
            .execute("DELETE FROM late_events WHERE aggregate = $1", &[&t.name])
            .await
            .map_err(|e| pg_error("DELETE FROM late_events", &e))?;
    }
    for table in ["consumer_offsets", "partition_watermarks"] {
        client
            .execute(&format!("DELETE FROM {table} WHERE group_id = $1"), &[&group])
            .await
            .map_err(|e| pg_error(&format!("DELETE FROM {table}"), &e))?;
    }
    Ok(())
}
