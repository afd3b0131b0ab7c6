//! Counted, rate-limited log lines for limits that a hostile or broken client can hit
//! thousands of times a second: every hit is counted, at most one line per interval is
//! written, and that line says how many hits it stands for.
//!
//! Must not: allocate or take a lock per hit (a flood must stay cheap to refuse).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One limit's counter and log budget.
#[derive(Debug)]
pub struct Throttle {
    /// What the log line says, e.g. "TFTP per-client transfer limit hit".
    what: &'static str,
    every: Duration,
    origin: Instant,
    hits: AtomicU64,
    /// Hits already covered by a log line.
    logged: AtomicU64,
    /// When the last line was written, in ms since `origin` (plus one; 0 = never).
    last_ms: AtomicU64,
}

impl Throttle {
    /// A throttle writing at most one line per `every`.
    pub fn new(what: &'static str, every: Duration) -> Throttle {
        Throttle {
            what,
            every,
            origin: Instant::now(),
            hits: AtomicU64::new(0),
            logged: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    /// Counts one hit; returns how many hits the caller should log now (0: stay quiet).
    /// The first hit always logs.
    pub fn hit(&self) -> u64 {
        let total = self.hits.fetch_add(1, Ordering::Relaxed) + 1;
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        let last = self.last_ms.load(Ordering::Relaxed);
        let every = u64::try_from(self.every.as_millis()).unwrap_or(u64::MAX);
        if last != 0 && now.saturating_sub(last) < every {
            return 0;
        }
        if self
            .last_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return 0; // another thread logs this interval
        }
        let before = self.logged.swap(total, Ordering::Relaxed);
        total.saturating_sub(before)
    }

    /// Counts one hit and logs a warning with `detail` when the budget allows.
    pub fn warn(&self, detail: &dyn std::fmt::Display) {
        let n = self.hit();
        if n > 0 {
            tracing::warn!(
                hits = n,
                total = self.total(),
                "{}: {} (at most one line per {} s)",
                self.what,
                detail,
                self.every.as_secs()
            );
        }
    }

    /// Every hit so far.
    pub fn total(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

/// A client-supplied string made safe for a log line: control characters (newlines,
/// escape sequences), quotes and backslashes escaped, at most `max` characters kept.
pub(crate) fn escaped(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max) + 2);
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_once_per_interval_and_counts_every_hit() {
        let t = Throttle::new("test limit", Duration::from_secs(3600));
        assert_eq!(t.hit(), 1);
        for _ in 0..10_000 {
            assert_eq!(t.hit(), 0);
        }
        assert_eq!(t.total(), 10_001);
        let t = Throttle::new("test limit", Duration::ZERO);
        assert_eq!(t.hit(), 1);
        for _ in 0..5 {
            t.hits.fetch_add(1, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(t.hit(), 6);
    }

    #[test]
    fn control_characters_never_reach_a_log_line() {
        let e = escaped("boot\n2026-01-01 INFO forged\x1b[31mred\u{7}", 200);
        assert!(!e.chars().any(char::is_control), "{e}");
        assert!(e.contains("\\n") && e.contains("\\u{1b}"), "{e}");
        assert_eq!(escaped(&"x".repeat(500), 10).chars().count(), 11);
    }
}
