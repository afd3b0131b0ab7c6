//! The API's JSON read back into the store's row types, where those have no serde form
//! of their own: a boot event as `tabula events --json` prints it ([`event_row`], the
//! inverse of [`crate::events::json`]) and a lease as `tabula lease list --json` prints
//! it ([`Lease`]). Pure.

use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;

use crate::boot::{BootEvent, BootStage, Digest, EventDetail, LeaseState, Mac, Via};
use crate::store::{EventRow, LeaseRow};

/// An event's JSON, as [`crate::events::json`] writes it.
#[derive(Debug, Deserialize)]
struct EventJson {
    id: i64,
    at_ms: i64,
    mac: Mac,
    stage: String,
    manifest: Option<Digest>,
    via: Via,
    peer: Option<IpAddr>,
    detail: serde_json::Value,
    /// Absent from servers older than migration 0009, and for events of no attempt.
    #[serde(default)]
    attempt: Option<String>,
}

/// The row of an event's JSON; its detail is typed by its stage, as the store reads it.
pub(crate) fn event_row(v: serde_json::Value) -> Result<EventRow, String> {
    let e: EventJson = serde_json::from_value(v).map_err(|e| format!("an event: {e}"))?;
    let stage: BootStage = e
        .stage
        .parse()
        .map_err(|_| format!("an event of unknown stage {:?}", e.stage))?;
    Ok(EventRow {
        id: e.id,
        attempt: e.attempt,
        event: BootEvent {
            at_ms: e.at_ms,
            mac: e.mac,
            manifest: e.manifest,
            via: e.via,
            peer: e.peer,
            detail: EventDetail::from_value(stage, e.detail),
        },
    })
}

/// A lease's JSON (`active` is the server's view at the time; the printer decides by
/// its own clock, as the local CLI does).
#[derive(Debug, Deserialize)]
pub(crate) struct Lease {
    address: Ipv4Addr,
    mac: Mac,
    state: LeaseState,
    expires_ms: i64,
}

impl From<Lease> for LeaseRow {
    fn from(l: Lease) -> LeaseRow {
        LeaseRow {
            address: l.address,
            mac: l.mac,
            state: l.state,
            expires_ms: l.expires_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{Report, ScriptSent};

    #[test]
    fn events_read_back_as_they_were_written() {
        let mac: Mac = "52:54:00:00:00:01".parse().unwrap();
        let rows = [
            EventRow {
                id: 7,
                attempt: Some("00112233aabbccdd".to_string()),
                event: BootEvent {
                    at_ms: 1_700_000_000_123,
                    mac,
                    manifest: Some(Digest::of(b"m")),
                    via: Via::Http,
                    peer: Some("10.0.0.5".parse().unwrap()),
                    detail: EventDetail::ScriptSent(ScriptSent::default()),
                },
            },
            EventRow {
                id: 8,
                attempt: None,
                event: BootEvent {
                    at_ms: 1,
                    mac,
                    manifest: None,
                    via: Via::Http,
                    peer: None,
                    detail: EventDetail::Booted(Report::default()),
                },
            },
        ];
        for r in rows {
            assert_eq!(event_row(crate::events::json(&r)).unwrap(), r);
        }
        assert!(event_row(serde_json::json!({"id": 1})).is_err());
    }
}
