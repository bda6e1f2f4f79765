//! [`SqliteReader`]: the [`Reader`] on a second connection to the same file, owned by its own
//! thread. WAL mode lets it read while the landing's connection writes, so API queries never
//! queue behind a batch; its one write (marking a dead letter resubmitted) waits for the write
//! lock like any writer (busy timeout).
//!
//! The order-lifecycle and alert queries are in `read/orders.rs`, the notification outbox's in
//! `read/notifications.rs`.

mod notifications;
mod orders;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::types::Type;
use rusqlite::{params_from_iter, Connection, OpenFlags, Row, ToSql};

use super::error::sqlite_error;
use super::money::cents_to_f64;
use super::rows::ts_text;
use super::thread::Owned;
use crate::read::notifications::{DeliveryFilter, DeliveryRow};
use crate::read::orders::{
    AlertFilter, AlertRow, FraudAlertFilter, FraudAlertRow, OrderDetail, OrderFilter, OrderRow, RiskFilter,
    RiskRow, StateCount,
};
use crate::read::{
    day_start, split_hours, CitySales, Claim, Counts, DeadLetterDetail, DeadLetterSummary, Grain, LateEvent,
    Page, PageRequest, Reader, SalesBucket, SellerSales, StoreInfo, StoreSummary, Totals,
};
use crate::{Error, Result};

/// How long the resubmit mark waits for the landing's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A read connection on an SQLite store.
pub struct SqliteReader {
    conn: Owned<Connection>,
}

impl fmt::Debug for SqliteReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteReader")
            .field("path", &self.conn.path())
            .finish_non_exhaustive()
    }
}

impl SqliteReader {
    /// Opens a second connection to an existing store file (open the store first: it creates
    /// the file, sets WAL mode and migrates).
    pub async fn open(path: &Path) -> Result<Self> {
        Self::open_with_queue(path, Self::QUEUE).await
    }

    /// Calls that may wait behind the running one by default: with API queries taking a few
    /// milliseconds, 64 waiting is well under the API's request timeout, and a burst past that
    /// is answered 503 with `Retry-After` at once rather than after the timeout.
    pub const QUEUE: usize = 64;

    /// [`SqliteReader::open`] with at most `queue` calls waiting; more fail at once with a
    /// retryable error ([`crate::Error::is_retryable`]).
    pub async fn open_with_queue(path: &Path, queue: usize) -> Result<Self> {
        let shown = path.display().to_string();
        let file: PathBuf = path.to_path_buf();
        let name = shown.clone();
        let conn = Owned::spawn("retail-sink-sqlite-reader", shown, Some(queue), move || {
            Connection::open_with_flags(
                &file,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .and_then(|c| c.busy_timeout(BUSY_TIMEOUT).map(|()| c))
            .map_err(|e| sqlite_error(&name, "open (reader)", &e))
        })
        .await?;
        Ok(Self { conn })
    }

    /// Runs `f` on the reader thread.
    async fn call<T, F>(&self, what: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let path = self.conn.path().to_owned();
        self.conn
            .call(what, move |c| f(c).map_err(|e| sqlite_error(&path, what, &e)))
            .await
    }

    /// Runs a query mapping each row; a table that does not exist yet reads as no rows.
    async fn rows<T, M>(&self, what: &'static str, sql: String, params: Vec<Param>, map: M) -> Result<Vec<T>>
    where
        T: Send + 'static,
        M: Fn(&Row<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        self.call(what, move |c| {
            let mut stmt = match c.prepare_cached(&sql) {
                Ok(s) => s,
                Err(e) if no_such_table(&e) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let rows = stmt.query_map(params_from_iter(params.iter()), |r| map(r))?;
            rows.collect()
        })
        .await
    }
}

fn no_such_table(e: &rusqlite::Error) -> bool {
    e.to_string().contains("no such table")
}

/// A statement parameter, owned so it can cross to the reader thread.
#[derive(Debug, Clone)]
enum Param {
    Int(i64),
    Text(String),
    Null,
}

impl ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Self::Int(i) => i.to_sql(),
            Self::Text(t) => t.to_sql(),
            Self::Null => rusqlite::types::Null.to_sql(),
        }
    }
}

fn ts_param(t: DateTime<Utc>) -> Param {
    let mut s = String::with_capacity(24);
    ts_text(&t, &mut s);
    Param::Text(s)
}

fn opt_text(t: Option<&str>) -> Param {
    t.map_or(Param::Null, |t| Param::Text(t.to_owned()))
}

/// Reads revenue, stored and summed as integer cents (SQLite's `sum` of integers is exact and
/// fails on overflow rather than going floating point), as the API's number: the nearest `f64`
/// of the exact decimal, the same as PostgreSQL's `numeric::float8` (ADR 0020).
fn money(r: &Row<'_>, i: usize) -> rusqlite::Result<f64> {
    r.get::<_, i64>(i).map(cents_to_f64)
}

/// Reads a timestamp stored as RFC 3339 text.
fn ts(r: &Row<'_>, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = r.get(i)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e)))
}

fn opt_ts(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match r.get::<_, Option<String>>(i)? {
        None => Ok(None),
        Some(_) => ts(r, i).map(Some),
    }
}

fn page_params(page: PageRequest) -> [Param; 2] {
    [
        Param::Int(i64::from(page.limit) + 1),
        Param::Int(i64::try_from(page.offset).unwrap_or(i64::MAX)),
    ]
}

const DEAD_LETTER_COLUMNS: &str = "id, reason, kind, source, topic, \"partition\", \"offset\", file, line, \
     rejected_at, landed_at, resubmitted_at, length(CAST(raw AS BLOB))";

/// Stores with their sums over `[?1, ?2)`; the caller adds a `WHERE` on `?3`.
const STORE_SUMMARY: &str = "SELECT d.store_id, d.name, d.city, d.country, \
     COALESCE(sum(a.revenue), 0), CAST(COALESCE(sum(a.units), 0) AS INTEGER), \
     CAST(COALESCE(sum(a.sales), 0) AS INTEGER), CAST(COALESCE(sum(a.returns), 0) AS INTEGER) \
     FROM store_dim d LEFT JOIN sales_agg_hour a ON a.store_id = d.store_id \
       AND a.window_start >= ?1 AND a.window_start < ?2";
const STORE_SUMMARY_TAIL: &str = "GROUP BY d.store_id, d.name, d.city, d.country ORDER BY d.store_id";

fn store_summary(r: &Row<'_>) -> rusqlite::Result<StoreSummary> {
    Ok(StoreSummary {
        store: StoreInfo {
            store_id: r.get(0)?,
            name: r.get(1)?,
            city: r.get(2)?,
            country: r.get(3)?,
        },
        totals: Totals {
            revenue: money(r, 4)?,
            units: r.get(5)?,
            sales: r.get(6)?,
            returns: r.get(7)?,
        },
    })
}

fn dead_letter_summary(r: &Row<'_>) -> rusqlite::Result<DeadLetterSummary> {
    Ok(DeadLetterSummary {
        id: r.get(0)?,
        reason: r.get(1)?,
        kind: r.get(2)?,
        source: r.get(3)?,
        topic: r.get(4)?,
        partition: r.get(5)?,
        offset: r.get(6)?,
        file: r.get(7)?,
        line: r.get(8)?,
        rejected_at: ts(r, 9)?,
        landed_at: ts(r, 10)?,
        resubmitted_at: opt_ts(r, 11)?,
        raw_bytes: r.get(12)?,
    })
}

#[async_trait]
impl Reader for SqliteReader {
    fn kind(&self) -> &'static str {
        "sqlite"
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
            "SELECT window_start, CASE WHEN ?1 IS NULL THEN NULL ELSE min(store_id) END, \
             CAST(COALESCE(sum(units), 0) AS INTEGER), COALESCE(sum(revenue), 0), \
             CAST(COALESCE(sum(sales), 0) AS INTEGER), CAST(COALESCE(sum(returns), 0) AS INTEGER) \
             FROM {table} WHERE window_start >= ?2 AND window_start < ?3 \
             AND (?1 IS NULL OR store_id = ?1) GROUP BY window_start ORDER BY window_start"
        );
        let store = store_id.map_or(Param::Null, Param::Int);
        self.rows(
            "SELECT FROM sales aggregate",
            sql,
            vec![store, ts_param(from), ts_param(to)],
            |r| {
                Ok(SalesBucket {
                    window_start: ts(r, 0)?,
                    store_id: r.get(1)?,
                    units: r.get(2)?,
                    revenue: money(r, 3)?,
                    sales: r.get(4)?,
                    returns: r.get(5)?,
                })
            },
        )
        .await
    }

    async fn totals(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Totals> {
        let (minutes, hours) = split_hours(from, to);
        let ranges = minutes
            .into_iter()
            .map(|r| (Grain::Minute, r))
            .chain(hours.map(|r| (Grain::Hour, r)));
        // Cents and counts of every range, added exactly; the revenue becomes a float once.
        let mut sum = [0i64; 4];
        for (grain, (a, b)) in ranges {
            let sql = format!(
                "SELECT COALESCE(sum(revenue), 0), CAST(COALESCE(sum(units), 0) AS INTEGER), \
                 CAST(COALESCE(sum(sales), 0) AS INTEGER), CAST(COALESCE(sum(returns), 0) AS INTEGER) \
                 FROM {} WHERE window_start >= ?1 AND window_start < ?2",
                grain.table()
            );
            let rows = self
                .rows(
                    "SELECT sum FROM sales aggregate",
                    sql,
                    vec![ts_param(a), ts_param(b)],
                    |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]),
                )
                .await?;
            for r in rows {
                for (total, part) in sum.iter_mut().zip(r) {
                    *total = total.checked_add(part).ok_or_else(|| Error::Sqlite {
                        path: self.conn.path().to_owned(),
                        message: format!("totals from {from} to {to}: a sum overflows 64 bits"),
                        retryable: false,
                    })?;
                }
            }
        }
        let [cents, units, sales, returns] = sum;
        let t = Totals {
            revenue: cents_to_f64(cents),
            units,
            sales,
            returns,
        };
        Ok(t)
    }

    async fn top_sales_by_city(&self, day: NaiveDate, limit: u32) -> Result<Vec<CitySales>> {
        let sql = "SELECT rank, country, city, COALESCE(revenue, 0), \
             CAST(COALESCE(units, 0) AS INTEGER), sales FROM top_sales_by_city_ranked \
             WHERE window_start = ?1 ORDER BY rank, country, city LIMIT ?2";
        let params = vec![ts_param(day_start(day)), Param::Int(i64::from(limit))];
        self.rows(
            "SELECT FROM top_sales_by_city_ranked",
            sql.to_owned(),
            params,
            |r| {
                Ok(CitySales {
                    rank: r.get(0)?,
                    country: r.get(1)?,
                    city: r.get(2)?,
                    revenue: money(r, 3)?,
                    units: r.get(4)?,
                    sales: r.get(5)?,
                })
            },
        )
        .await
    }

    async fn top_salesmen_by_country(
        &self,
        country: Option<&str>,
        window_start: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<SellerSales>> {
        let sql = "SELECT rank, country, seller_id, seller_name, COALESCE(revenue, 0), \
             CAST(COALESCE(units, 0) AS INTEGER), sales, window_start FROM top_salesman_by_country_ranked \
             WHERE (?1 IS NULL OR country = ?1) AND rank <= ?3 AND window_start = \
               COALESCE(?2, (SELECT max(window_start) FROM top_salesman_by_country \
                             WHERE ?1 IS NULL OR country = ?1)) \
             ORDER BY country, rank, seller_id";
        let params = vec![
            opt_text(country),
            window_start.map_or(Param::Null, ts_param),
            Param::Int(i64::from(limit)),
        ];
        self.rows(
            "SELECT FROM top_salesman_by_country_ranked",
            sql.to_owned(),
            params,
            |r| {
                Ok(SellerSales {
                    rank: r.get(0)?,
                    country: r.get(1)?,
                    seller_id: r.get(2)?,
                    seller_name: r.get(3)?,
                    revenue: money(r, 4)?,
                    units: r.get(5)?,
                    sales: r.get(6)?,
                    window_start: ts(r, 7)?,
                })
            },
        )
        .await
    }

    async fn store(&self, store_id: i64) -> Result<Option<StoreInfo>> {
        let sql = "SELECT store_id, name, city, country FROM store_dim WHERE store_id = ?1";
        let rows = self
            .rows(
                "SELECT FROM store_dim",
                sql.to_owned(),
                vec![Param::Int(store_id)],
                |r| {
                    Ok(StoreInfo {
                        store_id: r.get(0)?,
                        name: r.get(1)?,
                        city: r.get(2)?,
                        country: r.get(3)?,
                    })
                },
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    async fn stores(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: PageRequest,
    ) -> Result<Page<StoreSummary>> {
        let sql = format!("{STORE_SUMMARY} WHERE ?3 IS NULL {STORE_SUMMARY_TAIL} LIMIT ?4 OFFSET ?5");
        let [limit, offset] = page_params(page);
        let params = vec![ts_param(from), ts_param(to), Param::Null, limit, offset];
        let rows = self
            .rows(
                "SELECT FROM store_dim, sales_agg_hour",
                sql,
                params,
                store_summary,
            )
            .await?;
        Ok(Page::from_rows(rows, page))
    }

    async fn store_summary(
        &self,
        store_id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Option<StoreSummary>> {
        let sql = format!("{STORE_SUMMARY} WHERE d.store_id = ?3 {STORE_SUMMARY_TAIL}");
        let params = vec![ts_param(from), ts_param(to), Param::Int(store_id)];
        let rows = self
            .rows(
                "SELECT FROM store_dim, sales_agg_hour",
                sql,
                params,
                store_summary,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    async fn late_events(&self, aggregate: Option<&str>, page: PageRequest) -> Result<Page<LateEvent>> {
        let sql =
            "SELECT aggregate, event_id, window_start, window_end, event_ts, watermark, reason, topic, \
             \"partition\", \"offset\", recorded_at FROM late_events WHERE ?1 IS NULL OR aggregate = ?1 \
             ORDER BY recorded_at DESC, aggregate, event_id, window_start LIMIT ?2 OFFSET ?3";
        let [limit, offset] = page_params(page);
        let rows = self
            .rows(
                "SELECT FROM late_events",
                sql.to_owned(),
                vec![opt_text(aggregate), limit, offset],
                |r| {
                    Ok(LateEvent {
                        aggregate: r.get(0)?,
                        event_id: r.get(1)?,
                        window_start: ts(r, 2)?,
                        window_end: ts(r, 3)?,
                        event_ts: ts(r, 4)?,
                        watermark: ts(r, 5)?,
                        reason: r.get(6)?,
                        topic: r.get(7)?,
                        partition: r.get(8)?,
                        offset: r.get(9)?,
                        recorded_at: ts(r, 10)?,
                    })
                },
            )
            .await?;
        Ok(Page::from_rows(rows, page))
    }

    async fn dead_letters(&self, page: PageRequest) -> Result<Page<DeadLetterSummary>> {
        let sql =
            format!("SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters ORDER BY id DESC LIMIT ?1 OFFSET ?2");
        let rows = self
            .rows(
                "SELECT FROM dead_letters",
                sql,
                page_params(page).to_vec(),
                dead_letter_summary,
            )
            .await?;
        Ok(Page::from_rows(rows, page))
    }

    async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetterDetail>> {
        let sql = format!("SELECT {DEAD_LETTER_COLUMNS}, CAST(raw AS BLOB) FROM dead_letters WHERE id = ?1");
        let rows = self
            .rows("SELECT FROM dead_letters", sql, vec![Param::Int(id)], |r| {
                let raw: Vec<u8> = r.get(13)?;
                Ok(DeadLetterDetail {
                    summary: dead_letter_summary(r)?,
                    raw_is_utf8: std::str::from_utf8(&raw).is_ok(),
                    raw: String::from_utf8_lossy(&raw).into_owned(),
                })
            })
            .await?;
        Ok(rows.into_iter().next())
    }

    async fn claim_dead_letter(&self, id: i64) -> Result<Claim> {
        // Stored at millisecond precision; the claim reports what a read gives back.
        let now = Utc::now();
        let at = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        let mut text = String::with_capacity(24);
        ts_text(&at, &mut text);
        self.call("UPDATE dead_letters SET resubmitted_at", move |c| {
            let changed = c.execute(
                "UPDATE dead_letters SET resubmitted_at = ?2 WHERE id = ?1 AND resubmitted_at IS NULL",
                rusqlite::params![id, text],
            )?;
            if changed == 1 {
                return Ok(Claim::Claimed(at));
            }
            let mut stmt = c.prepare_cached("SELECT resubmitted_at FROM dead_letters WHERE id = ?1")?;
            let mut rows = stmt.query([id])?;
            Ok(match rows.next()? {
                None => Claim::NotFound,
                Some(r) => match opt_ts(r, 0)? {
                    Some(at) => Claim::AlreadyResubmitted(at),
                    None => Claim::NotFound,
                },
            })
        })
        .await
    }

    async fn unclaim_dead_letter(&self, id: i64) -> Result<()> {
        self.call("UPDATE dead_letters SET resubmitted_at = NULL", move |c| {
            c.execute(
                "UPDATE dead_letters SET resubmitted_at = NULL WHERE id = ?1",
                [id],
            )
            .map(drop)
        })
        .await
    }

    async fn counts(&self) -> Result<Counts> {
        self.call("SELECT count(*) FROM dead_letters, late_events", |c| {
            let (dead_letters, dead_letters_resubmitted) = c.query_row(
                "SELECT count(*), count(resubmitted_at) FROM dead_letters",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let late_events = c.query_row("SELECT count(*) FROM late_events", [], |r| r.get(0))?;
            Ok(Counts {
                dead_letters,
                dead_letters_resubmitted,
                late_events,
            })
        })
        .await
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
