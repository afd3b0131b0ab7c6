//! Where front ends put boot events: a bounded queue to the writer.
//!
//! Recording never blocks a DHCP reply or a download: when the queue is full (the store
//! cannot keep up) events are dropped and counted, with a warning. The writer drains
//! everything still queued when the last sink is dropped, so a graceful shutdown loses
//! nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::boot::{BootEvent, EventText};

/// Where front ends send boot events. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::Sender<EventText>,
    dropped: Arc<AtomicU64>,
}

/// The receiving end, for [`super::write_events`].
#[derive(Debug)]
pub struct EventQueue {
    pub(super) rx: mpsc::Receiver<EventText>,
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
        tracing::info!(mac = %event.mac, stage = %event.stage, via = %event.via, peer = ?event.peer, detail = %event.detail, "boot event");
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
