//! Running out of file descriptors, against the real binary: `tabula serve` raises its
//! soft `RLIMIT_NOFILE` to the hard limit at start, and when descriptors are gone anyway
//! (a hard limit set from outside with `prlimit`), HTTP's `accept` and TFTP's transfer
//! sockets fail, are counted and logged, and both serve again once descriptors are free.

use std::io::BufRead;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::common::Env;
use crate::hostile::{HEALTHZ, ask, open_fds};
use crate::serve::start_with;

/// Asks `tftp` for `name` (one block) and returns whether DATA 1 came back within 1.5 s.
fn tftp_fetches(tftp: SocketAddr, name: &str) -> bool {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut rrq = vec![0, 1];
    rrq.extend_from_slice(name.as_bytes());
    rrq.extend_from_slice(b"\0octet\0");
    sock.send_to(&rrq, tftp).unwrap();
    let mut buf = [0u8; 600];
    match sock.recv_from(&mut buf) {
        Ok((n, from)) if n >= 4 && buf[..4] == [0, 3, 0, 1] => {
            let _ = sock.send_to(&[0, 4, 0, 1], from);
            true
        }
        _ => false,
    }
}

#[test]
fn running_out_of_descriptors_is_survived_by_http_and_tftp() {
    let env = Env::new();
    let root = env.dir.path().join("tftproot");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("small.bin"), b"tiny").unwrap();
    let cfg = env.dir.path().join("emfile.toml");
    std::fs::write(
        &cfg,
        format!(
            "[dhcp]\nmode = \"off\"\n[tftp]\nlisten = \"127.0.0.1:0\"\nroot = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:0\"\nmax_connections_per_client = 1000\n\
             [api]\nlisten = \"127.0.0.1:0\"\n",
            root.display()
        ),
    )
    .unwrap();
    let srv = start_with(&env, &cfg, true);
    let tftp = srv.tftp.unwrap();
    let pid = srv.child.id();
    assert!(tftp_fetches(tftp, "small.bin"));
    // Leave the server a few descriptors, then take them with idle connections.
    let limit = open_fds(pid) + 8;
    let set = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .expect("prlimit (util-linux)");
    assert!(set.success());
    let hogs: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(srv.http).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert!(open_fds(pid) >= limit - 1, "descriptors not exhausted");
    // TFTP cannot bind a transfer socket now, and HTTP cannot accept: neither dies.
    assert!(
        !tftp_fetches(tftp, "small.bin"),
        "a transfer without a descriptor?"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        std::path::Path::new(&format!("/proc/{pid}/fd")).exists(),
        "the server is still running"
    );
    drop(hogs);
    // Both serve again once descriptors are free (the backlog drains first).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ok = (false, false);
    while Instant::now() < deadline && ok != (true, true) {
        std::thread::sleep(Duration::from_millis(200));
        if !ok.0 {
            ok.0 = ask(TcpStream::connect(srv.http).unwrap(), HEALTHZ).starts_with("HTTP/1.1 200");
        }
        if !ok.1 {
            ok.1 = tftp_fetches(tftp, "small.bin");
        }
    }
    assert_eq!(ok, (true, true), "(http, tftp) serving again");
}

#[test]
fn serve_raises_its_open_file_limit_to_the_hard_limit() {
    let env = Env::new();
    let cfg = env.dir.path().join("nofile.toml");
    std::fs::write(
        &cfg,
        "[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [api]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    // prlimit execs the server, so the child's pid is the server's.
    let mut child = std::process::Command::new("prlimit")
        .args(["--nofile=256:2048", "--", env!("CARGO_BIN_EXE_tabula")])
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .env("TABULA_DATA_DIR", env.data())
        .env_remove("TABULA_CONFIG")
        .env("TABULA_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux)");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("listening: http"), "{line:?}");
    // Keep draining stdout so the server never writes into a closed pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    // The limit is raised as the daemon starts, just after the listening lines.
    let row = || {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
        limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap()
            .to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let soft = |row: &str| row.split_whitespace().nth(3).unwrap_or("").to_string();
    let mut seen = row();
    while soft(&seen) != "2048" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        seen = row();
    }
    let _ = child.kill();
    let _ = child.wait();
    let nums: Vec<&str> = seen.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums, ["2048", "2048"], "{seen}");
}
