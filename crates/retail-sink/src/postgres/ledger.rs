//! The ledger's dedup horizon on PostgreSQL (ADR 0022): what the store remembers of it between
//! batches, reading it at open, recording a newer newest day inside a batch's transaction, and
//! dropping the day partitions (and the legacy ledger) the horizon has passed, after the commit.

use std::collections::HashSet;

use chrono::NaiveDate;
use tokio_postgres::Client;

use super::error::pg_error;
use super::partition;
use crate::horizon::{self, date_of};
use crate::{Result, StoreOptions};

/// The partitioned ledger.
pub(super) const LEDGER: &str = "landed_event_ids";

/// The ledger from before migration 0005, without days.
pub(super) const LEGACY: &str = "landed_event_ids_legacy";

/// The store's view of the ledger.
#[derive(Debug)]
pub(super) struct Ledger {
    pub options: StoreOptions,
    /// The newest event day landed, as last committed (`ledger_horizon.newest_day`).
    pub newest: Option<i64>,
    /// Days known to have a ledger partition.
    pub known_days: HashSet<i64>,
    /// Whether `landed_event_ids_legacy` exists (until the horizon passes `legacy_until`).
    pub legacy: bool,
    /// The last day the legacy ledger's events can have.
    pub legacy_until: Option<i64>,
}

impl Ledger {
    pub(super) fn new(options: StoreOptions) -> Self {
        Self {
            options,
            newest: None,
            known_days: HashSet::new(),
            legacy: false,
            legacy_until: None,
        }
    }

    /// Reads the horizon's state from the store and drops what it has passed (a store that was
    /// stopped with a lower horizon, or an old legacy ledger).
    pub(super) async fn load(&mut self, client: &Client) -> Result<()> {
        let row = client
            .query_one(
                "SELECT newest_day, legacy_until, to_regclass($1) IS NOT NULL FROM ledger_horizon",
                &[&LEGACY],
            )
            .await
            .map_err(|e| pg_error("SELECT FROM ledger_horizon", &e))?;
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        let day = |d: Option<NaiveDate>| d.map(|d| d.signed_duration_since(epoch).num_days());
        self.newest = day(row.get(0));
        self.legacy_until = day(row.get(1));
        self.legacy = row.get(2);
        self.known_days.clear();
        self.drop_passed(client).await
    }

    /// Inside the batch's transaction: records `newest` as the newest event day landed.
    pub(super) async fn record_newest(client: &Client, newest: i64) -> Result<()> {
        let date = date_of(newest);
        client
            .execute(
                "UPDATE ledger_horizon SET newest_day = greatest(newest_day, $1)",
                &[&date],
            )
            .await
            .map(drop)
            .map_err(|e| pg_error("UPDATE ledger_horizon SET newest_day", &e))
    }

    /// Drops the ledger's day partitions older than the horizon, and the legacy ledger once the
    /// horizon has passed `legacy_until`. Outside any batch transaction.
    pub(super) async fn drop_passed(&mut self, client: &Client) -> Result<()> {
        let Some(oldest) = horizon::oldest_kept(self.options, self.newest) else {
            return Ok(());
        };
        partition::drop_older(
            client,
            LEDGER,
            &mut self.known_days,
            oldest,
            &format!(
                "older than the dedup horizon: landing.dedup_horizon_days = {}",
                self.options.dedup_horizon_days
            ),
        )
        .await?;
        if self.legacy && self.legacy_until.is_some_and(|until| until < oldest) {
            let dropped = client
                .batch_execute(&format!(
                    "BEGIN; DROP TABLE IF EXISTS {LEGACY}; \
                     UPDATE ledger_horizon SET legacy_until = NULL; COMMIT"
                ))
                .await;
            if let Err(e) = dropped {
                // The failed statement left the transaction open and aborted.
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(pg_error(
                    &format!("DROP TABLE {LEGACY} (older than the dedup horizon)"),
                    &e,
                ));
            }
            self.legacy = false;
            tracing::info!(message = "dropped the legacy ledger: the dedup horizon has passed it");
        }
        Ok(())
    }
}
