//! Retention on PostgreSQL (ADR 0028): day partitions of `events_raw`, `late_events` and
//! `dead_letters` created on demand before a batch's transaction, and whole day partitions of
//! those and of `sales_raw` dropped (`DROP TABLE`, never `DELETE`) once past their retention,
//! after the commit.
//!
//! A drop lists the parent's partitions (a catalog query), so it runs only when its oldest kept
//! day moves: when a batch moves the newest event day (raw rows, late events), when the wall
//! clock's day changes (dead letters), and at open. The rows from before migration 0008 are one
//! `<table>_legacy` partition holding every day before `retention_legacy.below`; days before that
//! get no day partition while it exists, and it is dropped whole once its last day has passed.

use std::collections::HashSet;

use chrono::NaiveDate;
use tokio_postgres::Client;

use super::error::pg_error;
use super::partition::{self, Key};
use crate::horizon::day_of;
use crate::retention::{self, Kept};
use crate::{LandingBatch, Result, StoreOptions};

const MS_PER_DAY: i64 = 86_400_000;

/// One table partitioned by day whose partitions this module creates.
#[derive(Debug)]
pub(super) struct DayTable {
    pub parent: &'static str,
    /// Days known to have a partition.
    pub known: HashSet<i64>,
    /// While the legacy partition exists: the first day it does not hold.
    pub legacy_below: Option<i64>,
}

impl DayTable {
    fn new(parent: &'static str) -> Self {
        Self {
            parent,
            known: HashSet::new(),
            legacy_below: None,
        }
    }

    /// Creates the missing day partitions of `days` (own short transactions).
    async fn ensure(&mut self, client: &Client, days: impl Iterator<Item = i64>) -> Result<()> {
        let below = self.legacy_below;
        let days = days.filter(|d| below.is_none_or(|b| *d >= b));
        partition::ensure_day_numbers(client, self.parent, Key::Timestamp, &mut self.known, days).await
    }
}

/// The store's view of retention.
#[derive(Debug)]
pub(super) struct Retention {
    pub options: StoreOptions,
    pub events: DayTable,
    pub late: DayTable,
    pub dead: DayTable,
    /// The oldest day kept at the last drop of raw rows, late events and dead letters: a drop
    /// runs again only once it moves.
    raw_done: Option<i64>,
    late_done: Option<i64>,
    dead_done: Option<i64>,
}

impl Retention {
    pub(super) fn new(options: StoreOptions) -> Self {
        Self {
            options,
            events: DayTable::new("events_raw"),
            late: DayTable::new("late_events"),
            dead: DayTable::new("dead_letters"),
            raw_done: None,
            late_done: None,
            dead_done: None,
        }
    }

    /// Reads which legacy partitions exist (migration 0008) and forgets cached days.
    pub(super) async fn load(&mut self, client: &Client) -> Result<()> {
        let rows = client
            .query("SELECT parent, below FROM retention_legacy", &[])
            .await
            .map_err(|e| pg_error("SELECT FROM retention_legacy", &e))?;
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        for t in [&mut self.events, &mut self.late, &mut self.dead] {
            t.known.clear();
            t.legacy_below = rows
                .iter()
                .find(|r| r.get::<_, String>(0) == t.parent)
                .map(|r| r.get::<_, NaiveDate>(1).signed_duration_since(epoch).num_days());
        }
        self.raw_done = None;
        self.late_done = None;
        self.dead_done = None;
        Ok(())
    }

    /// Before the batch's transaction: the day partitions its events, late events and dead
    /// letters need (`too_old` ones included).
    pub(super) async fn ensure(
        &mut self,
        client: &Client,
        batch: &LandingBatch,
        too_old: &[retail_core::DeadLetter],
    ) -> Result<()> {
        self.events
            .ensure(client, batch.events.iter().map(|e| day_of(&e.ts)))
            .await?;
        self.late
            .ensure(
                client,
                batch
                    .derived
                    .late
                    .iter()
                    .map(|l| l.event_ts.div_euclid(MS_PER_DAY)),
            )
            .await?;
        self.dead
            .ensure(
                client,
                batch
                    .dead_letters
                    .iter()
                    .chain(too_old)
                    .map(|d| day_of(&d.rejected_at)),
            )
            .await
    }

    /// Forgets the cached partitions (after a failed batch: one may have been dropped).
    pub(super) fn forget(&mut self) {
        for t in [&mut self.events, &mut self.late, &mut self.dead] {
            t.known.clear();
        }
    }

    /// Outside any transaction: drops the day partitions past their retention, given `newest`
    /// the newest event day landed; `sales_days` is the store's cache of `sales_raw` days.
    /// Each drop runs only when its oldest kept day moved since the last one.
    pub(super) async fn drop_passed(
        &mut self,
        client: &Client,
        newest: Option<i64>,
        sales_days: &mut HashSet<i64>,
    ) -> Result<()> {
        if let Some(kept) = retention::raw(self.options, newest) {
            if self.raw_done != Some(kept.oldest) {
                drop_older(client, "sales_raw", sales_days, None, &kept).await?;
                let t = &mut self.events;
                drop_older(client, t.parent, &mut t.known, Some(&mut t.legacy_below), &kept).await?;
                self.raw_done = Some(kept.oldest);
            }
        }
        if let Some(kept) = retention::late_events(self.options, newest) {
            if self.late_done != Some(kept.oldest) {
                let t = &mut self.late;
                drop_older(client, t.parent, &mut t.known, Some(&mut t.legacy_below), &kept).await?;
                self.late_done = Some(kept.oldest);
            }
        }
        if let Some(kept) = retention::dead_letters(self.options, retention::today()) {
            if self.dead_done != Some(kept.oldest) {
                let t = &mut self.dead;
                drop_older(client, t.parent, &mut t.known, Some(&mut t.legacy_below), &kept).await?;
                self.dead_done = Some(kept.oldest);
            }
        }
        Ok(())
    }
}

/// Drops every day partition of `parent` older than `kept.oldest`, and its legacy partition
/// once every day it holds is, each in its own statement.
async fn drop_older(
    client: &Client,
    parent: &str,
    known: &mut HashSet<i64>,
    legacy_below: Option<&mut Option<i64>>,
    kept: &Kept,
) -> Result<()> {
    partition::drop_older(client, parent, known, kept.oldest, &kept.why()).await?;
    if let Some(below) = legacy_below {
        if below.is_some_and(|b| b <= kept.oldest) {
            let name = format!("{parent}_legacy");
            let dropped = client
                .batch_execute(&format!(
                    "BEGIN; DROP TABLE IF EXISTS {name}; \
                     DELETE FROM retention_legacy WHERE parent = '{parent}'; COMMIT"
                ))
                .await;
            if let Err(e) = dropped {
                // The failed statement left the transaction open and aborted.
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(pg_error(&format!("DROP TABLE {name} (past its retention)"), &e));
            }
            *below = None;
            tracing::info!(message = "dropped the rows from before migration 0008 past their retention", partition = %name, why = %kept.why());
        }
    }
    Ok(())
}
