//! `tabula serve` against hostile or broken clients on loopback, as issue 12 found them:
//! slowloris heads, one peer taking every connection, clients that never read a big
//! answer, a flood of forged-looking reports, and heads that two parsers could read
//! differently. Each test sets short limits in the config so it runs in seconds, and
//! measures the server process itself (`/proc/PID`: open descriptors, RSS) and its
//! database, not only what the client sees.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Env, sha256_of};
use crate::serve::{Server, start_with};

/// Starts `tabula serve` with `http` and `rest` appended to its `[http]` table and the
/// end of the file; `/loaders/` serves `<tmp>/loaders` (TFTP itself stays off).
fn serve(env: &Env, http: &str, rest: &str) -> Server {
    let loaders = env.dir.path().join("loaders");
    std::fs::create_dir_all(&loaders).unwrap();
    let cfg = env.dir.path().join("hostile.toml");
    std::fs::write(
        &cfg,
        format!(
            "[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\nroot = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:1\"\n{http}\n\
             [api]\nlisten = \"127.0.0.1:0\"\n{rest}\n",
            loaders.display()
        ),
    )
    .unwrap();
    start_with(env, &cfg, false)
}

/// A connection to `to` from the loopback address `127.0.0.<from>`, with a receive
/// buffer of `rcvbuf` bytes when given (a small one makes a non-reader stall at once).
fn connect_from(from: u8, to: SocketAddr, rcvbuf: Option<usize>) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if let Some(n) = rcvbuf {
        s.set_recv_buffer_size(n).unwrap();
    }
    let src = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, from), 0);
    s.bind(&src.into()).unwrap();
    s.connect(&to.into()).unwrap();
    s.into()
}

/// Sends `req` and reads until the server closes (or 5 s pass).
pub(crate) fn ask(mut s: TcpStream, req: &[u8]) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// One request and its response (by `content-length`) on a keep-alive connection.
fn exchange(s: &mut TcpStream, req: &[u8]) -> u16 {
    s.write_all(req).unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed mid-head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Whether the server has closed `s` (FIN or RST seen), without waiting.
fn closed(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 64];
    let mut reader = s;
    let r = loop {
        match reader.read(&mut b) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).unwrap();
    r
}

pub(crate) fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

fn db_bytes(data: &Path) -> u64 {
    std::fs::read_dir(data)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("tabula.db"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

pub(crate) const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";

#[test]
fn slowloris_heads_are_cut_at_the_head_deadline_while_others_are_served() {
    let env = Env::new();
    let srv = serve(
        &env,
        "head_timeout = \"3s\"\nmax_connections_per_client = 400",
        "",
    );
    let mut drips: Vec<TcpStream> = Vec::new();
    let mut first_byte = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(srv.http).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nx-drip: ").unwrap();
        first_byte.push(Instant::now());
        drips.push(s);
    }
    let start = Instant::now();
    let mut checked = None;
    // A byte from every connection every 500 ms: each would restart a per-read timer.
    while start.elapsed() < Duration::from_millis(5500) {
        for s in &mut drips {
            let _ = s.write_all(b"a");
        }
        if checked.is_none() && start.elapsed() >= Duration::from_millis(1000) {
            // How many are still open, and how old the youngest and oldest heads are.
            let open = drips.iter().filter(|s| !closed(s)).count();
            let ages = (first_byte[199].elapsed(), first_byte[0].elapsed());
            let t = Instant::now();
            let out = ask(TcpStream::connect(srv.http).unwrap(), HEALTHZ);
            assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
            checked = Some((open, ages, t.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (open, (youngest, oldest), served_in) = checked.unwrap();
    assert!(
        served_in < Duration::from_secs(1),
        "normal client waited {served_in:?}"
    );
    // Only a head older than the deadline may have been cut (timing on a busy machine
    // is loose, so count the heads by their age rather than assume it).
    if oldest < Duration::from_millis(2800) {
        assert_eq!(
            open, 200,
            "cut before the deadline (heads {youngest:?}..{oldest:?} old)"
        );
    }
    let still_open = drips.iter().filter(|s| !closed(s)).count();
    assert_eq!(
        still_open, 0,
        "dripping heads outlived http.head_timeout = 3s"
    );
}

#[test]
fn at_the_connection_cap_a_new_peer_is_still_served() {
    let env = Env::new();
    let srv = serve(
        &env,
        "max_connections = 8\nmax_connections_per_client = 4",
        "",
    );
    // Two peers hold every place, silently.
    let _held: Vec<TcpStream> = [1, 1, 1, 1, 2, 2, 2, 2]
        .into_iter()
        .map(|from| connect_from(from, srv.http, None))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Their next connections are refused at once, with a 503…
    for from in [1, 2] {
        let t = Instant::now();
        let out = ask(connect_from(from, srv.http, None), HEALTHZ);
        assert!(out.starts_with("HTTP/1.1 503"), "127.0.0.{from}: {out}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }
    // …but a machine that has no connection yet is served, twice in a row.
    for _ in 0..2 {
        let out = ask(connect_from(3, srv.http, None), HEALTHZ);
        assert!(out.starts_with("HTTP/1.1 200 OK"), "new peer: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn clients_that_never_read_are_cut_at_the_send_timeout() {
    let env = Env::new();
    // Bigger than the server's send buffer (tcp_wmem max 4 MiB) plus a 4 KiB receive
    // buffer, so neither answer can be parked in the kernel and forgotten.
    let loader = write_bytes(&env, "loaders/big.efi", 8 << 20);
    let kernel = write_bytes(&env, "kernel", 32 << 20);
    let p = |x: &Path| x.to_str().unwrap().to_string();
    env.ok(&[
        "image",
        "add",
        "demo",
        "--version",
        "1",
        "--kernel",
        &p(&kernel),
    ]);
    let hex = sha256_of(&kernel).trim_start_matches("sha256:").to_string();
    let srv = serve(&env, "send_timeout = \"2s\"", "");
    let pid = srv.child.id();
    assert!(loader.exists());
    // Warm up (the blob's file is kept open afterwards), then take the baseline.
    let out = ask(
        TcpStream::connect(srv.http).unwrap(),
        format!("HEAD /blobs/sha256/{hex} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let (fds0, rss0) = (open_fds(pid), rss_kib(pid));
    let mut stalled = Vec::new();
    for i in 0..20 {
        let mut s = connect_from(1, srv.http, Some(4096));
        let req = if i % 2 == 0 {
            "GET /loaders/big.efi HTTP/1.1\r\nhost: x\r\n\r\n".to_string()
        } else {
            format!("GET /blobs/sha256/{hex} HTTP/1.1\r\nhost: x\r\n\r\n")
        };
        s.write_all(req.as_bytes()).unwrap();
        stalled.push(s);
    }
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(700));
    let fds_stalled = open_fds(pid);
    assert!(
        fds_stalled >= fds0 + 20,
        "{fds0} → {fds_stalled} descriptors"
    );
    // Slack of 4: the server's own background work (heartbeat, attempt recorder,
    // rollout controller) can open one more SQLite connection meanwhile (database, WAL
    // and shm: 3 descriptors); 20 stalled sockets not cut would be far above it.
    const SLACK: usize = 4;
    let freed = loop {
        let n = open_fds(pid);
        if n <= fds0 + SLACK || start.elapsed() > Duration::from_secs(8) {
            break n;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = start.elapsed();
    assert!(
        freed <= fds0 + SLACK,
        "still {freed} descriptors (from {fds0}) after {took:?}"
    );
    assert!(
        took >= Duration::from_millis(1500),
        "cut before send_timeout: {took:?}"
    );
    let rss1 = rss_kib(pid);
    assert!(rss1 < rss0 + 16 * 1024, "RSS {rss0} KiB → {rss1} KiB");
    // The server serves on.
    let out = ask(TcpStream::connect(srv.http).unwrap(), HEALTHZ);
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
}

/// Writes `len` pseudo-random bytes at `<tmp>/<name>`.
fn write_bytes(env: &Env, name: &str, len: usize) -> std::path::PathBuf {
    let p = env.dir.path().join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, crate::common::bytes(7, len)).unwrap();
    p
}

/// The path of a `kind` report for `mac` booting `manifest_hex`, with the token the
/// server's key (`<data_dir>/report.key`, made at its start) gives that boot: what a
/// booting machine's callback holds, made here for machines that never fetched a script.
fn report_path(env: &Env, mac: &str, manifest_hex: &str, kind: &str) -> String {
    use tabula::boot::urls::{Callback, ReportKind, Urls};
    let key = tabula::http::report_key::load_or_create(&env.data()).unwrap();
    let mac = mac.parse().unwrap();
    let manifest = tabula::boot::Digest::from_hex(manifest_hex).unwrap();
    let token = key.token(mac, manifest, tabula::http::report_key::boot_id());
    let kind = match kind {
        "booted" => ReportKind::Booted,
        "failed" => ReportKind::Failed,
        _ => ReportKind::Progress,
    };
    Urls::new("").report(&Callback::new(mac, manifest).with_token(token), kind)
}

#[test]
fn a_report_flood_stays_within_the_configured_bounds() {
    let env = Env::new();
    let srv = serve(
        &env,
        "",
        "[events]\nper_mac_per_minute = 5\nper_peer_per_minute = 50\nmax_detail_bytes = 1024\n\
         queue_bytes = 1048576",
    );
    let pid = srv.child.id();
    let manifest = "ab".repeat(32);
    let mut s = TcpStream::connect(srv.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Only known query keys reach the detail.
    let first = format!(
        "POST {}?reason=why&evil=1 HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
        report_path(&env, "52-54-00-00-99-99", &manifest, "progress")
    );
    assert_eq!(exchange(&mut s, first.as_bytes()), 200);
    let (rss0, db0) = (rss_kib(pid), db_bytes(&env.data()));
    let body = format!("{{\"reason\":\"{}\"}}", "x".repeat(16_000));
    let (mut recorded, mut refused) = (0, 0);
    let flood = Instant::now();
    // Each with a valid token, so every one reaches the rate gates (a forged one is
    // refused before them: security.rs).
    let paths: Vec<String> = (0..2000u32)
        .map(|i| {
            let mac = format!(
                "52-54-00-{:02x}-{:02x}-{:02x}",
                i >> 16,
                (i >> 8) & 0xff,
                i & 0xff
            );
            report_path(&env, &mac, &manifest, "failed")
        })
        .collect();
    for path in &paths {
        let req = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        match exchange(&mut s, req.as_bytes()) {
            200 => recorded += 1,
            429 => refused += 1,
            other => panic!("status {other}"),
        }
    }
    // Per-peer bucket: 50, less the first report, plus what refilled meanwhile (50 a
    // minute: a token per 1.2 s of flood).
    let refilled = flood.elapsed().as_secs() * 50 / 60 + 1;
    let budget = 50 + usize::try_from(refilled).unwrap();
    assert!(
        recorded <= budget,
        "{recorded} recorded (budget {budget}), {refused} refused"
    );
    assert_eq!(recorded + refused, 2000);
    std::thread::sleep(Duration::from_millis(500));
    let (rss1, db1) = (rss_kib(pid), db_bytes(&env.data()));
    assert!(db1 < db0 + (2 << 20), "database {db0} → {db1} bytes");
    assert!(rss1 < rss0 + 32 * 1024, "RSS {rss0} KiB → {rss1} KiB");
    let out = env.ok(&["events", "--json", "--last", "100"]);
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.len() <= budget + 1, "{} events stored", events.len());
    let first = events
        .iter()
        .find(|e| e["mac"] == "52:54:00:00:99:99")
        .expect("the first report");
    assert_eq!(first["detail"]["reason"], "why", "{first}");
    assert!(first["detail"].get("evil").is_none(), "{first}");
    let big = events
        .iter()
        .find(|e| e["stage"] == "failed")
        .expect("a flood report");
    assert!(
        big["detail"]["truncated"]
            .as_u64()
            .is_some_and(|n| n > 16_000),
        "{big}"
    );
}

#[test]
fn ambiguous_heads_are_refused_and_bare_lf_heads_answered() {
    let env = Env::new();
    let k = write_bytes(&env, "k", 5000);
    env.ok(&[
        "image",
        "add",
        "demo",
        "--version",
        "1",
        "--kernel",
        k.to_str().unwrap(),
    ]);
    let hex = sha256_of(&k).trim_start_matches("sha256:").to_string();
    let srv = serve(&env, "", "");
    let report = format!(
        "POST {} HTTP/1.1\r\n",
        report_path(&env, "52-54-00-00-00-07", &hex, "progress")
    );
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{report}host: x\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{{}} "),
            "400",
        ),
        (
            format!("{report}host: x\r\ncontent-length: +2\r\n\r\n{{}}"),
            "400",
        ),
        (
            format!("{report}host: x\r\ncontent-length: -1\r\n\r\n"),
            "400",
        ),
        (
            format!("{report}host: x\r\ncontent-length: 2x\r\n\r\n{{}}"),
            "400",
        ),
        (
            format!(
                "{report}host: x\r\ntransfer-encoding: chunked\r\ncontent-length: 2\r\n\r\n{{}}"
            ),
            "400",
        ),
        ("GET /healthz HTTP/1.1\r\n\r\n".into(), "400"),
        (
            "GET /healthz HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n".into(),
            "400",
        ),
        (
            format!(
                "GET /blobs/sha256/{hex} HTTP/1.1\r\nhost: x\r\nrange: bytes=-0\r\nconnection: close\r\n\r\n"
            ),
            "416",
        ),
        // Identical duplicates are one length.
        (
            format!(
                "{report}host: x\r\ncontent-length: 2\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
            ),
            "200",
        ),
        ("GET /healthz HTTP/1.0\r\n\r\n".into(), "200"),
    ];
    for (req, want) in cases {
        let t = Instant::now();
        let out = ask(TcpStream::connect(srv.http).unwrap(), req.as_bytes());
        assert!(
            out.starts_with(&format!("HTTP/1.1 {want}")),
            "{req:?}: {out}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{req:?}: {:?}",
            t.elapsed()
        );
    }
    // A bare-LF head is parsed and answered at once, not left to time out.
    let t = Instant::now();
    let out = ask(
        TcpStream::connect(srv.http).unwrap(),
        b"GET /healthz HTTP/1.1\nhost: x\nconnection: close\n\n",
    );
    assert!(
        out.starts_with("HTTP/1.1 200 OK") && out.ends_with("ok\n"),
        "{out}"
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[test]
fn healthz_and_readyz_say_which_front_end_is_not_serving() {
    let env = Env::new();
    let cfg = env.dir.path().join("health.toml");
    // TFTP binds, then fails at once: its root does not exist.
    std::fs::write(
        &cfg,
        "[dhcp]\nmode = \"off\"\n[tftp]\nlisten = \"127.0.0.1:0\"\nroot = \"/nonexistent/tabula\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\n[api]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let srv = start_with(&env, &cfg, true);
    let get = |addr: SocketAddr, path: &str| {
        ask(
            TcpStream::connect(addr).unwrap(),
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut out = get(srv.http, "/healthz");
    while !out.starts_with("HTTP/1.1 503") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        out = get(srv.http, "/healthz");
    }
    assert!(
        out.starts_with("HTTP/1.1 503") && out.ends_with("not serving: tftp\n"),
        "{out}"
    );
    let out = get(srv.http, "/readyz");
    assert!(out.starts_with("HTTP/1.1 503"), "{out}");
    assert!(
        out.ends_with("dhcp off\ntftp down\nhttp serving\n"),
        "{out}"
    );
    for path in ["/healthz", "/readyz"] {
        let out = get(srv.api, path);
        assert!(out.starts_with("HTTP/1.1 503"), "api {path}: {out}");
        assert!(out.contains("tftp"), "api {path}: {out}");
    }
}
