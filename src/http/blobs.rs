//! `GET|HEAD /blobs/sha256/<hex>[/<name>]`: immutable content by digest, sent with
//! `sendfile(2)`.
//!
//! Why not through hyper: hyper writes bodies from user-space buffers, so every byte is
//! read into memory and copied out again, with a blocking-pool hop per chunk; measured
//! against nginx on these machines that lost 10-25 % on 1 MiB files and random ranges.
//! `sendfile` moves page-cache pages to the socket in the kernel: two syscalls per
//! request (open files are kept briefly by digest, [`super::blob_files`], so not even an
//! `open` per request). The price: this module writes the HTTP/1.1 response head itself (the decision
//! is the pure [`super::blob_head::decide`]), and a `sendfile` of bytes not yet in the
//! page cache blocks its worker thread for the disk read, as nginx's does.
//!
//! Only names that parse as a digest reach the filesystem, so nothing outside the blob
//! store is served. A whole download requested with `?mac=…&as=kernel|initrd|rootfs` (as
//! scripts and command lines do) records a boot event with its bytes and seconds.
//! A root image (`as=rootfs`) first waits for a slot ([`super::admission`]): the head
//! goes out only once it is admitted, so a queued machine just sees a slow first byte.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use nix::sys::socket::MsgFlags;
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::HttpState;
use super::admission::Admitted;
use super::blob_files::OpenBlob;
use super::blob_head::decide;
use super::conn::write_all;
use super::limits::Limits;
use super::route::Refusal;
use super::wire::HeadWriter;
use crate::boot::urls::{self, Attribution, BlobRole, BlobTarget};
use crate::boot::{BlobSent, BootEvent, Digest, EventDetail, Via};
use crate::images::{FileStamp, Trust};

/// Largest single `sendfile` call.
const CHUNK: usize = 8 << 20;

/// Whether a request target is a blob route ([`urls::is_blob`]).
pub(super) fn is_blob_target(target: &str) -> bool {
    urls::is_blob(target)
}

/// Answers one blob request on `stream`. Errors are connection errors: the caller
/// closes the connection.
pub(super) async fn send(
    stream: &mut TcpStream,
    st: &HttpState,
    head_only: bool,
    target: &str,
    headers: &HeaderMap,
    peer: SocketAddr,
    keep_alive: bool,
) -> io::Result<()> {
    let parsed = urls::parse_blob(target).ok();
    let opened = match &parsed {
        Some(t) => trusted_blob(st, &t.digest).await,
        None => None,
    };
    let mut out = Vec::with_capacity(320);
    let (Some(parsed), Some(blob)) = (parsed, opened) else {
        // Not here (or not servable): a live peer that holds it, else 404.
        if let Some(d) = urls::parse_blob(target).ok().map(|t| t.digest)
            && let Some(l) = &st.locator
            && let Some(base) = l.holder(&d).await
        {
            redirect(&mut out, &base, target, keep_alive);
            return write_all(stream, &out, &st.limits).await;
        }
        Refusal::NotFound("no such blob\n").write(&mut out, head_only, keep_alive);
        return write_all(stream, &out, &st.limits).await;
    };
    let parsed = &parsed;
    let size = blob.size;
    let decided = decide(headers, &blob.etag, size);
    // Root images wait for a slot (in arrival order) before their head goes out.
    let _slot = match decided.body.filter(|_| !head_only && is_root(parsed)) {
        Some(_) => match st.admission.admit().await {
            Admitted::Go(slot) => slot,
            Admitted::Busy { retry_after } => {
                Refusal::Busy { retry_after }.write(&mut out, head_only, keep_alive);
                return write_all(stream, &out, &st.limits).await;
            }
        },
        None => None,
    };
    decided.write(&mut out, &blob.etag, keep_alive);
    let Some((first, len)) = decided.body.filter(|_| !head_only) else {
        return write_all(stream, &out, &st.limits).await;
    };
    // The head goes out with the first body bytes, not in a packet of its own.
    send_more(stream, &out, &st.limits).await?;
    let started = Instant::now();
    let sent = sendfile_all(stream, &blob.file, first, len, &st.limits).await;
    let bytes = *sent.as_ref().unwrap_or(&0);
    if decided.status == StatusCode::OK && parsed.has_query() {
        record(st, parsed, bytes, size, started.elapsed(), peer);
    }
    sent.map(|_| ())
}

/// The open blob `d` if its file, as it is now, hashed to `d` in this process (hashed
/// now, off the connection's thread, if not yet): a file that does not is quarantined
/// ([`crate::images::Trusted::check`]) and never served.
async fn trusted_blob(st: &HttpState, d: &Digest) -> Option<std::sync::Arc<OpenBlob>> {
    let blob = st.files.get(&st.blobs, d)?;
    // One fstat per request: a blob written to after it was opened (same inode, so
    // `sendfile` would send the new bytes) is hashed again before anything is sent.
    let now = blob.file.metadata().ok().map(|m| FileStamp::of(&m));
    if now == Some(blob.stamp) && st.trusted.is_trusted(d, &blob.stamp) {
        return Some(blob);
    }
    if now != Some(blob.stamp) {
        st.files.forget(d);
    }
    let (b, t, digest) = (st.blobs.clone(), st.trusted.clone(), *d);
    let trust = tokio::task::spawn_blocking(move || t.check(&b, &digest)).await;
    match trust {
        Ok(Ok(Trust::Good)) if st.trusted.is_trusted(d, &blob.stamp) => Some(blob),
        // Replaced between the open and the check: open what was checked.
        Ok(Ok(Trust::Good)) => {
            st.files.forget(d);
            st.files
                .get(&st.blobs, d)
                .filter(|b| st.trusted.is_trusted(d, &b.stamp))
        }
        Ok(Ok(_)) => {
            st.files.forget(d);
            None
        }
        Ok(Err(e)) => {
            tracing::warn!(blob = %d, error = %e, "cannot verify a blob before serving it");
            None
        }
        Err(_) => None,
    }
}

/// A `307` to the same target on the peer at `base` (its query kept, so the peer
/// attributes the download to the machine's boot).
fn redirect(out: &mut Vec<u8>, base: &str, target: &str, keep_alive: bool) {
    let mut h = HeadWriter::new(out, StatusCode::TEMPORARY_REDIRECT);
    let location = format!("{}{target}", base.trim_end_matches('/'));
    h.header("location", location.as_bytes());
    h.header("cache-control", b"no-store");
    h.number("content-length", 0);
    h.finish(keep_alive);
}

/// Whether a request is a machine's root image (`as=rootfs`), the stream admission bounds.
fn is_root(target: &BlobTarget<'_>) -> bool {
    matches!(
        target.attribution(),
        Ok(Some(Attribution {
            role: BlobRole::Rootfs,
            ..
        }))
    )
}

/// Writes `buf` with `MSG_MORE`: the kernel holds a partial segment for the data that
/// follows (the `sendfile`), as `TCP_CORK` would, without two extra system calls.
/// Gives up when the client makes no room for `limits.send_timeout`.
pub(super) async fn send_more(
    stream: &TcpStream,
    mut buf: &[u8],
    limits: &Limits,
) -> io::Result<()> {
    limits.sent(buf, buf.len());
    while !buf.is_empty() {
        tokio::time::timeout(limits.send_timeout, stream.writable())
            .await
            .map_err(|_| limits.send_timed_out())??;
        match stream.try_io(Interest::WRITABLE, || {
            nix::sys::socket::send(
                stream.as_raw_fd(),
                buf,
                MsgFlags::from_bits_retain(libc::MSG_MORE),
            )
            .map_err(io::Error::from)
        }) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends `len` bytes of `file` from `first`; gives up when the client makes no room for
/// `limits.send_timeout` (so a client that never reads holds its connection that long).
pub(super) async fn sendfile_all(
    stream: &TcpStream,
    file: &std::fs::File,
    first: u64,
    len: u64,
    limits: &Limits,
) -> io::Result<u64> {
    let mut offset =
        i64::try_from(first).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let end = offset.saturating_add(i64::try_from(len).unwrap_or(i64::MAX));
    let mut sent = 0u64;
    while offset < end {
        let want = usize::try_from(end - offset).unwrap_or(CHUNK).min(CHUNK);
        tokio::time::timeout(limits.send_timeout, stream.writable())
            .await
            .map_err(|_| limits.send_timed_out())??;
        match stream.try_io(Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile64(stream, file, Some(&mut offset), want)
                .map_err(io::Error::from)
        }) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob shorter than its size",
                ));
            }
            Ok(n) => {
                limits.sent(&[], n);
                sent += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// Records a boot event for an attributed whole download, `unverified` unless the MAC
/// was served a plan with this blob (`attribution.rs`) and, with
/// `http.require_lease_match`, the peer holds the MAC's lease (`lease_match.rs`). A
/// malformed attribution is not an error for the download, only no event.
fn record(
    st: &HttpState,
    target: &BlobTarget<'_>,
    bytes: u64,
    size: u64,
    elapsed: Duration,
    peer: SocketAddr,
) {
    let Ok(Some(Attribution { mac, role })) = target.attribution() else {
        return;
    };
    let leased = st
        .lease_match
        .as_ref()
        .is_none_or(|g| g.download(mac, peer.ip()));
    let sent = BlobSent {
        digest: target.digest,
        bytes,
        expected: size,
        seconds: elapsed.as_secs_f64(),
        complete: bytes == size,
        unverified: !leased
            || !st
                .boots
                .belongs(mac, target.digest, std::time::Instant::now()),
    };
    // A verified download belongs to the MAC's current attempt, which the tracker knows.
    let attempt = match &st.attempts {
        Some(t) if !sent.unverified => t.fetched(mac),
        _ => None,
    };
    // Rate-gated per MAC and per client: a loop of downloads is not a row each.
    st.events.record_attempt_from(
        BootEvent {
            at_ms: crate::events::now_ms(),
            mac,
            manifest: None,
            via: Via::Http,
            peer: Some(peer.ip()),
            detail: EventDetail::blob(role, sent),
        },
        attempt,
        peer.ip(),
    );
}
