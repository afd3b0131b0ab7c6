//! The addresses DHCP has bound, as the other front ends may read them: one address per
//! MAC with its expiry, written by the DHCP lease committer after each durable commit
//! (so a lease is in the view before its ACK leaves, and never one that could be lost),
//! and read by the HTTP front end to bind requests for a MAC to that MAC's address
//! (`http.require_lease_match`, `src/http/lease_match.rs`).
//!
//! The daemon makes one and hands it to both, as it does [`crate::health::Health`], so
//! DHCP and HTTP never import each other. Only `dhcp.mode = "full"` fills it: in proxy
//! mode or with DHCP off tabula leases nothing and the view stays empty.
//!
//! Must not: query the store (a read is a hash lookup under a read lock, cheap enough for
//! every request), or grow past the served pools (entries are keyed by address too: a
//! new owner of an address replaces the old one). Expiry is not swept: a reader compares
//! [`BoundLease::expires`] with its own clock.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::RwLock;
use std::time::SystemTime;

use crate::boot::Mac;

/// A MAC's bound address, until `expires`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoundLease {
    pub ip: Ipv4Addr,
    pub expires: SystemTime,
}

/// One durable change to the view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseUpdate {
    /// `mac` holds `ip` until `expires` (a new lease or a renewal).
    Bound {
        mac: Mac,
        ip: Ipv4Addr,
        expires: SystemTime,
    },
    /// Whoever held `ip` holds it no longer (released, declined, removed).
    Ended { ip: Ipv4Addr },
}

#[derive(Debug, Default)]
struct Inner {
    by_mac: HashMap<Mac, BoundLease>,
    by_ip: HashMap<Ipv4Addr, Mac>,
}

impl Inner {
    fn end(&mut self, ip: Ipv4Addr) {
        if let Some(owner) = self.by_ip.remove(&ip)
            && self.by_mac.get(&owner).is_some_and(|b| b.ip == ip)
        {
            self.by_mac.remove(&owner);
        }
    }

    fn apply(&mut self, u: LeaseUpdate) {
        match u {
            LeaseUpdate::Bound { mac, ip, expires } => {
                // The address's previous owner, and the MAC's previous address, are gone.
                if self.by_ip.get(&ip).is_some_and(|m| *m != mac) {
                    self.end(ip);
                }
                if let Some(old) = self.by_mac.get(&mac).map(|b| b.ip)
                    && old != ip
                {
                    self.end(old);
                }
                self.by_ip.insert(ip, mac);
                self.by_mac.insert(mac, BoundLease { ip, expires });
            }
            LeaseUpdate::Ended { ip } => self.end(ip),
        }
    }
}

/// The bound leases. See the module documentation.
#[derive(Debug, Default)]
pub struct LeaseView {
    inner: RwLock<Inner>,
}

impl LeaseView {
    /// Applies durable changes, in order, under one write lock.
    pub fn apply(&self, updates: impl IntoIterator<Item = LeaseUpdate>) {
        let mut w = self.inner.write().unwrap_or_else(|p| p.into_inner());
        for u in updates {
            w.apply(u);
        }
    }

    /// `mac`'s address, if DHCP bound it one (expired or not: the caller compares).
    pub fn bound(&self, mac: Mac) -> Option<BoundLease> {
        let r = self.inner.read().unwrap_or_else(|p| p.into_inner());
        r.by_mac.get(&mac).copied()
    }

    /// How many MACs have an entry.
    pub fn len(&self) -> usize {
        let r = self.inner.read().unwrap_or_else(|p| p.into_inner());
        r.by_mac.len()
    }

    /// Whether no MAC has an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn bound(mac: u8, ip: u8, secs: u64) -> LeaseUpdate {
        LeaseUpdate::Bound {
            mac: Mac([2, 0, 0, 0, 0, mac]),
            ip: Ipv4Addr::new(10, 0, 0, ip),
            expires: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    fn ip_of(v: &LeaseView, mac: u8) -> Option<u8> {
        v.bound(Mac([2, 0, 0, 0, 0, mac])).map(|b| b.ip.octets()[3])
    }

    #[test]
    fn one_address_per_mac_and_one_owner_per_address() {
        let v = LeaseView::default();
        v.apply([bound(1, 10, 100), bound(2, 11, 100)]);
        assert_eq!((ip_of(&v, 1), ip_of(&v, 2)), (Some(10), Some(11)));
        // A renewal moves the expiry; a move to another address drops the old one.
        v.apply([bound(1, 10, 200)]);
        let b = v.bound(Mac([2, 0, 0, 0, 0, 1])).unwrap();
        assert_eq!(b.expires, SystemTime::UNIX_EPOCH + Duration::from_secs(200));
        v.apply([bound(1, 12, 300)]);
        assert_eq!(ip_of(&v, 1), Some(12));
        // Address 10 is free now: ending it touches nobody.
        v.apply([LeaseUpdate::Ended {
            ip: Ipv4Addr::new(10, 0, 0, 10),
        }]);
        assert_eq!(ip_of(&v, 1), Some(12));
        // Another MAC taking an address takes it from its previous owner.
        v.apply([bound(3, 11, 100)]);
        assert_eq!((ip_of(&v, 2), ip_of(&v, 3)), (None, Some(11)));
        v.apply([LeaseUpdate::Ended {
            ip: Ipv4Addr::new(10, 0, 0, 12),
        }]);
        assert_eq!(ip_of(&v, 1), None);
        assert_eq!(v.len(), 1);
    }
}
