//! Reads for fleet-wide views (the dashboard's fleet page): the newest event of every
//! MAC in one statement, along the `(mac, id)` index.

use super::events::event_row;
use super::{EventRow, Store, StoreError};

impl Store {
    /// The newest event of each MAC that has any (one row per MAC, in no set order).
    /// `GROUP BY mac` over the `(mac, id)` index finds each MAC's largest id, then each
    /// row is read by its primary key.
    pub async fn latest_event_per_mac(&self) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.id, e.at_ms, e.mac, e.stage, e.manifest, e.via, e.peer, e.detail, e.attempt \
             FROM boot_events e JOIN (SELECT MAX(id) AS id FROM boot_events GROUP BY mac) l \
             ON e.id = l.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_row).collect()
    }
}
