//! What the allocator needs when several servers write one store: learning a binding a
//! peer made (the store refused our write of that address), and telling reserved clients
//! (which every server answers) from dynamic ones (which only the allocation authority
//! answers).

use std::time::SystemTime;

use super::{Lease, LeaseState, LeaseTable, SlotState};
use crate::boot::Mac;

impl LeaseTable {
    /// Adopts a bound lease another server holds in the store: the address becomes
    /// `lease.mac`'s until `lease.expires`, and whoever this table thought held it loses
    /// it (its next REQUEST for it is NAKed, so its client starts over with a DISCOVER).
    /// Records that are not live bindings, or outside every subnet, are ignored.
    pub fn adopt(&mut self, lease: Lease, now: SystemTime) {
        if lease.state != LeaseState::Bound || lease.expires <= now {
            return;
        }
        let ip = u32::from(lease.ip);
        let Some(s) = self.subnet_index(lease.ip) else {
            return;
        };
        self.transition(
            ip,
            s,
            lease.mac,
            SlotState::Bound {
                expires: lease.expires,
            },
        );
        self.claim(lease.mac, ip);
    }

    /// Whether `mac` has a reserved address (config or inventory).
    pub fn is_reserved(&self, mac: Mac) -> bool {
        self.reserved_mac.contains_key(&mac)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use super::super::{LeaseTimers, NakReason, SubnetId};
    use super::*;
    use crate::config::{Reservation, Subnet};

    fn subnet() -> Subnet {
        Subnet {
            network: "10.9.0.0/24".parse().unwrap(),
            pools: vec![(Ipv4Addr::new(10, 9, 0, 10), Ipv4Addr::new(10, 9, 0, 20))],
            router: None,
            dns: Vec::new(),
            domain: None,
            lease_time: Duration::from_secs(600),
        }
    }

    #[test]
    fn an_adopted_binding_takes_the_address_from_the_local_loser() {
        let (a, b) = (Mac([2, 0, 0, 0, 0, 0xa]), Mac([2, 0, 0, 0, 0, 0xb]));
        let reserved = Mac([2, 0, 0, 0, 0, 0xc]);
        let res = [Reservation {
            mac: reserved,
            address: Ipv4Addr::new(10, 9, 0, 5),
            hostname: None,
        }];
        let mut t = LeaseTable::new(&[subnet()], &res, LeaseTimers::default());
        assert!(t.is_reserved(reserved) && !t.is_reserved(a));
        let now = SystemTime::now();
        let net = SubnetId(0);
        let ip = t.offer(net, b, None, now).unwrap();
        t.request(net, b, ip, now).expect("b bound locally");
        // The store says a peer bound it to `a` first.
        t.adopt(
            Lease {
                ip,
                mac: a,
                state: LeaseState::Bound,
                expires: now + Duration::from_secs(600),
            },
            now,
        );
        assert_eq!(t.lease_of(a, now).map(|l| l.ip), Some(ip));
        assert!(t.lease_of(b, now).is_none());
        assert_eq!(
            t.request(net, b, ip, now).unwrap_err(),
            NakReason::InUse(ip)
        );
        let other = t.offer(net, b, Some(ip), now).unwrap();
        assert_ne!(other, ip, "b is offered another address");
        // An expired record changes nothing.
        t.adopt(
            Lease {
                ip: other,
                mac: a,
                state: LeaseState::Bound,
                expires: now - Duration::from_secs(1),
            },
            now,
        );
        t.request(net, b, other, now)
            .expect("b binds the other address");
    }
}
