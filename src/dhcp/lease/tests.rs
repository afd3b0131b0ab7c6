use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::boot::Mac;
use crate::config::{Reservation, Subnet};

const NET: SubnetId = SubnetId(0);

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn mac(n: u32) -> Mac {
    let b = n.to_be_bytes();
    Mac([0x52, 0x54, b[0], b[1], b[2], b[3]])
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, last)
}

fn subnet(first: u8, last: u8) -> Subnet {
    Subnet {
        network: "10.77.0.0/24".parse().unwrap(),
        pools: vec![(ip(first), ip(last))],
        router: None,
        dns: vec![],
        domain: None,
        lease_time: Duration::from_secs(600),
    }
}

fn table(first: u8, last: u8, res: &[Reservation]) -> LeaseTable {
    LeaseTable::new(&[subnet(first, last)], res, LeaseTimers::default())
}

fn dora(tb: &mut LeaseTable, m: Mac, now: SystemTime) -> Grant {
    let a = tb.offer(NET, m, None, now).unwrap();
    tb.request(NET, m, a, now).unwrap()
}

#[test]
fn one_machine_keeps_one_address_across_stages() {
    let mut tb = table(100, 200, &[]);
    let m = mac(1);
    let g1 = dora(&mut tb, m, t(0)); // firmware PXE
    let g2 = dora(&mut tb, m, t(10)); // iPXE
    let g3 = dora(&mut tb, m, t(21)); // Linux
    assert_eq!(g1.lease.ip, ip(100));
    assert_eq!(g2.lease.ip, g1.lease.ip);
    assert_eq!(g3.lease.ip, g1.lease.ip);
    assert_eq!(g3.lease.expires, t(21) + Duration::from_secs(600));
    assert_eq!(g3.changes, vec![LeaseChange::Upsert(g3.lease)]);
    assert_eq!(tb.lease_of(m, t(22)), Some(g3.lease));
}

#[test]
fn simultaneous_discovers_get_different_addresses() {
    let mut tb = table(100, 200, &[]);
    let a = tb.offer(NET, mac(1), None, t(0)).unwrap();
    let b = tb.offer(NET, mac(2), None, t(0)).unwrap();
    assert_ne!(a, b);
    // Requesting someone else's held address is refused.
    assert_eq!(tb.request(NET, mac(2), a, t(1)), Err(NakReason::InUse(a)));
    // After the hold lapses the address is free again.
    assert!(tb.request(NET, mac(2), a, t(31)).is_ok());
}

#[test]
fn exhaustion_and_reuse_of_expired() {
    let mut tb = table(100, 101, &[]);
    dora(&mut tb, mac(1), t(0));
    dora(&mut tb, mac(2), t(0));
    assert_eq!(
        tb.offer(NET, mac(3), None, t(1)),
        Err(LeaseError::PoolExhausted(NET))
    );
    // mac(1)'s lease expires at 600, mac(2) renews.
    tb.request(NET, mac(2), ip(101), t(300)).unwrap();
    assert_eq!(tb.offer(NET, mac(3), None, t(601)), Ok(ip(100)));
}

#[test]
fn returning_machine_gets_its_old_address_after_expiry() {
    let mut tb = table(100, 110, &[]);
    let g = dora(&mut tb, mac(1), t(0));
    for n in 2..6 {
        dora(&mut tb, mac(n), t(700));
    }
    assert_eq!(tb.lease_of(mac(1), t(700)), None, "expired");
    assert_eq!(tb.offer(NET, mac(1), None, t(800)), Ok(g.lease.ip));
}

#[test]
fn requested_ip_honoured_when_free() {
    let mut tb = table(100, 200, &[]);
    assert_eq!(tb.offer(NET, mac(1), Some(ip(150)), t(0)), Ok(ip(150)));
    // The cursor skips 150 later.
    let mut seen = vec![];
    for n in 2..60 {
        seen.push(dora(&mut tb, mac(n), t(0)).lease.ip);
    }
    assert!(!seen.contains(&ip(150)));
    // Outside the pool: ignored for OFFER, NAK for REQUEST.
    assert_eq!(tb.offer(NET, mac(99), Some(ip(10)), t(0)), Ok(ip(159)));
    assert_eq!(
        tb.request(NET, mac(98), ip(10), t(0)),
        Err(NakReason::NotInPool(ip(10)))
    );
    assert_eq!(
        tb.request(NET, mac(98), Ipv4Addr::new(192, 168, 1, 5), t(0)),
        Err(NakReason::WrongSubnet(Ipv4Addr::new(192, 168, 1, 5)))
    );
}

#[test]
fn init_reboot_request_binds_a_free_address() {
    let mut tb = table(100, 200, &[]);
    let g = tb.request(NET, mac(1), ip(120), t(0)).unwrap();
    assert_eq!(g.lease.ip, ip(120));
    assert_eq!(tb.offer(NET, mac(1), None, t(5)), Ok(ip(120)));
}

#[test]
fn reservations_are_never_given_to_others() {
    let res = [Reservation {
        mac: mac(7),
        address: ip(100),
        hostname: None,
    }];
    let mut tb = table(100, 102, &res);
    assert_eq!(tb.offer(NET, mac(1), None, t(0)), Ok(ip(101)));
    assert_eq!(tb.offer(NET, mac(2), Some(ip(100)), t(0)), Ok(ip(102)));
    assert_eq!(
        tb.request(NET, mac(3), ip(100), t(0)),
        Err(NakReason::ReservedForOther(ip(100)))
    );
    assert_eq!(tb.offer(NET, mac(7), None, t(0)), Ok(ip(100)));
    assert_eq!(
        tb.request(NET, mac(7), ip(101), t(0)),
        Err(NakReason::HasReservation(ip(100)))
    );
    assert!(tb.request(NET, mac(7), ip(100), t(0)).is_ok());
    // Released reservations do not circulate.
    tb.release(mac(7), ip(100), t(1));
    tb.release(mac(1), ip(101), t(1));
    tb.release(mac(2), ip(102), t(1));
    assert_eq!(tb.offer(NET, mac(4), None, t(100)), Ok(ip(101)));
    assert_eq!(tb.offer(NET, mac(5), None, t(100)), Ok(ip(102)));
    assert!(tb.offer(NET, mac(6), None, t(100)).is_err());
}

#[test]
fn release_frees_and_is_persisted() {
    let mut tb = table(100, 100, &[]);
    dora(&mut tb, mac(1), t(0));
    assert!(
        tb.release(mac(2), ip(100), t(5)).is_empty(),
        "not the owner"
    );
    let ch = tb.release(mac(1), ip(100), t(5));
    assert_eq!(
        ch,
        vec![LeaseChange::Upsert(Lease {
            ip: ip(100),
            mac: mac(1),
            state: LeaseState::Released,
            expires: t(5),
        })]
    );
    assert_eq!(tb.offer(NET, mac(2), None, t(6)), Ok(ip(100)));
}

#[test]
fn decline_quarantines() {
    let mut tb = table(100, 101, &[]);
    let g = dora(&mut tb, mac(1), t(0));
    let ch = tb.decline(mac(1), g.lease.ip, t(1));
    assert!(matches!(
        ch.as_slice(),
        [LeaseChange::Upsert(Lease {
            state: LeaseState::Declined,
            ..
        })]
    ));
    assert_eq!(tb.offer(NET, mac(1), None, t(2)), Ok(ip(101)));
    assert_eq!(
        tb.request(NET, mac(2), ip(100), t(2)),
        Err(NakReason::Quarantined(ip(100)))
    );
    // After the quarantine (600 s) it circulates again.
    assert!(tb.request(NET, mac(2), ip(100), t(602)).is_ok());
}

#[test]
fn moving_to_another_address_releases_the_old_one() {
    let mut tb = table(100, 200, &[]);
    dora(&mut tb, mac(1), t(0));
    let g = tb.request(NET, mac(1), ip(150), t(10)).unwrap();
    assert_eq!(g.changes.len(), 2);
    assert!(matches!(
        g.changes[0],
        LeaseChange::Upsert(Lease {
            state: LeaseState::Released,
            ..
        })
    ));
    assert_eq!(tb.offer(NET, mac(2), None, t(11)), Ok(ip(101)));
    assert_eq!(tb.offer(NET, mac(3), None, t(11)), Ok(ip(102)));
    // Fresh addresses first, then the freed one.
    let mut tb2 = table(100, 101, &[]);
    dora(&mut tb2, mac(1), t(0));
    tb2.request(NET, mac(1), ip(101), t(1)).unwrap();
    assert_eq!(tb2.offer(NET, mac(2), None, t(2)), Ok(ip(100)));
}

#[test]
fn restore_rebuilds_state_and_drops_misfits() {
    let res = [Reservation {
        mac: mac(7),
        address: ip(150),
        hostname: None,
    }];
    let mut tb = table(100, 200, &res);
    let rec = |n: u8, m: Mac, state, exp: u64| Lease {
        ip: ip(n),
        mac: m,
        state,
        expires: t(exp),
    };
    let dropped = tb.restore(
        [
            rec(100, mac(1), LeaseState::Bound, 1000),
            rec(101, mac(2), LeaseState::Bound, 10), // expired: free, remembered
            rec(102, mac(3), LeaseState::Declined, 1000),
            rec(150, mac(4), LeaseState::Bound, 1000), // reserved for mac(7)
            rec(20, mac(5), LeaseState::Bound, 1000),  // outside the pool
            Lease {
                ip: Ipv4Addr::new(10, 1, 1, 1),
                ..rec(0, mac(6), LeaseState::Bound, 1000)
            },
        ],
        t(100),
    );
    assert_eq!(
        dropped,
        vec![
            LeaseChange::Remove(ip(150)),
            LeaseChange::Remove(ip(20)),
            LeaseChange::Remove(Ipv4Addr::new(10, 1, 1, 1)),
        ]
    );
    assert_eq!(tb.lease_of(mac(1), t(100)).map(|l| l.ip), Some(ip(100)));
    assert_eq!(
        tb.request(NET, mac(9), ip(100), t(100)),
        Err(NakReason::InUse(ip(100)))
    );
    assert_eq!(tb.offer(NET, mac(2), None, t(100)), Ok(ip(101)));
    assert_eq!(tb.offer(NET, mac(8), None, t(100)), Ok(ip(103)));
    assert_eq!(
        tb.request(NET, mac(8), ip(102), t(100)),
        Err(NakReason::Quarantined(ip(102)))
    );
}

#[test]
fn many_clients_stay_distinct() {
    let net = Subnet {
        network: "10.0.0.0/16".parse().unwrap(),
        pools: vec![(Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 255, 250))],
        ..subnet(100, 200)
    };
    let mut tb = LeaseTable::new(&[net], &[], LeaseTimers::default());
    let mut seen = std::collections::HashSet::new();
    for n in 0..5000 {
        let a = tb.offer(NET, mac(n), None, t(0)).unwrap();
        assert!(seen.insert(a), "{a} given twice");
        tb.request(NET, mac(n), a, t(0)).unwrap();
    }
}

fn reserve(m: Mac, last: u8) -> Reservation {
    Reservation {
        mac: m,
        address: ip(last),
        hostname: None,
    }
}

#[test]
fn reservation_added_while_serving_waits_for_the_holder() {
    let mut tb = table(100, 103, &[]);
    assert_eq!(dora(&mut tb, mac(1), t(0)).lease.ip, ip(100));
    assert!(tb.set_reservations(&[reserve(mac(7), 100)]));
    assert!(!tb.set_reservations(&[reserve(mac(7), 100)]), "no change");
    // mac(1) holds .100: mac(7) gets a pool address meanwhile, without a NAK loop.
    let a = tb.offer(NET, mac(7), None, t(1)).unwrap();
    assert_ne!(a, ip(100));
    assert!(tb.request(NET, mac(7), a, t(1)).is_ok());
    // The holder's renewal is refused; once it lets go, the reservation applies.
    assert_eq!(
        tb.request(NET, mac(1), ip(100), t(2)),
        Err(NakReason::ReservedForOther(ip(100)))
    );
    tb.release(mac(1), ip(100), t(3));
    assert_eq!(tb.offer(NET, mac(7), None, t(4)), Ok(ip(100)));
    assert_eq!(
        tb.request(NET, mac(7), a, t(4)),
        Err(NakReason::HasReservation(ip(100)))
    );
    let g = tb.request(NET, mac(7), ip(100), t(4)).unwrap();
    // Moving to the reservation releases the pool address (persisted, and reusable).
    assert!(
        g.changes.iter().any(|c| matches!(c,
            LeaseChange::Upsert(l) if l.ip == a && l.state == LeaseState::Released)),
        "{:?}",
        g.changes
    );
    assert_eq!(tb.lease_of(mac(7), t(4)).map(|l| l.ip), Some(ip(100)));
}

#[test]
fn reservation_changes_move_free_addresses_in_and_out_of_the_pool() {
    let mut tb = table(100, 101, &[]);
    dora(&mut tb, mac(1), t(0));
    dora(&mut tb, mac(2), t(0));
    tb.release(mac(1), ip(100), t(1));
    tb.release(mac(2), ip(101), t(1));
    // .100 is free but now reserved: nobody else is offered it.
    tb.set_reservations(&[reserve(mac(7), 100)]);
    assert_eq!(tb.offer(NET, mac(3), None, t(2)), Ok(ip(101)));
    assert!(
        tb.offer(NET, mac(4), None, t(2)).is_err(),
        "only .100 left, reserved"
    );
    // Reservation removed: .100 circulates again.
    tb.set_reservations(&[]);
    assert_eq!(tb.offer(NET, mac(4), None, t(3)), Ok(ip(100)));
}

#[test]
fn bound_lists_the_live_bound_leases_once_per_machine() {
    let mut tb = table(100, 200, &[]);
    let (a, b, c) = (mac(1), mac(2), mac(3));
    let ga = dora(&mut tb, a, t(0));
    let gb = dora(&mut tb, b, t(500));
    let _ = tb.offer(NET, c, None, t(500)).unwrap(); // offered only
    tb.release(b, gb.lease.ip, t(501));
    let _ = dora(&mut tb, b, t(502)); // bound again
    let mut got: Vec<Lease> = tb.bound(t(503)).collect();
    got.sort_by_key(|l| l.ip);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], ga.lease);
    assert_eq!(got[1].mac, b);
    // a's lease (600 s from 0) has expired by 600.
    assert_eq!(tb.bound(t(600)).map(|l| l.mac).collect::<Vec<_>>(), [b]);
}
