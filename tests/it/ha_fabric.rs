//! The pieces the several-servers tests share (tests/it/ha*.rs): a bridge in its own
//! namespace with two server namespaces and a client namespace on it, real PostgreSQL,
//! `tabula serve` per server namespace, tcpdump of the DHCP replies on the clients' side
//! and perfdhcp as the clients; the wire-against-store check.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dhcproto::{Decodable, Decoder, v4};
use tabula::store::testing::PgCluster;

use crate::common::Env;
use crate::netns::{Lab, sh};

/// Server addresses on the bridge: A, B; the client (perfdhcp) is .9.
pub const ADDR: [&str; 2] = ["10.99.60.1", "10.99.60.2"];

/// One ACK seen on the wire.
#[derive(Clone, Debug)]
pub struct Ack {
    pub at: f64,
    pub server: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub mac: String,
}

/// A bridge in its own namespace, two server namespaces and a client namespace on it.
pub struct Fabric {
    _lab: Lab,
    /// The namespace of the bridge, and the bridge (VMs' taps go there).
    pub switch: String,
    pub bridge: String,
    pub servers: [String; 2],
    pub server_ifs: [String; 2],
    pub client: String,
    pub client_if: String,
}

pub fn fabric() -> Fabric {
    let mut lab = Lab::new();
    let sw = lab.ns("sw");
    let br = format!("t{}br", lab.tag);
    sh(&["ip", "-n", &sw, "link", "add", &br, "type", "bridge"]);
    sh(&["ip", "-n", &sw, "link", "set", &br, "up"]);
    let port = |lab: &mut Lab, ns: &str, role: &str| {
        let (inside, on_sw) = lab.veth(ns, &sw, role);
        sh(&["ip", "-n", &sw, "link", "set", &on_sw, "master", &br]);
        inside
    };
    let (a, b, c) = (lab.ns("a"), lab.ns("b"), lab.ns("c"));
    let ia = port(&mut lab, &a, "a");
    let ib = port(&mut lab, &b, "b");
    let ic = port(&mut lab, &c, "c");
    sh(&[
        "ip",
        "-n",
        &a,
        "addr",
        "add",
        &format!("{}/22", ADDR[0]),
        "dev",
        &ia,
    ]);
    sh(&[
        "ip",
        "-n",
        &b,
        "addr",
        "add",
        &format!("{}/22", ADDR[1]),
        "dev",
        &ib,
    ]);
    sh(&["ip", "-n", &c, "addr", "add", "10.99.60.9/22", "dev", &ic]);
    Fabric {
        _lab: lab,
        switch: sw,
        bridge: br,
        servers: [a, b],
        server_ifs: [ia, ib],
        client: c,
        client_if: ic,
    }
}

/// A server's config; `dhcp` is added to its `[dhcp]` table.
pub fn config(url: &str, id: &str, iface: &str, addr: &str, dhcp: &str) -> String {
    format!(
        "[server]\nuser = \"\"\nid = \"{id}\"\n[store]\nurl = \"{url}\"\n\
         [dhcp]\nmode = \"full\"\ninterfaces = [\"{iface}\"]\nrouter_advertisement = false\n{dhcp}\
         [[dhcp.subnets]]\nnetwork = \"10.99.60.0/22\"\npools = [\"10.99.61.0-10.99.63.250\"]\nlease_time = \"1h\"\n\
         [tftp]\nenabled = false\n[http]\nlisten = \"{addr}:8080\"\n[api]\nenabled = false\n"
    )
}

/// A `tabula serve` of the fabric; its log (info) in `log`.
pub struct Server {
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(env: &Env, ns: &str, cfg: &Path, name: &str) -> Server {
    let log = env.dir.path().join(format!("{name}.log"));
    let child = Command::new("ip")
        .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_tabula")])
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .env("TABULA_DATA_DIR", env.dir.path().join(name))
        .env("TABULA_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Server { child, log }
}

/// `tabula server list --json` as (id, alive, roles).
pub fn members(env: &Env) -> Vec<(String, bool, Vec<String>)> {
    env.ok(&["server", "list", "--json"])
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let roles = v["roles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect();
            (
                v["id"].as_str().unwrap().to_string(),
                v["alive"].as_bool().unwrap(),
                roles,
            )
        })
        .collect()
}

pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts tcpdump on the client side (DHCP replies only) and waits until it captures.
pub fn capture(f: &Fabric, pcap: &Path) -> Child {
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &f.client,
            "tcpdump",
            "-i",
            &f.client_if,
            "-n",
            "-U",
            "-s",
            "1500",
        ])
        .args(["-w", pcap.to_str().unwrap(), "udp", "src", "port", "67"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump (Debian package tcpdump)");
    std::thread::sleep(Duration::from_millis(800));
    child
}

pub fn stop_capture(mut c: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &c.id().to_string()])
        .status();
    let _ = c.wait();
}

/// perfdhcp in the client namespace: `rate` DORA/s over `clients` MACs (counting up
/// from `base`) for `secs`.
pub fn perfdhcp(f: &Fabric, base: &str, rate: u32, clients: u32, secs: u32) -> Child {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &f.client,
            "perfdhcp",
            "-4",
            "-l",
            &f.client_if,
        ])
        .args(["-b", &format!("mac={base}")])
        .args([
            "-r",
            &rate.to_string(),
            "-R",
            &clients.to_string(),
            "-p",
            &secs.to_string(),
        ])
        .args(["-W", "1000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("perfdhcp (Debian package kea-admin)")
}

/// The ACKs in a pcap file (Ethernet, IPv4, UDP, DHCP), with their capture time.
pub fn acks(pcap: &Path) -> Vec<Ack> {
    let b = std::fs::read(pcap).unwrap();
    assert!(b.len() >= 24, "empty capture");
    let le = b[..4] == [0xd4, 0xc3, 0xb2, 0xa1];
    let u32_at = |i: usize| {
        let w = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let mut out = Vec::new();
    let mut i = 24;
    while i + 16 <= b.len() {
        let (sec, usec, caplen) = (u32_at(i), u32_at(i + 4), u32_at(i + 8) as usize);
        let frame = &b[i + 16..(i + 16 + caplen).min(b.len())];
        i += 16 + caplen;
        if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let Some(payload) = ip.get(ihl + 8..) else {
            continue;
        };
        let Ok(m) = v4::Message::decode(&mut Decoder::new(payload)) else {
            continue;
        };
        if m.opts().msg_type() != Some(v4::MessageType::Ack) || m.yiaddr().is_unspecified() {
            continue;
        }
        let mac = m.chaddr()[..6]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        out.push(Ack {
            at: f64::from(sec) + f64::from(usec) / 1e6,
            server: src,
            yiaddr: m.yiaddr(),
            mac,
        });
    }
    out
}

/// The stored bound leases as address → MAC.
pub fn stored(env: &Env) -> BTreeMap<Ipv4Addr, String> {
    env.ok(&["lease", "list", "--json"])
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["state"] == "bound").then(|| {
                (
                    v["address"].as_str().unwrap().parse().unwrap(),
                    v["mac"].as_str().unwrap().to_string(),
                )
            })
        })
        .collect()
}

/// No address ACKed to two MACs; every ACK's lease is bound to that MAC in the store.
pub fn check_wire_against_store(acks: &[Ack], store: &BTreeMap<Ipv4Addr, String>) {
    let mut by_addr: BTreeMap<Ipv4Addr, BTreeSet<&str>> = BTreeMap::new();
    for a in acks {
        by_addr.entry(a.yiaddr).or_default().insert(&a.mac);
    }
    let doubles: Vec<_> = by_addr.iter().filter(|(_, m)| m.len() > 1).collect();
    assert!(
        doubles.is_empty(),
        "addresses ACKed to two MACs: {doubles:?}"
    );
    let missing: Vec<_> = acks
        .iter()
        .filter(|a| store.get(&a.yiaddr).map(String::as_str) != Some(a.mac.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} ACKs not bound in the store, e.g. {:?}",
        missing.len(),
        acks.len(),
        missing.first()
    );
}

pub fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

pub fn setup(ids: [&str; 2]) -> (PgCluster, Env, Fabric, [PathBuf; 2]) {
    setup_with(ids, "")
}

/// [`setup`] with `dhcp` added to both servers' `[dhcp]` tables.
pub fn setup_with(ids: [&str; 2], dhcp: &str) -> (PgCluster, Env, Fabric, [PathBuf; 2]) {
    let pg = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = pg.database().unwrap_or_else(|e| panic!("{e}"));
    let env = Env::new();
    let f = fabric();
    let cfgs = [0, 1].map(|i| {
        let p = env.dir.path().join(format!("{}.toml", ["a", "b"][i]));
        std::fs::write(&p, config(&url, ids[i], &f.server_ifs[i], ADDR[i], dhcp)).unwrap();
        p
    });
    env.use_config(cfgs[0].clone());
    env.ok(&["pin", "set", "default", "local"]);
    (pg, env, f, cfgs)
}

impl Fabric {
    /// A tap named `name` on the bridge, for a VM run in [`Fabric::switch`].
    pub fn tap(&self, name: &str) {
        let sw = &self.switch;
        sh(&["ip", "-n", sw, "tuntap", "add", "dev", name, "mode", "tap"]);
        sh(&["ip", "-n", sw, "link", "set", name, "master", &self.bridge]);
        sh(&["ip", "-n", sw, "link", "set", name, "up"]);
    }
}
