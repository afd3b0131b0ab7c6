//! Micro benchmark of the lease allocator: full DORA (offer + request) per client, with
//! plain `std::time` measurement. Run with `cargo bench --bench lease`.
//!
//! Scenarios: a cold boot storm of N new machines; the same machines again (later boot
//! stages, which must find their address); and N new machines after every earlier lease
//! expired (the reuse path, oldest-freed first).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tabula::boot::Mac;
use tabula::config::Subnet;
use tabula::dhcp::{LeaseTable, LeaseTimers, SubnetId};

fn mac(n: u32, salt: u8) -> Mac {
    let b = n.to_be_bytes();
    Mac([0x52, salt, b[0], b[1], b[2], b[3]])
}

fn table() -> LeaseTable {
    let subnet = Subnet {
        network: "10.0.0.0/16".parse().expect("net"),
        pools: vec![(Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 255, 250))],
        router: None,
        dns: vec![],
        domain: None,
        lease_time: Duration::from_secs(3600),
    };
    LeaseTable::new(&[subnet], &[], LeaseTimers::default())
}

fn dora(t: &mut LeaseTable, n: u32, salt: u8, now: SystemTime) -> usize {
    let mut changes = 0;
    for i in 0..n {
        let m = mac(i, salt);
        let ip = t.offer(SubnetId(0), m, None, now).expect("offer");
        let g = t.request(SubnetId(0), m, ip, now).expect("ack");
        changes += black_box(g.changes.len());
    }
    changes
}

fn report(label: &str, n: u32, f: impl FnOnce()) {
    let start = Instant::now();
    f();
    let el = start.elapsed();
    println!(
        "{label:<44} {n:>6} clients  {:>8.1} ms  {:>10.0} DORA/s",
        el.as_secs_f64() * 1e3,
        f64::from(n) / el.as_secs_f64()
    );
}

fn main() {
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for n in [5_000u32, 10_000, 60_000] {
        let mut t = table();
        report("cold storm (new machines)", n, || {
            black_box(dora(&mut t, n, 1, t0));
        });
        report("same machines, next boot stage", n, || {
            black_box(dora(&mut t, n, 1, t0 + Duration::from_secs(10)));
        });
        let later = t0 + Duration::from_secs(7200);
        report("new machines after all expired (reuse)", n, || {
            black_box(dora(&mut t, n, 2, later));
        });
    }
}
