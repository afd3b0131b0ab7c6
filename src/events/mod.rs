//! Boot events, from front end to subscribers: front ends [`EventSink::record`] without
//! waiting; one writer ([`write_events`]) stores them in batches; after each commit the
//! stored events, with the ids the store gave them, go to the [`Hub`]; in-process
//! consumers (the API's event stream, webhooks, the rollout controller) read them with a
//! [`Follower`], which also catches up from the store, so it never misses or repeats an
//! event; [`retention`] deletes old rows in the background.
//!
//! Must not: block a front end (recording is `try_send`), or make a reader load the whole
//! history (every read is bounded).

mod follow;
mod hub;
mod rate;
pub(crate) mod retention;
mod sink;
pub(crate) mod spool;
#[cfg(test)]
mod spool_writer_tests;
pub(crate) mod timeline;
mod writer;

pub(crate) use follow::{Filter, Follower};
pub(crate) use hub::Hub;
pub(crate) use sink::{EventSink, SinkLimits, SinkStats, channel_with};
#[cfg(test)]
pub(crate) use writer::write_events;
pub(crate) use writer::write_events_spooled;
#[cfg(test)]
use {
    sink::channel,
    writer::{COLLECT, MAX_BATCH},
};

/// Milliseconds since the Unix epoch, for event timestamps.
pub(crate) fn now_ms() -> i64 {
    crate::store::now_ms()
}

/// One stored event as the JSON object `tabula events --json` prints and the API's event
/// stream sends: one schema for every reader. `attempt` (the boot attempt's id) is
/// there only when the event has one.
pub(crate) fn json(row: &crate::store::EventRow) -> serde_json::Value {
    let ev = &row.event;
    let mut v = serde_json::json!({
        "id": row.id, "at_ms": ev.at_ms, "mac": ev.mac.to_string(), "stage": ev.stage().as_str(),
        "manifest": ev.manifest.map(|d| d.to_string()), "via": ev.via.as_str(),
        "peer": ev.peer.map(|p| p.to_string()), "detail": ev.detail,
    });
    if let (Some(a), Some(o)) = (&row.attempt, v.as_object_mut()) {
        o.insert("attempt".into(), a.clone().into());
    }
    v
}

#[cfg(test)]
mod tests;
