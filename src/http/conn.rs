//! HTTP/1.1 connections of the data plane: accept, read request heads with `httparse`,
//! classify each request once ([`super::route::classify`]) and answer it here: blobs and
//! loaders by `sendfile`, scripts, reports and health as small buffered bodies; keep-alive,
//! timeouts and graceful shutdown. There is no other router behind this loop: a request
//! `classify` does not know is a 404, a known path with another method a 405.
//!
//! Written here rather than using hyper's server because hyper cannot hand a socket to
//! `sendfile` (see `blobs.rs` for the measurements). Scope is deliberately small: HTTP/1.0
//! and 1.1 only (what firmware, iPXE, initramfs `wget` and curl speak), request bodies
//! by `Content-Length` up to [`MAX_BODY`] (reports are tiny; chunked uploads get 411),
//! heads up to [`MAX_HEAD`], no pipelining beyond what the buffer already holds. Anything
//! that needs streaming, uploads or HTTP/2 belongs on the API listener (`src/api/`).
//!
//! Logs: every connection runs in an `http{peer}` span and every request in a
//! `request{method, route}` span inside it, attached with `Instrument` (never entered
//! across an `.await`).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Version, header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::limits::{Admitted, Limits};
use super::route::{self, Refusal, Route};
use super::{HttpState, blobs, boot_script, loaders, meter, report};

/// Largest request head.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Longest back-off after failed `accept` calls in a row.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// What a connection refused at a cap is told (one non-blocking write, not waited for).
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
content-length: 21\r\nconnection: close\r\nretry-after: 1\r\n\r\ntoo many connections\n";

/// Accepts connections until `shutdown`, then waits for open connections to finish
/// their current request (the daemon bounds that wait).
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let tracker = TaskTracker::new();
    let mut backoff = Duration::ZERO;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::ZERO;
                    let Ok(admitted) = state.limits.admit(peer.ip()) else {
                        let _ = stream.try_write(BUSY);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let span = tracing::debug_span!("http", %peer);
                    tracker.spawn(
                        connection(stream, peer, state.clone(), shutdown.clone(), admitted)
                            .instrument(span),
                    );
                }
                Err(e) => {
                    // Out of file descriptors (EMFILE, ENFILE) and the like: never fatal;
                    // back off (doubling up to a second) instead of spinning on the
                    // connection still waiting in the backlog.
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_BACKOFF);
                    state.limits.accept_errors.warn(&format_args!("{e}"));
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.cancelled() => break,
                    }
                }
            },
            () = shutdown.cancelled() => break,
        }
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// How reading a request head ended.
enum Head {
    /// A complete head of this many bytes (by its blank line) is at the start of the
    /// buffer.
    Ready(usize),
    /// The peer closed, went idle, or the server is stopping between requests.
    Closed,
    /// The head did not end within `http.head_timeout` of its first byte.
    TimedOut,
    /// No blank line within [`MAX_HEAD`] bytes.
    TooLarge,
}

/// Where the head at the start of `buf` ends (after its blank line, CRLF or bare LF),
/// scanning from `*scanned`; `Err` when it cannot end within [`MAX_HEAD`].
pub(super) fn head_end(buf: &[u8], scanned: &mut usize) -> Result<Option<usize>, ()> {
    let mut i = scanned.saturating_sub(2);
    while let Some(off) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        match (buf.get(nl + 1), buf.get(nl + 2)) {
            (Some(b'\n'), _) => return end_at(nl + 2),
            (Some(b'\r'), Some(b'\n')) => return end_at(nl + 3),
            (None, _) | (Some(b'\r'), None) => break,
            _ => i = nl + 1,
        }
    }
    *scanned = buf.len();
    if buf.len() > MAX_HEAD {
        Err(())
    } else {
        Ok(None)
    }
}

fn end_at(n: usize) -> Result<Option<usize>, ()> {
    if n > MAX_HEAD { Err(()) } else { Ok(Some(n)) }
}

/// Reads until a whole head is buffered: the first byte within `http.idle_timeout` (or
/// until shutdown), the rest under one deadline of `http.head_timeout` from there,
/// however it trickles in.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    limits: &Limits,
    shutdown: &CancellationToken,
) -> io::Result<Head> {
    let mut scanned = 0;
    if buf.is_empty() {
        tokio::select! {
            r = tokio::time::timeout(limits.idle_timeout, stream.read_buf(buf)) => match r {
                Err(_) | Ok(Ok(0)) => return Ok(Head::Closed),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            },
            () = shutdown.cancelled() => return Ok(Head::Closed),
        }
    }
    match head_end(buf, &mut scanned) {
        Ok(Some(n)) => return Ok(Head::Ready(n)),
        Ok(None) => {}
        Err(()) => return Ok(Head::TooLarge),
    }
    let rest = async {
        loop {
            if stream.read_buf(buf).await? == 0 {
                return Ok(Head::Closed);
            }
            match head_end(buf, &mut scanned) {
                Ok(Some(n)) => return Ok(Head::Ready(n)),
                Ok(None) => {}
                Err(()) => return Ok(Head::TooLarge),
            }
        }
    };
    match tokio::time::timeout(limits.head_timeout, rest).await {
        Ok(r) => r,
        Err(_) => Ok(Head::TimedOut),
    }
}

/// Reads until `buf` holds `len` bytes, under one deadline of `http.body_timeout`.
/// `false` when the peer closed or the deadline passed first.
async fn read_body(stream: &mut TcpStream, buf: &mut Vec<u8>, len: usize, limits: &Limits) -> bool {
    if buf.len() >= len {
        return true;
    }
    let rest = async {
        while buf.len() < len {
            match stream.read_buf(buf).await {
                Ok(k) if k > 0 => {}
                _ => return false,
            }
        }
        true
    };
    match tokio::time::timeout(limits.body_timeout, rest).await {
        Ok(done) => done,
        Err(_) => {
            limits
                .body_timeouts
                .warn(&format_args!("{} of {len} bytes", buf.len()));
            false
        }
    }
}

/// Writes all of `out` within `http.send_timeout`; a timeout is an error (counted).
/// Most answers fit the socket buffer and go out in one `write` with no timer armed; the
/// deadline is only set up for what is left when the buffer is full.
pub(super) async fn write_all(
    stream: &mut TcpStream,
    out: &[u8],
    limits: &Limits,
) -> io::Result<()> {
    limits.sent(out, out.len());
    let mut rest = out;
    while !rest.is_empty() {
        match stream.try_write(rest) {
            Ok(0) => break,
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    if rest.is_empty() {
        return Ok(());
    }
    match tokio::time::timeout(limits.send_timeout, stream.write_all(rest)).await {
        Ok(r) => r,
        Err(_) => Err(limits.send_timed_out()),
    }
}
/// Writes a refusal, and closes the connection after it unless `keep_alive`.
async fn refuse(
    stream: &mut TcpStream,
    limits: &Limits,
    refusal: &Refusal,
    head_only: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(256);
    refusal.write(&mut out, head_only, keep_alive);
    write_all(stream, &out, limits).await
}

/// The parts of a request head this server uses, owned.
pub(super) struct Parsed {
    pub(super) method: Method,
    pub(super) target: String,
    pub(super) version: Version,
    pub(super) headers: HeaderMap,
}

pub(super) fn parse(raw: &[u8]) -> Result<Parsed, &'static str> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(raw) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete request head\n"),
        Err(_) => return Err("malformed request head\n"),
    }
    let method =
        Method::from_bytes(req.method.unwrap_or("").as_bytes()).map_err(|_| "bad method\n")?;
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::new();
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| "bad header name\n")?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| "bad header value\n")?;
        headers.append(name, value);
    }
    Ok(Parsed {
        method,
        target: req.path.unwrap_or("/").to_string(),
        version,
        headers,
    })
}

/// The body length a parsed head announces, by the rules that keep two parsers (a proxy
/// in front, this server) from disagreeing on where a request ends (RFC 9112 §6.3):
/// - `Transfer-Encoding` with `Content-Length`: 400; `Transfer-Encoding` alone: 411
///   (chunked bodies are not read here);
/// - `Content-Length` must be digits only (no sign, no spaces inside); several values
///   (repeated headers or a comma list) are accepted only when all are identical;
///   different ones are a 400;
/// - an HTTP/1.1 request needs exactly one `Host` (and 1.0 at most one), else 400.
pub(super) fn framing(p: &Parsed) -> Result<usize, Refusal> {
    let bad = |m: &'static str| Err(Refusal::BadRequest(m.into()));
    let hosts = p.headers.get_all(header::HOST).iter().count();
    if hosts > 1 || (hosts == 0 && p.version != Version::HTTP_10) {
        return bad("a request needs exactly one Host header\n");
    }
    let lengths = p.headers.get_all(header::CONTENT_LENGTH);
    let has_length = lengths.iter().next().is_some();
    if p.headers.contains_key(header::TRANSFER_ENCODING) {
        if has_length {
            return bad("Transfer-Encoding and Content-Length together\n");
        }
        return Err(Refusal::LengthRequired);
    }
    let mut len: Option<u64> = None;
    for v in lengths.iter() {
        for item in v.as_bytes().split(|&b| b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() || item.len() > 19 || !item.iter().all(u8::is_ascii_digit) {
                return bad("bad content-length\n");
            }
            let n = item.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            if len.is_some_and(|l| l != n) {
                return bad("conflicting content-length\n");
            }
            len = Some(n);
        }
    }
    match len {
        None => Ok(0),
        Some(n) => match usize::try_from(n) {
            Ok(n) if n <= MAX_BODY => Ok(n),
            _ => Err(Refusal::PayloadTooLarge("request body too large\n")),
        },
    }
}

/// Whether a head that could not be parsed (or did not end) is a `HEAD` request, by its
/// request line as far as it came: such a request's refusal carries no body either, so
/// a client that reads no body after a HEAD is never left with stray bytes.
pub(super) fn sniff_head(raw: &[u8]) -> bool {
    let start = raw
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(raw.len());
    raw[start..].starts_with(b"HEAD ")
}

fn wants_keep_alive(p: &Parsed) -> bool {
    let conn = p
        .headers
        .get("connection")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match p.version {
        Version::HTTP_10 => conn.contains("keep-alive"),
        _ => !conn.contains("close"),
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    st: HttpState,
    shutdown: CancellationToken,
    _admitted: Admitted,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let limits = &*st.limits;
    loop {
        let n = match read_head(&mut stream, &mut buf, limits, &shutdown).await {
            Ok(Head::Ready(n)) => n,
            Ok(Head::Closed) => return,
            Ok(Head::TimedOut) => {
                limits
                    .head_timeouts
                    .warn(&format_args!("{peer}, {} bytes", buf.len()));
                return;
            }
            Ok(Head::TooLarge) => {
                limits
                    .bad_requests
                    .warn(&format_args!("{peer}: head too large"));
                let head_only = sniff_head(&buf);
                let refused = refuse(
                    &mut stream,
                    limits,
                    &Refusal::HeadTooLarge,
                    head_only,
                    false,
                );
                let (_, status) = meter::answered(refused).await;
                limits.requested("malformed", status);
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "connection ended");
                return;
            }
        };
        let framed = parse(&buf[..n])
            .map_err(|why| (Refusal::BadRequest(why.into()), sniff_head(&buf[..n])))
            .and_then(|p| match framing(&p) {
                Ok(len) => Ok((p, len)),
                Err(r) => Err((r, p.method == Method::HEAD)),
            });
        let (parsed, body_len) = match framed {
            Ok(ok) => ok,
            Err((refusal, head_only)) => {
                limits
                    .bad_requests
                    .warn(&format_args!("{peer}: {}", refusal.message().trim_end()));
                // A HEAD is answered without a body even when its head is refused.
                let refused = refuse(&mut stream, limits, &refusal, head_only, false);
                let (_, status) = meter::answered(refused).await;
                limits.requested("malformed", status);
                return;
            }
        };
        buf.drain(..n);
        if !read_body(&mut stream, &mut buf, body_len, limits).await {
            return;
        }
        let body: Vec<u8> = buf.drain(..body_len).collect();
        let keep_alive = wants_keep_alive(&parsed) && !shutdown.is_cancelled();
        let head_only = parsed.method == Method::HEAD;
        let route = route::classify(&parsed.method, &parsed.target);
        let route_name = route.name();
        let span = tracing::debug_span!("request", method = %parsed.method, route = route.name());
        let request = Request {
            headers: &parsed.headers,
            body: &body,
            peer,
            head_only,
            keep_alive,
        };
        let (result, status) =
            meter::answered(answer(&mut stream, &st, route, &request).instrument(span)).await;
        limits.requested(route_name, status);
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection ended");
            return;
        }
        if !keep_alive {
            return;
        }
    }
}

/// What an answer needs of its request besides the route.
struct Request<'a> {
    headers: &'a HeaderMap,
    body: &'a [u8],
    peer: SocketAddr,
    head_only: bool,
    keep_alive: bool,
}

/// Answers one classified request. Errors are connection errors. Buffered answers
/// (scripts, reports, refusals) are written whole within `http.send_timeout`
/// ([`write_all`]); the `sendfile` paths (blobs, loaders) are cut when they make no
/// progress for that long.
async fn answer(
    stream: &mut TcpStream,
    st: &HttpState,
    route: Route<'_>,
    r: &Request<'_>,
) -> io::Result<()> {
    let (head_only, keep_alive) = (r.head_only, r.keep_alive);
    let limits = &*st.limits;
    match route {
        Route::Blob { target } => {
            blobs::send(stream, st, head_only, target, r.headers, r.peer, keep_alive).await
        }
        Route::Script(req) => {
            boot_script::send(stream, st, req, head_only, r.peer.ip(), keep_alive).await
        }
        Route::Loader { name } => loaders::send(stream, st, &name, head_only, keep_alive).await,
        Route::Report(req) => match report::answer(st, &req, r.body, r.peer.ip()) {
            Ok(()) => {
                // The attempt moves only for a report whose token verified (above).
                if let Some(t) = &st.attempts {
                    report::track(t, &req, r.body).await;
                }
                text(stream, limits, report::RECORDED, head_only, keep_alive).await
            }
            Err(refusal) => refuse(stream, limits, &refusal, head_only, keep_alive).await,
        },
        Route::Health | Route::Ready => {
            let (ok, body) = if matches!(route, Route::Health) {
                st.health.summary()
            } else {
                st.health.report()
            };
            let mut out = Vec::with_capacity(192 + body.len());
            route::health_text(&mut out, ok, &body, head_only, keep_alive);
            write_all(stream, &out, limits).await
        }
        Route::Refused(refusal) => refuse(stream, limits, &refusal, head_only, keep_alive).await,
    }
}

/// Writes a `200 OK` with a short plain-text body.
async fn text(
    stream: &mut TcpStream,
    limits: &Limits,
    body: &str,
    head_only: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(192 + body.len());
    route::ok_text(&mut out, body, head_only, keep_alive);
    write_all(stream, &out, limits).await
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
