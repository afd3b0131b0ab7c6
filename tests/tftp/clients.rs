//! Real clients from Debian packages against the in-process server, byte for byte.

use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tabula::tftp::TransferOutcome;
use tokio::process::Command;

use crate::support::{Server, require};

const MIB: usize = 1024 * 1024;

/// Runs a client to completion (bounded), failing with its output if it fails.
async fn run_client(cmd: &mut Command, what: &str) {
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what}: client did not finish within 120 s"))
        .unwrap_or_else(|e| panic!("{what}: cannot start client: {e}"));
    assert!(
        out.status.success(),
        "{what}: client failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_same(got_path: &Path, want: &[u8], what: &str) {
    let got = std::fs::read(got_path).unwrap_or_else(|e| panic!("{what}: no output file: {e}"));
    assert_eq!(got.len(), want.len(), "{what}: length differs");
    // Report the first differing offset rather than dumping megabytes.
    if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: content differs at byte {at}");
    }
}

/// Waits for the Completed event of `file` and checks bytes and peer.
async fn expect_completed(server: &mut Server, file: &str, bytes: usize) {
    loop {
        let ev = server.event(Duration::from_secs(10)).await;
        if ev.file != file {
            continue;
        }
        assert_eq!(ev.peer.ip(), IpAddr::from([127, 0, 0, 1]));
        match ev.outcome {
            TransferOutcome::Completed { bytes: got, .. } => {
                assert_eq!(got, bytes as u64, "{file}: event byte count");
                return;
            }
            other => panic!("{file}: expected Completed, got {other:?}"),
        }
    }
}

async fn curl_get(server: &Server, name: &str, blksize: u16, dest: &Path) {
    let curl = require("curl", "curl");
    let url = format!("tftp://{}/{name}", server.addr);
    run_client(
        Command::new(curl)
            .args(["-sS", "--fail", "--max-time", "110", "--tftp-blksize"])
            .arg(blksize.to_string())
            .arg("-o")
            .arg(dest)
            .arg(url),
        &format!("curl blksize {blksize}"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_blksize_512_and_1468_byte_exact_with_events() {
    let mut server = Server::start(|_| {}).await;
    let want = server.file("random-3m.bin", 3 * MIB + 333, 1);
    for blksize in [512u16, 1468] {
        let dest = server.tmp.path().join(format!("curl-{blksize}"));
        curl_get(&server, "random-3m.bin", blksize, &dest).await;
        assert_same(&dest, &want, &format!("curl blksize {blksize}"));
        expect_completed(&mut server, "random-3m.bin", want.len()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_block_number_rolls_over_past_65535() {
    let mut server = Server::start(|_| {}).await;
    // 65 536 full blocks of 512 and a short one: wire numbers wrap 65535 -> 0.
    let len = 65_536 * 512 + 1234;
    let want = server.file("big.bin", len, 2);
    let dest = server.tmp.path().join("curl-big");
    curl_get(&server, "big.bin", 512, &dest).await;
    assert_same(&dest, &want, "curl rollover");
    expect_completed(&mut server, "big.bin", len).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atftp_blksize_and_windowsize() {
    let mut server = Server::start(|_| {}).await;
    let want = server.file("random-2m.bin", 2 * MIB + 77, 3);
    let atftp = require("atftp", "atftp");
    let cases: [&[&str]; 3] = [
        &["--option", "blksize 1468"],
        &["--option", "blksize 1468", "--option", "windowsize 16"],
        &["--option", "windowsize 16"],
    ];
    for (i, options) in cases.iter().enumerate() {
        let dest = server.tmp.path().join(format!("atftp-{i}"));
        run_client(
            Command::new(&atftp)
                .args(*options)
                .args(["-g", "-r", "random-2m.bin", "-l"])
                .arg(&dest)
                .arg("127.0.0.1")
                .arg(server.addr.port().to_string()),
            &format!("atftp {options:?}"),
        )
        .await;
        assert_same(&dest, &want, &format!("atftp {options:?}"));
        expect_completed(&mut server, "random-2m.bin", want.len()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_hpa_client_plain_rfc1350() {
    let mut server = Server::start(|_| {}).await;
    let want = server.file("loader.efi", 300 * 1024 + 5, 4);
    std::fs::create_dir(server.root.join("efi")).expect("mkdir");
    let nested = server.file("efi/nested.efi", 1024, 5);
    let tftp = require("tftp", "tftp-hpa");
    for (remote, data) in [("loader.efi", &want), ("/efi/nested.efi", &nested)] {
        let dest = server.tmp.path().join("hpa-out");
        let _ = std::fs::remove_file(&dest);
        let get = format!("get {remote} {}", dest.display());
        run_client(
            Command::new(&tftp)
                .args(["-m", "binary", "127.0.0.1"])
                .arg(server.addr.port().to_string())
                .args(["-c"])
                .args(get.split(' ')),
            "tftp-hpa",
        )
        .await;
        assert_same(&dest, data, &format!("tftp-hpa {remote}"));
        expect_completed(&mut server, remote, data.len()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reports_missing_file_as_failure() {
    let server = Server::start(|_| {}).await;
    let curl = require("curl", "curl");
    let out = Command::new(curl)
        .args(["-sS", "--max-time", "20", "-o", "/dev/null"])
        .arg(format!("tftp://{}/does-not-exist", server.addr))
        .output()
        .await
        .expect("run curl");
    // Exit code 68 is CURLE_TFTP_NOTFOUND: curl understood ERROR 1. (Its message text is
    // unreliable: curl 7.88 prints a getpeername() error instead.)
    assert_eq!(
        out.status.code(),
        Some(68),
        "curl stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
