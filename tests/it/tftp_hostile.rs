//! TFTP against the real binary, as a hostile client on the boot network would use it: a
//! FIFO in `tftp.root` asked for again and again, a file name carrying a newline, a forged
//! log line and a terminal escape, then SIGTERM with a transfer still in flight. The FIFO
//! is refused at once (never opened, so it holds no thread or slot), the name reaches the
//! log escaped, and the server still stops on SIGTERM.

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Env;
use crate::serve::start_with_stderr;

/// An RRQ for `name`, octet mode.
fn rrq(name: &[u8]) -> Vec<u8> {
    let mut p = vec![0, 1];
    p.extend_from_slice(name);
    p.extend_from_slice(b"\0octet\0");
    p
}

/// The opcode of the first packet answering on `s` (5 s at most).
fn answer(s: &UdpSocket) -> u16 {
    let mut buf = [0u8; 1600];
    let (n, _) = s.recv_from(&mut buf).expect("an answer within 5 s");
    assert!(n >= 4, "{:?}", &buf[..n]);
    u16::from_be_bytes([buf[0], buf[1]])
}

fn socket(from: &str) -> UdpSocket {
    let s = UdpSocket::bind(format!("{from}:0")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

#[test]
fn a_fifo_and_forged_names_neither_block_sigterm_nor_forge_log_lines() {
    let env = Env::new();
    let root = env.dir.path().join("tftp");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("undionly.kpxe"),
        crate::common::bytes(3, 64 * 1024),
    )
    .unwrap();
    let fifo = root.join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo");
    let cfg = env.dir.path().join("tftp-hostile.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nuser = \"\"\n[dhcp]\nmode = \"off\"\n\
             [tftp]\nlisten = \"127.0.0.1:0\"\nroot = \"{}\"\nmax_transfers_per_client = 1\n\
             [http]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:1\"\n\
             [api]\nlisten = \"127.0.0.1:0\"\n",
            root.display()
        ),
    )
    .unwrap();
    let log_path = env.dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut srv = start_with_stderr(&env, &cfg, true, Stdio::from(log));
    let tftp = srv.tftp.unwrap();

    // A real transfer, left un-acknowledged so it stays in flight (and holds this
    // client's one slot)...
    let client = socket("127.0.0.1");
    client.send_to(&rrq(b"undionly.kpxe"), tftp).unwrap();
    assert_eq!(answer(&client), 3, "DATA for the loader");
    // ...so the forged name, from the same host, is refused by the per-client cap, which
    // logs the name it was asked for.
    let forged = b"x\n2026-01-01T00:00:00.000000Z  INFO tabula: forged line\x1b[31mred";
    let second = socket("127.0.0.1");
    second.send_to(&rrq(forged), tftp).unwrap();
    assert_eq!(answer(&second), 5, "an ERROR past the per-client cap");

    // The FIFO, from 20 hosts (each its own client, so the per-client cap is not what
    // answers): an ERROR at once each time; a blocking open would hang here, and a held
    // slot or thread would outlive SIGTERM below.
    for host in 2..22 {
        let other = socket(&format!("127.0.0.{host}"));
        other.send_to(&rrq(b"pipe"), tftp).unwrap();
        assert_eq!(answer(&other), 5, "the FIFO must be refused with an ERROR");
    }

    // SIGTERM with the transfer in flight and the FIFO still there: the server stops.
    let t = Instant::now();
    let term = Command::new("kill")
        .args(["-TERM", &srv.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = loop {
        if let Some(st) = srv.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "still running 20 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");

    let text = std::fs::read(&log_path).unwrap();
    let text = String::from_utf8_lossy(&text);
    assert!(
        !text.contains('\u{1b}'),
        "a raw ESC reached the log:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("2026-01-01T00:00:00")),
        "a forged line reached the log:\n{text}"
    );
    assert!(
        text.contains("x\\n2026-01-01T00:00:00.000000Z  INFO tabula: forged line\\u{1b}[31mred"),
        "the refused name, escaped, is in the log:\n{text}"
    );
}
