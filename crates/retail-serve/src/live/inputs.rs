//! The dashboard's inputs from a running server: the store's read side and the controls.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use retail_sink::read::orders::{AlertFilter, RiskFilter};
use retail_sink::read::{Grain, PageRequest, Reader};

use super::snapshot::{LiveInputs, MinutePoint, RankedRow, StoreFigures};
use crate::controls::ControlStatus;
use crate::server::ServeState;

/// Rows in each top-N table of the page.
const TOP: u32 = 5;
/// Alerts in the page's feed.
const ALERTS: u32 = 20;
/// Rows of the stock-at-risk panel.
const AT_RISK: u32 = 10;

#[async_trait]
impl LiveInputs for ServeState {
    async fn store_figures(&self, now: DateTime<Utc>) -> Option<Result<StoreFigures, String>> {
        let reader = self.reader()?;
        // The page is a client: it gets the kind of failure, the log gets the store's message.
        Some(store_figures(reader.as_ref(), now).await.map_err(|e| {
            tracing::warn!(message = "dashboard could not read the store", error = %e);
            e.public_message().to_owned()
        }))
    }

    fn controls(&self) -> Vec<ControlStatus> {
        self.controls.list()
    }
}

/// The same queries the REST API answers with: today's totals (UTC), the last hour per minute,
/// today's top cities, the top sellers of the latest window over every country, orders by
/// state, the latest alerts and the worst stock at risk.
async fn store_figures(r: &dyn Reader, now: DateTime<Utc>) -> retail_sink::Result<StoreFigures> {
    let today = now.date_naive();
    let midnight = today.and_time(chrono::NaiveTime::MIN).and_utc();
    let totals = r.totals(midnight, midnight + TimeDelta::days(1)).await?;
    let minutes = r
        .sales(
            Grain::Minute,
            None,
            now - TimeDelta::minutes(60),
            now + TimeDelta::minutes(1),
        )
        .await?;
    let cities = r.top_sales_by_city(today, TOP).await?;
    // Ranked within each country; the page ranks the best of those across countries (the
    // global top N is always among the per-country top N).
    let mut sellers = r.top_salesmen_by_country(None, None, TOP).await?;
    sellers.sort_by(|a, b| b.revenue.total_cmp(&a.revenue));
    let (orders_by_state, orders_payment_only) = crate::api::by_state(&r.orders_by_state().await?);
    let alerts = r
        .alerts(
            &AlertFilter::default(),
            PageRequest {
                limit: ALERTS,
                offset: 0,
            },
        )
        .await?;
    let at_risk = r
        .inventory_risks(
            &RiskFilter {
                at_risk: Some(true),
                ..RiskFilter::default()
            },
            PageRequest {
                limit: AT_RISK,
                offset: 0,
            },
        )
        .await?;
    Ok(StoreFigures {
        revenue_today: totals.revenue,
        units_today: totals.units,
        sales_today: totals.sales,
        returns_today: totals.returns,
        per_minute: minutes
            .into_iter()
            .map(|b| MinutePoint {
                t: b.window_start.timestamp_millis(),
                revenue: b.revenue,
                sales: b.sales,
            })
            .collect(),
        top_cities: cities
            .into_iter()
            .map(|c| RankedRow {
                rank: c.rank,
                label: format!("{}, {}", c.city, c.country),
                revenue: c.revenue,
                units: c.units,
            })
            .collect(),
        top_sellers: sellers
            .into_iter()
            .take(TOP as usize)
            .zip(1..)
            .map(|(s, rank)| RankedRow {
                rank,
                label: format!("{} ({})", s.seller_name, s.country),
                revenue: s.revenue,
                units: s.units,
            })
            .collect(),
        orders_by_state,
        orders_payment_only,
        alerts: alerts.items.into_iter().map(Into::into).collect(),
        stock_at_risk: at_risk.items.into_iter().map(Into::into).collect(),
    })
}
