//! Fraud alerts with the payments that tripped them (ADR 0025): each raised once per rule, key
//! and window; the same alerts are rows of `/alerts` (kind `fraud`, subject `rule:key`).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use retail_sink::read::orders::{FraudAlertFilter, FraudAlertRow};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::params::{Params, RawParams};
use super::reader;
use crate::server::ServeState;

/// A fraud alert.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FraudAlert {
    /// Id: the same as the `alerts` row's (UUID v5 of rule, key and the tripping payment).
    pub alert_id: String,
    /// The rule, e.g. `card_velocity`.
    pub rule: String,
    /// The card or customer it is about.
    pub key: String,
    /// Event time of the payment that tripped it.
    pub at: DateTime<Utc>,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// The payments that tripped it.
    pub payment_ids: Vec<String>,
    /// For a person.
    pub message: String,
    /// Wall-clock time the store recorded it.
    pub raised_at: DateTime<Utc>,
}

impl TryFrom<FraudAlertRow> for FraudAlert {
    type Error = ApiError;

    /// The store writes `payment_ids` as a JSON array of strings; anything else is a damaged
    /// row, answered with a 500 naming the alert (never an alert silently without its ids).
    fn try_from(r: FraudAlertRow) -> Result<Self, ApiError> {
        let payment_ids = serde_json::from_str(&r.payment_ids).map_err(|e| {
            ApiError::internal(
                &format!("reading fraud alert {}", r.alert_id),
                &format!(
                    "fraud_alerts.payment_ids is not a JSON array of strings ({e}): {}",
                    r.payment_ids
                ),
            )
        })?;
        Ok(Self {
            alert_id: r.alert_id,
            rule: r.rule,
            key: r.key,
            at: r.at,
            severity: r.severity,
            payment_ids,
            message: r.message,
            raised_at: r.raised_at,
        })
    }
}

/// A page of fraud alerts.
#[derive(Debug, Serialize, ToSchema)]
pub struct FraudAlertPage {
    /// The alerts, newest `at` first.
    pub items: Vec<FraudAlert>,
    /// The limit asked for.
    pub limit: u32,
    /// The offset asked for.
    pub offset: u64,
    /// The offset of the next page; `null` on the last page.
    pub next_offset: Option<u64>,
}

/// Fraud alerts, newest first, filtered.
#[utoipa::path(
    get,
    path = "/api/v1/fraud-alerts",
    tag = "orders",
    params(
        ("rule" = Option<String>, Query, pattern = "^[a-z_][a-z0-9_]{0,62}$", description = "Only this rule, e.g. card_velocity"),
        ("key" = Option<String>, Query, pattern = "^[^\\x00-\\x1f\\x7f]{1,256}$", description = "Only this card or customer"),
        ("from" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "RFC 3339: only alerts at or after it (event time)"),
        ("to" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "RFC 3339: only alerts before it; after `from`"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Rows per page, 1..=500; default 50"),
        ("offset" = Option<u64>, Query, minimum = 0, maximum = 1000000, description = "Rows to skip; default 0"),
    ),
    responses(
        (status = 200, description = "A page of fraud alerts", body = FraudAlertPage),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 503, description = "The store is not open yet", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(State(s): State<ServeState>, q: RawParams) -> ApiResult<Json<FraudAlertPage>> {
    let p = Params::parse(q, &["rule", "key", "from", "to", "limit", "offset"])?;
    let (from, to) = p.optional_range()?;
    let filter = FraudAlertFilter {
        rule: p.identifier("rule", "a rule name")?,
        key: p.id("key")?,
        from,
        to,
    };
    let page = p.page()?;
    let rows = reader(&s)?.fraud_alerts(&filter, page).await?;
    Ok(Json(FraudAlertPage {
        items: rows
            .items
            .into_iter()
            .map(FraudAlert::try_from)
            .collect::<Result<_, _>>()?,
        limit: rows.limit,
        offset: rows.offset,
        next_offset: rows.next_offset,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(payment_ids: &str) -> FraudAlertRow {
        let at = DateTime::from_timestamp(1_790_000_000, 0).expect("time");
        FraudAlertRow {
            alert_id: "5f0e4a6c-3b1d-5e7a-9c2b-0d1e2f3a4b5c".into(),
            rule: "card_velocity".into(),
            key: "card-1".into(),
            at,
            severity: "critical".into(),
            payment_ids: payment_ids.into(),
            message: "6 payments in 10 min".into(),
            raised_at: at,
        }
    }

    #[test]
    fn payment_ids_read_back_or_the_alert_is_a_500_naming_it() {
        let ok = FraudAlert::try_from(row(r#"["P-1","P-2"]"#)).expect("reads");
        assert_eq!(ok.payment_ids, ["P-1", "P-2"]);
        let e = FraudAlert::try_from(row("P-1,P-2")).expect_err("damaged");
        assert_eq!(e.status.as_u16(), 500);
        assert!(
            e.message.contains("5f0e4a6c-3b1d-5e7a-9c2b-0d1e2f3a4b5c"),
            "{}",
            e.message
        );
    }
}
