//! Shared fixtures: a server in a temporary root, deterministic random files, a raw
//! client socket, and a check for client binaries.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tabula::tftp::packet::{self, Opcode, Packet};
use tabula::tftp::transfer::Limits;
use tabula::tftp::{TftpError, TftpServerConfig, TransferEvent};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// A running server and its root directory.
pub struct Server {
    pub addr: SocketAddr,
    pub root: PathBuf,
    pub events: mpsc::Receiver<TransferEvent>,
    // Keeps the directory alive; `root` is `<tmp>/root` so `<tmp>` can hold files outside it.
    pub tmp: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), TftpError>>>,
}

/// Default test configuration: the shipped defaults with a short grace period.
pub fn config(root: &Path) -> TftpServerConfig {
    TftpServerConfig {
        root: root.to_path_buf(),
        max_transfers: 64,
        max_per_client: 64,
        limits: Limits {
            max_blksize: 1468,
            max_windowsize: 16,
            timeout: Duration::from_secs(1),
            retries: 5,
        },
        grace: Duration::from_millis(500),
        loaders: Default::default(),
        dynamic: None,
        refusals: Default::default(),
    }
}

impl Server {
    /// Starts a server on 127.0.0.1:0; `tune` may change the configuration.
    pub async fn start(tune: impl FnOnce(&mut TftpServerConfig)) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).expect("mkdir root");
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("local_addr");
        let mut cfg = config(&root);
        tune(&mut cfg);
        let (tx, events) = mpsc::channel(1024);
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(tabula::tftp::run(socket, cfg, tx, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            root,
            events,
            tmp,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// Writes `len` deterministic pseudo-random bytes to `<root>/name`.
    pub fn file(&self, name: &str, len: usize, seed: u64) -> Vec<u8> {
        let data = random_bytes(len, seed);
        std::fs::write(self.root.join(name), &data).expect("write fixture");
        data
    }

    /// The next event, or a panic after `within`.
    pub async fn event(&mut self, within: Duration) -> TransferEvent {
        tokio::time::timeout(within, self.events.recv())
            .await
            .expect("no TFTP event in time")
            .expect("event channel closed")
    }

    /// An event already delivered, if any.
    pub fn try_event(&mut self) -> Option<TransferEvent> {
        self.events.try_recv().ok()
    }

    /// Triggers shutdown and waits for `run` to return (bounded).
    pub async fn stop(&mut self, within: Duration) -> Result<(), TftpError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let handle = self.handle.take().expect("server already stopped");
        tokio::time::timeout(within, handle)
            .await
            .expect("server did not stop in time")
            .expect("server task panicked")
    }
}

/// xorshift64*: fast, deterministic, good enough to catch misordered blocks.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Finds a client binary on PATH, or fails naming the Debian package that provides it.
pub fn require(binary: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "TFTP client `{binary}` not found on PATH: install the Debian package \
                 `{package}` (apt-get install -y {package}); see .ci/apt-packages-tftp.txt"
            )
        })
}

/// A bare UDP client for hand-made packets.
pub struct Raw {
    pub sock: UdpSocket,
}

impl Raw {
    pub async fn new() -> Raw {
        Raw::on("127.0.0.1").await
    }

    /// A client on another loopback address (127.0.0.0/8 is all local on Linux).
    pub async fn on(ip: &str) -> Raw {
        Raw {
            sock: UdpSocket::bind((ip, 0)).await.expect("bind client"),
        }
    }

    pub async fn send(&self, to: SocketAddr, bytes: &[u8]) {
        self.sock.send_to(bytes, to).await.expect("send");
    }

    pub async fn rrq(&self, to: SocketAddr, name: &str, options: &[(&str, u64)]) {
        let mut buf = Vec::new();
        packet::encode_request(&mut buf, Opcode::Rrq, name, options);
        self.send(to, &buf).await;
    }

    pub async fn ack(&self, to: SocketAddr, block: u16) {
        let mut buf = Vec::new();
        packet::encode_ack(&mut buf, block);
        self.send(to, &buf).await;
    }

    /// The next datagram within `within`, as owned bytes and its source.
    pub async fn recv(&self, within: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0u8; 70_000];
        match tokio::time::timeout(within, self.sock.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => {
                buf.truncate(n);
                Some((buf, from))
            }
            Ok(Err(e)) => panic!("recv: {e}"),
            Err(_) => None,
        }
    }

    /// Expects an ERROR packet and returns its code and message.
    pub async fn expect_error(&self, within: Duration) -> (u16, String) {
        let (bytes, _) = self.recv(within).await.expect("no reply");
        match Packet::parse(&bytes) {
            Ok(Packet::Error { code, message }) => (code.as_u16(), message),
            other => panic!("expected an ERROR, got {other:?}"),
        }
    }
}
