//! DHCP end to end, in network namespaces the tests create (see `netns.rs`): real
//! clients (busybox udhcpc, ISC dhclient) against `tabula serve` in full mode; proxy
//! mode beside busybox udhcpd; a relayed request; leases across `kill -9`.
//! Needs root: fails (never skips) otherwise.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use dhcproto::v4;

use crate::common::{Env, wait_for};
use crate::netns::{
    Lab, collect, dora, encode, exchange, exchange_raw, in_ns, message, opt_str, sh, start_tabula,
    udp,
};

fn full_config(iface: &str, net: u8, extra: &str) -> String {
    format!(
        "[dhcp]\nmode = \"full\"\ninterfaces = [\"{iface}\"]\n{extra}\n\
         [[dhcp.subnets]]\nnetwork = \"10.99.{net}.0/24\"\npools = [\"10.99.{net}.100-10.99.{net}.150\"]\nlease_time = \"6s\"\n\
         [tftp]\nenabled = false\n[http]\nlisten = \"10.99.{net}.1:8080\"\n"
    )
}

/// The stored leases as (address, mac, state).
fn leases(env: &Env) -> Vec<(String, String, String)> {
    let out = env.ok(&["lease", "list", "--json"]);
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            (s("address"), s("mac"), s("state"))
        })
        .collect()
}

pub(crate) fn mac_of(lab: &Lab, ns: &str, iface: &str) -> String {
    let o = lab.exec(ns, &["cat", &format!("/sys/class/net/{iface}/address")]);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub(crate) fn udhcpc_script(env: &Env) -> (String, String) {
    let log = env.dir.path().join("udhcpc.log");
    let script = env.dir.path().join("udhcpc.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1 $ip $serverid\" >> {}\ncase \"$1\" in\n  bound|renew) ip addr flush dev \"$interface\"; ip addr add \"$ip/$mask\" dev \"$interface\";;\n  deconfig) ip addr flush dev \"$interface\";;\nesac\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    sh(&["chmod", "+x", script.to_str().unwrap()]);
    (
        script.to_str().unwrap().into(),
        log.to_str().unwrap().into(),
    )
}

#[test]
fn udhcpc_and_dhclient_lease_renew_release() {
    let env = Env::new();
    env.ok(&["pin", "set", "default", "local"]);
    let mut lab = Lab::new();
    let (s, c) = (lab.ns("srv"), lab.ns("cli"));
    let (vs, vc) = lab.veth(&s, &c, "l");
    sh(&["ip", "-n", &s, "addr", "add", "10.99.1.1/24", "dev", &vs]);
    let _t = start_tabula(&env, &s, &full_config(&vs, 1, ""));
    let mac = mac_of(&lab, &c, &vc);

    // busybox udhcpc: lease, then RENEWING (unicast, T1 = 3 s), then RELEASE on SIGTERM (-R).
    let (script, log) = udhcpc_script(&env);
    let idx = lab.spawn(
        &c,
        &[
            "busybox", "udhcpc", "-f", "-R", "-i", &vc, "-s", &script, "-t", "5", "-T", "1",
        ],
    );
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("udhcpc bound", 15, || read().contains("bound "));
    let bound = read()
        .lines()
        .find(|l| l.starts_with("bound "))
        .unwrap()
        .to_string();
    let f: Vec<&str> = bound.split_whitespace().collect();
    let ip: Ipv4Addr = f[1].parse().unwrap();
    assert!(
        (100..=150).contains(&ip.octets()[3]) && ip.octets()[..3] == [10, 99, 1],
        "{bound}"
    );
    assert_eq!(f[2], "10.99.1.1", "server id = ingress interface address");
    wait_for("udhcpc renew", 40, || read().contains("renew "));
    assert!(
        read()
            .lines()
            .filter(|l| l.starts_with("renew "))
            .all(|l| l.contains(&ip.to_string()))
    );
    assert!(leases(&env).contains(&(ip.to_string(), mac.clone(), "bound".into())));
    lab.signal(idx, "TERM");
    wait_for("release stored", 10, || {
        leases(&env).contains(&(ip.to_string(), mac.clone(), "released".into()))
    });
    sh(&["ip", "-n", &c, "addr", "flush", "dev", &vc]);

    // ISC dhclient: same MAC → same address (leases are keyed by chaddr); INIT-REBOOT
    // from its lease file; then release.
    // The dhclient script only puts the address on the interface (and takes it off), so
    // the RELEASE can be sent from it.
    let noop = env.dir.path().join("dhclient.sh");
    std::fs::write(
        &noop,
        "#!/bin/sh\ncase \"$reason\" in\n  BOUND|RENEW|REBIND|REBOOT) ip addr flush dev \"$interface\"; ip addr add \"$new_ip_address/24\" dev \"$interface\";;\n  RELEASE|EXPIRE|STOP) ip addr flush dev \"$interface\";;\nesac\nexit 0\n",
    )
    .unwrap();
    sh(&["chmod", "+x", noop.to_str().unwrap()]);
    let lf = env.dir.path().join("dhclient.leases");
    let pf = env.dir.path().join("dhclient.pid");
    let (noop, lf, pf) = (
        noop.to_str().unwrap(),
        lf.to_str().unwrap(),
        pf.to_str().unwrap(),
    );
    for round in 0..2 {
        let o = lab.exec(
            &c,
            &[
                "timeout", "30", "dhclient", "-1", "-sf", noop, "-lf", lf, "-pf", pf, &vc,
            ],
        );
        assert!(
            o.status.success(),
            "dhclient round {round}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = std::fs::read_to_string(lf).unwrap();
        let last = text.rsplit("lease {").next().unwrap();
        assert!(
            last.contains(&format!("fixed-address {ip};")),
            "round {round}: {last}"
        );
        assert!(leases(&env).contains(&(ip.to_string(), mac.clone(), "bound".into())));
        if round == 0 {
            lab.exec(
                &c,
                &["dhclient", "-x", "-sf", noop, "-lf", lf, "-pf", pf, &vc],
            );
        }
    }
    let o = lab.exec(
        &c,
        &[
            "timeout", "20", "dhclient", "-r", "-sf", noop, "-lf", lf, "-pf", pf, &vc,
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("dhclient release stored", 10, || {
        leases(&env).contains(&(ip.to_string(), mac.clone(), "released".into()))
    });
}

fn fixture(stem: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/dhcp/{stem}.bin"));
    std::fs::read(&p).unwrap()
}

#[test]
fn proxy_mode_beside_udhcpd_supplies_only_the_boot_file() {
    let env = Env::new();
    // Proxy mode only answers machines that boot something: publish and pin an image.
    let kernel = env.file("vmlinuz", 1, 4096);
    env.ok(&[
        "image",
        "add",
        "demo",
        "--version",
        "1",
        "--kernel",
        kernel.to_str().unwrap(),
    ]);
    env.ok(&["pin", "set", "default", "demo@1"]);
    let mut lab = Lab::new();
    let (s, c) = (lab.ns("srv"), lab.ns("cli"));
    let (vs, vc) = lab.veth(&s, &c, "p");
    sh(&["ip", "-n", &s, "addr", "add", "10.99.2.1/24", "dev", &vs]);
    // The plain DHCP server: addresses only, no boot options.
    let conf = env.dir.path().join("udhcpd.conf");
    std::fs::write(
        &conf,
        format!(
            "start 10.99.2.50\nend 10.99.2.60\ninterface {vs}\nlease_file {}\npidfile {}\noption subnet 255.255.255.0\noption lease 600\n",
            env.dir.path().join("udhcpd.leases").display(),
            env.dir.path().join("udhcpd.pid").display()
        ),
    )
    .unwrap();
    std::fs::write(env.dir.path().join("udhcpd.leases"), b"").unwrap();
    lab.spawn(&s, &["busybox", "udhcpd", "-f", conf.to_str().unwrap()]);
    // proxy mode does not bind port 67 exclusively: udhcpd and tabula share it.
    let _t = start_tabula(
        &env,
        &s,
        &format!(
            "[dhcp]\nmode = \"proxy\"\ninterfaces = [\"{vs}\"]\n[tftp]\nenabled = false\n[http]\nlisten = \"10.99.2.1:8080\"\n"
        ),
    );

    // udhcpc gets its address from udhcpd (tabula never hands out one in proxy mode).
    let (script, log) = udhcpc_script(&env);
    let o = lab.exec(
        &c,
        &[
            "timeout", "30", "busybox", "udhcpc", "-q", "-n", "-i", &vc, "-s", &script, "-t", "5",
            "-T", "1",
        ],
    );
    assert!(
        o.status.success(),
        "udhcpc: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let ip: Ipv4Addr = text
        .lines()
        .find(|l| l.starts_with("bound "))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (50..=60).contains(&ip.octets()[3]),
        "address from udhcpd's range: {ip}"
    );
    assert!(
        leases(&env).is_empty(),
        "tabula stored no lease in proxy mode"
    );

    // A UEFI PXE DISCOVER (OVMF capture): udhcpd OFFERs an address, tabula a proxy OFFER.
    let discover = fixture("uefi-ovmf-pxebc-then-snponly-efi-01-discover");
    let request = fixture("uefi-ovmf-pxebc-then-snponly-efi-03-request");
    // Loaders are handed out as <client MAC>/<file> (chaddr is at offset 28).
    let loader = format!(
        "{}/snponly.efi",
        discover[28..34]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join("-")
    );
    let vc2 = vc.clone();
    let (proxy_offer, ack) = in_ns(&c, move || {
        let sock = udp(&vc2, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68));
        let mut d = discover.clone();
        d[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        let replies = collect(
            &sock,
            SocketAddrV4::new(Ipv4Addr::BROADCAST, 67),
            &d,
            Duration::from_secs(2),
        );
        let proxy = replies
            .into_iter()
            .map(|(m, _)| m)
            .find(|m| opt_str(m, 60).as_deref() == Some("PXEClient"));
        // Boot-server request on 4011, unicast, from the client's new address.
        let mut r = request.clone();
        r[4..8].copy_from_slice(&0x1234_5679u32.to_be_bytes());
        r[12..16].copy_from_slice(&ip.octets());
        let s2 = udp(&vc2, SocketAddrV4::new(ip, 0));
        let ack = exchange(
            &s2,
            SocketAddrV4::new(Ipv4Addr::new(10, 99, 2, 1), 4011),
            &r,
        );
        (proxy, ack)
    });
    let p = proxy_offer.expect("a proxy OFFER with option 60 PXEClient from tabula");
    assert_eq!(p.opts().msg_type(), Some(v4::MessageType::Offer));
    assert_eq!(
        p.yiaddr(),
        Ipv4Addr::UNSPECIFIED,
        "proxy replies carry no address"
    );
    assert_eq!(p.siaddr(), Ipv4Addr::new(10, 99, 2, 1));
    assert_eq!(opt_str(&p, 67).as_deref(), Some(loader.as_str()));
    assert!(p.opts().get(v4::OptionCode::AddressLeaseTime).is_none());
    let (a, from) = ack.expect("a proxy ACK on port 4011");
    assert_eq!(from, SocketAddrV4::new(Ipv4Addr::new(10, 99, 2, 1), 4011));
    assert_eq!(a.opts().msg_type(), Some(v4::MessageType::Ack));
    assert_eq!(a.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(opt_str(&a, 67).as_deref(), Some(loader.as_str()));
    assert_eq!(opt_str(&a, 60).as_deref(), Some("PXEClient"));
}

#[test]
fn relayed_discover_is_answered_by_unicast_to_the_relay() {
    let env = Env::new();
    env.ok(&["pin", "set", "default", "local"]);
    let mut lab = Lab::new();
    let (s, r) = (lab.ns("srv"), lab.ns("rly"));
    let (vs, vr) = lab.veth(&s, &r, "r");
    sh(&["ip", "-n", &s, "addr", "add", "10.99.3.1/24", "dev", &vs]);
    sh(&["ip", "-n", &r, "addr", "add", "10.99.3.2/24", "dev", &vr]);
    sh(&["ip", "-n", &r, "addr", "add", "10.99.4.1/24", "dev", &vr]);
    sh(&[
        "ip",
        "-n",
        &s,
        "route",
        "add",
        "10.99.4.0/24",
        "via",
        "10.99.3.2",
    ]);
    let cfg = full_config(&vs, 3, "")
        + "[[dhcp.subnets]]\nnetwork = \"10.99.4.0/24\"\npools = [\"10.99.4.100-10.99.4.150\"]\n";
    let _t = start_tabula(&env, &s, &cfg);
    let vr2 = vr.clone();
    let got = in_ns(&r, move || {
        // The relay listens on its remote-link address, port 67: only a unicast reaches it.
        let sock = udp(&vr2, SocketAddrV4::new(Ipv4Addr::new(10, 99, 4, 1), 67));
        let mut m = message(v4::MessageType::Discover, [2, 0, 0, 0, 4, 1], 0x4242);
        m.set_flags(v4::Flags::default());
        m.set_giaddr(Ipv4Addr::new(10, 99, 4, 1)).set_hops(1);
        // Option 82 (circuit id "port7") spliced in by hand before End.
        let mut bytes = encode(&m);
        bytes.pop();
        bytes.extend_from_slice(&[82, 7, 1, 5, b'p', b'o', b'r', b't', b'7', 255]);
        exchange_raw(
            &sock,
            SocketAddrV4::new(Ipv4Addr::new(10, 99, 3, 1), 67),
            &bytes,
        )
    });
    let (offer, from, raw) = got.expect("an OFFER unicast to the relay's port 67");
    assert_eq!(from, SocketAddrV4::new(Ipv4Addr::new(10, 99, 3, 1), 67));
    assert_eq!(offer.opts().msg_type(), Some(v4::MessageType::Offer));
    assert_eq!(offer.giaddr(), Ipv4Addr::new(10, 99, 4, 1));
    let y = offer.yiaddr().octets();
    assert!(
        y[..3] == [10, 99, 4] && (100..=150).contains(&y[3]),
        "subnet from giaddr: {:?}",
        y
    );
    let echoed = [82u8, 7, 1, 5, b'p', b'o', b'r', b't', b'7'];
    assert!(
        raw.windows(echoed.len()).any(|w| w == echoed),
        "option 82 echoed verbatim: {}",
        hex::encode(&raw[240..])
    );
}

#[test]
fn leases_survive_kill_9_and_are_never_handed_out_twice() {
    let env = Env::new();
    env.ok(&["pin", "set", "default", "local"]);
    let mut lab = Lab::new();
    let (s, c) = (lab.ns("srv"), lab.ns("cli"));
    let (vs, vc) = lab.veth(&s, &c, "k");
    sh(&["ip", "-n", &s, "addr", "add", "10.99.5.1/24", "dev", &vs]);
    sh(&["ip", "-n", &c, "addr", "add", "10.99.5.2/24", "dev", &vc]);
    let cfg = full_config(&vs, 5, "").replace("lease_time = \"6s\"", "lease_time = \"1h\"");
    let run = |macs: Vec<[u8; 6]>, base: u32| {
        let vc = vc.clone();
        in_ns(&c, move || {
            let sock = udp(&vc, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68));
            let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
            macs.iter()
                .enumerate()
                .map(|(i, m)| {
                    dora(&sock, to, *m, base + 2 * u32::try_from(i).unwrap()).expect("lease")
                })
                .collect::<Vec<Ipv4Addr>>()
        })
    };
    let first: Vec<[u8; 6]> = (0..20u8).map(|i| [2, 0, 0, 0, 5, i]).collect();
    let t = start_tabula(&env, &s, &cfg);
    let a = run(first.clone(), 1000);
    let mut uniq = a.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 20, "20 distinct addresses: {a:?}");
    drop(t); // SIGKILL: no graceful shutdown
    let _t = start_tabula(&env, &s, &cfg);
    assert_eq!(run(first, 2000), a, "same MAC, same address after kill -9");
    let b = run((0..20u8).map(|i| [2, 0, 0, 0, 6, i]).collect(), 3000);
    assert!(
        b.iter().all(|x| !a.contains(x)),
        "no address handed out twice: {a:?} {b:?}"
    );
    let bound = leases(&env).into_iter().filter(|l| l.2 == "bound").count();
    assert_eq!(bound, 40);
}

#[test]
fn fixed_address_given_while_serving_applies_without_restart() {
    let env = Env::new();
    env.ok(&["pin", "set", "default", "local"]);
    let mut lab = Lab::new();
    let (s, c) = (lab.ns("srv"), lab.ns("cli"));
    let (vs, vc) = lab.veth(&s, &c, "f");
    sh(&["ip", "-n", &s, "addr", "add", "10.99.6.1/24", "dev", &vs]);
    let cfg = full_config(&vs, 6, "").replace("lease_time = \"6s\"", "lease_time = \"1h\"");
    let _t = start_tabula(&env, &s, &cfg);
    let dora_as = |m: [u8; 6], xid: u32| {
        let vc = vc.clone();
        in_ns(&c, move || {
            let sock = udp(&vc, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68));
            dora(&sock, SocketAddrV4::new(Ipv4Addr::BROADCAST, 67), m, xid).expect("lease")
        })
    };
    let mac = [2, 0, 0, 0, 6, 1];
    let first = dora_as(mac, 10);
    assert!(
        (100..=150).contains(&first.octets()[3]),
        "pool address first: {first}"
    );

    // The operator gives the machine a fixed address; the running server picks it up
    // (inventory re-read about every second) and moves the machine on its next DORA.
    env.ok(&[
        "machine",
        "add",
        "m6",
        "--mac",
        "02:00:00:00:06:01",
        "--address",
        "10.99.6.20",
    ]);
    let fixed = Ipv4Addr::new(10, 99, 6, 20);
    let mut got = first;
    let mut xid = 20;
    wait_for("the fixed address", 15, || {
        xid += 2;
        got = dora_as(mac, xid);
        got == fixed
    });
    // Its old pool address was released, and no other machine is given the fixed one.
    let stored = leases(&env);
    assert!(
        stored
            .iter()
            .any(|l| l.0 == first.to_string() && l.2 == "released"),
        "old address released: {stored:?}"
    );
    assert!(
        stored
            .iter()
            .any(|l| l.0 == "10.99.6.20" && l.1 == "02:00:00:00:06:01" && l.2 == "bound"),
        "{stored:?}"
    );
    let other = dora_as([2, 0, 0, 0, 6, 2], 900);
    assert_ne!(other, fixed);
}
