//! TFTP load client for `bench/tftp.sh`: N clients released at the same instant fetch one
//! file with a given blksize and windowsize (RFC 2348, RFC 7440) from any server, so
//! every server is measured with the same client. Prints one `key=value` result line.
//!
//! Every loop is bounded: per-packet timeout with a retry limit, and an overall
//! deadline. Talks to the address given and nothing else. Not part of tabula.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tabula::tftp::packet::{self, Opcode, Packet};
use tokio::net::UdpSocket;
use tokio::sync::Barrier;

#[derive(Debug, Parser, Clone)]
struct Args {
    #[arg(long)]
    server: SocketAddr,
    #[arg(long)]
    file: String,
    #[arg(long, default_value_t = 1)]
    clients: usize,
    #[arg(long, default_value_t = 512)]
    blksize: u16,
    #[arg(long, default_value_t = 1)]
    windowsize: u16,
    /// Wait this long for a packet before re-sending the last ACK (or the RRQ).
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Timeouts in a row before a client gives up.
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// Whole run limit, in seconds.
    #[arg(long, default_value_t = 60)]
    deadline_s: u64,
    /// Fail a client whose byte count differs.
    #[arg(long)]
    expect_size: Option<u64>,
}

#[derive(Debug, Default)]
struct Outcome {
    bytes: u64,
    timeouts: u32,
    error: Option<String>,
    elapsed: Duration,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(bench(args))
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let barrier = Arc::new(Barrier::new(args.clients + 1));
    let mut sockets = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        sockets.push(UdpSocket::bind("127.0.0.1:0").await?);
    }
    let deadline = Instant::now() + Duration::from_secs(args.deadline_s);
    let mut tasks = tokio::task::JoinSet::new();
    for sock in sockets {
        let (args, barrier) = (args.clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            let start = Instant::now();
            let mut outcome =
                match tokio::time::timeout_at(deadline.into(), fetch(&sock, &args)).await {
                    Ok(o) => o,
                    Err(_) => Outcome {
                        error: Some("deadline".into()),
                        ..Outcome::default()
                    },
                };
            outcome.elapsed = start.elapsed();
            outcome
        });
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined?);
    }
    let seconds = start.elapsed().as_secs_f64();
    let failed: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.error.is_some() || args.expect_size.is_some_and(|want| o.bytes != want))
        .collect();
    let bytes: u64 = outcomes.iter().map(|o| o.bytes).sum();
    let timeouts: u32 = outcomes.iter().map(|o| o.timeouts).sum();
    let mut per_client: Vec<f64> = outcomes.iter().map(|o| o.elapsed.as_secs_f64()).collect();
    per_client.sort_by(f64::total_cmp);
    let p50 = per_client.get(per_client.len() / 2).copied().unwrap_or(0.0);
    let mib = bytes as f64 / (1024.0 * 1024.0);
    println!(
        "clients={} ok={} failed={} timeouts={} bytes={} seconds={:.3} p50={:.3} mib_s={:.1}",
        args.clients,
        outcomes.len() - failed.len(),
        failed.len(),
        timeouts,
        bytes,
        seconds,
        p50,
        if seconds > 0.0 { mib / seconds } else { 0.0 }
    );
    if let Some(first) = failed.first() {
        eprintln!(
            "first failure: {} ({} bytes)",
            first.error.as_deref().unwrap_or("wrong size"),
            first.bytes
        );
    }
    Ok(())
}

/// One download; never panics on what the server sends.
async fn fetch(sock: &UdpSocket, args: &Args) -> Outcome {
    let mut out = Outcome::default();
    let mut options = Vec::new();
    if args.blksize != 512 {
        options.push(("blksize", u64::from(args.blksize)));
    }
    if args.windowsize > 1 {
        options.push(("windowsize", u64::from(args.windowsize)));
    }
    let mut rrq = Vec::new();
    packet::encode_request(&mut rrq, Opcode::Rrq, &args.file, &options);
    let timeout = Duration::from_millis(args.timeout_ms);
    // What to send again on a timeout, and where.
    let mut last_sent = rrq;
    let mut dest = args.server;
    let mut tid: Option<SocketAddr> = None;
    let (mut blksize, mut window) = (512usize, 1u16);
    let mut expected: u16 = 1;
    let mut in_window = 0u16;
    let mut gap_reported = false;
    let mut buf = vec![0u8; 65_536 + 4];
    let mut misses = 0;
    if let Err(e) = sock.send_to(&last_sent, dest).await {
        out.error = Some(format!("send: {e}"));
        return out;
    }
    loop {
        let (len, from) = match tokio::time::timeout(timeout, sock.recv_from(&mut buf)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                out.error = Some(format!("recv: {e}"));
                return out;
            }
            Err(_) => {
                out.timeouts += 1;
                misses += 1;
                if misses > args.retries {
                    out.error = Some("timeout".into());
                    return out;
                }
                in_window = 0;
                let _ = sock.send_to(&last_sent, dest).await;
                continue;
            }
        };
        if tid.is_some_and(|t| t != from) {
            continue;
        }
        let ack = |block: u16| {
            let mut a = Vec::with_capacity(4);
            packet::encode_ack(&mut a, block);
            a
        };
        match Packet::parse(&buf[..len]) {
            Ok(Packet::Oack(o)) if tid.is_none() => {
                tid = Some(from);
                dest = from;
                blksize = usize::from(o.blksize.unwrap_or(512));
                window = o.windowsize.unwrap_or(1).max(1);
                last_sent = ack(0);
            }
            Ok(Packet::Data { block, data }) => {
                if tid.is_none() {
                    tid = Some(from);
                    dest = from;
                }
                if block != expected {
                    // Out of order or a duplicate: ask once per gap for a resend from
                    // the first missing block (RFC 7440 receiver behaviour).
                    if !gap_reported {
                        gap_reported = true;
                        in_window = 0;
                        last_sent = ack(expected.wrapping_sub(1));
                        let _ = sock.send_to(&last_sent, dest).await;
                    }
                    continue;
                }
                misses = 0;
                gap_reported = false;
                out.bytes += data.len() as u64;
                in_window += 1;
                let last = data.len() < blksize;
                expected = expected.wrapping_add(1);
                if last || in_window >= window {
                    in_window = 0;
                    last_sent = ack(block);
                } else {
                    continue;
                }
                if last {
                    let _ = sock.send_to(&last_sent, dest).await;
                    return out;
                }
            }
            Ok(Packet::Error { code, message }) => {
                out.error = Some(format!("server error {code}: {message}"));
                return out;
            }
            _ => continue,
        }
        misses = 0;
        if let Err(e) = sock.send_to(&last_sent, dest).await {
            out.error = Some(format!("send: {e}"));
            return out;
        }
    }
}
