//! The listening socket: receive requests, refuse what cannot be served, start one
//! task per read request, and shut down cleanly.
//!
//! `run` takes an already-bound socket and a shutdown future, so tests bind
//! `127.0.0.1:0` and decide when to stop. Each transfer runs in its own task on its own
//! ephemeral socket bound to the listening IP (RFC 1350 TIDs), so the listener never
//! waits on a transfer and there is no session table: a client that aborts (ERROR 8
//! after a `tsize` probe) and asks again from the same port is served at once. With a
//! wildcard listen address (`0.0.0.0`) the kernel picks each transfer's source address;
//! on a multi-homed host, run one server per interface address instead.
//! Beyond `max_transfers` a request is not answered (counted, logged, a refusal event; the
//! client resends its RRQ, as PXE ROMs do, and an ERROR would end their boot), and beyond
//! `max_per_client` transfers from one IP address with ERROR 0 "too many transfers from
//! this client", so one host (broken or hostile) cannot take every slot. Both refusals
//! are counted and logged at most once per [`REFUSAL_LOG_EVERY`]. Write
//! requests are refused (read-only). Every RRQ and WRQ ends in exactly one
//! [`TransferEvent`]. This module does no file I/O and holds no lock across I/O.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, warn};

use super::TftpError;
use super::event::{AbortReason, TransferEvent, TransferOutcome};
use super::packet::{self, ErrorCode, Mode, Packet, Request};
use super::root::Root;
use super::session::{self, Session};
use super::transfer::Limits;
use crate::config::TftpConfig;
use crate::loader_files::LoaderFiles;
use crate::throttle::{Throttle, escaped};

/// How long in-flight transfers may go on after shutdown begins, by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);
/// Largest request datagram read; RRQs are far smaller.
const MAX_REQUEST: usize = 2048;
/// At most one log line per refusal kind per this long (each line counts the hits).
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
/// Longest file name written to a log line (names are escaped as well).
pub const LOGGED_NAME: usize = 128;

/// What the server needs to run; build it from [`TftpConfig`] or by hand in tests.
#[derive(Debug, Clone)]
pub struct TftpServerConfig {
    /// Directory served; only regular files under it are sent.
    pub root: PathBuf,
    /// Concurrent transfers; more are not answered (the client resends its RRQ).
    pub max_transfers: usize,
    /// Concurrent transfers from one IP address; more are refused the same way.
    pub max_per_client: usize,
    /// Option and retransmission limits.
    pub limits: Limits,
    /// The refusal counters (read by metrics through a clone of this `Arc`).
    pub refusals: Arc<Refusals>,
    /// How long in-flight transfers may continue once shutdown begins.
    pub grace: Duration,
    /// The configured loaders, resolved at start-up: served from their resolved files
    /// even outside `root` (see `root.rs`). Empty: every name by the root's rules.
    pub loaders: LoaderFiles,
    /// Names answered from tabula's state (GRUB configs, blobs) ahead of the root.
    pub dynamic: Option<std::sync::Arc<dyn super::dynamic::Dynamic>>,
}

/// Read requests not answered for a limit, each counted and logged (rate-limited).
#[derive(Debug)]
pub struct Refusals {
    /// `tftp.max_transfers` reached.
    pub busy: Throttle,
    /// `tftp.max_transfers_per_client` reached.
    pub greedy: Throttle,
}

impl Default for Refusals {
    fn default() -> Refusals {
        Refusals {
            busy: Throttle::new("TFTP server busy (tftp.max_transfers)", REFUSAL_LOG_EVERY),
            greedy: Throttle::new(
                "TFTP client over its transfer limit (tftp.max_transfers_per_client)",
                REFUSAL_LOG_EVERY,
            ),
        }
    }
}

impl From<&TftpConfig> for TftpServerConfig {
    fn from(c: &TftpConfig) -> Self {
        TftpServerConfig {
            root: c.root.clone(),
            max_transfers: c.max_transfers,
            max_per_client: c.max_transfers_per_client,
            limits: Limits {
                max_blksize: c.max_blksize,
                max_windowsize: c.max_windowsize,
                timeout: c.timeout,
                retries: c.retries,
            },
            grace: DEFAULT_GRACE,
            loaders: LoaderFiles::default(),
            dynamic: None,
            refusals: Arc::default(),
        }
    }
}

/// Serves read requests arriving on `socket` until `shutdown` completes, then lets
/// in-flight transfers run for `cfg.grace`, cuts the rest (they get ERROR 0 and an
/// [`AbortReason::Shutdown`] event) and returns. The socket is closed on return.
///
/// Fails at start if the root is unusable. Events are delivered with `send().await`
/// from the transfer's task after its socket is closed and its slot released, so a
/// slow consumer delays only that task's exit; a closed channel is ignored.
pub async fn run(
    socket: UdpSocket,
    cfg: TftpServerConfig,
    events: mpsc::Sender<TransferEvent>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), TftpError> {
    let root = Arc::new(Root::new(&cfg.root)?.with_loaders(cfg.loaders.clone()));
    let local = socket.local_addr().map_err(TftpError::Socket)?;
    let permits = Arc::new(Semaphore::new(cfg.max_transfers));
    let clients = Clients::default();
    let (busy, greedy) = (&cfg.refusals.busy, &cfg.refusals.greedy);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let session = Session {
        root,
        limits: cfg.limits,
        local_ip: local.ip(),
        events: events.clone(),
        cancel: cancel_rx,
        dynamic: cfg.dynamic.clone(),
    };
    info!(%local, root = %session.root.dir().display(), max_transfers = cfg.max_transfers, "TFTP server listening");

    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; MAX_REQUEST];
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => log_join(joined),
            received = socket.recv_from(&mut buf) => {
                let (len, peer) = match received {
                    Ok(r) => r,
                    // ICMP errors from earlier replies surface here on some systems;
                    // they concern one peer, not the listener.
                    Err(e) => {
                        debug!(error = %e, "TFTP listener receive error");
                        continue;
                    }
                };
                let Some(request) = accept(&socket, &buf[..len], peer, &events).await else {
                    continue;
                };
                let Some(slot) = clients.take(peer.ip(), cfg.max_per_client) else {
                    greedy.warn(&format_args!("{} asked for \"{}\"", peer, escaped(&request.filename, LOGGED_NAME)));
                    let message = "too many transfers from this client, try again later";
                    reply_error(&socket, peer, ErrorCode::NotDefined, message).await;
                    refused(&events, peer, request.filename, ErrorCode::NotDefined, message);
                    continue;
                };
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let span = tracing::info_span!(
                            "tftp_transfer",
                            %peer,
                            file = %escaped(&request.filename, LOGGED_NAME),
                            blksize = tracing::field::Empty,
                            windowsize = tracing::field::Empty,
                        );
                        let s = session.clone();
                        tasks.spawn(
                            async move {
                                session::serve(s, peer, request, permit).await;
                                drop(slot);
                            }
                            .instrument(span),
                        );
                    }
                    Err(_) => {
                        drop(slot);
                        // Not answered: a PXE ROM takes an ERROR as final and the
                        // machine fails its boot, but it resends an unanswered RRQ on
                        // its timeout schedule, by which time a slot is likely free (a
                        // boot storm: bench/storm.sh lost 361 of 1,000 machines to the
                        // ERROR). The per-client cap above still answers ERROR: that
                        // one is a single host asking for too much.
                        busy.warn(&format_args!(
                            "{} transfers in flight, not answering {} asking for \"{}\" (it resends)",
                            cfg.max_transfers,
                            peer,
                            escaped(&request.filename, LOGGED_NAME)
                        ));
                        let message = "server busy: not answered, the client resends";
                        refused(&events, peer, request.filename, ErrorCode::NotDefined, message);
                    }
                }
            }
        }
    }
    drop(socket);
    info!(in_flight = tasks.len(), "TFTP server stopping");

    let grace = tokio::time::sleep(cfg.grace);
    tokio::pin!(grace);
    while !tasks.is_empty() {
        tokio::select! {
            () = &mut grace => break,
            Some(joined) = tasks.join_next() => log_join(joined),
        }
    }
    if !tasks.is_empty() {
        warn!(
            in_flight = tasks.len(),
            "TFTP grace period over, cutting transfers"
        );
        let _ = cancel_tx.send(true);
        // Cut transfers only send one ERROR and an event; give them a moment, then stop
        // whatever is stuck (e.g. on a full event channel).
        let drain = async {
            while let Some(joined) = tasks.join_next().await {
                log_join(joined);
            }
        };
        if tokio::time::timeout(Duration::from_secs(1), drain)
            .await
            .is_err()
        {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
    info!("TFTP server stopped");
    Ok(())
}

/// Decides what to do with a datagram on the listening port: a read request to serve,
/// or `None` after refusing or ignoring it.
async fn accept(
    socket: &UdpSocket,
    data: &[u8],
    peer: SocketAddr,
    events: &mpsc::Sender<TransferEvent>,
) -> Option<Request> {
    match Packet::parse(data) {
        Ok(Packet::Rrq(req)) if req.mode == Mode::Mail => {
            let message = "mail mode is not supported";
            reply_error(socket, peer, ErrorCode::IllegalOperation, message).await;
            refused(
                events,
                peer,
                req.filename,
                ErrorCode::IllegalOperation,
                message,
            );
            None
        }
        Ok(Packet::Rrq(req)) => Some(req),
        Ok(Packet::Wrq(req)) => {
            debug!(%peer, file = %escaped(&req.filename, LOGGED_NAME), "refusing write request");
            let message = "read-only server: writes are not allowed";
            reply_error(socket, peer, ErrorCode::AccessViolation, message).await;
            refused(
                events,
                peer,
                req.filename,
                ErrorCode::AccessViolation,
                message,
            );
            None
        }
        Ok(other) => {
            // DATA/ACK/ERROR/OACK belong on a transfer's port; a stray one is ignored.
            debug!(%peer, packet = ?other, "ignoring non-request packet on the listening port");
            None
        }
        Err(e) => {
            debug!(%peer, error = %e, "malformed request");
            // Answer only what claims to be a request; other garbage gets nothing back.
            if matches!(data, [0, 1 | 2, ..]) {
                reply_error(socket, peer, ErrorCode::IllegalOperation, &e.to_string()).await;
            }
            None
        }
    }
}

async fn reply_error(socket: &UdpSocket, peer: SocketAddr, code: ErrorCode, message: &str) {
    let mut out = Vec::with_capacity(message.len() + 5);
    packet::encode_error(&mut out, code, message);
    if let Err(e) = socket.send_to(&out, peer).await {
        debug!(%peer, error = %e, "cannot send TFTP error");
    }
}

/// Reports a request refused by the listener; never blocks it (a full channel drops
/// the event with a warning).
fn refused(
    events: &mpsc::Sender<TransferEvent>,
    peer: SocketAddr,
    file: String,
    code: ErrorCode,
    message: &str,
) {
    let event = TransferEvent {
        peer,
        file,
        outcome: TransferOutcome::Aborted {
            reason: AbortReason::Refused {
                code: code.as_u16(),
                message: message.to_string(),
            },
        },
    };
    if let Err(mpsc::error::TrySendError::Full(_)) = events.try_send(event) {
        warn!(%peer, "TFTP event channel full, dropping a refusal event");
    }
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined
        && e.is_panic()
    {
        warn!(error = %e, "TFTP transfer task panicked");
    }
}

/// Transfers in flight per client IP address.
#[derive(Debug, Default, Clone)]
struct Clients(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl Clients {
    /// A slot for `ip` if it has fewer than `max` transfers in flight.
    fn take(&self, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            clients: self.clone(),
            ip,
        })
    }
}

/// One transfer's place in its client's count; given back when dropped.
#[derive(Debug)]
struct ClientSlot {
    clients: Clients,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut m = self.clients.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}
