//! The notification outbox's query of [`SqliteReader`]: `notification_deliveries` joined to
//! `alerts` for the alert's kind and subject. Ids are hyphenated lower-case text and times
//! fixed-width RFC 3339 text, so ordering by them orders as PostgreSQL's uuid and timestamptz.

use super::{opt_text, opt_ts, page_params, ts, Param, SqliteReader};
use crate::read::notifications::{DeliveryFilter, DeliveryRow};
use crate::read::{Page, PageRequest};
use crate::Result;

impl SqliteReader {
    pub(super) async fn delivery_list(
        &self,
        f: &DeliveryFilter,
        page: PageRequest,
    ) -> Result<Page<DeliveryRow>> {
        let Ok(alert_id) = f.alert_uuid() else {
            return Ok(Page::from_rows(Vec::new(), page));
        };
        let sql = "SELECT d.delivery_id, d.alert_id, a.kind, a.subject, d.channel, d.state, d.attempts, \
                     d.alert_at, d.next_attempt_at, d.last_error, d.duplicate_of, d.created_at, d.finished_at \
                   FROM notification_deliveries d JOIN alerts a ON a.alert_id = d.alert_id \
                   WHERE (?1 IS NULL OR d.channel = ?1) AND (?2 IS NULL OR d.state = ?2) \
                     AND (?3 IS NULL OR d.alert_id = ?3) \
                   ORDER BY d.alert_at DESC, d.delivery_id LIMIT ?4 OFFSET ?5";
        let [limit, offset] = page_params(page);
        let params = vec![
            opt_text(f.channel.as_deref()),
            opt_text(f.state.as_deref()),
            alert_id.map_or(Param::Null, |id| Param::Text(id.hyphenated().to_string())),
            limit,
            offset,
        ];
        let rows = self
            .rows(
                "SELECT FROM notification_deliveries",
                sql.to_owned(),
                params,
                |r| {
                    Ok(DeliveryRow {
                        delivery_id: r.get(0)?,
                        alert_id: r.get(1)?,
                        kind: r.get(2)?,
                        subject: r.get(3)?,
                        channel: r.get(4)?,
                        state: r.get(5)?,
                        attempts: r.get(6)?,
                        alert_at: ts(r, 7)?,
                        next_attempt_at: opt_ts(r, 8)?,
                        last_error: r.get(9)?,
                        duplicate_of: r.get(10)?,
                        created_at: ts(r, 11)?,
                        finished_at: opt_ts(r, 12)?,
                    })
                },
            )
            .await?;
        Ok(Page::from_rows(rows, page))
    }
}
