//! Where front ends put boot events: a queue to the writer, bounded by count and by
//! bytes ([`SinkLimits`]).
//!
//! Recording never blocks a DHCP reply or a download: when the queue is full (the store
//! cannot keep up, or a flood outruns it) events are dropped and counted, with a
//! rate-limited warning. A detail longer than `max_detail_bytes` is replaced by a note
//! of its length. Events a client can cause at will go through a rate gate first:
//! [`EventSink::record_from`] (reports, download attributions, served scripts: per MAC
//! and per client address) and [`EventSink::record_refusal`] (DHCP `ignored`: per MAC and for all
//! clients together). The writer drains everything still queued when the last sink is
//! dropped, so a graceful shutdown loses nothing.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::rate::Buckets;
use crate::boot::{BootEvent, EventText, Mac};
use crate::config::EventsConfig;
use crate::throttle::Throttle;

/// Bytes an event costs in the queue besides its detail (the struct, the MAC, stage…).
const EVENT_OVERHEAD: usize = 96;
/// At most one warning per limit per this long.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// How much the queue holds and how fast clients may add to it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SinkLimits {
    pub queue_events: usize,
    pub queue_bytes: usize,
    pub max_detail_bytes: usize,
    pub per_mac_per_minute: u32,
    pub per_peer_per_minute: u32,
    pub refusals_per_minute: u32,
}

impl SinkLimits {
    /// The limits of the `[events]` table.
    pub(crate) fn of(cfg: &EventsConfig) -> SinkLimits {
        SinkLimits {
            queue_events: cfg.queue_events,
            queue_bytes: cfg.queue_bytes,
            max_detail_bytes: cfg.max_detail_bytes,
            per_mac_per_minute: cfg.per_mac_per_minute,
            per_peer_per_minute: cfg.per_peer_per_minute,
            refusals_per_minute: cfg.refusals_per_minute,
        }
    }

    /// The defaults, with a queue of `capacity` events.
    #[cfg(test)]
    pub(crate) fn with_capacity(capacity: usize) -> SinkLimits {
        let d = crate::config::Config::defaults(None).events;
        SinkLimits {
            queue_events: capacity,
            ..SinkLimits::of(&d)
        }
    }
}

/// The counters of a sink, read at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SinkStats {
    /// Events dropped because the queue was full (by count or by bytes) or closed.
    pub dropped: u64,
    /// Events not recorded because their MAC or client was over its rate.
    pub rate_limited: u64,
    /// Details replaced because they were over `max_detail_bytes`.
    pub truncated: u64,
    /// Bytes queued now.
    pub queued_bytes: usize,
    /// Events queued since start.
    pub queued: u64,
    /// Events the writer committed.
    pub written: u64,
    /// Events the writer could not store (a batch that failed its tries).
    pub lost: u64,
}

#[derive(Debug)]
struct Shared {
    limits: SinkLimits,
    queued_bytes: AtomicUsize,
    queued: AtomicU64,
    written: AtomicU64,
    lost: AtomicU64,
    dropped: Throttle,
    rate_limited: Throttle,
    truncated: Throttle,
    per_mac: Buckets<Mac>,
    per_peer: Buckets<IpAddr>,
    refusals: Buckets<()>,
}

/// Where front ends send boot events. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::Sender<EventText>,
    shared: Arc<Shared>,
}

/// The receiving end, for [`super::write_events`].
#[derive(Debug)]
pub(crate) struct EventQueue {
    rx: mpsc::Receiver<EventText>,
    shared: Arc<Shared>,
}

impl EventQueue {
    /// The next event, waiting; `None` once every sink is gone and the queue is empty.
    pub(super) async fn recv(&mut self) -> Option<EventText> {
        let e = self.rx.recv().await?;
        self.shared.release(&e);
        Some(e)
    }

    /// Counts `n` events committed (`lost`: not stored after every try).
    pub(super) fn count_stored(&self, n: usize, lost: bool) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        let c = if lost {
            &self.shared.lost
        } else {
            &self.shared.written
        };
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// The next event if one is queued.
    pub(super) fn try_recv(&mut self) -> Option<EventText> {
        let e = self.rx.try_recv().ok()?;
        self.shared.release(&e);
        Some(e)
    }
}

impl Shared {
    fn release(&self, e: &EventText) {
        self.queued_bytes.fetch_sub(cost(e), Ordering::Relaxed);
    }
}

fn cost(e: &EventText) -> usize {
    e.detail.len() + EVENT_OVERHEAD
}

/// A sink and its queue holding at most `capacity` unwritten events (other limits at
/// their defaults).
#[cfg(test)]
pub(super) fn channel(capacity: usize) -> (EventSink, EventQueue) {
    channel_with(SinkLimits::with_capacity(capacity))
}

/// A sink and its queue with these limits.
pub(crate) fn channel_with(limits: SinkLimits) -> (EventSink, EventQueue) {
    let (tx, rx) = mpsc::channel(limits.queue_events.max(1));
    let t = |what| Throttle::new(what, LOG_EVERY);
    let shared = Arc::new(Shared {
        limits,
        queued_bytes: AtomicUsize::new(0),
        queued: AtomicU64::new(0),
        written: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        dropped: t(
            "boot event queue full (events.queue_events, events.queue_bytes): events dropped",
        ),
        rate_limited: t(
            "boot events over their rate (events.per_mac_per_minute, events.per_peer_per_minute, events.refusals_per_minute): not recorded",
        ),
        truncated: t("boot event detail over events.max_detail_bytes: replaced by its length"),
        per_mac: Buckets::new(limits.per_mac_per_minute),
        per_peer: Buckets::new(limits.per_peer_per_minute),
        refusals: Buckets::new(limits.refusals_per_minute),
    });
    (
        EventSink {
            tx,
            shared: shared.clone(),
        },
        EventQueue { rx, shared },
    )
}

impl EventSink {
    /// Queues an event; never waits.
    pub fn record(&self, event: BootEvent) {
        self.record_text(EventText::from(&event));
    }

    /// Queues an event a client asked for (a report, an attributed download) if neither
    /// its MAC nor the client `peer` is over its rate; `false` when it was not queued
    /// for that reason (counted).
    pub fn record_from(&self, event: BootEvent, peer: IpAddr) -> bool {
        self.record_attempt_from(event, None, peer)
    }

    /// [`EventSink::record_from`] for an event of a known boot attempt (its id carried
    /// in the event: nothing is looked up here).
    pub fn record_attempt_from(
        &self,
        event: BootEvent,
        attempt: Option<crate::boot::BootId>,
        peer: IpAddr,
    ) -> bool {
        let mut text = EventText::from(&event);
        text.attempt = attempt;
        self.record_text_from(text, Some(peer))
    }

    /// [`EventSink::record_from`] for an event whose detail is JSON text already (a
    /// served script's cached detail). Without a `peer` only the MAC's rate applies.
    pub fn record_text_from(&self, event: EventText, peer: Option<IpAddr>) -> bool {
        let s = &self.shared;
        // The peer's bucket first: a peer cycling through made-up MACs is stopped by it.
        if !peer.is_none_or(|p| s.per_peer.take(p)) || !s.per_mac.take(event.mac) {
            match peer {
                Some(p) => s.rate_limited.warn(&format_args!("{} from {p}", event.mac)),
                None => s.rate_limited.warn(&format_args!("{}", event.mac)),
            }
            return false;
        }
        self.record_text(event);
        true
    }

    /// Queues a refusal event (DHCP `ignored`) within the refusal rate, per MAC and for
    /// every client together, so a flood is summarised by the log line's count rather
    /// than written as one row per packet.
    pub fn record_refusal(&self, event: BootEvent) -> bool {
        let s = &self.shared;
        if !s.per_mac.take(event.mac) || !s.refusals.take(()) {
            s.rate_limited
                .warn(&format_args!("refusal of {}", event.mac));
            return false;
        }
        self.record(event);
        true
    }

    /// Queues an event whose detail is JSON text already; never waits.
    pub fn record_text(&self, mut event: EventText) {
        let s = &self.shared;
        if event.detail.len() > s.limits.max_detail_bytes {
            s.truncated.warn(&format_args!(
                "{} bytes for {} {}",
                event.detail.len(),
                event.mac,
                event.stage
            ));
            event.detail = format!("{{\"truncated\":{}}}", event.detail.len()).into();
        }
        let size = cost(&event);
        if s.queued_bytes.fetch_add(size, Ordering::Relaxed) + size > s.limits.queue_bytes {
            s.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            s.dropped
                .warn(&format_args!("{} bytes queued", s.limits.queue_bytes));
            return;
        }
        tracing::info!(mac = %event.mac, stage = %event.stage, via = %event.via, peer = ?event.peer, detail = %event.detail, "boot event");
        if let Err(e) = self.tx.try_send(event) {
            let e = e.into_inner();
            s.release(&e);
            s.dropped.warn(&format_args!(
                "{} events queued or the writer is gone",
                s.limits.queue_events
            ));
        } else {
            s.queued.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped so far (queue full or closed).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.total()
    }

    /// Every counter now.
    pub fn stats(&self) -> SinkStats {
        self.counters().stats()
    }

    /// The counters alone: holding them does not keep the queue open (the writer ends
    /// once every sink is gone).
    pub fn counters(&self) -> SinkCounters {
        SinkCounters(self.shared.clone())
    }
}

/// A sink's counters, readable after the sink is gone.
#[derive(Clone, Debug)]
pub struct SinkCounters(Arc<Shared>);

impl SinkCounters {
    /// Every counter now.
    pub fn stats(&self) -> SinkStats {
        let s = &self.0;
        SinkStats {
            dropped: s.dropped.total(),
            rate_limited: s.rate_limited.total(),
            truncated: s.truncated.total(),
            queued_bytes: s.queued_bytes.load(Ordering::Relaxed),
            queued: s.queued.load(Ordering::Relaxed),
            written: s.written.load(Ordering::Relaxed),
            lost: s.lost.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
#[path = "sink_tests.rs"]
mod tests;
