//! Group commit: lease changes are durable before the reply that depends on them leaves.
//!
//! Receive loops hand a [`Pending`] (the changes plus the reply to send afterwards) to
//! one committer task. It takes everything queued, writes ALL of it in one store
//! transaction (one fsync), and only then sends the replies. While one commit runs the
//! next batch accumulates, so the batch size follows the load: one change at idle,
//! hundreds in a boot storm, and the fsync cost is shared. If the commit fails, the
//! replies are NOT sent (the clients retry): an ACK never promises a lease that a crash
//! could lose. Also converts the allocator's records to store rows and back.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::lease::{Lease, LeaseChange};
use super::socket::DhcpSocket;
use crate::store::{LeaseRow, LeaseWrite, Store};

/// A reply ready to go out of `sock`.
#[derive(Debug)]
pub struct Outgoing {
    pub sock: Arc<DhcpSocket>,
    pub bytes: Vec<u8>,
    pub to: SocketAddrV4,
    pub ifindex: u32,
    pub src: Ipv4Addr,
}

impl Outgoing {
    /// Sends, logging (not failing) on error: UDP replies are best effort.
    pub async fn send(self) {
        if let Err(e) = self
            .sock
            .send(&self.bytes, self.to, self.ifindex, self.src)
            .await
        {
            tracing::debug!(to = %self.to, error = %e, "DHCP reply not sent");
        }
    }
}

/// Changes to persist, then (maybe) a reply to send.
#[derive(Debug)]
pub struct Pending {
    pub changes: Vec<LeaseChange>,
    pub reply: Option<Outgoing>,
}

/// Largest number of pendings folded into one transaction.
const MAX_BATCH: usize = 4096;

/// Runs until every sender is dropped, committing and sending what is queued.
pub async fn run(store: Store, mut rx: mpsc::Receiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(256);
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
        let ok = match store.write_leases(&writes).await {
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
        writes.clear();
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
pub fn to_write(c: &LeaseChange) -> LeaseWrite {
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

/// The allocator record of a stored row.
pub fn from_row(r: &LeaseRow) -> Lease {
    Lease {
        ip: r.address,
        mac: r.mac,
        state: r.state,
        expires: UNIX_EPOCH + Duration::from_millis(u64::try_from(r.expires_ms).unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{LeaseState, Mac};

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
