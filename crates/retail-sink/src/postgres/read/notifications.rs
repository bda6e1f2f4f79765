//! The notification outbox's query of [`PostgresReader`]: `notification_deliveries` joined to
//! `alerts` for the alert's kind and subject. Filters are bound as nullable parameters
//! (`$n IS NULL OR ...`), so the query is one prepared statement whatever is set.

use super::{limit_plus_one, PostgresReader};
use crate::read::notifications::{DeliveryFilter, DeliveryRow};
use crate::read::{Page, PageRequest};
use crate::Result;

impl PostgresReader {
    pub(super) async fn delivery_list(
        &self,
        f: &DeliveryFilter,
        page: PageRequest,
    ) -> Result<Page<DeliveryRow>> {
        let Ok(alert_id) = f.alert_uuid() else {
            return Ok(Page::from_rows(Vec::new(), page));
        };
        let (limit, offset) = limit_plus_one(page);
        // Ties by delivery id: uuid order is the order of its lower-case hyphenated text, as
        // SQLite sorts it, so both stores page alike.
        let rows = self
            .query(
                "SELECT FROM notification_deliveries",
                "SELECT d.delivery_id::text, d.alert_id::text, a.kind, a.subject, d.channel, d.state, \
                   d.attempts::bigint, d.alert_at, d.next_attempt_at, d.last_error, d.duplicate_of::text, \
                   d.created_at, d.finished_at \
                 FROM notification_deliveries d JOIN alerts a ON a.alert_id = d.alert_id \
                 WHERE ($1::text IS NULL OR d.channel = $1) AND ($2::text IS NULL OR d.state = $2) \
                   AND ($3::uuid IS NULL OR d.alert_id = $3) \
                 ORDER BY d.alert_at DESC, d.delivery_id LIMIT $4 OFFSET $5",
                &[&f.channel, &f.state, &alert_id, &limit, &offset],
            )
            .await?;
        let rows = rows
            .iter()
            .map(|r| DeliveryRow {
                delivery_id: r.get(0),
                alert_id: r.get(1),
                kind: r.get(2),
                subject: r.get(3),
                channel: r.get(4),
                state: r.get(5),
                attempts: r.get(6),
                alert_at: r.get(7),
                next_attempt_at: r.get(8),
                last_error: r.get(9),
                duplicate_of: r.get(10),
                created_at: r.get(11),
                finished_at: r.get(12),
            })
            .collect();
        Ok(Page::from_rows(rows, page))
    }
}
