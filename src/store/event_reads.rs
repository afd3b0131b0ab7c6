//! Stored events as readers see them, for events the writer has just stored (the hub
//! hands them out without reading them back).

use super::{EventRow, StoreError};
use crate::boot::{BootEvent, EventDetail, EventText};

impl EventRow {
    /// The row for an event the writer just stored with `id` (its detail parsed).
    pub fn from_text(id: i64, e: &EventText) -> Result<EventRow, StoreError> {
        Ok(EventRow {
            id,
            attempt: e.attempt.map(crate::attempt::id_text),
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

impl super::Store {
    /// The events of attempt `b`, oldest first, at most `limit`: those that carry its id;
    /// when none does (events stored before migration 0009), those of its MAC in its
    /// time window that carry no attempt.
    pub async fn attempt_events(
        &self,
        b: &super::BootRow,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let linked = self.events_of_attempt(&b.id, 0, limit).await?;
        if !linked.is_empty() {
            return Ok(linked);
        }
        let mac: crate::boot::Mac = b.mac.parse().map_err(|_| StoreError::Corrupt {
            what: "boot attempt MAC",
            value: b.mac.clone(),
        })?;
        let end = b.ended_ms.unwrap_or(b.deadline_ms);
        self.unlinked_events_between(mac, b.started_ms, end, limit)
            .await
    }
}
