//! [`PostgresReader`]: the [`Reader`] on its own session, separate from the landing's, so API
//! queries never wait for a batch transaction. tokio-postgres pipelines concurrent queries on
//! one session, so one is enough; a failed session is replaced at the next call.
//!
//! The order-lifecycle and alert queries are in `read/orders.rs`, the notification outbox's in
//! `read/notifications.rs`.

mod notifications;
mod orders;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row};
use tracing::warn;

use super::error::{pg_error, url_error};
use crate::read::notifications::{DeliveryFilter, DeliveryRow};
use crate::read::orders::{
    AlertFilter, AlertRow, FraudAlertFilter, FraudAlertRow, OrderDetail, OrderFilter, OrderRow, RiskFilter,
    RiskRow, StateCount,
};
use crate::read::{
    day_start, split_hours, CitySales, Claim, Counts, DeadLetterDetail, DeadLetterSummary, Grain, LateEvent,
    Page, PageRequest, Reader, SalesBucket, SellerSales, StoreInfo, StoreSummary, Totals,
};
use crate::Result;

/// A read session on a PostgreSQL store.
pub struct PostgresReader {
    config: Config,
    client: Mutex<Option<Arc<Client>>>,
}

impl fmt::Debug for PostgresReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresReader").finish_non_exhaustive()
    }
}

impl PostgresReader {
    /// Connects to a libpq-style URL. Does not migrate: open the store first.
    pub async fn connect(url: &str) -> Result<Self> {
        let mut config: Config = url.parse().map_err(|e| url_error(url, &e))?;
        config.application_name("retail-etl reader");
        let reader = Self {
            config,
            client: Mutex::new(None),
        };
        reader.client().await?;
        Ok(reader)
    }

    /// The live session, connecting first if there is none or the last one closed.
    async fn client(&self) -> Result<Arc<Client>> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| pg_error("connect to PostgreSQL (reader)", &e))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                warn!(message = "PostgreSQL reader connection ended", %error);
            }
        });
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Runs a query; a table that does not exist yet reads as no rows.
    async fn query(&self, what: &str, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let client = self.client().await?;
        match client.query(sql, params).await {
            Ok(rows) => Ok(rows),
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(Vec::new()),
            Err(e) => Err(pg_error(what, &e)),
        }
    }
}

fn limit_plus_one(page: PageRequest) -> (i64, i64) {
    (
        i64::from(page.limit) + 1,
        i64::try_from(page.offset).unwrap_or(i64::MAX),
    )
}

const DEAD_LETTER_COLUMNS: &str = "id, reason, kind, source, topic, \"partition\", \"offset\", file, line, \
     rejected_at, landed_at, resubmitted_at, octet_length(raw)::bigint";

/// Stores with their sums over `[$1, $2)`; the caller adds a `WHERE` on `$3`.
const STORE_SUMMARY: &str = "SELECT d.store_id, d.name, d.city, d.country, COALESCE(sum(a.revenue), 0)::float8, \
     COALESCE(sum(a.units), 0)::bigint, COALESCE(sum(a.sales), 0)::bigint, COALESCE(sum(a.returns), 0)::bigint \
     FROM store_dim d LEFT JOIN sales_agg_hour a ON a.store_id = d.store_id \
       AND a.window_start >= $1 AND a.window_start < $2";
const STORE_SUMMARY_TAIL: &str = "GROUP BY d.store_id, d.name, d.city, d.country ORDER BY d.store_id";

fn store_summary(r: &Row) -> StoreSummary {
    StoreSummary {
        store: StoreInfo {
            store_id: r.get(0),
            name: r.get(1),
            city: r.get(2),
            country: r.get(3),
        },
        totals: Totals {
            revenue: r.get(4),
            units: r.get(5),
            sales: r.get(6),
            returns: r.get(7),
        },
    }
}

fn dead_letter_summary(r: &Row) -> DeadLetterSummary {
    DeadLetterSummary {
        id: r.get(0),
        reason: r.get(1),
        kind: r.get(2),
        source: r.get(3),
        topic: r.get(4),
        partition: r.get(5),
        offset: r.get(6),
        file: r.get(7),
        line: r.get(8),
        rejected_at: r.get(9),
        landed_at: r.get(10),
        resubmitted_at: r.get(11),
        raw_bytes: r.get(12),
    }
}

#[async_trait]
impl Reader for PostgresReader {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn sales(
        &self,
        grain: Grain,
        store_id: Option<i64>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SalesBucket>> {
        let table = grain.table();
        let sql = format!(
            "SELECT window_start, CASE WHEN $1::bigint IS NULL THEN NULL ELSE min(store_id) END, \
             COALESCE(sum(units), 0)::bigint, COALESCE(sum(revenue), 0)::float8, \
             COALESCE(sum(sales), 0)::bigint, COALESCE(sum(returns), 0)::bigint \
             FROM {table} WHERE window_start >= $2 AND window_start < $3 \
             AND ($1::bigint IS NULL OR store_id = $1) GROUP BY window_start ORDER BY window_start"
        );
        let rows = self
            .query(&format!("SELECT FROM {table}"), &sql, &[&store_id, &from, &to])
            .await?;
        Ok(rows
            .iter()
            .map(|r| SalesBucket {
                window_start: r.get(0),
                store_id: r.get(1),
                units: r.get(2),
                revenue: r.get(3),
                sales: r.get(4),
                returns: r.get(5),
            })
            .collect())
    }

    async fn totals(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Totals> {
        let (minutes, hours) = split_hours(from, to);
        let ranges = minutes
            .into_iter()
            .map(|r| (Grain::Minute, r))
            .chain(hours.map(|r| (Grain::Hour, r)));
        // The exact sums of every range are added as decimals; the revenue becomes a float once,
        // as on SQLite (ADR 0020).
        let mut revenue = rust_decimal::Decimal::ZERO;
        let mut t = Totals::default();
        for (grain, (a, b)) in ranges {
            let table = grain.table();
            let sql = format!(
                "SELECT COALESCE(sum(revenue), 0), COALESCE(sum(units), 0)::bigint, \
                 COALESCE(sum(sales), 0)::bigint, COALESCE(sum(returns), 0)::bigint \
                 FROM {table} WHERE window_start >= $1 AND window_start < $2"
            );
            for r in self
                .query(&format!("SELECT sum FROM {table}"), &sql, &[&a, &b])
                .await?
            {
                let what = || format!("SELECT sum FROM {table}");
                let part = r
                    .try_get::<_, rust_decimal::Decimal>(0)
                    .map_err(|e| pg_error(&what(), &e))?;
                let overflow = || crate::Error::Postgres {
                    message: format!("{}: a sum overflows 64 bits", what()),
                    retryable: false,
                };
                revenue = revenue.checked_add(part).ok_or_else(overflow)?;
                t.units = t.units.checked_add(r.get::<_, i64>(1)).ok_or_else(overflow)?;
                t.sales = t.sales.checked_add(r.get::<_, i64>(2)).ok_or_else(overflow)?;
                t.returns = t.returns.checked_add(r.get::<_, i64>(3)).ok_or_else(overflow)?;
            }
        }
        t.revenue = crate::read::decimal_to_f64(revenue);
        Ok(t)
    }

    async fn top_sales_by_city(&self, day: NaiveDate, limit: u32) -> Result<Vec<CitySales>> {
        let rows = self
            .query(
                "SELECT FROM top_sales_by_city_ranked",
                "SELECT rank::bigint, country, city, COALESCE(revenue, 0)::float8, \
                 COALESCE(units, 0)::bigint, sales::bigint FROM top_sales_by_city_ranked \
                 WHERE window_start = $1 ORDER BY rank, country, city LIMIT $2",
                &[&day_start(day), &i64::from(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| CitySales {
                rank: r.get(0),
                country: r.get(1),
                city: r.get(2),
                revenue: r.get(3),
                units: r.get(4),
                sales: r.get(5),
            })
            .collect())
    }

    async fn top_salesmen_by_country(
        &self,
        country: Option<&str>,
        window_start: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<SellerSales>> {
        let rows = self
            .query(
                "SELECT FROM top_salesman_by_country_ranked",
                "SELECT rank::bigint, country, seller_id, seller_name, COALESCE(revenue, 0)::float8, \
                 COALESCE(units, 0)::bigint, sales::bigint, window_start \
                 FROM top_salesman_by_country_ranked \
                 WHERE ($1::text IS NULL OR country = $1) AND rank <= $3 AND window_start = \
                   COALESCE($2::timestamptz, (SELECT max(window_start) FROM top_salesman_by_country \
                                              WHERE $1::text IS NULL OR country = $1)) \
                 ORDER BY country, rank, seller_id",
                &[&country, &window_start, &i64::from(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| SellerSales {
                rank: r.get(0),
                country: r.get(1),
                seller_id: r.get(2),
                seller_name: r.get(3),
                revenue: r.get(4),
                units: r.get(5),
                sales: r.get(6),
                window_start: r.get(7),
            })
            .collect())
    }

    async fn store(&self, store_id: i64) -> Result<Option<StoreInfo>> {
        let rows = self
            .query(
                "SELECT FROM store_dim",
                "SELECT store_id, name, city, country FROM store_dim WHERE store_id = $1",
                &[&store_id],
            )
            .await?;
        Ok(rows.first().map(|r| StoreInfo {
            store_id: r.get(0),
            name: r.get(1),
            city: r.get(2),
            country: r.get(3),
        }))
    }

    async fn stores(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: PageRequest,
    ) -> Result<Page<StoreSummary>> {
        let (limit, offset) = limit_plus_one(page);
        let sql = format!("{STORE_SUMMARY} WHERE $3::bigint IS NULL {STORE_SUMMARY_TAIL} LIMIT $4 OFFSET $5");
        let rows = self
            .query(
                "SELECT FROM store_dim, sales_agg_hour",
                &sql,
                &[&from, &to, &None::<i64>, &limit, &offset],
            )
            .await?;
        Ok(Page::from_rows(rows.iter().map(store_summary).collect(), page))
    }

    async fn store_summary(
        &self,
        store_id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Option<StoreSummary>> {
        let sql = format!("{STORE_SUMMARY} WHERE d.store_id = $3 {STORE_SUMMARY_TAIL}");
        let rows = self
            .query(
                "SELECT FROM store_dim, sales_agg_hour",
                &sql,
                &[&from, &to, &Some(store_id)],
            )
            .await?;
        Ok(rows.first().map(store_summary))
    }

    async fn late_events(&self, aggregate: Option<&str>, page: PageRequest) -> Result<Page<LateEvent>> {
        let (limit, offset) = limit_plus_one(page);
        let rows = self
            .query(
                "SELECT FROM late_events",
                "SELECT aggregate, event_id::text, window_start, window_end, event_ts, watermark, reason, \
                 topic, \"partition\", \"offset\", recorded_at FROM late_events \
                 WHERE $1::text IS NULL OR aggregate = $1 \
                 ORDER BY recorded_at DESC, aggregate, event_id, window_start LIMIT $2 OFFSET $3",
                &[&aggregate, &limit, &offset],
            )
            .await?;
        let rows = rows
            .iter()
            .map(|r| LateEvent {
                aggregate: r.get(0),
                event_id: r.get(1),
                window_start: r.get(2),
                window_end: r.get(3),
                event_ts: r.get(4),
                watermark: r.get(5),
                reason: r.get(6),
                topic: r.get(7),
                partition: r.get(8),
                offset: r.get(9),
                recorded_at: r.get(10),
            })
            .collect();
        Ok(Page::from_rows(rows, page))
    }

    async fn dead_letters(&self, page: PageRequest) -> Result<Page<DeadLetterSummary>> {
        let (limit, offset) = limit_plus_one(page);
        let sql =
            format!("SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters ORDER BY id DESC LIMIT $1 OFFSET $2");
        let rows = self
            .query("SELECT FROM dead_letters", &sql, &[&limit, &offset])
            .await?;
        Ok(Page::from_rows(
            rows.iter().map(dead_letter_summary).collect(),
            page,
        ))
    }

    async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetterDetail>> {
        let sql = format!("SELECT {DEAD_LETTER_COLUMNS}, raw FROM dead_letters WHERE id = $1");
        let rows = self.query("SELECT FROM dead_letters", &sql, &[&id]).await?;
        Ok(rows.first().map(|r| {
            let raw: Vec<u8> = r.get(13);
            DeadLetterDetail {
                summary: dead_letter_summary(r),
                raw_is_utf8: std::str::from_utf8(&raw).is_ok(),
                raw: String::from_utf8_lossy(&raw).into_owned(),
            }
        }))
    }

    async fn claim_dead_letter(&self, id: i64) -> Result<Claim> {
        let claimed = self
            .query(
                "UPDATE dead_letters SET resubmitted_at",
                "UPDATE dead_letters SET resubmitted_at = now() WHERE id = $1 AND resubmitted_at IS NULL \
                 RETURNING resubmitted_at",
                &[&id],
            )
            .await?;
        if let Some(row) = claimed.first() {
            return Ok(Claim::Claimed(row.get(0)));
        }
        let rows = self
            .query(
                "SELECT FROM dead_letters",
                "SELECT resubmitted_at FROM dead_letters WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(
            match rows.first().and_then(|r| r.get::<_, Option<DateTime<Utc>>>(0)) {
                Some(at) => Claim::AlreadyResubmitted(at),
                None => Claim::NotFound,
            },
        )
    }

    async fn unclaim_dead_letter(&self, id: i64) -> Result<()> {
        self.query(
            "UPDATE dead_letters SET resubmitted_at = NULL",
            "UPDATE dead_letters SET resubmitted_at = NULL WHERE id = $1",
            &[&id],
        )
        .await
        .map(drop)
    }

    async fn counts(&self) -> Result<Counts> {
        let dl = self
            .query(
                "SELECT count(*) FROM dead_letters",
                "SELECT count(*), count(resubmitted_at) FROM dead_letters",
                &[],
            )
            .await?;
        let late = self
            .query(
                "SELECT count(*) FROM late_events",
                "SELECT count(*) FROM late_events",
                &[],
            )
            .await?;
        Ok(Counts {
            dead_letters: dl.first().map_or(0, |r| r.get(0)),
            dead_letters_resubmitted: dl.first().map_or(0, |r| r.get(1)),
            late_events: late.first().map_or(0, |r| r.get(0)),
        })
    }

    async fn orders(&self, filter: &OrderFilter, page: PageRequest) -> Result<Page<OrderRow>> {
        self.order_list(filter, page).await
    }

    async fn order(&self, order_id: &str) -> Result<Option<OrderDetail>> {
        self.order_detail(order_id).await
    }

    async fn orders_by_state(&self) -> Result<Vec<StateCount>> {
        self.state_counts().await
    }

    async fn alerts(&self, filter: &AlertFilter, page: PageRequest) -> Result<Page<AlertRow>> {
        self.alert_list(filter, page).await
    }

    async fn inventory_risks(&self, filter: &RiskFilter, page: PageRequest) -> Result<Page<RiskRow>> {
        self.risk_list(filter, page).await
    }

    async fn fraud_alerts(
        &self,
        filter: &FraudAlertFilter,
        page: PageRequest,
    ) -> Result<Page<FraudAlertRow>> {
        self.fraud_list(filter, page).await
    }

    async fn deliveries(&self, filter: &DeliveryFilter, page: PageRequest) -> Result<Page<DeliveryRow>> {
        self.delivery_list(filter, page).await
    }

    async fn pipeline_time(&self, group: &str, pipeline: &str) -> Result<Option<DateTime<Utc>>> {
        self.clock(group, pipeline).await
    }
}
