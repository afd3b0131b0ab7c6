//! One read transfer's I/O: its own UDP socket (bound to the listening IP, port 0, and
//! connected to the client), opening the file, driving [`Transfer`] with ACKs, ERRORs
//! and timeouts, and reporting the outcome as one [`TransferEvent`].
//!
//! Decisions about options, windows and retries belong to [`super::transfer`]; which
//! files may be served belongs to [`super::root`]. The socket is connected, so the
//! kernel drops datagrams from other ports (RFC 1350 would answer them with ERROR 5) and
//! reports a vanished client as "connection refused", which ends the transfer at once.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio::time::{Instant, Sleep};
use tracing::{Span, debug, info};

use super::event::{AbortReason, TransferEvent, TransferOutcome};
use super::gso;
use super::packet::{self, ErrorCode, Packet, Request};
use super::root::Root;
use super::source::BlockSource;
use super::transfer::{Action, Limits, Transfer, negotiate, wire_block};
use crate::throttle::Throttle;

/// Counts transfer sockets that could not be bound, logging at most one line per 10 s.
static BIND_FAILED: LazyLock<Throttle> = LazyLock::new(|| {
    Throttle::new(
        "TFTP transfer socket not bound (out of descriptors?)",
        Duration::from_secs(10),
    )
});

/// What every transfer task shares.
#[derive(Debug, Clone)]
pub(super) struct Session {
    pub(super) root: Arc<Root>,
    pub(super) limits: Limits,
    pub(super) local_ip: IpAddr,
    pub(super) events: mpsc::Sender<TransferEvent>,
    /// Becomes `true` when the shutdown grace period is over.
    pub(super) cancel: watch::Receiver<bool>,
    pub(super) dynamic: Option<Arc<dyn super::dynamic::Dynamic>>,
}

/// Serves one read request and reports how it ended. Runs in its own task, inside the
/// transfer's span.
pub(super) async fn serve(
    mut s: Session,
    peer: SocketAddr,
    req: Request,
    permit: OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let outcome = match transfer(&mut s, peer, &req, started).await {
        Ok(outcome) => outcome,
        Err(e) => TransferOutcome::Aborted {
            reason: AbortReason::Io(e.to_string()),
        },
    };
    drop(permit);
    match &outcome {
        TransferOutcome::Completed { bytes, elapsed } => {
            info!(
                bytes,
                elapsed_ms = elapsed.as_millis(),
                "TFTP transfer completed"
            );
        }
        TransferOutcome::Aborted {
            reason: AbortReason::ClientError { code, message },
        } => debug!(code, %message, "TFTP transfer ended by the client"),
        TransferOutcome::Aborted { reason } => info!(?reason, "TFTP transfer aborted"),
    }
    let event = TransferEvent {
        peer,
        file: req.filename,
        outcome,
    };
    let _ = s.events.send(event).await;
}

async fn transfer(
    s: &mut Session,
    peer: SocketAddr,
    req: &Request,
    started: Instant,
) -> io::Result<TransferOutcome> {
    // Out of descriptors (EMFILE) ends this transfer only; the listener serves on.
    let sock = match UdpSocket::bind((s.local_ip, 0)).await {
        Ok(sock) => sock,
        Err(e) => {
            BIND_FAILED.warn(&format_args!("for {peer}: {e}"));
            return Err(e);
        }
    };
    sock.connect(peer).await?;

    let asked = match &s.dynamic {
        Some(d) => d.open(&req.filename, peer.ip()).await,
        None => None,
    };
    let opened = match asked {
        Some(answer) => answer,
        None => {
            let root = s.root.clone();
            let name = req.filename.clone();
            tokio::task::spawn_blocking(move || root.open(&name))
                .await
                .map_err(io::Error::other)?
        }
    };
    let content = match opened {
        Ok(content) => content,
        Err(e) => {
            debug!(error = %e, "refusing read request");
            let (code, message) = (e.code(), e.client_message());
            send_error(&sock, code, &message).await;
            return Ok(TransferOutcome::Aborted {
                reason: AbortReason::Refused {
                    code: code.as_u16(),
                    message,
                },
            });
        }
    };

    let size = content.len();
    let negotiated = negotiate(&req.options, size, &s.limits);
    let span = Span::current();
    span.record("blksize", negotiated.blksize);
    span.record("windowsize", negotiated.windowsize);
    let mut t = Transfer::new(size, &negotiated, s.limits.retries);
    let mut source = BlockSource::new(content, negotiated.blksize);
    let mut out = Vec::with_capacity(4 + usize::from(negotiated.blksize));
    let mut gso = true;
    let mut buf = vec![0u8; 1024];
    // The retransmission deadline moves on every send; the timer is only re-armed when it
    // fires early or must fire sooner, so a lock-step transfer does not touch the timer
    // wheel once per block.
    let mut deadline = Instant::now() + t.timeout();
    let mut timer: Pin<Box<Sleep>> = Box::pin(tokio::time::sleep_until(deadline));
    // One long-lived cancellation future, registered once rather than once per packet.
    let cancel = cancelled(s.cancel.clone());
    tokio::pin!(cancel);

    let mut action = t.start();
    loop {
        match action {
            Action::SendOack => {
                out.clear();
                packet::encode_oack(&mut out, &negotiated.oack);
                sock.send(&out).await?;
                rearm(&mut deadline, &mut timer, &t);
            }
            Action::SendBlocks { first, last } => {
                let blocks = first..=last;
                send_blocks(
                    &sock,
                    &mut source,
                    &t,
                    blocks,
                    negotiated.blksize,
                    &mut gso,
                    &mut out,
                )
                .await?;
                rearm(&mut deadline, &mut timer, &t);
            }
            Action::Wait => {}
            Action::Finished => {
                return Ok(TransferOutcome::Completed {
                    bytes: size,
                    elapsed: started.elapsed(),
                });
            }
            Action::Abort(reason) => return Ok(TransferOutcome::Aborted { reason }),
        }
        action = tokio::select! {
            biased;
            () = &mut cancel => {
                send_error(&sock, ErrorCode::NotDefined, "server shutting down").await;
                Action::Abort(AbortReason::Shutdown)
            }
            received = sock.recv(&mut buf) => match received {
                Ok(len) => match Packet::parse(&buf[..len]) {
                    Ok(Packet::Ack(block)) => t.on_ack(block),
                    Ok(Packet::Error { code, message }) => t.on_error(code, &message),
                    // Anything else from the client is not part of a read; ignore it
                    // rather than end a boot over a confused packet.
                    Ok(_) | Err(_) => Action::Wait,
                },
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    Action::Abort(AbortReason::Io("client port unreachable".to_string()))
                }
                Err(e) => return Err(e),
            },
            () = timer.as_mut() => {
                if Instant::now() < deadline {
                    timer.as_mut().reset(deadline);
                    Action::Wait
                } else {
                    t.on_timeout()
                }
            }
        };
    }
}

/// Sends the DATA packets of `blocks`: a window in as few [`gso`] sends as it takes, or
/// one datagram per block once the kernel has refused segmentation offload (for good, on
/// this transfer; the refused send sent nothing and is made again block by block).
async fn send_blocks(
    sock: &UdpSocket,
    source: &mut BlockSource,
    t: &Transfer,
    blocks: std::ops::RangeInclusive<u64>,
    blksize: u16,
    gso: &mut bool,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let segment = blksize.saturating_add(4);
    let per_send = gso::segments_per_send(usize::from(segment)) as u64;
    let (mut next, last) = (*blocks.start(), *blocks.end());
    while next <= last {
        let n = if *gso {
            per_send.min(last + 1 - next)
        } else {
            1
        };
        out.clear();
        for index in next..next + n {
            let data = source.slice(t.block_range(index)).await?;
            packet::encode_data_header(out, wire_block(index));
            out.extend_from_slice(&data);
        }
        if n == 1 {
            sock.send(out).await?;
        } else if let Err(e) = gso::send(sock, out, segment).await {
            if !e.raw_os_error().is_some_and(gso_refused) {
                return Err(e);
            }
            debug!(error = %e, "no UDP segmentation offload here: one datagram per block");
            *gso = false;
            continue;
        }
        next += n;
    }
    Ok(())
}

/// Errors with which the kernel refuses a GSO send it cannot do (nothing was sent).
fn gso_refused(errno: i32) -> bool {
    [libc::EIO, libc::EINVAL, libc::ENOPROTOOPT, libc::EOPNOTSUPP].contains(&errno)
}

/// Resolves once the grace period is over (or the server is gone).
async fn cancelled(mut cancel: watch::Receiver<bool>) {
    let _ = cancel.wait_for(|cut| *cut).await;
}

/// Moves the deadline to one timeout from now, touching the timer only if it already
/// fired or would fire too late (after backoff shrank).
fn rearm(deadline: &mut Instant, timer: &mut Pin<Box<Sleep>>, t: &Transfer) {
    *deadline = Instant::now() + t.timeout();
    if timer.is_elapsed() || timer.deadline() > *deadline {
        timer.as_mut().reset(*deadline);
    }
}

async fn send_error(sock: &UdpSocket, code: ErrorCode, message: &str) {
    let mut out = Vec::with_capacity(message.len() + 5);
    packet::encode_error(&mut out, code, message);
    if let Err(e) = sock.send(&out).await {
        debug!(error = %e, "cannot send TFTP error");
    }
}
