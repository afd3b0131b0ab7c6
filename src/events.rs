//! The boot-event pipeline: front ends [`EventSink::record`] events without waiting; one
//! writer task ([`write_events`]) batches them into the state store.
//!
//! Recording never blocks a DHCP reply or a download: when the queue is full (the store
//! cannot keep up) events are dropped and counted, with a warning. The writer drains
//! everything still queued when the last sink is dropped, so a graceful shutdown loses
//! nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::boot::{BootEvent, EventText};
use crate::store::Store;

/// Where front ends send boot events. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::Sender<EventText>,
    dropped: Arc<AtomicU64>,
}

/// The receiving end, for [`write_events`].
#[derive(Debug)]
pub struct EventQueue {
    rx: mpsc::Receiver<EventText>,
}

/// A sink and its queue holding at most `capacity` unwritten events.
pub fn channel(capacity: usize) -> (EventSink, EventQueue) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        EventSink {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        EventQueue { rx },
    )
}

impl EventSink {
    /// Queues an event; never waits.
    pub fn record(&self, event: BootEvent) {
        self.record_text(EventText::from(&event));
    }

    /// Queues an event whose detail is JSON text already; never waits.
    pub fn record_text(&self, event: EventText) {
        tracing::info!(mac = %event.mac, stage = %event.stage, detail = %event.detail, "boot event");
        if self.tx.try_send(event).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    "boot event queue full or closed: events dropped"
                );
            }
        }
    }

    /// Events dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// How long the writer lets events gather after the first one of a batch.
///
/// Every commit costs an `fsync` (the store runs `synchronous = FULL`) and a few
/// round trips to SQLite's thread; writing whatever happened to be queued made batches
/// of ~30 events during a script storm and the writer took a third of the server's CPU
/// (perf, 27k req/s on one core). Waiting 10 ms makes batches of hundreds at that rate
/// and costs a lone event 10 ms before it is stored, which nobody can see: front ends
/// never wait for the store, and an event still queued is lost on `kill -9` either way.
pub const COLLECT: std::time::Duration = std::time::Duration::from_millis(10);
/// Most events written in one transaction.
pub const MAX_BATCH: usize = 4096;

/// Writes queued events to the store in batches until every sink is gone.
pub async fn write_events(store: Store, mut queue: EventQueue) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.rx.recv().await {
        batch.push(first);
        // Not waiting on the queue meanwhile also spares each `record` a wake-up.
        tokio::time::sleep(COLLECT).await;
        while batch.len() < MAX_BATCH {
            match queue.rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let mut tries = 0;
        while let Err(e) = store.append_texts(&batch).await {
            tries += 1;
            if tries >= 3 {
                tracing::error!(error = %e, lost = batch.len(), "cannot store boot events");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100 * tries)).await;
        }
        batch.clear();
    }
}

/// Milliseconds since the Unix epoch, for event timestamps.
pub fn now_ms() -> i64 {
    crate::store::now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{BootStage, Mac};

    fn event(i: i64) -> EventText {
        EventText {
            at_ms: i,
            mac: "52:54:00:00:00:01".parse::<Mac>().unwrap(),
            stage: BootStage::ScriptSent,
            manifest: None,
            detail: format!("{{\"n\":{i}}}"),
        }
    }

    use crate::store::tests::{Fixture, on_both_backends};

    on_both_backends!(
        a_burst_is_stored_whole_and_in_order_when_the_sinks_go,
        a_lone_event_is_stored_without_waiting_for_more,
    );

    async fn a_burst_is_stored_whole_and_in_order_when_the_sinks_go(f: Fixture) {
        let store = f.store;
        let (sink, queue) = channel(65_536);
        let writer = tokio::spawn(write_events(store.clone(), queue));
        // More than one batch, recorded faster than any batch is written.
        let n = 3 * MAX_BATCH as i64 + 17;
        for i in 0..n {
            sink.record_text(event(i));
        }
        assert_eq!(sink.dropped(), 0);
        drop(sink);
        writer.await.unwrap();
        let rows = store.events(None, 0, n + 10).await.unwrap();
        let got: Vec<i64> = rows.iter().map(|r| r.event.at_ms).collect();
        assert_eq!(got, (0..n).collect::<Vec<_>>());
    }

    async fn a_lone_event_is_stored_without_waiting_for_more(f: Fixture) {
        let store = f.store;
        let (sink, queue) = channel(16);
        let _writer = tokio::spawn(write_events(store.clone(), queue));
        sink.record_text(event(7));
        // The sink stays open: the event must land on its own, after the collect window.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while store.last_event_id().await.unwrap() == 0 {
            assert!(tokio::time::Instant::now() < deadline, "event never stored");
            tokio::time::sleep(COLLECT).await;
        }
        let rows = store.events(None, 0, 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].event.at_ms, 7);
        drop(sink);
    }
}
