//! Which servers answer DHCP in full mode now: every `ha.heartbeat` the membership rows
//! are read and the live ones serving `dhcp=full` (alive as in `tabula server list`:
//! a beat younger than [`super::heartbeat::ALIVE_BEATS`] heartbeats, by the database's
//! clock) are published on a watch. DHCP balances reserved clients over that set
//! (`crate::dhcp` `balance`) and asks [`DhcpPeers::live`] for it, which says "no view"
//! once the last successful read is older than `ALIVE_BEATS` heartbeats (the store
//! unreachable): a stale set could name a dead owner forever.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::heartbeat::ALIVE_BEATS;
use crate::store::{MemberRow, Store};

/// One read of the live DHCP servers.
#[derive(Clone, Debug)]
pub struct PeerSet {
    pub ids: Arc<Vec<String>>,
    pub read_at: Instant,
}

/// The receiving end, handed to DHCP.
#[derive(Clone, Debug)]
pub struct DhcpPeers {
    rx: watch::Receiver<Option<PeerSet>>,
    max_age: Duration,
}

impl DhcpPeers {
    /// The live set as of the last read, if that read is recent enough.
    pub fn live(&self, now: Instant) -> Option<Arc<Vec<String>>> {
        let set = self.rx.borrow();
        let set = set.as_ref()?;
        (now.saturating_duration_since(set.read_at) <= self.max_age).then(|| set.ids.clone())
    }
}

/// The ids in `rows` alive at `now_ms` (database clock) and serving DHCP in full mode.
pub fn live_dhcp(rows: &[MemberRow], now_ms: i64, every: Duration) -> Vec<String> {
    let limit = i64::try_from((every * ALIVE_BEATS).as_millis()).unwrap_or(i64::MAX);
    rows.iter()
        .filter(|r| now_ms - r.heartbeat_ms < limit)
        .filter(|r| r.serves.split(',').any(|s| s == "dhcp=full"))
        .map(|r| r.id.clone())
        .collect()
}

/// Starts the reader; it stops with `stop`.
pub fn watch(store: Store, every: Duration, stop: CancellationToken) -> DhcpPeers {
    let (tx, rx) = watch::channel::<Option<PeerSet>>(None);
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            match store.members().await {
                Ok((rows, now)) => {
                    failing = false;
                    let ids = live_dhcp(&rows, now, every);
                    tx.send_if_modified(|cur| {
                        let changed = cur.as_ref().is_none_or(|c: &PeerSet| *c.ids != ids);
                        if changed {
                            tracing::info!(servers = ?ids, "DHCP servers alive on the store");
                        }
                        *cur = Some(PeerSet {
                            ids: Arc::new(ids),
                            read_at: Instant::now(),
                        });
                        changed
                    });
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "live DHCP servers not read");
                }
                Err(_) => {}
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    });
    DhcpPeers {
        rx,
        max_age: every * ALIVE_BEATS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, serves: &str, heartbeat_ms: i64) -> MemberRow {
        MemberRow {
            id: id.into(),
            instance: "i".into(),
            version: "0".into(),
            serves: serves.into(),
            api_url: None,
            started_ms: 0,
            heartbeat_ms,
        }
    }

    #[test]
    fn only_live_full_mode_dhcp_servers_count() {
        let rows = [
            row("a", "dhcp=full,tftp,http", 10_000),
            row("b", "dhcp=full,http", 7_500),
            row("dead", "dhcp=full", 6_000),
            row("proxy", "dhcp=proxy,tftp", 10_000),
            row("http-only", "http", 10_000),
        ];
        assert_eq!(
            live_dhcp(&rows, 10_000, Duration::from_secs(1)),
            ["a".to_string(), "b".to_string()]
        );
    }

    #[test]
    fn a_stale_view_is_no_view() {
        let (tx, rx) = watch::channel(None);
        let p = DhcpPeers {
            rx,
            max_age: Duration::from_secs(3),
        };
        let t0 = Instant::now();
        assert!(p.live(t0).is_none(), "not read yet");
        tx.send_replace(Some(PeerSet {
            ids: Arc::new(vec!["a".into()]),
            read_at: t0,
        }));
        assert_eq!(p.live(t0 + Duration::from_secs(3)).unwrap().len(), 1);
        assert!(p.live(t0 + Duration::from_millis(3001)).is_none());
    }
}
