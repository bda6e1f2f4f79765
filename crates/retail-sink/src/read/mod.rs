//! The read side of the stores: what the REST API and the dashboard ask of the landed data.
//! Come here to add a query the API serves; the write path (exactly once) is elsewhere.
//!
//! A [`Reader`] has its own connection, separate from the landing's writer: on PostgreSQL a
//! second session, on SQLite a second connection on its own thread (WAL lets it read while
//! the landing writes), so an API call never queues behind a batch transaction. The one write
//! it makes, marking a dead letter resubmitted, is a single-row update that waits its turn for
//! SQLite's write lock (busy timeout) like any other writer.
//!
//! Queries name the built-in aggregate tables (`sales_agg_minute`, `sales_agg_hour`,
//! `top_sales_by_city`, `top_salesman_by_country` and their `_ranked` views). A table that
//! does not exist yet (the landing creates them at start) reads as empty, not as an error.
//!
//! # Layout
//! - this file: the [`Reader`] trait, its row types and [`open_reader`].
//! - [`orders`]: the rows and filters of the order-lifecycle pipeline and the alerts.
//! - [`notifications`]: the rows and filter of the notification outbox's deliveries.
//! - `../postgres/read.rs`, `../sqlite/read.rs`: the two implementations, each with its
//!   `read/orders.rs` for the order and alert queries and `read/notifications.rs` for the
//!   deliveries.

pub mod notifications;
pub mod orders;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, DurationRound, NaiveDate, TimeDelta, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use self::notifications::{DeliveryFilter, DeliveryRow};
use self::orders::{
    AlertFilter, AlertRow, FraudAlertFilter, FraudAlertRow, OrderDetail, OrderFilter, OrderRow, RiskFilter,
    RiskRow, StateCount,
};
use crate::{Result, StoreUrl};

/// The window size of a sales series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Grain {
    /// One-minute windows, from `sales_agg_minute`.
    Minute,
    /// One-hour windows, from `sales_agg_hour`.
    Hour,
}

impl Grain {
    /// The aggregate table of this grain.
    pub const fn table(self) -> &'static str {
        match self {
            Self::Minute => "sales_agg_minute",
            Self::Hour => "sales_agg_hour",
        }
    }

    /// The window length.
    pub const fn width(self) -> TimeDelta {
        match self {
            Self::Minute => TimeDelta::minutes(1),
            Self::Hour => TimeDelta::hours(1),
        }
    }
}

/// The nearest `f64` of an exact decimal, correctly rounded (from its text, as PostgreSQL's
/// `numeric::float8` does); `rust_decimal`'s own `to_f64` can be off by an ulp for large values.
/// Both stores give the API this number for a sum of money (ADR 0020).
pub fn decimal_to_f64(d: rust_decimal::Decimal) -> f64 {
    d.to_string().parse().unwrap_or(f64::NAN)
}

/// Sales of one window, for one store or summed over all stores.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SalesBucket {
    /// Window start (UTC, inclusive).
    pub window_start: DateTime<Utc>,
    /// The store; `null` when summed over all stores.
    pub store_id: Option<i64>,
    /// Units sold (returns count negative).
    pub units: i64,
    /// Revenue (returns count negative).
    pub revenue: f64,
    /// Sale events.
    pub sales: i64,
    /// Return events.
    pub returns: i64,
}

/// Sums over a time range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct Totals {
    /// Revenue.
    pub revenue: f64,
    /// Units.
    pub units: i64,
    /// Sale events.
    pub sales: i64,
    /// Return events.
    pub returns: i64,
}

/// One city of the daily city ranking.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CitySales {
    /// 1 = most revenue; ties share a rank.
    pub rank: i64,
    /// Country code.
    pub country: String,
    /// City.
    pub city: String,
    /// Revenue that day.
    pub revenue: f64,
    /// Units that day.
    pub units: i64,
    /// Sale events that day.
    pub sales: i64,
}

/// One seller of the per-country seller ranking.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SellerSales {
    /// 1 = most revenue within the country; ties share a rank.
    pub rank: i64,
    /// Country code.
    pub country: String,
    /// Seller.
    pub seller_id: i64,
    /// Seller's name.
    pub seller_name: String,
    /// Revenue in the window.
    pub revenue: f64,
    /// Units in the window.
    pub units: i64,
    /// Sale events in the window.
    pub sales: i64,
    /// Start of the ranking window (30 days in the built-in aggregate).
    pub window_start: DateTime<Utc>,
}

/// A store of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StoreInfo {
    /// Store id.
    pub store_id: i64,
    /// Name.
    pub name: String,
    /// City.
    pub city: String,
    /// Country code.
    pub country: String,
}

/// A store with its sales over a time range.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StoreSummary {
    /// The store.
    #[serde(flatten)]
    pub store: StoreInfo,
    /// Its sales over the range.
    #[serde(flatten)]
    pub totals: Totals,
}

/// An event that arrived after its window closed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LateEvent {
    /// The aggregate whose window it missed.
    pub aggregate: String,
    /// The event.
    pub event_id: String,
    /// The missed window's start.
    pub window_start: DateTime<Utc>,
    /// The missed window's end.
    pub window_end: DateTime<Utc>,
    /// The event's own time.
    pub event_ts: DateTime<Utc>,
    /// The watermark when it arrived.
    pub watermark: DateTime<Utc>,
    /// Why it was not counted.
    pub reason: String,
    /// Log topic.
    pub topic: String,
    /// Log partition.
    pub partition: i32,
    /// Log offset.
    pub offset: i64,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

/// A dead letter without its payload.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeadLetterSummary {
    /// Id, for inspecting and resubmitting.
    pub id: i64,
    /// Why it was rejected.
    pub reason: String,
    /// Rejection kind (e.g. `decode`, `validation`).
    pub kind: String,
    /// The source that sent it.
    pub source: String,
    /// Log topic, if it came through the log.
    pub topic: Option<String>,
    /// Log partition.
    pub partition: Option<i32>,
    /// Log offset.
    pub offset: Option<i64>,
    /// Input file, for file sources.
    pub file: Option<String>,
    /// Line in the file.
    pub line: Option<i64>,
    /// When it was rejected.
    pub rejected_at: DateTime<Utc>,
    /// When it landed in `dead_letters`.
    pub landed_at: DateTime<Utc>,
    /// When a fixed version was resubmitted; `null` if never.
    pub resubmitted_at: Option<DateTime<Utc>>,
    /// Size of the payload in bytes.
    pub raw_bytes: i64,
}

/// A dead letter with its payload.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeadLetterDetail {
    /// Everything but the payload.
    #[serde(flatten)]
    pub summary: DeadLetterSummary,
    /// The payload as text (invalid UTF-8 replaced by U+FFFD).
    pub raw: String,
    /// Whether the payload was valid UTF-8 (else `raw` is lossy).
    pub raw_is_utf8: bool,
}

/// Which rows of a list: `offset` rows skipped, at most `limit` returned, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows to return.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// The limit asked for.
    pub limit: u32,
    /// The offset asked for.
    pub offset: u64,
    /// The offset of the next page; `null` on the last page.
    pub next_offset: Option<u64>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` rows (the extra row only says there is a next page).
    pub fn from_rows(mut rows: Vec<T>, req: PageRequest) -> Self {
        let more = rows.len() > req.limit as usize;
        rows.truncate(req.limit as usize);
        Self {
            items: rows,
            limit: req.limit,
            offset: req.offset,
            next_offset: more.then(|| req.offset + u64::from(req.limit)),
        }
    }
}

/// Row counts for status pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Counts {
    /// Rows in `dead_letters`.
    pub dead_letters: i64,
    /// Dead letters already resubmitted.
    pub dead_letters_resubmitted: i64,
    /// Rows in `late_events`.
    pub late_events: i64,
}

/// What marking a dead letter resubmitted found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Marked now, at this time: the caller may resubmit it.
    Claimed(DateTime<Utc>),
    /// Someone resubmitted it before, at this time.
    AlreadyResubmitted(DateTime<Utc>),
    /// No dead letter has this id.
    NotFound,
}

/// The store's read side. Cheap to share (`Arc<dyn Reader>`); calls may run concurrently.
#[async_trait]
pub trait Reader: Send + Sync + std::fmt::Debug + 'static {
    /// `postgres` or `sqlite`.
    fn kind(&self) -> &'static str;

    /// Sales per window of `grain` with `from <= window_start < to`, for one store or summed
    /// over all (`store_id` `None`), ordered by window start. Windows without sales are absent.
    async fn sales(
        &self,
        grain: Grain,
        store_id: Option<i64>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SalesBucket>>;

    /// Sums over `[from, to)`: whole hours from `sales_agg_hour`, the ragged ends from
    /// `sales_agg_minute` (minute precision).
    async fn totals(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Totals>;

    /// The `limit` best cities of a UTC day by revenue.
    async fn top_sales_by_city(&self, day: NaiveDate, limit: u32) -> Result<Vec<CitySales>>;

    /// The sellers ranked `<= limit` within their country (one country, or every country),
    /// in the window starting at `window_start` (`None`: the latest window), ordered by
    /// country then rank.
    async fn top_salesmen_by_country(
        &self,
        country: Option<&str>,
        window_start: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<SellerSales>>;

    /// One store of the catalog, `None` if unknown.
    async fn store(&self, store_id: i64) -> Result<Option<StoreInfo>>;

    /// Stores of the catalog by id, with their sales over `[from, to)` from `sales_agg_hour`
    /// (hour precision).
    async fn stores(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: PageRequest,
    ) -> Result<Page<StoreSummary>>;

    /// One store with its sales over `[from, to)` from `sales_agg_hour`; `None` if unknown.
    async fn store_summary(
        &self,
        store_id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Option<StoreSummary>>;

    /// Late events, newest first, of one aggregate or all.
    async fn late_events(&self, aggregate: Option<&str>, page: PageRequest) -> Result<Page<LateEvent>>;

    /// Dead letters, newest first.
    async fn dead_letters(&self, page: PageRequest) -> Result<Page<DeadLetterSummary>>;

    /// One dead letter with its payload.
    async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetterDetail>>;

    /// Marks a dead letter resubmitted unless it already is (atomically: of two concurrent
    /// callers, one gets [`Claim::Claimed`]).
    async fn claim_dead_letter(&self, id: i64) -> Result<Claim>;

    /// Undoes [`Self::claim_dead_letter`] when resubmitting failed after the claim.
    async fn unclaim_dead_letter(&self, id: i64) -> Result<()>;

    /// Row counts of dead letters and late events.
    async fn counts(&self) -> Result<Counts>;

    /// Orders matching `filter`, newest `created_at` first (orders without one last), ties by
    /// `order_id`.
    async fn orders(&self, filter: &OrderFilter, page: PageRequest) -> Result<Page<OrderRow>>;

    /// One order with its `order` and `payment` events (`events_raw` rows whose partition key
    /// is the order id), by event time; `None` if no order has this id.
    async fn order(&self, order_id: &str) -> Result<Option<OrderDetail>>;

    /// Orders per state, stuck ones counted apart; states without orders are absent.
    async fn orders_by_state(&self) -> Result<Vec<StateCount>>;

    /// Alerts matching `filter`, newest `at` first, ties by `alert_id`.
    async fn alerts(&self, filter: &AlertFilter, page: PageRequest) -> Result<Page<AlertRow>>;

    /// Rows of `inventory_risks` matching `filter`, worst first (level, then fewest days of
    /// cover, then store and SKU).
    async fn inventory_risks(&self, filter: &RiskFilter, page: PageRequest) -> Result<Page<RiskRow>>;

    /// Rows of `fraud_alerts` matching `filter`, newest `at` first, ties by `alert_id`.
    async fn fraud_alerts(&self, filter: &FraudAlertFilter, page: PageRequest)
        -> Result<Page<FraudAlertRow>>;

    /// Rows of `notification_deliveries` matching `filter`, with their alert's kind and subject,
    /// newest `alert_at` first, ties by `delivery_id`.
    async fn deliveries(&self, filter: &DeliveryFilter, page: PageRequest) -> Result<Page<DeliveryRow>>;

    /// The pipeline time `pipeline` of consumer group `group` last ran its verdicts at (the
    /// smallest watermark of its partitions, ADR 0023); `None` before its first batch.
    async fn pipeline_time(&self, group: &str, pipeline: &str) -> Result<Option<DateTime<Utc>>>;
}

/// Opens a reader on the store a URL names. Open the [`crate::Store`] first: it applies the
/// migrations the reader's queries need.
pub async fn open_reader(url: &StoreUrl) -> Result<Arc<dyn Reader>> {
    match url {
        StoreUrl::Postgres(u) => Ok(Arc::new(crate::postgres::PostgresReader::connect(u).await?)),
        StoreUrl::Sqlite(path) => Ok(Arc::new(crate::sqlite::SqliteReader::open(path).await?)),
    }
}

/// A half-open time range `[start, end)`.
pub(crate) type Span = (DateTime<Utc>, DateTime<Utc>);

/// Splits `[from, to)` into the whole hours inside it and the ragged ends, so sums read few
/// rows: `(minute ranges, hour range)`.
pub(crate) fn split_hours(from: DateTime<Utc>, to: DateTime<Utc>) -> (Vec<Span>, Option<Span>) {
    let hour = TimeDelta::hours(1);
    let floor = |t: DateTime<Utc>| t.duration_trunc(hour).unwrap_or(t);
    let first_full = {
        let f = floor(from);
        if f == from {
            f
        } else {
            f + hour
        }
    };
    let last_full = floor(to);
    if first_full < last_full {
        let mut minutes = Vec::new();
        if from < first_full {
            minutes.push((from, first_full));
        }
        if last_full < to {
            minutes.push((last_full, to));
        }
        (minutes, Some((first_full, last_full)))
    } else if from < to {
        (vec![(from, to)], None)
    } else {
        (Vec::new(), None)
    }
}

/// Midnight UTC of a day.
pub(crate) fn day_start(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(chrono::NaiveTime::MIN).and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn whole_hours_come_from_the_hour_table_and_the_ends_from_minutes() {
        let (m, h) = split_hours(t("2026-11-21T10:15:00Z"), t("2026-11-21T13:20:00Z"));
        assert_eq!(h, Some((t("2026-11-21T11:00:00Z"), t("2026-11-21T13:00:00Z"))));
        assert_eq!(
            m,
            vec![
                (t("2026-11-21T10:15:00Z"), t("2026-11-21T11:00:00Z")),
                (t("2026-11-21T13:00:00Z"), t("2026-11-21T13:20:00Z"))
            ]
        );
        let (m, h) = split_hours(t("2026-11-21T10:15:00Z"), t("2026-11-21T10:50:00Z"));
        assert_eq!((m.len(), h), (1, None));
        let (m, h) = split_hours(t("2026-11-21T10:00:00Z"), t("2026-11-21T12:00:00Z"));
        assert_eq!((m.len(), h.is_some()), (0, true));
        assert_eq!(
            split_hours(t("2026-11-21T10:00:00Z"), t("2026-11-21T10:00:00Z"))
                .0
                .len(),
            0
        );
    }

    #[test]
    fn a_page_knows_whether_there_is_a_next_one() {
        let req = PageRequest { limit: 2, offset: 4 };
        assert_eq!(Page::from_rows(vec![1, 2, 3], req).next_offset, Some(6));
        let last = Page::from_rows(vec![1, 2], req);
        assert_eq!((last.items.len(), last.next_offset), (2, None));
    }
}
