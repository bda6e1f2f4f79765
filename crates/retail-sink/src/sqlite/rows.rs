//! Owned, compact copies of what a batch writes, to hand to the SQLite worker thread (the
//! batch is only borrowed by `write_batch`), and the text forms SQLite stores ids and times in.
//!
//! A sale becomes a plain struct with its `source` interned into a short list (a batch usually
//! has one or two sources), so handing 10,000 sales over costs one allocation, not 10,000.
//! Ids and timestamps are formatted into reused buffers at insert time, never into a `String`
//! per row.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Timelike, Utc};
use retail_core::DeadLetter;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::money::to_cents;
use crate::dedup::FirstSeen;
use crate::derived::SharedDerived;
use crate::horizon::{self, Verdict};
use crate::{LandedEvent, LandedSale, LandingBatch, OffsetRange, StoreOptions};

/// A sale ready for `sales_raw`.
#[derive(Debug, Clone)]
pub(super) struct SaleRow {
    pub event_id: Uuid,
    pub ts: DateTime<Utc>,
    pub kind: &'static str,
    pub store_id: i64,
    pub sku: i64,
    pub qty: i32,
    /// In whole cents (ADR 0020); `Err` holds a price with more than two decimals (or past
    /// `i64` cents), which the write refuses.
    pub unit_price: Option<Result<i64, Decimal>>,
    pub seller_id: Option<i64>,
    /// Index into [`Sales::sources`].
    pub source: usize,
}

/// Sales with their interned sources.
#[derive(Debug, Default)]
pub(super) struct Sales {
    pub rows: Vec<SaleRow>,
    pub sources: Vec<String>,
}

/// Past this many distinct sources, stop searching the list and just append.
const MAX_INTERNED: usize = 32;

impl Sales {
    pub(super) fn collect<'a>(sales: impl ExactSizeIterator<Item = &'a LandedSale>) -> Self {
        let mut out = Self {
            rows: Vec::with_capacity(sales.len()),
            sources: Vec::new(),
        };
        let mut last: Option<usize> = None;
        for s in sales {
            let source = match last {
                Some(i) if out.sources.get(i).is_some_and(|src| *src == s.source) => i,
                _ => {
                    let found = (out.sources.len() <= MAX_INTERNED)
                        .then(|| out.sources.iter().position(|src| *src == s.source))
                        .flatten();
                    found.unwrap_or_else(|| {
                        out.sources.push(s.source.clone());
                        out.sources.len() - 1
                    })
                }
            };
            last = Some(source);
            out.rows.push(SaleRow {
                event_id: s.event_id,
                ts: s.ts,
                kind: s.sale.kind.as_str(),
                store_id: s.sale.store_id,
                sku: s.sale.sku,
                qty: s.sale.qty,
                unit_price: s.sale.unit_price.map(|p| to_cents(p).ok_or(p)),
                seller_id: s.sale.seller_id,
                source,
            });
        }
        out
    }

    /// Row indexes in `event_id` order: the ledger's b-tree order (hyphenated lower-case hex
    /// sorts like the bytes). Time-ordered ids are already sorted, which the sort detects.
    pub(super) fn ledger_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.rows.len()).collect();
        order.sort_unstable_by_key(|&i| self.rows.get(i).map(|r| r.event_id));
        order
    }

    /// The given row indexes in `sales_raw`'s `(store_id, ts)` index order, so consecutive
    /// index insertions land on the same page.
    pub(super) fn index_order(&self, mut rows: Vec<usize>) -> Vec<usize> {
        rows.sort_unstable_by_key(|&i| self.rows.get(i).map(|r| (r.store_id, r.ts)));
        rows
    }

    /// The source of a row.
    pub(super) fn source(&self, row: &SaleRow) -> &str {
        self.sources.get(row.source).map_or("", String::as_str)
    }
}

/// A batch after in-batch de-duplication, owned.
#[derive(Debug)]
pub(super) struct OwnedBatch {
    pub group: String,
    pub sales: Sales,
    pub events: Vec<LandedEvent>,
    pub dead_letters: Vec<DeadLetter>,
    pub offsets: Vec<OffsetRange>,
    pub sales_duplicates: u64,
    pub events_duplicates: u64,
    pub derived: SharedDerived,
    /// The dedup horizon's verdict: events too old to land and their dead letters.
    pub verdict: Verdict,
}

impl OwnedBatch {
    /// Copies what `batch` writes, after in-batch de-duplication and the dedup horizon's
    /// verdict with `newest` the newest event day landed (ADR 0022).
    pub(super) fn new(batch: &LandingBatch, options: StoreOptions, newest: Option<i64>) -> Self {
        let mut fresh = FirstSeen::of(batch);
        let verdict = horizon::judge(options, newest, &mut fresh, batch);
        Self {
            group: batch.group.clone(),
            sales: Sales::collect(fresh.sales.iter().copied()),
            events: fresh.events.iter().map(|e| (*e).clone()).collect(),
            dead_letters: batch.dead_letters.clone(),
            offsets: batch.offsets.clone(),
            sales_duplicates: fresh.sales_duplicates,
            events_duplicates: fresh.events_duplicates,
            derived: batch.derived.clone(),
            verdict,
        }
    }
}

/// Writes `ts` as RFC 3339 UTC with milliseconds and `Z` (`2026-11-21T13:43:53.488Z`) into
/// `out`, replacing its content. Fixed-width, so text order is time order.
pub(super) fn ts_text(ts: &DateTime<Utc>, out: &mut String) {
    out.clear();
    let year = ts.year();
    if !(0..=9999).contains(&year) {
        let _ = write!(out, "{}", ts.format("%Y-%m-%dT%H:%M:%S%.3fZ"));
        return;
    }
    let year = year.unsigned_abs();
    push2(out, year / 100);
    push2(out, year % 100);
    out.push('-');
    push2(out, ts.month());
    out.push('-');
    push2(out, ts.day());
    out.push('T');
    push2(out, ts.hour());
    out.push(':');
    push2(out, ts.minute());
    out.push(':');
    push2(out, ts.second());
    out.push('.');
    // A leap second shows as nanoseconds past 1e9: keep it within the same second.
    let ms = (ts.timestamp_subsec_millis()).min(999);
    push_digit(out, ms / 100);
    push2(out, ms % 100);
    out.push('Z');
}

fn push2(out: &mut String, v: u32) {
    push_digit(out, v / 10);
    push_digit(out, v % 10);
}

fn push_digit(out: &mut String, d: u32) {
    out.push(char::from_digit(d % 10, 10).unwrap_or('0'));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.to_utc())
            .unwrap_or_default()
    }

    #[test]
    fn timestamps_are_fixed_width_millis_utc() {
        let mut out = String::new();
        ts_text(&at("2026-11-21T14:43:53.488765+01:00"), &mut out);
        assert_eq!(out, "2026-11-21T13:43:53.488Z");
        ts_text(&at("0987-01-02T03:04:05Z"), &mut out);
        assert_eq!(out, "0987-01-02T03:04:05.000Z");
        ts_text(&at("2026-11-21T13:43:53.488Z"), &mut out);
        assert_eq!(
            out,
            at("2026-11-21T13:43:53.488Z")
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        );
    }
}
