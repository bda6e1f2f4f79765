//! Binary `COPY ... FROM STDIN` of each table the write path fills: the fastest way into
//! PostgreSQL (about 1.4x multi-row INSERT on this table shape, see DESIGN.md). Rows are encoded
//! straight from the batch by reference, so a row costs its encoding and nothing else: no
//! per-row allocation, no text formatting.
//!
//! The functions return the driver's error untouched so that the caller can tell a
//! `unique_violation` of the ledger (take the slow path) from anything else.

use std::pin::pin;

use bytes::{BufMut, BytesMut};
use chrono::NaiveDate;
use retail_core::DeadLetter;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Client, Error, Statement};
use uuid::Uuid;

use crate::{LandedEvent, LandedSale};

/// Columns of `COPY sales_raw (event_id, kind, store_id, sku, qty, unit_price, seller_id, ts,
/// source)`.
const SALES_TYPES: [Type; 9] = [
    Type::UUID,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT4,
    Type::NUMERIC,
    Type::INT8,
    Type::TIMESTAMPTZ,
    Type::TEXT,
];

/// Columns of `COPY events_raw (event_id, event_type, ts, source, partition_key, payload)`.
const EVENT_TYPES: [Type; 6] = [
    Type::UUID,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
];

/// Columns of `COPY dead_letters (raw, reason, kind, source, topic, "partition", "offset", file,
/// line, rejected_at)`.
const DEAD_LETTER_TYPES: [Type; 10] = [
    Type::BYTEA,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::TIMESTAMPTZ,
];

/// Puts ids in the ledger's index order. UUIDv7 ids arrive sorted and this is a linear scan;
/// random (v4) ids gain the most, as each insertion then continues where the last one was.
pub(super) fn order_ids(ids: &mut [Uuid]) {
    ids.sort_unstable();
}

/// Puts sales in the order of `sales_raw`'s `(store_id, ts)` index (see the `write` docs).
pub(super) fn order_sales(rows: &mut [&LandedSale]) {
    rows.sort_unstable_by_key(|r| (r.sale.store_id, r.ts));
}

/// Copies ids into a one-column uuid table (the benchmark's bare ledger).
pub(super) async fn ids(
    client: &Client,
    stmt: &Statement,
    ids: impl Iterator<Item = Uuid>,
) -> Result<u64, Error> {
    let sink = client.copy_in(stmt).await?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &[Type::UUID]));
    for id in ids {
        writer.as_mut().write(&[&id]).await?;
    }
    writer.finish().await
}

/// Copies `(event_id, day)` pairs into the ledger (or the session's temp table of its shape).
pub(super) async fn ledger(
    client: &Client,
    stmt: &Statement,
    rows: impl Iterator<Item = (Uuid, NaiveDate)>,
) -> Result<u64, Error> {
    let sink = client.copy_in(stmt).await?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &[Type::UUID, Type::DATE]));
    for (id, day) in rows {
        writer.as_mut().write(&[&id, &day]).await?;
    }
    writer.finish().await
}

/// Copies sales into `sales_raw` (or a table of the same shape).
pub(super) async fn sales<'a>(
    client: &Client,
    stmt: &Statement,
    rows: impl Iterator<Item = &'a LandedSale>,
) -> Result<u64, Error> {
    let sink = client.copy_in(stmt).await?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &SALES_TYPES));
    for r in rows {
        let s = &r.sale;
        writer
            .as_mut()
            .write(&[
                &r.event_id,
                &s.kind.as_str(),
                &s.store_id,
                &s.sku,
                &s.qty,
                &s.unit_price,
                &s.seller_id,
                &r.ts,
                &r.source,
            ])
            .await?;
    }
    writer.finish().await
}

/// Copies other events into `events_raw`.
pub(super) async fn events<'a>(
    client: &Client,
    stmt: &Statement,
    rows: impl Iterator<Item = &'a LandedEvent>,
) -> Result<u64, Error> {
    let sink = client.copy_in(stmt).await?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &EVENT_TYPES));
    for e in rows {
        writer
            .as_mut()
            .write(&[
                &e.event_id,
                &e.event_type,
                &e.ts,
                &e.source,
                &e.key,
                &Jsonb(&e.payload),
            ])
            .await?;
    }
    writer.finish().await
}

/// Copies dead letters into `dead_letters`.
pub(super) async fn dead_letters(
    client: &Client,
    stmt: &Statement,
    rows: &[&DeadLetter],
) -> Result<u64, Error> {
    let sink = client.copy_in(stmt).await?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &DEAD_LETTER_TYPES));
    for d in rows {
        let o = &d.origin;
        // A line past i64::MAX cannot be a real line number; store it as unknown.
        let line = o.line.and_then(|l| i64::try_from(l).ok());
        writer
            .as_mut()
            .write(&[
                &d.raw,
                &d.reason,
                &d.kind,
                &o.source,
                &o.topic,
                &o.partition,
                &o.offset,
                &o.file,
                &line,
                &d.rejected_at,
            ])
            .await?;
    }
    writer.finish().await
}

/// JSON text sent as `jsonb` without parsing it on our side: the binary format of `jsonb` is
/// a version byte (1) followed by the text, and the server validates it.
#[derive(Debug)]
struct Jsonb<'a>(&'a str);

impl ToSql for Jsonb<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.put_u8(1);
        }
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }

    to_sql_checked!();
}
