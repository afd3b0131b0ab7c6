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
pub mod retention;
mod sink;
pub mod timeline;
mod writer;

pub use follow::{Filter, Follower};
pub use hub::{Committed, Hub, Stored};
pub use sink::{EventQueue, EventSink, SinkLimits, SinkStats, channel, channel_with};
pub use writer::{COLLECT, MAX_BATCH, write_events};

/// Milliseconds since the Unix epoch, for event timestamps.
pub fn now_ms() -> i64 {
    crate::store::now_ms()
}

#[cfg(test)]
mod tests;
