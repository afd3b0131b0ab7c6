//! `tabula serve` as a real process on loopback, driven by curl: the iPXE script, blobs
//! by digest (Range, HEAD, ETag, 404, a 1 GiB download), boot reports, the events they
//! leave, the API listener beside the data plane, and a graceful SIGTERM after which the
//! ports can be bound again.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Env, sha256_of};

const MAC: &str = "52:54:00:00:00:42";

pub struct Server {
    pub child: Child,
    pub http: SocketAddr,
    pub tftp: Option<SocketAddr>,
    pub api: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tabula serve` with HTTP, the API (and TFTP when `tftp_root` is given) on
/// 127.0.0.1:0 and waits for its "listening" lines.
pub fn start(env: &Env, tftp_root: Option<&std::path::Path>) -> Server {
    let cfg = env.dir.path().join("serve.toml");
    let tftp = match tftp_root {
        Some(r) => format!("listen = \"127.0.0.1:0\"\nroot = \"{}\"", r.display()),
        None => "enabled = false".to_string(),
    };
    std::fs::write(
        &cfg,
        format!(
            "[dhcp]\nmode = \"off\"\n[tftp]\n{tftp}\n[http]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:1\"\n\
             [api]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    start_with(env, &cfg, tftp_root.is_some())
}

/// Starts `tabula serve --config CFG` and waits for its "listening" lines: HTTP, then
/// TFTP when `tftp` says the config enables it, then the API, which CFG must enable on
/// port 0 (the default port would collide between tests running in parallel).
pub fn start_with(env: &Env, cfg: &std::path::Path, tftp: bool) -> Server {
    start_with_stderr(env, cfg, tftp, Stdio::inherit())
}

/// [`start_with`] with the server's log (stderr) going to `stderr`.
pub fn start_with_stderr(env: &Env, cfg: &std::path::Path, tftp: bool, stderr: Stdio) -> Server {
    start_in(env, cfg, &env.data(), tftp, "warn", stderr)
}

/// [`start_with_stderr`] with its own data directory `data` (one of several servers
/// sharing a store: each serves from its own disk) and log level `log`.
pub fn start_in(
    env: &Env,
    cfg: &std::path::Path,
    data: &std::path::Path,
    tftp: bool,
    log: &str,
    stderr: Stdio,
) -> Server {
    let mut child = env
        .command()
        .env("TABULA_DATA_DIR", data)
        .env("TABULA_LOG", log)
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut addr = |service: &str| -> SocketAddr {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        line.trim()
            .strip_prefix(&format!("listening: {service} "))
            .map(|a| a.trim_end_matches(" (TLS)"))
            .unwrap_or_else(|| panic!("expected the {service} address, got {line:?}"))
            .parse()
            .unwrap()
    };
    let http = addr("http");
    let tftp = tftp.then(|| addr("tftp"));
    let api = addr("api");
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    Server {
        child,
        http,
        tftp,
        api,
    }
}

pub fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "120", "-D", "-"])
        .args(args)
        .output()
        .expect("curl (Debian package curl) must be installed");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers");
    (
        String::from_utf8_lossy(&raw[..split]).to_lowercase(),
        raw[split + 4..].to_vec(),
    )
}

/// The callback a served script's kernel command line names (`tabula.callback=`), as a
/// path (the script's base URL is a placeholder): `/boot/<mac>/<manifest>/<token>`.
pub fn callback_of(script: &str) -> String {
    let url = script
        .split_whitespace()
        .find_map(|a| a.strip_prefix("tabula.callback="))
        .unwrap_or_else(|| panic!("no tabula.callback= in {script}"));
    let path = url.strip_prefix("http://127.0.0.1:1").expect(url);
    assert_eq!(
        path.split('/').count(),
        5,
        "/boot/<mac>/<manifest>/<token>: {path}"
    );
    path.to_string()
}

pub fn status(headers: &str) -> u16 {
    headers.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn http_serves_scripts_blobs_and_reports() {
    let env = Env::new();
    let kernel = env.file("vmlinuz", 1, 3 << 20);
    let initrd = env.file("initrd.img", 2, 1 << 20);
    let root = env.file("root.squashfs", 3, 5 << 20);
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    let published = env.ok(&[
        "image",
        "add",
        "demo",
        "--version",
        "1",
        "--kernel",
        &p(&kernel),
        "--initrd",
        &p(&initrd),
        "--rootfs",
        &p(&root),
        "--cmdline",
        "quiet",
    ]);
    let manifest = published.split_whitespace().last().unwrap().to_string();
    env.ok(&["machine", "add", "n1", "--mac", MAC, "--hostname", "node-1"]);
    env.ok(&["pin", "set", "n1", "demo@1"]);

    let loaders = env.dir.path().join("loaders");
    std::fs::create_dir(&loaders).unwrap();
    let loader = crate::common::bytes(9, 74_213);
    std::fs::write(loaders.join("undionly.kpxe"), &loader).unwrap();
    let srv = start(&env, Some(&loaders));
    let base = format!("http://{}", srv.http);

    // The loader over TFTP, by a real client, with the client's MAC in the path.
    let got = env.dir.path().join("got.kpxe");
    let st = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--max-time",
            "30",
            "--tftp-blksize",
            "1468",
            "-o",
        ])
        .arg(&got)
        .arg(format!(
            "tftp://{}/52-54-00-00-00-42/undionly.kpxe",
            srv.tftp.unwrap()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(&got).unwrap(), loader);

    // The same loader over HTTP (UEFI HTTP boot), and nothing but plain files of that dir.
    std::os::unix::fs::symlink("/etc/hostname", loaders.join("escape.efi")).unwrap();
    let (h, body) = curl(&[&format!("{base}/loaders/undionly.kpxe")]);
    assert_eq!(status(&h), 200);
    assert_eq!(body, loader);
    assert!(h.contains("content-type: application/efi"), "{h}");
    let (h, body) = curl(&[
        "-I",
        "-o",
        "/dev/null",
        &format!("{base}/loaders/undionly.kpxe"),
    ]);
    assert_eq!(status(&h), 200);
    assert!(body.is_empty());
    assert!(
        h.contains(&format!("content-length: {}", loader.len())),
        "{h}"
    );
    for bad in [
        "escape.efi",
        "..%2Fdata%2Ftabula.db",
        ".hidden",
        "nosuch.efi",
    ] {
        let (h, _) = curl(&[&format!("{base}/loaders/{bad}")]);
        assert_eq!(status(&h), 404, "{bad}: {h}");
    }

    // The script, EFI flavour, as iPXE would ask for it.
    let (h, body) = curl(&[&format!(
        "{base}/boot.ipxe?mac=52-54-00-00-00-42&platform=efi&buildarch=x86_64"
    )]);
    assert_eq!(status(&h), 200);
    let script = String::from_utf8(body).unwrap();
    let khex = &sha256_of(&kernel)[7..];
    assert!(script.starts_with("#!ipxe\n"), "{script}");
    assert!(
        script.contains(&format!("kernel http://127.0.0.1:1/blobs/sha256/{khex}/vmlinuz?mac=52-54-00-00-00-42&as=kernel quiet ")),
        "{script}"
    );
    assert!(
        script.contains("initrd=initrd.img || goto failed"),
        "{script}"
    );
    // Path form, unknown machine with no default pin: a script that says why and exits.
    let (_, body) = curl(&[&format!("{base}/boot/52:54:00:00:00:99/boot.ipxe")]);
    let s = String::from_utf8(body).unwrap();
    assert!(
        s.contains("not booting 52:54:00:00:00:99: no pin applies"),
        "{s}"
    );
    let (h, _) = curl(&[&format!("{base}/boot.ipxe?mac=zz")]);
    assert_eq!(status(&h), 400);

    // Whole blob, attributed: byte-exact, ETag = digest, cacheable forever.
    let url = format!("{base}/blobs/sha256/{khex}/vmlinuz?mac=52-54-00-00-00-42&as=kernel");
    let (h, body) = curl(&[&url]);
    assert_eq!(status(&h), 200);
    assert_eq!(body, std::fs::read(&kernel).unwrap());
    assert!(h.contains(&format!("etag: \"sha256:{khex}\"")), "{h}");
    assert!(
        h.contains("cache-control: public, max-age=31536000, immutable"),
        "{h}"
    );
    assert!(h.contains("accept-ranges: bytes"), "{h}");

    // Ranges: first byte, middle, last byte (suffix), open-ended.
    let bytes = std::fs::read(&kernel).unwrap();
    let len = bytes.len();
    let plain = format!("{base}/blobs/sha256/{khex}");
    for (range, want) in [
        ("0-0", &bytes[0..1]),
        ("1000-1999", &bytes[1000..2000]),
        ("-1", &bytes[len - 1..]),
        (&format!("{}-", len - 10) as &str, &bytes[len - 10..]),
    ] {
        let (h, body) = curl(&["-r", range, &plain]);
        assert_eq!(status(&h), 206, "range {range}: {h}");
        assert_eq!(body, want, "range {range}");
        assert!(h.contains("content-range: bytes "), "{h}");
    }
    let (h, _) = curl(&["-r", &format!("{}-", len + 10), &plain]);
    assert_eq!(status(&h), 416, "{h}");

    // HEAD, If-None-Match.
    let (h, body) = curl(&["-I", "-o", "/dev/null", &plain]);
    assert_eq!(status(&h), 200);
    assert!(body.is_empty());
    assert!(h.contains(&format!("content-length: {len}")), "{h}");
    let (h, body) = curl(&["-H", &format!("If-None-Match: \"sha256:{khex}\""), &plain]);
    assert_eq!(status(&h), 304, "{h}");
    assert!(body.is_empty());
    let (h, _) = curl(&["-H", "If-None-Match: \"sha256:0000\"", &plain]);
    assert_eq!(status(&h), 200);

    // Nothing but digests: unknown digest, bad hex, traversal.
    let zero = "0".repeat(64);
    for path in [
        format!("/blobs/sha256/{zero}"),
        "/blobs/sha256/abc".to_string(),
        "/blobs/sha256/..%2F..%2Ftabula.db".to_string(),
        "/blobs/sha256/../../tabula.db".to_string(),
        "/blobs/tmp".to_string(),
    ] {
        let (h, _) = curl(&["--path-as-is", &format!("{base}{path}")]);
        assert_eq!(status(&h), 404, "{path}: {h}");
    }

    // Reports from the booted machine, to the callback (with its token) the script gave.
    let mhex = &manifest[7..];
    let callback = callback_of(&script);
    assert!(
        callback.starts_with(&format!("/boot/52-54-00-00-00-42/{mhex}/")),
        "{callback}"
    );
    let root_hex = &sha256_of(&root)[7..];
    let (h, _) = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data",
        &format!("{{\"root_sha256\":\"{root_hex}\"}}"),
        &format!("{base}{callback}/booted"),
    ]);
    assert_eq!(status(&h), 200);
    let (h, _) = curl(&[
        "--data",
        "root image sha256 mismatch",
        &format!("{base}{callback}/failed"),
    ]);
    assert_eq!(status(&h), 200);

    // Every stage is in the store, as data.
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let e = env.ok(&["events", MAC, "--json"]);
        if e.lines().count() >= 5 || Instant::now() > deadline {
            break e;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let ev: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stages: Vec<&str> = ev.iter().map(|e| e["stage"].as_str().unwrap()).collect();
    assert_eq!(
        stages,
        [
            "loader-sent",
            "script-sent",
            "kernel-sent",
            "booted",
            "failed"
        ],
        "{events}"
    );
    assert_eq!(ev[0]["detail"]["file"], "undionly.kpxe");
    assert_eq!(ev[0]["detail"]["bytes"], loader.len());
    // No DHCP handed this MAC a loader: the transfer is recorded, as unverified.
    assert_eq!(ev[0]["detail"]["unverified"], true, "{events}");
    // The kernel was in the plan the script just served this MAC: verified.
    assert_eq!(ev[2]["detail"].get("unverified"), None, "{events}");
    assert_eq!(ev[1]["manifest"], manifest.as_str());
    assert_eq!(ev[2]["detail"]["bytes"], len);
    assert_eq!(ev[2]["detail"]["complete"], true);
    assert_eq!(ev[3]["manifest"], manifest.as_str());
    assert_eq!(ev[3]["detail"]["root_sha256"], root_hex);
    assert_eq!(ev[4]["detail"]["reason"], "root image sha256 mismatch");
    let vias: Vec<&str> = ev.iter().map(|e| e["via"].as_str().unwrap()).collect();
    assert_eq!(vias, ["tftp", "http", "http", "http", "http"], "{events}");
    assert!(ev.iter().all(|e| e["peer"] == "127.0.0.1"), "{events}");
    let shown = env.ok(&["machine", "show", "n1"]);
    assert!(shown.contains("timeline (5 event(s)"), "{shown}");
}

#[test]
fn one_gib_blob_downloads_with_matching_sha256() {
    let env = Env::new();
    let big = env.dir.path().join("big.img");
    let f = std::fs::File::create(&big).unwrap();
    // Random-looking head and tail, sparse middle: 1 GiB without writing 1 GiB of data.
    f.set_len(1 << 30).unwrap();
    drop(f);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&big).unwrap();
        f.write_all(&crate::common::bytes(5, 1 << 20)).unwrap();
        f.seek(SeekFrom::End(-(1 << 20))).unwrap();
        f.write_all(&crate::common::bytes(6, 1 << 20)).unwrap();
    }
    let k = env.file("k", 1, 1000);
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    env.ok(&[
        "image",
        "add",
        "big",
        "--version",
        "1",
        "--kernel",
        &p(&k),
        "--rootfs",
        &p(&big),
    ]);
    let want = sha256_of(&big);
    let srv = start(&env, None);
    let out = env.dir.path().join("download.img");
    let st = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--max-time",
            "300",
            "-o",
            out.to_str().unwrap(),
        ])
        .arg(format!("http://{}/blobs/sha256/{}", srv.http, &want[7..]))
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 1 << 30);
    assert_eq!(sha256_of(&out), want);
}

#[test]
fn sigterm_stops_gracefully_and_frees_the_port() {
    let env = Env::new();
    let loaders = env.dir.path().join("loaders");
    std::fs::create_dir(&loaders).unwrap();
    let mut srv = start(&env, Some(&loaders));
    let addr = srv.http;
    let tftp = srv.tftp.unwrap();
    let (h, _) = curl(&[&format!("http://{addr}/healthz")]);
    assert_eq!(status(&h), 200);
    let t = Instant::now();
    let pid = srv.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let code = loop {
        if let Some(s) = srv.child.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    std::net::TcpListener::bind(addr).expect("HTTP port free again after shutdown");
    std::net::UdpSocket::bind(tftp).expect("TFTP port free again after shutdown");
    std::net::TcpListener::bind(srv.api).expect("API port free again after shutdown");
}

/// Sends raw bytes on a fresh connection and returns everything the server sent back
/// until it closed the connection.
fn raw(addr: SocketAddr, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn connection_handling_keep_alive_and_bad_requests() {
    let env = Env::new();
    let k = env.file("k", 1, 5000);
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    env.ok(&["image", "add", "demo", "--version", "1", "--kernel", &p(&k)]);
    env.ok(&["pin", "set", "default", "demo@1"]);
    let srv = start(&env, None);
    let khex = &sha256_of(&k)[7..];
    let (_, script) = curl(&[&format!(
        "http://{}/boot.ipxe?mac=52-54-00-00-00-07",
        srv.http
    )]);
    let callback = callback_of(&String::from_utf8(script).unwrap());

    // Three requests on one keep-alive connection: a script (router), a blob range
    // (sendfile path), a report with a body (router); the last asks to close.
    let pipeline = format!(
        "GET /boot.ipxe?mac=52-54-00-00-00-07 HTTP/1.1\r\nhost: x\r\n\r\n\
         GET /blobs/sha256/{khex} HTTP/1.1\r\nhost: x\r\nrange: bytes=0-9\r\n\r\n\
         POST {callback}/progress HTTP/1.1\r\nhost: x\r\ncontent-length: 17\r\nconnection: close\r\n\r\n{{\"stage\":\"fetch\"}}"
    );
    let out = raw(srv.http, pipeline.as_bytes());
    let statuses: Vec<&str> = out
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| out[i..].lines().next().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 200 OK",
            "HTTP/1.1 206 Partial Content",
            "HTTP/1.1 200 OK"
        ],
        "{out}"
    );
    assert!(out.contains("#!ipxe"), "{out}");
    assert!(out.contains("content-range: bytes 0-9/5000"), "{out}");
    assert!(out.ends_with("recorded\n"), "{out}");

    // HTTP/1.0 without keep-alive is answered and closed.
    let out = raw(srv.http, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\n")
            && out.contains("connection: close")
            && out.ends_with("ok\n"),
        "{out}"
    );
    // HEAD of a blob: the head, no body.
    let out = raw(
        srv.http,
        format!("HEAD /blobs/sha256/{khex} HTTP/1.0\r\n\r\n").as_bytes(),
    );
    assert!(
        out.contains("content-length: 5000") && out.ends_with("\r\n\r\n"),
        "{out}"
    );

    // Bad input: malformed head, oversized head, chunked upload, oversized body, bad length.
    for (req, want) in [
        (b"GARBAGE\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        (
            format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(20_000)).into_bytes(),
            "HTTP/1.1 431",
        ),
        (
            b"POST /boot/52-54-00-00-00-07/x/failed HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 411",
        ),
        (
            b"POST /boot/52-54-00-00-00-07/x/failed HTTP/1.1\r\nhost: x\r\ncontent-length: 999999\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 413",
        ),
        (
            b"POST /boot/52-54-00-00-00-07/x/failed HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 400",
        ),
    ] {
        let out = raw(srv.http, &req);
        assert!(out.starts_with(want), "{want}: {out}");
    }
    // One route table: an unknown path is a 404, a known one with another method a 405
    // naming what it takes, and neither closes a keep-alive connection.
    let out = raw(
        srv.http,
        b"GET /nothing HTTP/1.1\r\nhost: x\r\n\r\nDELETE /healthz HTTP/1.1\r\nhost: x\r\n\r\n\
          GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    let statuses: Vec<&str> = out
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| out[i..].lines().next().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 404 Not Found",
            "HTTP/1.1 405 Method Not Allowed",
            "HTTP/1.1 200 OK"
        ],
        "{out}"
    );
    assert!(out.contains("allow: GET, HEAD\r\n"), "{out}");
    // The server is still healthy afterwards.
    let (h, _) = curl(&[&format!("http://{}/healthz", srv.http)]);
    assert_eq!(status(&h), 200);
}

#[test]
fn cached_scripts_follow_a_repin() {
    let env = Env::new();
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    let k1 = env.file("k1", 1, 1000);
    let k2 = env.file("k2", 2, 1000);
    env.ok(&[
        "image",
        "add",
        "demo",
        "--version",
        "1",
        "--kernel",
        &p(&k1),
    ]);
    env.ok(&[
        "image",
        "add",
        "demo",
        "--version",
        "2",
        "--kernel",
        &p(&k2),
    ]);
    env.ok(&["pin", "set", "default", "demo@1"]);
    let srv = start(&env, None);
    let url = format!("http://{}/boot.ipxe?mac=52-54-00-00-00-42", srv.http);
    // Every script request below is counted: each must leave exactly one event.
    let mut asked = 0;
    // Repeated requests (answered from the cache after the first) all say demo@1.
    for _ in 0..3 {
        asked += 1;
        let (h, body) = curl(&[&url]);
        assert_eq!(status(&h), 200);
        let s = String::from_utf8(body).unwrap();
        assert!(s.contains("boots demo@1"), "{s}");
    }
    env.ok(&["pin", "set", "default", "demo@2"]);
    // The running server sees the new pin within its snapshot age, never the old script after.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        asked += 1;
        let (_, body) = curl(&[&url]);
        let s = String::from_utf8(body).unwrap();
        if s.contains("boots demo@2") {
            break;
        }
        assert!(s.contains("boots demo@1"), "{s}");
        assert!(
            Instant::now() < deadline,
            "still demo@1 10 s after the re-pin"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..3 {
        asked += 1;
        let (_, body) = curl(&[&url]);
        let s = String::from_utf8(body).unwrap();
        assert!(s.contains("boots demo@2"), "{s}");
    }
    // Every request recorded its own script-sent event, naming the version it got.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ev: Vec<serde_json::Value> = loop {
        let out = env.ok(&["events", MAC, "--json"]);
        let ev: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        // Wait for all of them: the writer stores events in batches, so a read can see
        // some of the last requests' events and not yet the others.
        if ev.len() >= asked || Instant::now() > deadline {
            break ev;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(ev.len() >= 7, "{ev:?}");
    assert_eq!(ev.len(), asked, "one event per request: {ev:?}");
    assert!(ev.iter().all(|e| e["stage"] == "script-sent"), "{ev:?}");
    assert!(
        ev[..3].iter().all(|e| e["detail"]["version"] == "1"),
        "{ev:?}"
    );
    assert!(
        ev[ev.len() - 3..]
            .iter()
            .all(|e| e["detail"]["version"] == "2"),
        "{ev:?}"
    );
    // The requester is a column of its own; the cached detail is reused as is.
    assert!(
        ev.iter()
            .all(|e| e["peer"] == "127.0.0.1" && e["via"] == "http"),
        "{ev:?}"
    );
    assert!(ev.iter().all(|e| e["detail"]["peer"].is_null()), "{ev:?}");
    assert!(
        ev.iter().all(|e| e["detail"]["rule"] == "default"),
        "{ev:?}"
    );
    let versions: Vec<&str> = ev
        .iter()
        .map(|e| e["detail"]["version"].as_str().unwrap())
        .collect();
    let first_v2 = versions.iter().position(|v| *v == "2").unwrap();
    assert!(
        versions[first_v2..].iter().all(|v| *v == "2"),
        "{versions:?}"
    );
}

#[test]
fn api_listener_is_hyper_beside_the_data_plane() {
    let env = Env::new();
    let mut srv = start(&env, None);
    assert_ne!(srv.http, srv.api);
    let (http, api) = (srv.http, srv.api);

    // Both listeners are alive.
    let (h, body) = curl(&[&format!("http://{http}/healthz")]);
    assert_eq!((status(&h), body.as_slice()), (200, &b"ok\n"[..]), "{h}");
    let (h, body) = curl(&[&format!("http://{api}/healthz")]);
    assert_eq!((status(&h), body.as_slice()), (200, &b"ok\n"[..]), "{h}");
    let (h, body) = curl(&[&format!("http://{api}/api/v1/")]);
    assert_eq!(status(&h), 200, "{h}");
    assert!(h.contains("content-type: application/json"), "{h}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["name"], "tabula");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));

    // The data plane does not serve the API, and its loop refuses what hyper accepts.
    let (h, _) = curl(&[&format!("http://{http}/api/v1/")]);
    assert_eq!(status(&h), 404, "{h}");
    let chunked = b"POST /api/v1/nothing HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    assert!(raw(http, chunked).starts_with("HTTP/1.1 411"));

    // The API: hyper reads the chunked body, keeps the connection open, and answers
    // problem+json 404 and 405; the third request asks to close.
    let mut pipeline = chunked.to_vec();
    pipeline.extend_from_slice(b"DELETE /api/v1/ HTTP/1.1\r\nhost: x\r\n\r\n");
    pipeline.extend_from_slice(b"GET /api/v1/ HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let out = raw(api, &pipeline);
    let statuses: Vec<&str> = out
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| out[i..].lines().next().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 404 Not Found",
            "HTTP/1.1 405 Method Not Allowed",
            "HTTP/1.1 200 OK"
        ],
        "{out}"
    );
    assert_eq!(
        out.matches("content-type: application/problem+json")
            .count(),
        2,
        "{out}"
    );
    assert!(
        out.contains(r#""detail":"no API resource at /api/v1/nothing""#),
        "{out}"
    );
    assert!(out.contains(r#""status":405"#), "{out}");
    assert!(
        out.ends_with(&format!(r#""version":"{}"}}"#, env!("CARGO_PKG_VERSION"))),
        "{out}"
    );

    // SIGTERM stops both listeners; both ports can be bound again.
    let t = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &srv.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let code = loop {
        if let Some(s) = srv.child.try_wait().unwrap() {
            break s.code();
        }
        assert!(t.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    std::net::TcpListener::bind(http).expect("HTTP port free again after shutdown");
    std::net::TcpListener::bind(api).expect("API port free again after shutdown");
}
