//! Stored events as readers see them, for events the writer has just stored (the hub
//! hands them out without reading them back).

use super::{EventRow, StoreError};
use crate::boot::{BootEvent, EventDetail, EventText};

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
