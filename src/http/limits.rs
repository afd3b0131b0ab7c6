//! The data plane's resource limits and their counters: deadlines for a request head,
//! a body and every answer, and the connection caps ([`Limits::admit`]). Every hit is
//! counted and logged through a [`Throttle`] (at most one line per [`LOG_EVERY`]);
//! [`Limits::stats`] reads the counters (for metrics on the API listener).
//!
//! Admission at the caps, chosen so that one greedy peer (or a slowloris) cannot lock
//! a new machine out:
//! - a peer holding `max_connections_per_client` connections is refused its next one;
//! - below `max_connections` in total, everyone else is admitted;
//! - at or past `max_connections`, only a peer's *first* connection is admitted, into a
//!   headroom of `max_connections / 8` (at least 1) more; past that, every new
//!   connection is refused.
//!
//! A refused connection gets a one-shot `503` (one non-blocking write, never waited
//! for) and is closed. Must not: take a lock or allocate per request (admission is
//! per connection).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::HttpConfig;
use crate::metrics::Metrics;
use crate::throttle::Throttle;

/// At most one log line per limit per this long.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// What the data plane allows, and how often each limit was hit.
#[derive(Debug)]
pub struct Limits {
    /// An idle keep-alive connection is closed after this long.
    pub idle_timeout: Duration,
    /// A whole request head must arrive within this long of its first byte.
    pub head_timeout: Duration,
    /// A whole request body must arrive within this long of the end of its head.
    pub body_timeout: Duration,
    /// An answer that makes no progress (a client that stops reading) for this long is
    /// cut; a small buffered answer must be written whole within it.
    pub send_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    open: AtomicUsize,
    peers: Mutex<HashMap<IpAddr, usize>>,
    pub(super) head_timeouts: Throttle,
    pub(super) body_timeouts: Throttle,
    pub(super) send_timeouts: Throttle,
    pub(super) refused_total: Throttle,
    pub(super) refused_per_client: Throttle,
    pub(super) accept_errors: Throttle,
    pub(super) bad_requests: Throttle,
    /// Requests, responses and bytes sent ([`Limits::metered`]; unregistered otherwise).
    metrics: Metrics,
}

/// The counters of [`Limits`], read at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LimitStats {
    pub open_connections: usize,
    pub head_timeouts: u64,
    pub body_timeouts: u64,
    pub send_timeouts: u64,
    /// Connections refused at `max_connections` (plus the new-peer headroom).
    pub refused_total: u64,
    /// Connections refused at `max_connections_per_client`.
    pub refused_per_client: u64,
    /// Failed `accept` calls (EMFILE, ENFILE, …), each followed by a back-off.
    pub accept_errors: u64,
    /// Heads refused as malformed or ambiguous (400, 411, 413, 431).
    pub bad_requests: u64,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Admitted {
    limits: Arc<Limits>,
    peer: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.limits.open.fetch_sub(1, Ordering::Relaxed);
        let mut peers = self.limits.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = peers.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                peers.remove(&self.peer);
            }
        }
    }
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections` (and the new-peer headroom) reached.
    Total,
    /// The peer holds `max_connections_per_client` already.
    PerClient,
}

impl Limits {
    /// The limits of `cfg`.
    pub fn new(cfg: &HttpConfig) -> Limits {
        let t = |what| Throttle::new(what, LOG_EVERY);
        Limits {
            idle_timeout: cfg.idle_timeout,
            head_timeout: cfg.head_timeout,
            body_timeout: cfg.body_timeout,
            send_timeout: cfg.send_timeout,
            max_connections: cfg.max_connections,
            max_connections_per_client: cfg.max_connections_per_client,
            open: AtomicUsize::new(0),
            peers: Mutex::new(HashMap::new()),
            head_timeouts: t("HTTP request head not complete within http.head_timeout"),
            body_timeouts: t("HTTP request body not complete within http.body_timeout"),
            send_timeouts: t("HTTP client stopped reading (http.send_timeout)"),
            refused_total: t("HTTP connection refused (http.max_connections)"),
            refused_per_client: t("HTTP connection refused (http.max_connections_per_client)"),
            accept_errors: t("HTTP accept failed, backing off"),
            bad_requests: t("HTTP request refused as malformed"),
            metrics: Metrics::default(),
        }
    }

    /// The same limits, counting requests, responses and bytes into `metrics`.
    pub fn metered(mut self, metrics: Metrics) -> Limits {
        self.metrics = metrics;
        self
    }

    /// Counts a request by its route name and the status it was answered with
    /// ([`super::meter`]).
    pub(super) fn requested(&self, route: &str, status: Option<[u8; 3]>) {
        let h = self.metrics.http();
        h.requests.get(route, super::meter::label(status)).inc();
    }

    /// Counts `n` bytes handed to a client's socket; `out` starting a response head
    /// notes its status for the request ([`super::meter`]).
    pub(super) fn sent(&self, out: &[u8], n: usize) {
        let h = self.metrics.http();
        h.sent_bytes.inc_by(u64::try_from(n).unwrap_or(u64::MAX));
        super::meter::head_written(out);
    }

    /// How many connections past `max_connections` a new peer may still open.
    pub fn headroom(&self) -> usize {
        (self.max_connections / 8).max(1)
    }

    /// Admits a connection from `peer`, or says which cap refuses it (counted).
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, Refused> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let held = peers.get(&peer).copied().unwrap_or(0);
        let open = self.open.load(Ordering::Relaxed);
        let refused = if held >= self.max_connections_per_client {
            Some(Refused::PerClient)
        } else if open >= self.max_connections
            && (held > 0 || open >= self.max_connections + self.headroom())
        {
            Some(Refused::Total)
        } else {
            None
        };
        if let Some(r) = refused {
            drop(peers);
            match r {
                Refused::PerClient => self
                    .refused_per_client
                    .warn(&format_args!("{peer} holds {held} connections already")),
                Refused::Total => self
                    .refused_total
                    .warn(&format_args!("{open} open, refusing {peer}")),
            }
            return Err(r);
        }
        *peers.entry(peer).or_insert(0) += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(Admitted {
            limits: self.clone(),
            peer,
        })
    }

    /// Counts a send timeout and returns the error that ends the connection.
    pub fn send_timed_out(&self) -> std::io::Error {
        self.send_timeouts.warn(&"answer cut");
        std::io::Error::new(std::io::ErrorKind::TimedOut, "client stopped reading")
    }

    /// The counters now.
    pub fn stats(&self) -> LimitStats {
        LimitStats {
            open_connections: self.open.load(Ordering::Relaxed),
            head_timeouts: self.head_timeouts.total(),
            body_timeouts: self.body_timeouts.total(),
            send_timeouts: self.send_timeouts.total(),
            refused_total: self.refused_total.total(),
            refused_per_client: self.refused_per_client.total(),
            accept_errors: self.accept_errors.total(),
            bad_requests: self.bad_requests.total(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_client: usize) -> Arc<Limits> {
        let mut cfg = crate::config::Config::defaults(None).http;
        cfg.max_connections = total;
        cfg.max_connections_per_client = per_client;
        Arc::new(Limits::new(&cfg))
    }

    #[test]
    fn a_new_peer_gets_in_at_the_cap_and_a_greedy_one_does_not() {
        let l = limits(16, 8);
        let ip = |n: u8| IpAddr::from([127, 0, 0, n]);
        let mut held: Vec<Admitted> = (0..8).map(|_| l.admit(ip(1)).unwrap()).collect();
        assert_eq!(l.admit(ip(1)).unwrap_err(), Refused::PerClient);
        held.extend((0..8).map(|_| l.admit(ip(2)).unwrap()));
        assert_eq!(l.stats().open_connections, 16);
        // At the cap: a peer with connections is refused, a new one gets the headroom (2).
        assert_eq!(l.admit(ip(2)).unwrap_err(), Refused::PerClient);
        let a = l.admit(ip(3)).unwrap();
        assert_eq!(l.admit(ip(3)).unwrap_err(), Refused::Total);
        let b = l.admit(ip(4)).unwrap();
        assert_eq!(l.admit(ip(5)).unwrap_err(), Refused::Total);
        drop((a, b));
        held.truncate(4);
        assert_eq!(l.stats().open_connections, 4);
        assert!(l.admit(ip(1)).is_ok(), "its places are freed");
        let s = l.stats();
        assert_eq!((s.refused_per_client, s.refused_total), (2, 2));
    }
}
