//! Bounded reads of the boot history: the newest N events without loading the table.

use super::{EventRow, Store, StoreError};
use crate::boot::Mac;

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
}
