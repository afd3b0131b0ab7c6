//! Network namespaces for DHCP tests: created by the test, joined by veth pairs, with
//! 10.99.x.y addresses that exist only inside them, and removed by a Drop guard even when
//! the test panics. Nothing here touches the host's interfaces.
//!
//! Also: running `tabula serve` inside a namespace, a raw DHCP client that runs in a
//! namespace (a thread that `setns`es), and root checks that FAIL (never skip).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dhcproto::v4;
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use socket2::{Domain, Protocol, Socket, Type};

use crate::common::Env;

/// Fails (never skips) when not root: CI runs these as root.
pub fn require_root() {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    let uid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        uid, "0",
        "DHCP namespace tests need root (ip netns, veth, port 67); run `sudo bash tests/run.sh`"
    );
}

/// Runs a command, panicking with its stderr on failure.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A set of namespaces owned by one test; all deleted on drop.
pub struct Lab {
    pub tag: String,
    names: Vec<String>,
    children: Vec<Child>,
}

impl Lab {
    /// A fresh lab; `n` is a small per-test number used in names.
    pub fn new() -> Lab {
        require_root();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        Lab {
            tag: format!("{:x}{}", std::process::id() % 0xffff, seq),
            names: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Creates namespace `tabula-<tag>-<role>` with loopback up; returns its name.
    pub fn ns(&mut self, role: &str) -> String {
        let name = format!("tabula-{}-{role}", self.tag);
        sh(&["ip", "netns", "add", &name]);
        self.names.push(name.clone());
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// A veth pair between namespaces `a` and `b`; returns (name in a, name in b).
    pub fn veth(&mut self, a: &str, b: &str, role: &str) -> (String, String) {
        let (ia, ib) = (
            format!("t{}{role}a", self.tag),
            format!("t{}{role}b", self.tag),
        );
        assert!(ia.len() <= 15, "interface name too long: {ia}");
        sh(&[
            "ip", "link", "add", &ia, "netns", a, "type", "veth", "peer", "name", &ib, "netns", b,
        ]);
        sh(&["ip", "-n", a, "link", "set", &ia, "up"]);
        sh(&["ip", "-n", b, "link", "set", &ib, "up"]);
        (ia, ib)
    }

    /// Starts a process in a namespace (`ip netns exec` execs: the child is the process).
    pub fn spawn(&mut self, ns: &str, args: &[&str]) -> usize {
        let c = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        self.children.push(c);
        self.children.len() - 1
    }

    /// Sends `SIG` to a process started by [`Lab::spawn`] and waits for it to exit.
    pub fn signal(&mut self, idx: usize, sig: &str) {
        let c = &mut self.children[idx];
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Output of a command run in a namespace.
    pub fn exec(&self, ns: &str, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.names {
            // Processes this test left in its own namespace (a daemonised dhclient).
            if let Ok(o) = Command::new("ip").args(["netns", "pids", n]).output() {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// `tabula serve` running in a namespace.
pub struct Tabula {
    pub child: Child,
}

impl Drop for Tabula {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts tabula in `ns` with `config` and waits for its DHCP "listening" line.
pub fn start_tabula(env: &Env, ns: &str, config: &str) -> Tabula {
    let cfg = env.dir.path().join("dhcp.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_tabula")])
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .env("TABULA_DATA_DIR", env.data())
        .env("TABULA_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut line = String::new();
        assert!(Instant::now() < deadline, "tabula did not start");
        if out.read_line(&mut line).unwrap() == 0 {
            panic!("tabula exited before listening");
        }
        if line.starts_with("listening: dhcp") {
            break;
        }
    }
    std::thread::spawn(move || for _ in out.lines() {});
    // Leases are restored after the sockets are bound; packets queue meanwhile.
    std::thread::sleep(Duration::from_millis(300));
    Tabula { child }
}

/// Runs `f` on a thread inside namespace `ns` (sockets it creates live there).
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = File::open(&path).unwrap();
        nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// A UDP socket for a hand-written DHCP client or relay, bound to `bind` on `iface`.
pub fn udp(iface: &str, bind: SocketAddrV4) -> UdpSocket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_reuse_address(true).unwrap();
    s.set_broadcast(true).unwrap();
    s.bind_device(Some(iface.as_bytes())).unwrap();
    s.bind(&bind.into()).unwrap();
    let u: UdpSocket = s.into();
    u.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    u
}

/// A client message (op 1) with the given type, MAC and options.
pub fn message(t: v4::MessageType, mac: [u8; 6], xid: u32) -> v4::Message {
    let mut m = v4::Message::new_with_id(
        xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac,
    );
    m.set_flags(v4::Flags::default().set_broadcast());
    m.opts_mut().insert(v4::DhcpOption::MessageType(t));
    m
}

pub fn encode(m: &v4::Message) -> Vec<u8> {
    let mut b = Vec::new();
    m.encode(&mut Encoder::new(&mut b)).unwrap();
    b
}

/// Every reply with `req`'s xid received within `wait` after sending it once.
pub fn collect(
    sock: &UdpSocket,
    to: SocketAddrV4,
    req: &[u8],
    wait: Duration,
) -> Vec<(v4::Message, Vec<u8>)> {
    let xid = u32::from_be_bytes([req[4], req[5], req[6], req[7]]);
    let mut buf = [0u8; 1500];
    let mut out = Vec::new();
    sock.send_to(req, to).unwrap();
    let until = Instant::now() + wait;
    while Instant::now() < until {
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let Ok(m) = v4::Message::decode(&mut Decoder::new(&buf[..n])) else {
            continue;
        };
        if m.opcode() == v4::Opcode::BootReply && m.xid() == xid {
            out.push((m, buf[..n].to_vec()));
        }
    }
    out
}

/// Sends `req` to `to` and returns the first reply with the same xid (retrying 5 times).
pub fn exchange(
    sock: &UdpSocket,
    to: SocketAddrV4,
    req: &[u8],
) -> Option<(v4::Message, SocketAddrV4)> {
    exchange_raw(sock, to, req).map(|(m, f, _)| (m, f))
}

/// [`exchange`], also returning the reply's bytes.
pub fn exchange_raw(
    sock: &UdpSocket,
    to: SocketAddrV4,
    req: &[u8],
) -> Option<(v4::Message, SocketAddrV4, Vec<u8>)> {
    let xid = u32::from_be_bytes([req[4], req[5], req[6], req[7]]);
    let mut buf = [0u8; 1500];
    for _ in 0..5 {
        sock.send_to(req, to).unwrap();
        let until = Instant::now() + Duration::from_millis(600);
        while Instant::now() < until {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Ok(m) = v4::Message::decode(&mut Decoder::new(&buf[..n])) else {
                continue;
            };
            if m.opcode() == v4::Opcode::BootReply && m.xid() == xid {
                let std::net::SocketAddr::V4(from) = from else {
                    continue;
                };
                return Some((m, from, buf[..n].to_vec()));
            }
        }
    }
    None
}

/// DISCOVER + REQUEST for `mac` (broadcast flag set); the ACKed address.
pub fn dora(sock: &UdpSocket, to: SocketAddrV4, mac: [u8; 6], xid: u32) -> Option<Ipv4Addr> {
    let (offer, _) = exchange(
        sock,
        to,
        &encode(&message(v4::MessageType::Discover, mac, xid)),
    )?;
    let server = match offer.opts().get(v4::OptionCode::ServerIdentifier) {
        Some(v4::DhcpOption::ServerIdentifier(s)) => *s,
        _ => return None,
    };
    let mut r = message(v4::MessageType::Request, mac, xid.wrapping_add(1));
    r.opts_mut()
        .insert(v4::DhcpOption::RequestedIpAddress(offer.yiaddr()));
    r.opts_mut()
        .insert(v4::DhcpOption::ServerIdentifier(server));
    let (ack, _) = exchange(sock, to, &encode(&r))?;
    match ack.opts().msg_type() {
        Some(v4::MessageType::Ack) => Some(ack.yiaddr()),
        _ => None,
    }
}

/// An option's raw bytes as a string (trailing NULs removed).
pub fn opt_str(m: &v4::Message, code: u8) -> Option<String> {
    let bytes = match m.opts().get(v4::OptionCode::from(code))? {
        v4::DhcpOption::BootfileName(b) | v4::DhcpOption::ClassIdentifier(b) => b.clone(),
        other => format!("{other:?}").into_bytes(),
    };
    Some(
        String::from_utf8_lossy(&bytes)
            .trim_end_matches('\0')
            .to_string(),
    )
}
