//! Group commit: lease changes are durable before the reply that depends on them leaves.
//!
//! Receive loops hand a [`Pending`] (the changes plus the reply to send afterwards) to
//! one committer task. It takes everything queued, writes ALL of it in one store
//! transaction (one fsync), and only then sends the replies. While one commit runs the
//! next batch accumulates, so the batch size follows the load: one change at idle,
//! hundreds in a boot storm, and the fsync cost is shared. If the commit fails, the
//! replies are NOT sent (the clients retry): an ACK never promises a lease that a crash
//! could lose. Also converts the allocator's records to store rows and back.
//!
//! The committer sees the store only as a [`LeaseLog`] (which [`Store`] implements), so
//! tests run it against a log that fails on purpose. It must not retry a failed batch:
//! the replies are dropped and the clients' retransmissions bring the changes again.
//!
//! After a durable commit, and before its replies go out, the batch's changes are applied
//! to the shared [`LeaseView`] (what HTTP reads for `http.require_lease_match`): a client
//! that has its ACK finds its lease there, and a failed commit changes nothing in it.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use super::lease::{Lease, LeaseChange};
use super::socket::DhcpSocket;
use crate::boot::LeaseState;
use crate::lease_view::{LeaseUpdate, LeaseView};
use crate::metrics::Metrics;
use crate::store::{LeaseRow, LeaseWrite, Store, StoreError};

/// Where leases are made durable: the store, or a fake in tests.
pub trait LeaseLog: Send + Sync + 'static {
    /// Applies a batch of writes, all or nothing; `Ok` only once they are durable.
    fn write_leases(
        &self,
        writes: &[LeaseWrite],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every stored lease (read once, when the DHCP service starts).
    fn leases(&self) -> impl Future<Output = Result<Vec<LeaseRow>, StoreError>> + Send;
}

impl LeaseLog for Store {
    fn write_leases(
        &self,
        writes: &[LeaseWrite],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        Store::write_leases(self, writes)
    }

    fn leases(&self) -> impl Future<Output = Result<Vec<LeaseRow>, StoreError>> + Send {
        Store::leases(self)
    }
}

/// A reply that is sent once the commit it waits for is durable.
pub(super) trait Reply: Send + 'static {
    /// Sends it (best effort: UDP).
    fn send(self) -> impl Future<Output = ()> + Send;
}

/// A reply ready to go out of `sock`.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub sock: Arc<DhcpSocket>,
    pub bytes: Vec<u8>,
    pub to: SocketAddrV4,
    pub ifindex: u32,
    pub src: Ipv4Addr,
    /// The reply type's counter (`tabula_dhcp_replies_total`), counted once sent.
    pub sent: Counter,
}

impl Outgoing {
    /// Sends, logging (not failing) on error: UDP replies are best effort.
    pub(super) async fn send(self) {
        if let Err(e) = self
            .sock
            .send(&self.bytes, self.to, self.ifindex, self.src)
            .await
        {
            tracing::debug!(to = %self.to, error = %e, "DHCP reply not sent");
        } else {
            self.sent.inc();
        }
    }
}

impl Reply for Outgoing {
    fn send(self) -> impl Future<Output = ()> + Send {
        Outgoing::send(self)
    }
}

/// Changes to persist, then (maybe) a reply to send.
#[derive(Debug)]
pub(super) struct Pending<R = Outgoing> {
    pub changes: Vec<LeaseChange>,
    pub reply: Option<R>,
}

/// Largest number of pendings folded into one transaction.
const MAX_BATCH: usize = 4096;

/// Runs until every sender is dropped, committing and sending what is queued; each
/// durable batch is applied to `view` before its replies are sent.
pub(super) async fn run<L: LeaseLog, R: Reply>(
    log: L,
    view: Arc<LeaseView>,
    mut rx: mpsc::Receiver<Pending<R>>,
    metrics: Metrics,
) {
    let mut batch: Vec<Pending<R>> = Vec::with_capacity(256);
    let mut writes: Vec<LeaseWrite> = Vec::with_capacity(256);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        writes.extend(batch.iter().flat_map(|p| p.changes.iter().map(to_write)));
        let ok = match log.write_leases(&writes).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, leases = writes.len(), "cannot persist leases: their ACKs are not sent");
                false
            }
        };
        tracing::trace!(
            pendings = batch.len(),
            writes = writes.len(),
            "lease batch committed"
        );
        if ok {
            let m = metrics.dhcp();
            m.commits.inc();
            #[allow(clippy::cast_precision_loss)] // at most MAX_BATCH pendings' changes
            m.commit_batch.observe(writes.len() as f64);
        }
        writes.clear();
        if ok {
            view.apply(batch.iter().flat_map(|p| p.changes.iter().map(to_update)));
        }
        for p in batch.drain(..) {
            if ok && let Some(r) = p.reply {
                r.send().await;
            }
        }
    }
}

fn ms(t: SystemTime) -> i64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The store row of an allocator change.
pub(super) fn to_write(c: &LeaseChange) -> LeaseWrite {
    match c {
        LeaseChange::Upsert(l) => LeaseWrite::Upsert(LeaseRow {
            address: l.ip,
            mac: l.mac,
            state: l.state,
            expires_ms: ms(l.expires),
        }),
        LeaseChange::Remove(ip) => LeaseWrite::Remove(*ip),
    }
}

/// What a durable change means for the [`LeaseView`].
pub(super) fn to_update(c: &LeaseChange) -> LeaseUpdate {
    match c {
        LeaseChange::Upsert(l) if l.state == LeaseState::Bound => LeaseUpdate::Bound {
            mac: l.mac,
            ip: l.ip,
            expires: l.expires,
        },
        LeaseChange::Upsert(l) => LeaseUpdate::Ended { ip: l.ip },
        LeaseChange::Remove(ip) => LeaseUpdate::Ended { ip: *ip },
    }
}

/// The allocator record of a stored row.
pub(super) fn from_row(r: &LeaseRow) -> Lease {
    Lease {
        ip: r.address,
        mac: r.mac,
        state: r.state,
        expires: UNIX_EPOCH + Duration::from_millis(u64::try_from(r.expires_ms).unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::boot::Mac;

    /// A lease log whose first `fail` writes fail; reports every attempt.
    struct FlakyLog {
        fail: Mutex<usize>,
        durable: Mutex<Vec<LeaseWrite>>,
        attempts: mpsc::UnboundedSender<usize>,
    }

    impl LeaseLog for Arc<FlakyLog> {
        async fn write_leases(&self, writes: &[LeaseWrite]) -> Result<(), StoreError> {
            let failed = {
                let mut fail = self.fail.lock().unwrap();
                let failed = *fail > 0;
                *fail = fail.saturating_sub(1);
                failed
            };
            if !failed {
                self.durable.lock().unwrap().extend_from_slice(writes);
            }
            let _ = self.attempts.send(writes.len());
            if failed {
                return Err(StoreError::Sql(sqlx::Error::Io(std::io::Error::other(
                    "disk full (injected)",
                ))));
            }
            Ok(())
        }

        async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
            Ok(Vec::new())
        }
    }

    /// A reply that records its number when sent.
    struct Ack(u8, mpsc::UnboundedSender<u8>);

    impl Reply for Ack {
        async fn send(self) {
            let _ = self.1.send(self.0);
        }
    }

    fn bind(n: u8) -> Vec<LeaseChange> {
        vec![LeaseChange::Upsert(Lease {
            ip: Ipv4Addr::new(10, 0, 0, n),
            mac: Mac([2, 0, 0, 0, 0, n]),
            state: LeaseState::Bound,
            expires: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        })]
    }

    #[tokio::test]
    async fn a_failed_commit_sends_no_ack_and_the_next_one_does() {
        let (attempts_tx, mut attempts) = mpsc::unbounded_channel();
        let log = Arc::new(FlakyLog {
            fail: Mutex::new(1),
            durable: Mutex::new(Vec::new()),
            attempts: attempts_tx,
        });
        let (sent_tx, mut sent) = mpsc::unbounded_channel();
        let (tx, rx) = mpsc::channel(16);
        // Queued before the committer starts, so both land in its first batch.
        for n in [1, 2] {
            tx.send(Pending {
                changes: bind(n),
                reply: Some(Ack(n, sent_tx.clone())),
            })
            .await
            .unwrap();
        }
        let view = Arc::new(LeaseView::default());
        let committer = tokio::spawn(run(log.clone(), view.clone(), rx, Metrics::default()));
        assert_eq!(attempts.recv().await, Some(2), "one batch of two writes");
        assert!(log.durable.lock().unwrap().is_empty());
        assert!(view.is_empty(), "a failed commit binds nothing in the view");

        tx.send(Pending {
            changes: bind(3),
            reply: Some(Ack(3, sent_tx.clone())),
        })
        .await
        .unwrap();
        tx.send(Pending {
            changes: Vec::new(),
            reply: None,
        })
        .await
        .unwrap();
        assert_eq!(sent.recv().await, Some(3), "the next commit's ACK goes out");
        // Its lease is in the view (applied before the ACK was sent).
        let b = view.bound(Mac([2, 0, 0, 0, 0, 3])).expect("in the view");
        assert_eq!(b.ip, Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(view.len(), 1);
        drop(tx);
        committer.await.unwrap();
        drop(sent_tx);
        // Nothing else was ever sent: the failed batch's ACKs were dropped, not delayed.
        assert_eq!(sent.recv().await, None);
        let durable = log.durable.lock().unwrap().clone();
        assert_eq!(durable, bind(3).iter().map(to_write).collect::<Vec<_>>());
    }

    #[test]
    fn row_round_trip() {
        let l = Lease {
            ip: Ipv4Addr::new(10, 0, 0, 5),
            mac: Mac([2, 0, 0, 0, 0, 1]),
            state: LeaseState::Declined,
            expires: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        };
        let LeaseWrite::Upsert(row) = to_write(&LeaseChange::Upsert(l)) else {
            panic!("upsert expected")
        };
        assert_eq!(from_row(&row), l);
    }
}
