//! Two `tabula serve` processes on one PostgreSQL (issue 16), in network namespaces on
//! one bridge, with perfdhcp (Debian `kea-admin`) as the clients and tcpdump capturing
//! every reply on the clients' side of the bridge.
//!
//! * Takeover: kill -9 the DHCP authority while perfdhcp runs; the standby answers
//!   within the documented time (`docs/ha.md`: `ha.leader_ttl` + a third of it, plus the
//!   lease reload); no address is ever ACKed to two MACs; every ACK on the wire is a
//!   bound lease in the store.
//! * Split brain: both servers configured with one `server.id`, so both hold the `dhcp`
//!   row and both allocate from the same pool. B is cut off for a first perfdhcp run
//!   (so A binds addresses B's table does not know), then A is cut off and B answers a
//!   second run: B offers and tries to bind A's addresses, the store refuses those
//!   bindings (logged), B sends no ACK for them, and still no address is ACKed to two
//!   MACs and the store agrees with the wire; the duplicate id is named in the logs.
//!
//! Needs root: fails (never skips) otherwise.

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
const ADDR: [&str; 2] = ["10.99.60.1", "10.99.60.2"];

/// One ACK seen on the wire.
#[derive(Clone, Debug)]
struct Ack {
    at: f64,
    server: Ipv4Addr,
    yiaddr: Ipv4Addr,
    mac: String,
}

/// A bridge in its own namespace, two server namespaces and a client namespace on it.
struct Fabric {
    _lab: Lab,
    servers: [String; 2],
    server_ifs: [String; 2],
    client: String,
    client_if: String,
}

fn fabric() -> Fabric {
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
        servers: [a, b],
        server_ifs: [ia, ib],
        client: c,
        client_if: ic,
    }
}

fn config(url: &str, id: &str, iface: &str, addr: &str) -> String {
    format!(
        "[server]\nuser = \"\"\nid = \"{id}\"\n[store]\nurl = \"{url}\"\n\
         [dhcp]\nmode = \"full\"\ninterfaces = [\"{iface}\"]\nrouter_advertisement = false\n\
         [[dhcp.subnets]]\nnetwork = \"10.99.60.0/22\"\npools = [\"10.99.61.0-10.99.63.250\"]\nlease_time = \"1h\"\n\
         [tftp]\nenabled = false\n[http]\nlisten = \"{addr}:8080\"\n[api]\nenabled = false\n"
    )
}

/// A `tabula serve` of the fabric; its log (info) in `log`.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(env: &Env, ns: &str, cfg: &Path, name: &str) -> Server {
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
fn members(env: &Env) -> Vec<(String, bool, Vec<String>)> {
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

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts tcpdump on the client side (DHCP replies only) and waits until it captures.
fn capture(f: &Fabric, pcap: &Path) -> Child {
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

fn stop_capture(mut c: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &c.id().to_string()])
        .status();
    let _ = c.wait();
}

/// perfdhcp in the client namespace: `rate` DORA/s over `clients` MACs (counting up
/// from `base`) for `secs`.
fn perfdhcp(f: &Fabric, base: &str, rate: u32, clients: u32, secs: u32) -> Child {
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
fn acks(pcap: &Path) -> Vec<Ack> {
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
fn stored(env: &Env) -> BTreeMap<Ipv4Addr, String> {
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
fn check_wire_against_store(acks: &[Ack], store: &BTreeMap<Ipv4Addr, String>) {
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

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn setup(ids: [&str; 2]) -> (PgCluster, Env, Fabric, [PathBuf; 2]) {
    let pg = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = pg.database().unwrap_or_else(|e| panic!("{e}"));
    let env = Env::new();
    let f = fabric();
    let cfgs = [0, 1].map(|i| {
        let p = env.dir.path().join(format!("{}.toml", ["a", "b"][i]));
        std::fs::write(&p, config(&url, ids[i], &f.server_ifs[i], ADDR[i])).unwrap();
        p
    });
    env.use_config(cfgs[0].clone());
    env.ok(&["pin", "set", "default", "local"]);
    (pg, env, f, cfgs)
}

#[test]
fn kill_9_of_the_dhcp_authority_hands_over_to_the_standby_without_losing_a_lease() {
    let (_pg, env, f, cfgs) = setup(["pxe-a", "pxe-b"]);
    let a = serve(&env, &f.servers[0], &cfgs[0], "a");
    wait_for("a holds the dhcp role", 20, || {
        members(&env)
            .iter()
            .any(|(id, alive, r)| id == "pxe-a" && *alive && r.contains(&"dhcp".into()))
    });
    let _b = serve(&env, &f.servers[1], &cfgs[1], "b");
    wait_for("b alive as standby", 20, || {
        members(&env)
            .iter()
            .any(|(id, alive, r)| id == "pxe-b" && *alive && !r.contains(&"dhcp".into()))
    });
    let pcap = env.dir.path().join("takeover.pcap");
    let tcpdump = capture(&f, &pcap);
    let run = perfdhcp(&f, "02:0c:01:00:00:00", 100, 3000, 16);
    std::thread::sleep(Duration::from_secs(5));
    let mut a = a;
    sh(&["kill", "-9", &a.child.id().to_string()]);
    let killed = now_s();
    let _ = a.child.wait();
    let out = run.wait_with_output().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stop_capture(tcpdump);
    let report = String::from_utf8_lossy(&out.stdout);
    let acks = acks(&pcap);
    let (from_a, from_b): (Vec<&Ack>, Vec<&Ack>) =
        acks.iter().partition(|x| x.server.to_string() == ADDR[0]);
    assert!(
        from_a.len() > 100,
        "A acknowledged before its death: {}\n{report}",
        from_a.len()
    );
    assert!(
        from_b.len() > 100,
        "B acknowledged after: {}\n{report}",
        from_b.len()
    );
    assert!(
        from_a.iter().all(|x| x.at < killed + 0.1) && from_b.iter().all(|x| x.at > killed),
        "B answered only after A's death"
    );
    let takeover = from_b.iter().map(|x| x.at).fold(f64::MAX, f64::min) - killed;
    eprintln!(
        "takeover: first ACK from the standby {takeover:.2} s after kill -9 ({} ACKs from A, {} from B)",
        from_a.len(),
        from_b.len()
    );
    // docs/ha.md: within leader_ttl + leader_ttl / 3 (4 s at the defaults), plus the
    // lease reload and the clients' next retransmission.
    assert!(
        takeover < 6.0,
        "standby answered {takeover:.2} s after the kill"
    );
    check_wire_against_store(&acks, &stored(&env));
    let m = members(&env);
    assert!(
        m.iter()
            .any(|(id, alive, r)| id == "pxe-b" && *alive && r.contains(&"dhcp".into())),
        "{m:?}"
    );
    assert!(
        m.iter().any(|(id, alive, _)| id == "pxe-a" && !*alive),
        "{m:?}"
    );
    drop(f);
}

#[test]
fn a_forced_split_brain_never_binds_an_address_to_two_macs() {
    // One id on both: both renew the same leader row, both allocate from one pool.
    let (_pg, env, f, cfgs) = setup(["twin", "twin"]);
    let a = serve(&env, &f.servers[0], &cfgs[0], "a");
    let b = serve(&env, &f.servers[1], &cfgs[1], "b");
    wait_for("the twins hold the dhcp role", 20, || {
        members(&env)
            .iter()
            .any(|(_, alive, r)| *alive && r.contains(&"dhcp".into()))
    });
    // Both see every DISCOVER, so their tables would stay in step: cut B off for a
    // first run (A binds addresses B's table does not know), then let both answer new
    // clients (other MACs: perfdhcp counts up from its base MAC in each run).
    sh(&[
        "ip",
        "-n",
        &f.servers[1],
        "link",
        "set",
        &f.server_ifs[1],
        "down",
    ]);
    let pcap = env.dir.path().join("split.pcap");
    let tcpdump = capture(&f, &pcap);
    let first = perfdhcp(&f, "02:0c:01:00:00:00", 100, 300, 4)
        .wait_with_output()
        .unwrap();
    // Then B alone, with a table that never saw A's bindings: had both stayed on the
    // wire, A's offers could win every race and B would never answer (a flaky split).
    sh(&[
        "ip",
        "-n",
        &f.servers[0],
        "link",
        "set",
        &f.server_ifs[0],
        "down",
    ]);
    sh(&[
        "ip",
        "-n",
        &f.servers[1],
        "link",
        "set",
        &f.server_ifs[1],
        "up",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let out = perfdhcp(&f, "02:0c:02:00:00:00", 100, 300, 4)
        .wait_with_output()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stop_capture(tcpdump);
    eprintln!("{}", String::from_utf8_lossy(&first.stdout));
    let report = String::from_utf8_lossy(&out.stdout);
    let acks = acks(&pcap);
    let servers: BTreeSet<Ipv4Addr> = acks.iter().map(|x| x.server).collect();
    assert_eq!(
        servers.len(),
        2,
        "both servers acknowledged: {servers:?}\n{report}"
    );
    check_wire_against_store(&acks, &stored(&env));
    let refused = [&a, &b]
        .iter()
        .map(|s| std::fs::read_to_string(&s.log).unwrap_or_default())
        .filter(|l| l.contains("lease writes refused"))
        .count();
    let from_b: Vec<Ipv4Addr> = acks
        .iter()
        .filter(|x| x.server.to_string() == ADDR[1])
        .map(|x| x.yiaddr)
        .collect();
    eprintln!(
        "split brain: {} ACKs ({} from B, first {:?}), refusals logged by {refused} server(s)",
        acks.len(),
        from_b.len(),
        &from_b[..from_b.len().min(5)]
    );
    if refused == 0 {
        eprintln!("{}", std::fs::read_to_string(&b.log).unwrap_or_default());
    }
    assert!(
        refused > 0,
        "B offered addresses A had bound: the store refused them"
    );
    drop(f);
}

/// GET `path` on `addr`: (status, body).
fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.parse().unwrap_or(0), body.to_string())
}

#[test]
fn with_postgresql_stopped_a_known_machine_still_gets_its_script_and_readyz_says_why() {
    let pg = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = pg.database().unwrap_or_else(|e| panic!("{e}"));
    let env = Env::new();
    let cfg = env.dir.path().join("degraded.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nid = \"solo\"\n[store]\nurl = \"{url}\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n\
             [http]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:1\"\n[api]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    env.use_config(cfg.clone());
    let mac = "52:54:00:00:00:61";
    env.ok(&["pin", "set", mac, "local"]);
    let srv = crate::serve::start_with(&env, &cfg, false);
    let script = format!("/boot.ipxe?mac={}&platform=pcbios", mac.replace(':', "-"));
    let (code, known) = http_get(srv.http, &script);
    assert_eq!(code, 200, "{known}");
    wait_for("store reachable", 10, || {
        http_get(srv.http, "/readyz").1.contains("store reachable")
    });

    pg.pause().unwrap_or_else(|e| panic!("{e}"));
    wait_for("readyz degraded", 15, || {
        let (code, body) = http_get(srv.http, "/readyz");
        code == 503 && body.contains("store unreachable: degraded")
    });
    assert_eq!(
        http_get(srv.http, "/healthz").0,
        200,
        "alive, only degraded"
    );
    let (code, body) = http_get(srv.http, &script);
    assert_eq!(code, 200, "the last snapshot still decides: {body}");
    assert_eq!(body, known, "the same plan as before the outage");

    pg.resume().unwrap_or_else(|e| panic!("{e}"));
    wait_for("store reachable again", 30, || {
        let (code, body) = http_get(srv.http, "/readyz");
        code == 200 && body.contains("store reachable")
    });
    drop(srv);
}
