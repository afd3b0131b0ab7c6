//! Token buckets keyed by MAC or client address, for the events a client can make the
//! server record at will (boot reports, download attributions, DHCP refusals): each
//! key holds `per_minute` tokens, refilled evenly over a minute.
//!
//! The table is bounded: past [`MAX_KEYS`] keys, full buckets (keys quiet for a minute)
//! are forgotten, and if none is, the table starts over, which can only let a flood of
//! distinct keys through as far as the other limits (the per-peer bucket, the queue's
//! byte and count bounds) allow. Must not: allocate per call for a known key.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

/// Most keys one table tracks.
pub(super) const MAX_KEYS: usize = 16 * 1024;

/// One bucket per key.
#[derive(Debug)]
pub(super) struct Buckets<K> {
    per_minute: f64,
    origin: Instant,
    table: Mutex<HashMap<K, Bucket>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    /// Seconds since `origin` of the last refill.
    at: f64,
}

impl<K: Hash + Eq + Copy> Buckets<K> {
    /// Buckets of `per_minute` tokens each.
    pub(super) fn new(per_minute: u32) -> Buckets<K> {
        Buckets {
            per_minute: f64::from(per_minute.max(1)),
            origin: Instant::now(),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token from `key`'s bucket; `false` when it is empty.
    pub(super) fn take(&self, key: K) -> bool {
        self.take_at(key, self.origin.elapsed().as_secs_f64())
    }

    fn take_at(&self, key: K, now: f64) -> bool {
        let rate = self.per_minute / 60.0;
        let full = self.per_minute;
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_KEYS && !table.contains_key(&key) {
            table.retain(|_, b| b.tokens + (now - b.at) * rate < full);
            if table.len() >= MAX_KEYS {
                table.clear();
            }
        }
        let b = table.entry(key).or_insert(Bucket {
            tokens: full,
            at: now,
        });
        b.tokens = (b.tokens + (now - b.at) * rate).min(full);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_and_refills_over_a_minute() {
        let b: Buckets<u32> = Buckets::new(60);
        assert!((0..60).all(|_| b.take_at(1, 0.0)));
        assert!(!b.take_at(1, 0.0), "the 61st in the same instant");
        assert!(b.take_at(2, 0.0), "another key has its own bucket");
        assert!(b.take_at(1, 1.0), "one token a second");
        assert!(!b.take_at(1, 1.0));
        assert!(
            (0..60).all(|_| b.take_at(1, 600.0)),
            "refilled, never past full"
        );
        assert!(!b.take_at(1, 600.0));
    }

    #[test]
    fn the_table_stays_bounded() {
        let b: Buckets<usize> = Buckets::new(1);
        for k in 0..MAX_KEYS * 3 {
            b.take_at(k, 0.0);
        }
        assert!(b.table.lock().unwrap().len() <= MAX_KEYS);
    }
}
