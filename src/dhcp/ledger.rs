//! The per-MAC "loader delivered" ledger that makes a chainload loop impossible.
//!
//! The rule, in one sentence: **a MAC that was handed a loader within the last
//! [`LOADER_WINDOW`] gets its iPXE script, never the loader again.** DHCP marks a MAC when
//! it hands out a loader (ACK in full mode, proxy ACK on port 4011 in proxy mode); the
//! daemon also marks it from a finished TFTP transfer, whose path names the MAC
//! (`<mac>/<loader>`, see `tftp::TransferEvent::delivered_to`). The ledger only stores timestamps
//! that the caller passes in: it reads no clock, opens no socket and touches no store
//! (state is in memory; after a restart a machine may get the loader once more, which is
//! one extra chainload, not a loop). Shared behind a `Mutex`: each call is O(1).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::boot::Mac;

/// How long after a loader hand-out the same MAC is sent to its script instead.
/// Long enough for any loader to start and DHCP again (seconds), short enough that the
/// next cold boot of the machine goes through the loader again.
pub const LOADER_WINDOW: Duration = Duration::from_secs(300);

/// Entries beyond this are pruned (oldest state is simply forgotten).
const PRUNE_AT: usize = 100_000;

/// Per-MAC loader hand-out times. See the module documentation.
#[derive(Debug, Default)]
pub struct LoaderLedger {
    delivered: Mutex<HashMap<Mac, Instant>>,
}

impl LoaderLedger {
    /// An empty ledger.
    pub fn new() -> LoaderLedger {
        LoaderLedger::default()
    }

    /// Records that `mac` was given (or fetched) its loader at `now`.
    pub fn mark(&self, mac: Mac, now: Instant) {
        let mut map = self.lock();
        if map.len() >= PRUNE_AT {
            map.retain(|_, t| now.saturating_duration_since(*t) < LOADER_WINDOW);
        }
        map.insert(mac, now);
    }

    /// Whether `mac` got its loader within [`LOADER_WINDOW`] before `now`.
    pub fn recently_delivered(&self, mac: Mac, now: Instant) -> bool {
        self.lock()
            .get(&mac)
            .is_some_and(|t| now.saturating_duration_since(*t) < LOADER_WINDOW)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Mac, Instant>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.delivered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_opens_on_mark_and_closes_after() {
        let l = LoaderLedger::new();
        let mac = Mac([2, 0, 0, 0, 0, 1]);
        let t0 = Instant::now();
        assert!(!l.recently_delivered(mac, t0));
        l.mark(mac, t0);
        assert!(l.recently_delivered(mac, t0 + Duration::from_secs(2)));
        assert!(l.recently_delivered(mac, t0 + LOADER_WINDOW - Duration::from_millis(1)));
        assert!(!l.recently_delivered(mac, t0 + LOADER_WINDOW));
        assert!(!l.recently_delivered(Mac([2, 0, 0, 0, 0, 2]), t0));
    }
}
