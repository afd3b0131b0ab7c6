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

/// Writes queued events to the store in batches until every sink is gone.
pub async fn write_events(store: Store, mut queue: EventQueue) {
    let mut batch = Vec::with_capacity(256);
    while let Some(first) = queue.rx.recv().await {
        batch.push(first);
        while batch.len() < 256 {
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
