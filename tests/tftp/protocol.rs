//! Protocol behaviour shown with hand-made packets: PXE abort-after-OACK, refusals,
//! the transfer limit, duplicate ACKs, retransmission and shutdown.

use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use tabula::tftp::packet::{self, Oack, Opcode, Packet};
use tabula::tftp::{AbortReason, TransferOutcome};
use tokio::net::UdpSocket;

use crate::support::{Raw, Server};

const SHORT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsize_probe_aborted_with_error_8_then_same_port_is_served_at_once() {
    let mut server = Server::start(|_| {}).await;
    let want = server.file("ipxe.efi", 200_000, 7);
    let client = Raw::new().await;
    // OVMF: RRQ tsize=0 blksize=1468 windowsize=4, read the OACK, ERROR 8.
    let probe = [("tsize", 0), ("blksize", 1468), ("windowsize", 4)];
    client.rrq(server.addr, "ipxe.efi", &probe).await;
    let (bytes, tid1) = client.recv(SHORT).await.expect("no OACK");
    let expected = Oack {
        blksize: Some(1468),
        tsize: Some(200_000),
        timeout: None,
        windowsize: Some(4),
    };
    assert_eq!(Packet::parse(&bytes), Ok(Packet::Oack(expected)));
    let mut err = Vec::new();
    packet::encode_error(&mut err, packet::ErrorCode::OptionRefused, "tsize probe");
    client.send(tid1, &err).await;

    // The real request, from the same source port, must be answered at once.
    let asked = Instant::now();
    client
        .rrq(
            server.addr,
            "ipxe.efi",
            &[("blksize", 1468), ("windowsize", 4)],
        )
        .await;
    let (bytes, tid2) = client.recv(SHORT).await.expect("re-request not answered");
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "answered late"
    );
    assert_ne!(tid1, tid2, "a new transfer uses a new port");
    assert!(matches!(Packet::parse(&bytes), Ok(Packet::Oack(o)) if o.tsize.is_none()));

    // Complete it windowed, checking the bytes; nothing may arrive from the old TID.
    client.ack(tid2, 0).await;
    let mut got = Vec::new();
    let mut last = 0u16;
    loop {
        let (bytes, from) = client.recv(SHORT).await.expect("transfer stalled");
        assert_eq!(from, tid2, "packet from the aborted transfer's port");
        let Ok(Packet::Data { block, data }) = Packet::parse(&bytes) else {
            panic!("expected DATA");
        };
        assert_eq!(block, last.wrapping_add(1), "blocks out of order");
        last = block;
        got.extend_from_slice(data);
        if block % 4 == 0 || data.len() < 1468 {
            client.ack(tid2, block).await;
        }
        if data.len() < 1468 {
            break;
        }
    }
    assert_eq!(got, want);
    // The server's retransmit timeout is 1 s: a zombie probe would resend the OACK now.
    assert!(
        client.recv(Duration::from_millis(1500)).await.is_none(),
        "stray packet"
    );

    let first = server.event(SHORT).await;
    assert_eq!(
        first.outcome,
        TransferOutcome::Aborted {
            reason: AbortReason::ClientError {
                code: 8,
                message: "tsize probe".into()
            }
        }
    );
    let second = server.event(SHORT).await;
    assert!(second.is_completed(), "{second:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escapes_symlinks_and_missing_files_are_refused() {
    let mut server = Server::start(|_| {}).await;
    std::fs::write(server.tmp.path().join("secret"), b"outside the root").expect("write");
    symlink("/etc/hostname", server.root.join("hostname")).expect("symlink");
    symlink(
        server.tmp.path().join("secret"),
        server.root.join("secret-link"),
    )
    .expect("symlink");
    let client = Raw::new().await;
    for (name, code) in [
        ("../secret", 2),
        ("sub/../../secret", 2),
        ("..\\secret", 2),
        ("hostname", 2),
        ("secret-link", 2),
        ("/etc/hostname", 1),
        ("//etc/hostname", 2),
        ("missing.efi", 1),
    ] {
        client.rrq(server.addr, name, &[("tsize", 0)]).await;
        let (got, message) = client.expect_error(SHORT).await;
        assert_eq!(got, code, "{name}: {message}");
        let ev = server.event(SHORT).await;
        assert_eq!(ev.file, name);
        assert!(
            matches!(ev.outcome, TransferOutcome::Aborted { reason: AbortReason::Refused { code: c, .. } } if c == code),
            "{name}: {ev:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_requests_and_garbage_are_refused() {
    let mut server = Server::start(|_| {}).await;
    let client = Raw::new().await;
    let mut wrq = Vec::new();
    packet::encode_request(&mut wrq, Opcode::Wrq, "upload.bin", &[]);
    client.send(server.addr, &wrq).await;
    let (code, message) = client.expect_error(SHORT).await;
    assert_eq!(code, 2, "{message}");
    assert!(matches!(
        server.event(SHORT).await.outcome,
        TransferOutcome::Aborted {
            reason: AbortReason::Refused { code: 2, .. }
        }
    ));
    // A truncated RRQ gets ERROR 4; random bytes get nothing.
    client.send(server.addr, b"\x00\x01name-without-nul").await;
    assert_eq!(client.expect_error(SHORT).await.0, 4);
    client.send(server.addr, b"\x17\x42garbage").await;
    assert!(client.recv(Duration::from_millis(300)).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_beyond_the_limit_are_not_answered_until_a_slot_frees() {
    let mut server = Server::start(|c| c.max_transfers = 1).await;
    server.file("f", 10_000, 8);
    let holder = Raw::new().await;
    holder.rrq(server.addr, "f", &[]).await;
    let (_, tid) = holder.recv(SHORT).await.expect("no DATA 1");
    let other = Raw::new().await;
    // Past the global cap: no answer at all (an ERROR would end a PXE ROM's boot; an
    // unanswered RRQ is resent), but a refusal event.
    other.rrq(server.addr, "f", &[]).await;
    assert!(
        other.recv(SHORT).await.is_none(),
        "a busy server must not answer"
    );
    let ev = server.event(SHORT).await;
    assert!(matches!(
        ev.outcome,
        TransferOutcome::Aborted {
            reason: AbortReason::Refused { code: 0, .. }
        }
    ));

    // Releasing the slot (client abort) lets the resent request through.
    let mut err = Vec::new();
    packet::encode_error(&mut err, packet::ErrorCode::NotDefined, "bye");
    holder.send(tid, &err).await;
    let _ = server.event(SHORT).await;
    other.rrq(server.addr, "f", &[]).await;
    let (bytes, _) = other.recv(SHORT).await.expect("no reply after release");
    assert!(matches!(
        Packet::parse(&bytes),
        Ok(Packet::Data { block: 1, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_flood_from_one_host_does_not_refuse_another() {
    let mut server = Server::start(|c| {
        c.max_transfers = 64;
        c.max_per_client = 8;
    })
    .await;
    server.file("f", 100_000, 3);
    // 80 read requests from one host, none ever acknowledged: more than every slot.
    let flood = Raw::new().await;
    for _ in 0..80 {
        flood.rrq(server.addr, "f", &[]).await;
    }
    let (mut data, mut refused) = (0, 0);
    while let Some((bytes, _)) = flood.recv(Duration::from_millis(300)).await {
        match Packet::parse(&bytes) {
            Ok(Packet::Data { block: 1, .. }) => data += 1,
            Ok(Packet::Error { message, .. }) => {
                assert!(
                    message.contains("too many transfers from this client"),
                    "{message}"
                );
                refused += 1;
            }
            _ => {}
        }
    }
    assert_eq!(data, 8, "transfers served to the flooding host");
    assert_eq!(refused, 72);
    // Another machine is served at once, while the flood still holds its slots.
    let other = Raw::on("127.0.0.2").await;
    other.rrq(server.addr, "f", &[]).await;
    let (bytes, _) = other.recv(SHORT).await.expect("no reply to the other host");
    assert!(
        matches!(Packet::parse(&bytes), Ok(Packet::Data { block: 1, .. })),
        "{:?}",
        Packet::parse(&bytes)
    );
    // Every refusal is an event.
    let mut refusals = 0;
    while let Some(ev) = server.try_event() {
        if matches!(
            ev.outcome,
            TransferOutcome::Aborted {
                reason: AbortReason::Refused { code: 0, .. }
            }
        ) {
            refusals += 1;
        }
    }
    assert_eq!(refusals, 72);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_acks_do_not_double_the_data() {
    let server = Server::start(|_| {}).await;
    let want = server.file("f", 512 * 20 + 1, 9);
    let client = Raw::new().await;
    client.rrq(server.addr, "f", &[]).await;
    let mut got = Vec::new();
    let mut datagrams = 0;
    loop {
        let Some((bytes, tid)) = client.recv(Duration::from_millis(700)).await else {
            break;
        };
        let Ok(Packet::Data { block, data }) = Packet::parse(&bytes) else {
            panic!("expected DATA");
        };
        datagrams += 1;
        if usize::from(block) * 512 > got.len() {
            got.extend_from_slice(data);
        }
        // Every ACK twice: a server with Sorcerer's Apprentice sends every block twice.
        client.ack(tid, block).await;
        client.ack(tid, block).await;
    }
    assert_eq!(got, want);
    assert_eq!(datagrams, 21, "each block exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_gets_bounded_retransmissions_then_timeout() {
    let mut server = Server::start(|c| {
        c.limits.timeout = Duration::from_millis(100);
        c.limits.retries = 2;
    })
    .await;
    server.file("f", 100, 10);
    let client = Raw::new().await;
    client.rrq(server.addr, "f", &[]).await;
    let started = Instant::now();
    let mut copies = 0;
    while let Some((bytes, _)) = client.recv(Duration::from_millis(1500)).await {
        assert!(matches!(
            Packet::parse(&bytes),
            Ok(Packet::Data { block: 1, .. })
        ));
        copies += 1;
    }
    assert_eq!(copies, 3, "first send and two retransmissions");
    let ev = server.event(SHORT).await;
    assert_eq!(
        ev.outcome,
        TransferOutcome::Aborted {
            reason: AbortReason::Timeout
        }
    );
    // 100 + 200 + 400 ms of backoff before giving up.
    assert!(started.elapsed() >= Duration::from_millis(650));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cuts_stuck_transfers_after_grace_and_frees_the_port() {
    let mut server = Server::start(|c| {
        c.grace = Duration::from_millis(300);
        c.limits.timeout = Duration::from_secs(5);
    })
    .await;
    server.file("f", 100_000, 11);
    let client = Raw::new().await;
    client.rrq(server.addr, "f", &[]).await;
    let _ = client.recv(SHORT).await.expect("no DATA 1");
    let asked = Instant::now();
    server
        .stop(Duration::from_secs(5))
        .await
        .expect("run failed");
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "grace not honoured: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "shutdown too slow: {took:?}");
    let (code, message) = client.expect_error(SHORT).await;
    assert_eq!(code, 0, "{message}");
    let ev = server.event(SHORT).await;
    assert_eq!(
        ev.outcome,
        TransferOutcome::Aborted {
            reason: AbortReason::Shutdown
        }
    );
    UdpSocket::bind(server.addr)
        .await
        .expect("listening port not freed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_root_fails_at_start() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let cfg = crate::support::config(std::path::Path::new("/nonexistent/tftp-root"));
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let res = tabula::tftp::run(socket, cfg, tx, std::future::pending()).await;
    assert!(matches!(res, Err(tabula::tftp::TftpError::Root { .. })));
}
