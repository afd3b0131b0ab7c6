//! Admission control for root-image streams: at most `max_streams` are sent at once; the
//! rest wait in one first-come-first-served queue, holding their connection open, until a
//! slot frees. A machine is told to wait, never dropped: only a queue already holding
//! `max_queue` machines, or a wait longer than `max_wait`, is answered 503 with
//! `Retry-After` (the initramfs retries a failed fetch, see `images/initramfs/init`).
//!
//! Why: with N machines pulling an S-byte root over a link of rate R, fair sharing
//! finishes every one of them near N·S/R; k slots finish the first k after k·S/R, the
//! median near N·S/(2R), and the last at the same N·S/R. The link stays full as long
//! as k streams can fill it, so mean time-to-booted halves at no cost to the makespan.
//!
//! The queue is `tokio::sync::Semaphore`, which hands permits out in the order they were
//! asked for. Counters ([`AdmissionStats`]) are plain atomics for the metrics endpoint.
//! No I/O here: the blob path decides what to write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use crate::config::AdmissionConfig;

/// What an admission decided.
#[derive(Debug)]
pub enum Admitted {
    /// Send now; the slot is freed when this is dropped.
    Go(Option<OwnedSemaphorePermit>),
    /// Answer 503 with `Retry-After: seconds`.
    Busy { retry_after: u64 },
}

/// Counters for the metrics issue: read with [`Admission::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AdmissionStats {
    /// Streams being sent now (admitted, not yet finished).
    pub active: u64,
    /// Machines waiting for a slot now.
    pub queued: u64,
    /// Streams admitted since start (with or without waiting).
    pub admitted_total: u64,
    /// Of those, how many had to wait.
    pub waited_total: u64,
    /// Sum of the waits, in milliseconds.
    pub wait_ms_total: u64,
    /// Longest single wait, in milliseconds.
    pub wait_ms_max: u64,
    /// Answered 503 (queue full or waited too long).
    pub busy_total: u64,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    admitted: AtomicU64,
    waited: AtomicU64,
    wait_ms: AtomicU64,
    wait_ms_max: AtomicU64,
    busy: AtomicU64,
}

/// The shared gate; cheap to clone.
#[derive(Clone, Debug)]
pub struct Admission {
    cfg: AdmissionConfig,
    slots: Option<Arc<Semaphore>>,
    counters: Arc<Counters>,
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(AdmissionConfig::default())
    }
}

impl Admission {
    pub fn new(cfg: AdmissionConfig) -> Admission {
        Admission {
            cfg,
            slots: (cfg.max_streams > 0).then(|| Arc::new(Semaphore::new(cfg.max_streams))),
            counters: Arc::default(),
        }
    }

    /// Waits for a slot in arrival order, or says to come back later.
    pub async fn admit(&self) -> Admitted {
        let c = &self.counters;
        let Some(slots) = &self.slots else {
            c.admitted.fetch_add(1, Ordering::Relaxed);
            return Admitted::Go(None);
        };
        if let Ok(p) = slots.clone().try_acquire_owned() {
            c.admitted.fetch_add(1, Ordering::Relaxed);
            return Admitted::Go(Some(p));
        }
        let queued = c.queued.fetch_add(1, Ordering::Relaxed);
        if usize::try_from(queued).unwrap_or(usize::MAX) >= self.cfg.max_queue {
            c.queued.fetch_sub(1, Ordering::Relaxed);
            c.busy.fetch_add(1, Ordering::Relaxed);
            return Admitted::Busy {
                retry_after: self.retry_after(),
            };
        }
        let started = Instant::now();
        let got = tokio::time::timeout(self.cfg.max_wait, slots.clone().acquire_owned()).await;
        c.queued.fetch_sub(1, Ordering::Relaxed);
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match got {
            Ok(Ok(p)) => {
                c.admitted.fetch_add(1, Ordering::Relaxed);
                c.waited.fetch_add(1, Ordering::Relaxed);
                c.wait_ms.fetch_add(ms, Ordering::Relaxed);
                c.wait_ms_max.fetch_max(ms, Ordering::Relaxed);
                Admitted::Go(Some(p))
            }
            // Timed out (the semaphore is never closed).
            _ => {
                c.busy.fetch_add(1, Ordering::Relaxed);
                Admitted::Busy {
                    retry_after: self.retry_after(),
                }
            }
        }
    }

    /// A hint for `Retry-After`: a few seconds, more when the queue is long.
    fn retry_after(&self) -> u64 {
        let queued = self.counters.queued.load(Ordering::Relaxed);
        let per_slot = queued / u64::try_from(self.cfg.max_streams.max(1)).unwrap_or(1);
        per_slot.clamp(2, 60)
    }

    /// The counters now.
    pub fn stats(&self) -> AdmissionStats {
        let c = &self.counters;
        let active = self.slots.as_ref().map_or(0, |s| {
            u64::try_from(self.cfg.max_streams.saturating_sub(s.available_permits())).unwrap_or(0)
        });
        AdmissionStats {
            active,
            queued: c.queued.load(Ordering::Relaxed),
            admitted_total: c.admitted.load(Ordering::Relaxed),
            waited_total: c.waited.load(Ordering::Relaxed),
            wait_ms_total: c.wait_ms.load(Ordering::Relaxed),
            wait_ms_max: c.wait_ms_max.load(Ordering::Relaxed),
            busy_total: c.busy.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn gate(streams: usize, queue: usize, wait_ms: u64) -> Admission {
        Admission::new(AdmissionConfig {
            max_streams: streams,
            max_queue: queue,
            max_wait: Duration::from_millis(wait_ms),
        })
    }

    #[tokio::test]
    async fn waiters_are_admitted_in_arrival_order() {
        let a = gate(1, 10, 5_000);
        let Admitted::Go(first) = a.admit().await else {
            panic!("first must go")
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..5u32 {
            let (g, tx) = (a.clone(), tx.clone());
            tokio::spawn(async move {
                let Admitted::Go(p) = g.admit().await else {
                    panic!("{i} refused")
                };
                tx.send(i).unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(p);
            });
            // Each waiter is queued before the next arrives.
            while a.stats().queued < u64::from(i) + 1 {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(a.stats().queued, 5);
        drop(first);
        let mut order = Vec::new();
        for _ in 0..5 {
            order.push(rx.recv().await.unwrap());
        }
        assert_eq!(order, [0, 1, 2, 3, 4]);
        let s = a.stats();
        assert_eq!((s.admitted_total, s.waited_total, s.busy_total), (6, 5, 0));
        assert_eq!(s.queued, 0);
    }

    #[tokio::test]
    async fn a_full_queue_or_a_long_wait_is_told_to_retry() {
        let a = gate(1, 1, 50);
        let Admitted::Go(_held) = a.admit().await else {
            panic!("first must go")
        };
        assert_eq!(a.stats().active, 1);
        let waiter = tokio::spawn({
            let a = a.clone();
            async move { a.admit().await }
        });
        while a.stats().queued < 1 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(a.admit().await, Admitted::Busy { retry_after: 2 }));
        assert!(matches!(
            waiter.await.unwrap(),
            Admitted::Busy { retry_after: 2.. }
        ));
        let s = a.stats();
        assert_eq!((s.busy_total, s.queued, s.admitted_total), (2, 0, 1));
    }

    #[tokio::test]
    async fn zero_streams_means_no_limit() {
        let a = gate(0, 0, 0);
        let mut held = Vec::new();
        for _ in 0..100 {
            match a.admit().await {
                Admitted::Go(p) => held.push(p),
                Admitted::Busy { .. } => panic!("refused with no limit"),
            }
        }
        assert_eq!(a.stats().admitted_total, 100);
    }
}
