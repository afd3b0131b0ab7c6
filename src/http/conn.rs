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

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::route::{self, Refusal, Route};
use super::{HttpState, blobs, boot_script, loaders, report};

/// Largest request head.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body.
pub const MAX_BODY: usize = 64 * 1024;
/// An idle keep-alive connection is closed after this long.
const IDLE: Duration = Duration::from_secs(60);
/// A started request head must arrive within this long.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts connections until `shutdown`, then waits for open connections to finish
/// their current request (the daemon bounds that wait).
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let tracker = TaskTracker::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let span = tracing::debug_span!("http", %peer);
                    tracker.spawn(
                        connection(stream, peer, state.clone(), shutdown.clone()).instrument(span),
                    );
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
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

enum Head {
    /// A complete head of this many bytes is at the start of the buffer.
    Ready(usize),
    /// The peer closed, went idle, or the server is stopping between requests.
    Closed,
}

async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    shutdown: &CancellationToken,
) -> io::Result<Head> {
    loop {
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
        if end.unwrap_or(buf.len()) > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        if let Some(n) = end {
            return Ok(Head::Ready(n));
        }
        let limit = if buf.is_empty() { IDLE } else { HEAD_TIMEOUT };
        tokio::select! {
            r = tokio::time::timeout(limit, stream.read_buf(buf)) => match r {
                Err(_) | Ok(Ok(0)) => return Ok(Head::Closed),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            },
            () = shutdown.cancelled(), if buf.is_empty() => return Ok(Head::Closed),
        }
    }
}

/// Writes a refusal, and closes the connection after it unless `keep_alive`.
async fn refuse(
    stream: &mut TcpStream,
    refusal: &Refusal,
    head_only: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(256);
    refusal.write(&mut out, head_only, keep_alive);
    stream.write_all(&out).await
}

/// The parts of a request head this server uses, owned.
struct Parsed {
    method: Method,
    target: String,
    version: Version,
    headers: HeaderMap,
}

fn parse(raw: &[u8]) -> Result<Parsed, &'static str> {
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
) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let n = match read_head(&mut stream, &mut buf, &shutdown).await {
            Ok(Head::Ready(n)) => n,
            Ok(Head::Closed) => return,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let _ = refuse(&mut stream, &Refusal::HeadTooLarge, false, false).await;
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "connection ended");
                return;
            }
        };
        let parsed = match parse(&buf[..n]) {
            Ok(p) => p,
            Err(why) => {
                let _ = refuse(&mut stream, &Refusal::BadRequest(why.into()), false, false).await;
                return;
            }
        };
        buf.drain(..n);
        if parsed.headers.contains_key("transfer-encoding") {
            let _ = refuse(&mut stream, &Refusal::LengthRequired, false, false).await;
            return;
        }
        let body_len = match parsed
            .headers
            .get("content-length")
            .map(|v| v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()))
        {
            None => 0,
            Some(Some(n)) if n <= MAX_BODY => n,
            Some(bad) => {
                let refusal = match bad {
                    Some(_) => Refusal::PayloadTooLarge("request body too large\n"),
                    None => Refusal::BadRequest("bad content-length\n".into()),
                };
                let _ = refuse(&mut stream, &refusal, false, false).await;
                return;
            }
        };
        while buf.len() < body_len {
            match tokio::time::timeout(HEAD_TIMEOUT, stream.read_buf(&mut buf)).await {
                Ok(Ok(k)) if k > 0 => {}
                _ => return,
            }
        }
        let body: Vec<u8> = buf.drain(..body_len).collect();
        let keep_alive = wants_keep_alive(&parsed) && !shutdown.is_cancelled();
        let head_only = parsed.method == Method::HEAD;
        let route = route::classify(&parsed.method, &parsed.target);
        let span = tracing::debug_span!("request", method = %parsed.method, route = route.name());
        let request = Request {
            headers: &parsed.headers,
            body: &body,
            peer,
            head_only,
            keep_alive,
        };
        let result = answer(&mut stream, &st, route, &request)
            .instrument(span)
            .await;
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

/// Answers one classified request. Errors are connection errors.
async fn answer(
    stream: &mut TcpStream,
    st: &HttpState,
    route: Route<'_>,
    r: &Request<'_>,
) -> io::Result<()> {
    let (head_only, keep_alive) = (r.head_only, r.keep_alive);
    match route {
        Route::Blob { target } => {
            blobs::send(stream, st, head_only, target, r.headers, r.peer, keep_alive).await
        }
        Route::Script(req) => {
            boot_script::send(stream, st, req, head_only, r.peer.ip(), keep_alive).await
        }
        Route::Loader { name } => loaders::send(stream, st, &name, head_only, keep_alive).await,
        Route::Report(req) => match report::answer(st, &req, r.body, Some(r.peer.ip())) {
            Ok(()) => text(stream, report::RECORDED, head_only, keep_alive).await,
            Err(refusal) => refuse(stream, &refusal, head_only, keep_alive).await,
        },
        Route::Health => text(stream, "ok\n", head_only, keep_alive).await,
        Route::Refused(refusal) => refuse(stream, &refusal, head_only, keep_alive).await,
    }
}

/// Writes a `200 OK` with a short plain-text body.
async fn text(
    stream: &mut TcpStream,
    body: &str,
    head_only: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(192 + body.len());
    route::ok_text(&mut out, body, head_only, keep_alive);
    stream.write_all(&out).await
}
