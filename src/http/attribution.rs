//! The boots in progress, as the HTTP front end saw them: which MAC was last served a
//! script for which plan, and when. This is what tells a download that belongs to a
//! boot from one that merely names a MAC.
//!
//! The rule: **a blob download attributed to a MAC (`?mac=…&as=…`) is verified when that
//! MAC was served a script, within the attribution window (`http.attribution_window`,
//! default 30 minutes) before the download ended, for a plan that contains the blob's
//! digest.** Any other attributed download is still recorded, marked `unverified`, and
//! nothing that acts on boot events may take an unverified event as progress of a boot.
//!
//! In memory only (a restart forgets boots in progress: their downloads are then
//! unverified, their reports still verify by token). Bounded: past [`PRUNE_AT`] entries,
//! those older than the window are dropped, and if that is not enough, all. Each call is
//! O(plan size) under one lock; the caller passes the time in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::boot::{BootPlan, Digest, Mac};

/// Default of `http.attribution_window` (the config says "30m" too).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 60);

/// Entries beyond this are pruned.
const PRUNE_AT: usize = 100_000;

#[derive(Debug)]
struct Served {
    at: Instant,
    /// Every blob of the plan (kernel, initrds, root image).
    digests: Arc<[Digest]>,
}

/// Per-MAC last served plan. See the module documentation.
#[derive(Debug)]
pub struct Boots {
    window: Duration,
    served: Mutex<HashMap<Mac, Served>>,
}

impl Default for Boots {
    fn default() -> Boots {
        Boots::new(DEFAULT_WINDOW)
    }
}

/// The digests of every blob of `plan`.
pub fn plan_digests(plan: &BootPlan) -> Arc<[Digest]> {
    std::iter::once(&plan.kernel)
        .chain(&plan.initrds)
        .chain(&plan.rootfs)
        .map(|b| b.digest)
        .collect()
}

impl Boots {
    pub fn new(window: Duration) -> Boots {
        Boots {
            window,
            served: Mutex::new(HashMap::new()),
        }
    }

    /// `mac` was served a script for a plan with `digests` at `now`.
    pub fn served(&self, mac: Mac, digests: Arc<[Digest]>, now: Instant) {
        let mut m = self.served.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= PRUNE_AT {
            m.retain(|_, s| now.saturating_duration_since(s.at) < self.window);
            if m.len() >= PRUNE_AT {
                m.clear();
            }
        }
        m.insert(mac, Served { at: now, digests });
    }

    /// Whether a download of `digest` attributed to `mac` at `now` belongs to the boot
    /// `mac` is in.
    pub fn belongs(&self, mac: Mac, digest: Digest, now: Instant) -> bool {
        let m = self.served.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&mac).is_some_and(|s| {
            now.saturating_duration_since(s.at) < self.window && s.digests.contains(&digest)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_served_macs_blobs_within_the_window_belong() {
        let b = Boots::new(Duration::from_secs(60));
        let (mac, other) = (Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2]));
        let (k, r) = (Digest([1; 32]), Digest([2; 32]));
        let t0 = Instant::now();
        assert!(!b.belongs(mac, k, t0));
        b.served(mac, Arc::from([k, r]), t0);
        assert!(b.belongs(mac, k, t0 + Duration::from_secs(59)));
        assert!(b.belongs(mac, r, t0));
        assert!(!b.belongs(mac, Digest([3; 32]), t0), "not in the plan");
        assert!(!b.belongs(other, k, t0), "another MAC's plan");
        assert!(
            !b.belongs(mac, k, t0 + Duration::from_secs(60)),
            "window over"
        );
        // A newer plan replaces the old one.
        b.served(mac, Arc::from([r]), t0);
        assert!(!b.belongs(mac, k, t0));
    }
}
