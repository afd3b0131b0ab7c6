//! Bounded reads of the boot history: the newest N events without loading the table.

use super::{EventRow, Store, StoreError};
use crate::boot::{BootEvent, EventDetail, EventText, Mac};

impl EventRow {
    /// The row for an event the writer just stored with `id` (its detail parsed).
    pub fn from_text(id: i64, e: &EventText) -> Result<EventRow, StoreError> {
        Ok(EventRow {
            id,
            event: BootEvent {
                at_ms: e.at_ms,
                mac: e.mac,
                manifest: e.manifest,
                via: e.via,
                peer: e.peer,
                // As the store reads it back: a detail that does not fit its stage's
                // schema is kept as it is (EventDetail::Unparsed).
                detail: EventDetail::from_value(
                    e.stage,
                    serde_json::from_str(&e.detail).map_err(|_| StoreError::Corrupt {
                        what: "event detail",
                        value: e.detail.to_string(),
                    })?,
                ),
            },
        })
    }
}

impl Store {
    /// The newest `limit` events (optionally of one MAC), returned oldest first. Reads
    /// backwards along the primary key (or the `(mac, id)` index), so it costs `limit`
    /// rows however long the history is.
    pub async fn recent_events(
        &self,
        mac: Option<Mac>,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let newest: Option<i64> = match mac {
            Some(m) => {
                sqlx::query_scalar(
                    "SELECT id FROM boot_events WHERE mac = $1 ORDER BY id DESC LIMIT 1 OFFSET $2",
                )
                .bind(m.to_string())
                .bind(limit.max(1) - 1)
                .fetch_optional(&self.pool)
                .await?
            }
            None => {
                sqlx::query_scalar("SELECT id FROM boot_events ORDER BY id DESC LIMIT 1 OFFSET $1")
                    .bind(limit.max(1) - 1)
                    .fetch_optional(&self.pool)
                    .await?
            }
        };
        if limit <= 0 {
            return Ok(Vec::new());
        }
        // The id of the limit-th newest event (or none: fewer events than that exist).
        let after = newest.map_or(0, |id| id - 1);
        self.events(mac, after, limit).await
    }

    /// Deletes up to `max_rows` of the oldest events stored before `before_ms`; returns
    /// how many went. Retention calls it until it returns less than `max_rows`, so one
    /// call never holds the write lock for long.
    pub async fn delete_events_before(
        &self,
        before_ms: i64,
        max_rows: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "DELETE FROM boot_events WHERE id IN \
             (SELECT id FROM boot_events WHERE at_ms < $1 ORDER BY id LIMIT $2)",
        )
        .bind(before_ms)
        .bind(max_rows)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}
