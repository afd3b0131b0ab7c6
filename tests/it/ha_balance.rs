//! Two `tabula serve` on one PostgreSQL share a fleet of reserved machines (issue 16,
//! `docs/ha.md` "DHCP load balancing"): with both alive, each machine's DHCP is answered
//! at once (no retransmission) by one server, its owner, and both servers own a share;
//! after kill -9 of A, every machine, A's too, is answered by B within a few
//! retransmissions (B answers A's clients once their `secs` reaches
//! `ha.load_balance_max_secs` or A's heartbeat has aged out, whichever comes first).
//! The clients are the storm's simulated initramfs (udhcpc's schedule: a send every 2 s,
//! `secs` counting up), all at once. Needs root: fails (never skips) otherwise.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Instant;

use tabula::boot::Mac;
use tabula::storm::dhcp::{Asker, Dhcp};

use crate::ha_fabric::{ADDR, members, serve, setup_with, stored, wait_for};
use crate::netns::{in_ns, sh};

const N: u8 = 40;

fn mac(i: u8) -> Mac {
    Mac([0x02, 0x5b, 0, 0, 0, i])
}

fn address(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 60, 100 + i)
}

/// One DORA per machine, all at once, from the client namespace: per MAC, the ACK's
/// server, the retransmissions and the seconds it took.
fn dora(ns: &str, iface: &str, xid_base: u32) -> BTreeMap<Mac, (Ipv4Addr, u32, f64)> {
    let iface = iface.to_string();
    in_ns(ns, move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let dhcp = Dhcp::bind(&iface).unwrap();
                let mut set = tokio::task::JoinSet::new();
                for i in 0..N {
                    let dhcp = dhcp.clone();
                    set.spawn(async move {
                        let t = Instant::now();
                        let got = dhcp
                            .lease(Asker::Initramfs, mac(i), xid_base + u32::from(i))
                            .await;
                        (i, got, t.elapsed().as_secs_f64())
                    });
                }
                let mut out = BTreeMap::new();
                while let Some(r) = set.join_next().await {
                    let (i, got, secs) = r.unwrap();
                    let got = got.unwrap_or_else(|| panic!("{} got no lease", mac(i)));
                    assert_eq!(got.ack.yiaddr, address(i), "{}", mac(i));
                    out.insert(mac(i), (got.ack.server.unwrap(), got.retransmits, secs));
                }
                out
            })
    })
}

#[test]
fn reserved_clients_are_split_between_two_servers_and_the_survivor_takes_them_all() {
    let reservations: String = (0..N)
        .map(|i| {
            format!(
                "[[dhcp.reservations]]\nmac = \"{}\"\naddress = \"{}\"\n",
                mac(i),
                address(i)
            )
        })
        .collect();
    let (_pg, env, f, cfgs) = setup_with(["pxe-a", "pxe-b"], &reservations);
    let mut a = serve(&env, &f.servers[0], &cfgs[0], "a");
    let b = serve(&env, &f.servers[1], &cfgs[1], "b");
    wait_for("both alive", 20, || {
        members(&env).iter().filter(|(_, alive, _)| *alive).count() == 2
    });
    // Each server has read the other as alive (its view of the live set).
    let both = "DHCP servers alive on the store servers=[\"pxe-a\", \"pxe-b\"]";
    wait_for("both servers see both", 10, || {
        [&a.log, &b.log]
            .iter()
            .all(|l| std::fs::read_to_string(l).unwrap().contains(both))
    });

    let t = Instant::now();
    let first = dora(&f.client, &f.client_if, 0x0b00_0000);
    eprintln!(
        "both alive: {N} leases in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let (a_ip, b_ip): (Ipv4Addr, Ipv4Addr) = (ADDR[0].parse().unwrap(), ADDR[1].parse().unwrap());
    let by_a: Vec<Mac> = first
        .iter()
        .filter(|(_, (s, _, _))| *s == a_ip)
        .map(|(m, _)| *m)
        .collect();
    let by_b = first.values().filter(|(s, _, _)| *s == b_ip).count();
    eprintln!("split: A {}, B {by_b}", by_a.len());
    assert_eq!(by_a.len() + by_b, usize::from(N), "{first:?}");
    // The owners are fixed by the ids and MACs (rendezvous hash): 40 MACs on two servers
    // give each a share; neither may take them all.
    assert!(
        by_a.len() >= 10 && by_b >= 10,
        "A {} / B {by_b}: {first:?}",
        by_a.len()
    );
    let resent: Vec<_> = first.iter().filter(|(_, (_, r, _))| *r > 0).collect();
    assert!(
        resent.is_empty(),
        "the owner answers at once, yet some machines had to resend: {resent:?}"
    );

    sh(&["kill", "-9", &a.child.id().to_string()]);
    let _ = a.child.wait();
    let t = Instant::now();
    let second = dora(&f.client, &f.client_if, 0x0c00_0000);
    let took = t.elapsed().as_secs_f64();
    let by_a_after: Vec<_> = second.iter().filter(|(_, (s, _, _))| *s != b_ip).collect();
    assert!(
        by_a_after.is_empty(),
        "answered by others than B: {by_a_after:?}"
    );
    let slowest = by_a.iter().map(|m| second[m].2).fold(0.0f64, f64::max);
    eprintln!(
        "after kill -9 of A: all {N} from B in {took:.2} s; A's former clients took up to {slowest:.2} s"
    );
    // udhcpc sends at 0, 2, 4 s: `secs` reaches 3 on the third send at the latest, and
    // A's heartbeat ages out of B's view within 3 heartbeats (3 s) plus one read.
    assert!(slowest < 7.0, "A's clients waited {slowest:.2} s for B");
    // B's own clients did not wait.
    assert!(
        second
            .iter()
            .filter(|(m, _)| !by_a.contains(m))
            .all(|(_, (_, r, _))| *r == 0),
        "{second:?}"
    );
    // Every reserved address bound to its MAC in the store, and only to it.
    let leases = stored(&env);
    for i in 0..N {
        assert_eq!(
            leases.get(&address(i)).map(String::as_str),
            Some(mac(i).to_string().as_str()),
            "{leases:?}"
        );
    }
    drop(b);
}
