//! A stand-alone tabula TFTP server for benchmarks and manual tests: serves `--root` on
//! `--listen` until SIGINT or SIGTERM. Not the product binary; it only wires
//! `tabula::tftp::run` to a socket, a log subscriber and a signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tabula::tftp::transfer::Limits;
use tabula::tftp::{TftpServerConfig, TransferOutcome};

#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on, e.g. 127.0.0.1:16969.
    #[arg(long)]
    listen: SocketAddr,
    /// Directory to serve.
    #[arg(long)]
    root: PathBuf,
    #[arg(long, default_value_t = 512)]
    max_transfers: usize,
    #[arg(long, default_value_t = 1468)]
    max_blksize: u16,
    #[arg(long, default_value_t = 16)]
    max_windowsize: u16,
    /// Retransmission timeout in milliseconds.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// Runtime worker threads (default: the CPUs this process may run on).
    #[arg(long)]
    workers: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let socket = tokio::net::UdpSocket::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let cfg = TftpServerConfig {
        root: args.root,
        max_transfers: args.max_transfers,
        limits: Limits {
            max_blksize: args.max_blksize,
            max_windowsize: args.max_windowsize,
            timeout: Duration::from_millis(args.timeout_ms),
            retries: args.retries,
        },
        grace: Duration::from_secs(1),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<tabula::tftp::TransferEvent>(4096);
    // Drain events so transfers never wait on the channel; count failures for the log.
    let drain = tokio::spawn(async move {
        let (mut ok, mut failed) = (0u64, 0u64);
        while let Some(ev) = rx.recv().await {
            match ev.outcome {
                TransferOutcome::Completed { .. } => ok += 1,
                TransferOutcome::Aborted { .. } => failed += 1,
            }
        }
        eprintln!("tftpd: {ok} transfers completed, {failed} not");
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    tabula::tftp::run(socket, cfg, tx, shutdown).await?;
    drain.await?;
    Ok(())
}
