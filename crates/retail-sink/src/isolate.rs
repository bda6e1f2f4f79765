//! When the store refuses a batch for its data ([`Error::Refused`]), find the rows at fault,
//! turn them into dead letters carrying the store's message, and land the rest: rows, dead
//! letters, derived data and offsets still in ONE transaction, so exactly once holds (ADR 0008).
//!
//! The search is a binary search for the shortest refused prefix: the rows of the batch (sales,
//! then other events, in batch order) are probed as prefixes in transactions that are rolled
//! back ([`Store::probe_batch`]); the last row of the shortest refused prefix is at fault. It is
//! set aside and the rest is written; if the store refuses that too, the search goes on from
//! where it stopped. A row that is refused only together with others (a sum that overflows) is
//! blamed on the row that tipped it, the one a sequential writer would have failed on. The
//! result depends only on the batch and the store's contents, so a crash and a re-read of the
//! batch set aside the same rows. Cost: about `log2(rows) + 1` rolled-back transactions per row
//! at fault, only for a batch the store refused.

use std::collections::HashSet;

use chrono::Utc;
use retail_core::{DeadLetter, Origin};
use uuid::Uuid;

use crate::derived::fraud::FraudBatch;
use crate::derived::orders::OrderBatch;
use crate::derived::stock::StockBatch;
use crate::derived::Derived;
use crate::{BatchOutcome, Error, LandingBatch, Result, Store};

/// The `kind` of a dead letter for a row the store refused.
pub const KIND: &str = "store_refused";

/// A row of the batch: a sale or another event, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    Sale(usize),
    Event(usize),
}

/// What [`write_isolating`] committed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Isolated {
    /// The committed batch's outcome; `dead_letters` includes the rows set aside.
    pub outcome: BatchOutcome,
    /// The dead letters written for refused rows (also counted in `outcome.dead_letters`).
    pub refused: Vec<DeadLetter>,
}

/// Writes `batch`, which the store refused with `refused` (from [`Store::write_batch`]),
/// setting aside the rows at fault as dead letters. Errors: a retryable one (retry the whole
/// batch later, nothing was written), or `refused` itself when the rows are not what the store
/// refuses (the batch without any row is refused too: a dead letter, a catalog row or a
/// watermark), which no splitting can fix.
pub async fn write_isolating(store: &dyn Store, batch: &LandingBatch, refused: Error) -> Result<Isolated> {
    let rows: Vec<Row> = (0..batch.sales.len())
        .map(Row::Sale)
        .chain((0..batch.events.len()).map(Row::Event))
        .collect();
    let mut set_aside: Vec<(Row, String)> = Vec::new();
    // Rows still in, in order; `ok` of them (a prefix) are known to be accepted together.
    let mut kept = rows.clone();
    let mut ok = 0usize;
    let mut last = refused;
    if let Err(e) = store.probe_batch(&subset(batch, &[], false)).await {
        return Err(if e.is_refused() { last } else { e });
    }
    loop {
        // The whole of `kept` is refused with `last`: find the shortest refused prefix.
        let (mut lo, mut hi) = (ok, kept.len());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match store.probe_batch(&subset(batch, &kept[..mid], false)).await {
                Ok(_) => lo = mid,
                Err(e) if e.is_refused() => {
                    hi = mid;
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        if hi == 0 {
            return Err(last); // nothing left to set aside, and still refused
        }
        let at_fault = kept.remove(hi - 1);
        set_aside.push((at_fault, last.to_string()));
        ok = hi - 1;
        let whole = with_dead_letters(batch, &kept, &set_aside);
        match store.write_batch(&whole).await {
            Ok(outcome) => {
                let refused = whole.dead_letters[batch.dead_letters.len()..].to_vec();
                return Ok(Isolated { outcome, refused });
            }
            Err(e) if e.is_refused() => last = e,
            Err(e) => return Err(e),
        }
    }
}

/// `batch` with only `rows` (and the derived data of their events); offsets only when `offsets`.
fn subset(batch: &LandingBatch, rows: &[Row], offsets: bool) -> LandingBatch {
    let mut out = LandingBatch {
        group: batch.group.clone(),
        dead_letters: batch.dead_letters.clone(),
        ..LandingBatch::default()
    };
    for row in rows {
        match *row {
            Row::Sale(i) => out.sales.extend(batch.sales.get(i).cloned()),
            Row::Event(i) => out.events.extend(batch.events.get(i).cloned()),
        }
    }
    let ids: HashSet<Uuid> = out
        .sales
        .iter()
        .map(|s| s.event_id)
        .chain(out.events.iter().map(|e| e.event_id))
        .collect();
    let d = &*batch.derived;
    out.derived = std::sync::Arc::new(Derived {
        contributions: d.contributions.retain_events(|id| ids.contains(id)),
        late: d
            .late
            .iter()
            .filter(|l| ids.contains(&l.event_id))
            .cloned()
            .collect(),
        watermarks: d.watermarks.clone(),
        catalog: d.catalog.clone(),
        notifications: d.notifications.clone(),
        orders: d.orders.as_ref().map(|o| OrderBatch {
            rules: o.rules.clone(),
            facts: o
                .facts
                .iter()
                .filter(|f| ids.contains(&f.event_id))
                .cloned()
                .collect(),
            time: o.time,
        }),
        stock: d.stock.as_ref().map(|st| StockBatch {
            rules: st.rules.clone(),
            facts: st
                .facts
                .iter()
                .filter(|f| ids.contains(&f.event_id))
                .copied()
                .collect(),
            time: st.time,
        }),
        fraud: d.fraud.as_ref().map(|fr| FraudBatch {
            rules: fr.rules.clone(),
            facts: fr
                .facts
                .iter()
                .filter(|f| ids.contains(&f.event_id))
                .cloned()
                .collect(),
            time: fr.time,
        }),
    });
    if offsets {
        out.offsets = batch.offsets.clone();
    }
    out
}

/// `batch` with only `kept` rows, plus a dead letter for each row set aside, and its offsets.
fn with_dead_letters(batch: &LandingBatch, kept: &[Row], set_aside: &[(Row, String)]) -> LandingBatch {
    let mut out = subset(batch, kept, true);
    for (row, reason) in set_aside {
        let (event_id, source, fallback) = match *row {
            Row::Sale(i) => {
                let s = &batch.sales[i];
                (s.event_id, s.source.as_str(), Vec::new())
            }
            Row::Event(i) => {
                let e = &batch.events[i];
                (e.event_id, e.source.as_str(), e.payload.as_bytes().to_vec())
            }
        };
        let (origin, raw) = match batch.origins.iter().find(|o| o.event_id == event_id) {
            Some(o) => (o.origin.clone(), o.raw.clone()),
            None => (
                Origin {
                    source: source.to_owned(),
                    ..Origin::default()
                },
                fallback,
            ),
        };
        // The dead letter must be storable itself: its text columns cannot hold what its row
        // could not (a NUL in `source`); the raw bytes keep the original.
        let origin = Origin {
            source: storable(&origin.source),
            topic: origin.topic.as_deref().map(storable),
            file: origin.file.as_deref().map(storable),
            ..origin
        };
        out.dead_letters.push(DeadLetter {
            raw,
            reason: storable(&format!("refused by the store: {reason}")),
            kind: KIND,
            origin,
            rejected_at: Utc::now(),
            id: None,
        });
    }
    out
}

/// `text` with U+0000 (which PostgreSQL text refuses) replaced by U+FFFD.
pub fn storable(text: &str) -> String {
    text.replace('\0', "\u{fffd}")
}
