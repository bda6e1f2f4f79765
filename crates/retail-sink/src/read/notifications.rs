//! What the read side gives of the notification outbox (ADR 0026, [`crate::outbox`]): the
//! `notification_deliveries` rows, one per alert and channel, with the kind and subject of
//! their alert. Plain rows: the API's shapes (and their OpenAPI schemas) are `retail-serve`'s.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::outbox::state;

/// Every state a delivery can be in ([`crate::outbox::state`]).
pub const DELIVERY_STATES: [&str; 4] = [state::PENDING, state::SENT, state::DEAD, state::SUPPRESSED];

/// Which deliveries a list returns; every field that is `Some` must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Only this channel.
    pub channel: Option<String>,
    /// Only this state, one of [`DELIVERY_STATES`].
    pub state: Option<String>,
    /// Only the deliveries of this alert (a UUID; one that is not matches nothing).
    pub alert_id: Option<String>,
}

impl DeliveryFilter {
    /// The alert id as a UUID: `Ok(None)` when not filtered, `Err(())` when it is not a UUID
    /// (no delivery can match it). Both stores compare the parsed id, so any spelling the
    /// `uuid` crate reads (upper case, no hyphens) finds the same rows.
    pub(crate) fn alert_uuid(&self) -> Result<Option<Uuid>, ()> {
        self.alert_id
            .as_deref()
            .map(|s| Uuid::parse_str(s).map_err(|_| ()))
            .transpose()
    }
}

/// A row of `notification_deliveries` with its alert's kind and subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    /// Id (UUID v5 of alert id and channel), hyphenated lower case: the idempotency key
    /// receivers get.
    pub delivery_id: String,
    /// The alert, hyphenated lower case.
    pub alert_id: String,
    /// The alert's kind (from `alerts`).
    pub kind: String,
    /// What the alert is about (from `alerts`).
    pub subject: String,
    /// The channel.
    pub channel: String,
    /// `pending`, `sent`, `dead` or `suppressed`.
    pub state: String,
    /// Attempts made so far (a claim counts one).
    pub attempts: i64,
    /// The alert's event time.
    pub alert_at: DateTime<Utc>,
    /// Wall-clock time of the next attempt; `None` once final.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed, if one did.
    pub last_error: Option<String>,
    /// For a suppressed delivery, the delivery it repeats.
    pub duplicate_of: Option<String>,
    /// Wall-clock time the row was written (with its alert).
    pub created_at: DateTime<Utc>,
    /// Wall-clock time it reached its final state; `None` while pending.
    pub finished_at: Option<DateTime<Utc>>,
}
