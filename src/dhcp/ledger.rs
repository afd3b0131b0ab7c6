//! The per-MAC "loader delivered" ledger that makes a chainload loop impossible.
//!
//! The rule, in one sentence: **a MAC that was handed a loader within the last
//! [`LOADER_WINDOW`] gets its iPXE script, never the loader again.** DHCP marks a MAC when
//! it hands out a loader (ACK in full mode, proxy ACK on port 4011 in proxy mode); the
//! daemon also [`confirm`](LoaderLedger::confirm)s it from a finished TFTP transfer,
//! whose path names the MAC (`<mac>/<loader>`, see `tftp::TransferEvent::delivered_to`).
//!
//! A TFTP path is only a claim (any host can ask for `<mac>/undionly.kpxe`), so **a
//! finished transfer moves the window only when DHCP named a loader to that MAC within
//! the window** (in any reply: an ACK, which also marks, or an OFFER, which does not —
//! in proxy mode a client that never asks on port 4011 boots from the OFFER and is
//! marked only by its transfer), measured from that reply: it then starts or restarts the
//! window at the transfer's end. A transfer naming a MAC that DHCP named no loader to
//! marks nothing, so it cannot change what DHCP hands that MAC; its boot event is
//! recorded as `unverified`. The loader's name is not compared (DHCP records the MAC).
//!
//! The ledger only stores timestamps
//! that the caller passes in: it reads no clock, opens no socket and touches no store
//! (state is in memory; after a restart a machine may get the loader once more, which is
//! one extra chainload, not a loop). Shared behind a `Mutex`: each call is O(1). With
//! several servers on one store, [`super::FleetLedger`] shares the marks through the
//! store, so a client moving between servers does not loop either.

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

/// One MAC's marks.
#[derive(Clone, Copy, Debug)]
struct Mark {
    /// When a DHCP reply last named it a loader (OFFER or ACK).
    named: Instant,
    /// When its window started (an ACK with a loader, or a confirmed TFTP delivery).
    since: Option<Instant>,
}

impl Mark {
    fn within(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.named) < LOADER_WINDOW
            || self
                .since
                .is_some_and(|t| now.saturating_duration_since(t) < LOADER_WINDOW)
    }
}

/// Per-MAC loader hand-out times. See the module documentation.
#[derive(Debug, Default)]
pub struct LoaderLedger {
    delivered: Mutex<HashMap<Mac, Mark>>,
}

impl LoaderLedger {
    /// An empty ledger.
    pub fn new() -> LoaderLedger {
        LoaderLedger::default()
    }

    /// Records that DHCP handed `mac` a loader at `now` (opens its window).
    pub fn mark(&self, mac: Mac, now: Instant) {
        self.update(mac, now, Some(now));
    }

    /// Records that a DHCP reply named `mac` a loader at `now` without marking it (an
    /// OFFER): a TFTP delivery may then confirm it.
    pub fn named(&self, mac: Mac, now: Instant) {
        self.update(mac, now, None);
    }

    fn update(&self, mac: Mac, now: Instant, since: Option<Instant>) {
        let mut map = self.lock();
        if map.len() >= PRUNE_AT {
            map.retain(|_, m| m.within(now));
        }
        let m = map.entry(mac).or_insert(Mark {
            named: now,
            since: None,
        });
        m.named = now;
        if since.is_some() {
            m.since = since;
        }
    }

    /// Records that another server opened `mac`'s window at `since` (read from the
    /// store by [`super::FleetLedger`]); a later window of its own is kept.
    pub fn adopt(&self, mac: Mac, since: Instant) {
        let mut map = self.lock();
        let m = map.entry(mac).or_insert(Mark {
            named: since,
            since: None,
        });
        m.named = m.named.max(since);
        m.since = Some(m.since.map_or(since, |t| t.max(since)));
    }

    /// A TFTP transfer of `<mac>/<loader>` finished at `now`: (re)starts `mac`'s window
    /// if a DHCP reply named it a loader within [`LOADER_WINDOW`] before `now`, and says
    /// whether one did (the transfer belongs to a boot in progress).
    pub fn confirm(&self, mac: Mac, now: Instant) -> bool {
        let mut map = self.lock();
        match map.get_mut(&mac) {
            Some(m) if now.saturating_duration_since(m.named) < LOADER_WINDOW => {
                m.since = Some(m.since.map_or(now, |t| t.max(now)));
                true
            }
            _ => false,
        }
    }

    /// Whether `mac` got its loader within [`LOADER_WINDOW`] before `now`.
    pub fn recently_delivered(&self, mac: Mac, now: Instant) -> bool {
        self.lock().get(&mac).is_some_and(|m| {
            m.since
                .is_some_and(|t| now.saturating_duration_since(t) < LOADER_WINDOW)
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Mac, Mark>> {
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

    #[test]
    fn a_tftp_path_alone_marks_nothing() {
        let l = LoaderLedger::new();
        let (mac, other) = (Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2]));
        let t0 = Instant::now();
        // Nobody handed `other` a loader: a transfer naming it is not its boot.
        assert!(!l.confirm(other, t0));
        assert!(!l.recently_delivered(other, t0));
        // Handed by DHCP, then delivered a minute later: the window restarts there.
        l.mark(mac, t0);
        let t1 = t0 + Duration::from_secs(60);
        assert!(l.confirm(mac, t1));
        assert!(l.recently_delivered(mac, t0 + LOADER_WINDOW + Duration::from_secs(30)));
        assert!(!l.recently_delivered(mac, t1 + LOADER_WINDOW));
        // Once the hand-out's window is over, transfers cannot extend it any more.
        assert!(!l.confirm(mac, t0 + LOADER_WINDOW));
        assert!(!l.recently_delivered(mac, t1 + LOADER_WINDOW));

        // An OFFER naming a loader (proxy mode, no ACK on 4011) opens no window itself,
        // but lets the transfer that follows open it.
        let p = Mac([2, 0, 0, 0, 0, 3]);
        l.named(p, t0);
        assert!(!l.recently_delivered(p, t0));
        assert!(l.confirm(p, t1));
        assert!(l.recently_delivered(p, t1 + LOADER_WINDOW - Duration::from_secs(1)));
        // A later OFFER does not close an open window.
        l.named(p, t1);
        assert!(l.recently_delivered(p, t1));
    }
}
