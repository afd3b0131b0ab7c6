//! HTTP/1.1 connections: accept, read request heads with `httparse`, send blob requests
//! down the `sendfile` path ([`super::blobs`]), boot scripts straight to
//! [`super::boot_script`], and everything else through the axum [`Router`], keep-alive, timeouts and graceful shutdown.
//!
//! Written here rather than using hyper's server because hyper cannot hand a socket to
//! `sendfile` (see `blobs.rs` for the measurements). Scope is deliberately small: HTTP/1.0
//! and 1.1 only (what firmware, iPXE, initramfs `wget` and curl speak), request bodies
//! by `Content-Length` up to [`MAX_BODY`] (reports are tiny; chunked uploads get 411),
//! heads up to [`MAX_HEAD`], no pipelining beyond what the buffer already holds. Non-blob
//! responses are small and are buffered whole before writing.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use super::wire::HeadWriter;
use super::{HttpState, blobs, boot_script};

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
    let router = super::router(state.clone());
    let tracker = TaskTracker::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tracker.spawn(connection(stream, peer, router.clone(), state.clone(), shutdown.clone()));
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

/// A response head: status line, the given headers, `date`, and `connection: close`
/// when the connection ends after this response.
pub fn head(status: StatusCode, headers: &[(&str, &str)], keep_alive: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut h = HeadWriter::new(&mut out, status);
    for (k, v) in headers {
        h.header(k, v.as_bytes());
    }
    h.finish(keep_alive);
    out
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

async fn simple(stream: &mut TcpStream, status: StatusCode, msg: &str) -> io::Result<()> {
    let mut out = Vec::with_capacity(256);
    let mut h = HeadWriter::new(&mut out, status);
    h.header("content-type", b"text/plain; charset=utf-8")
        .number("content-length", msg.len() as u64);
    h.finish(false);
    out.extend_from_slice(msg.as_bytes());
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
        Ok(httparse::Status::Partial) => return Err("incomplete request head"),
        Err(_) => return Err("malformed request head"),
    }
    let method =
        Method::from_bytes(req.method.unwrap_or("").as_bytes()).map_err(|_| "bad method")?;
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::new();
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| "bad header name")?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| "bad header value")?;
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
    router: Router,
    st: HttpState,
    shutdown: CancellationToken,
) {
    let span = tracing::debug_span!("http", %peer);
    let _enter = span.enter();
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let n = match read_head(&mut stream, &mut buf, &shutdown).await {
            Ok(Head::Ready(n)) => n,
            Ok(Head::Closed) => return,
            Err(e) => {
                let _ = simple(
                    &mut stream,
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    &format!("{e}\n"),
                )
                .await;
                return;
            }
        };
        let parsed = match parse(&buf[..n]) {
            Ok(p) => p,
            Err(why) => {
                let _ = simple(&mut stream, StatusCode::BAD_REQUEST, &format!("{why}\n")).await;
                return;
            }
        };
        buf.drain(..n);
        if parsed.headers.contains_key("transfer-encoding") {
            let _ = simple(
                &mut stream,
                StatusCode::LENGTH_REQUIRED,
                "send a Content-Length\n",
            )
            .await;
            return;
        }
        let body_len = match parsed
            .headers
            .get("content-length")
            .map(|v| v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()))
        {
            None => 0,
            Some(Some(n)) if n <= MAX_BODY => n,
            Some(Some(_)) => {
                let _ = simple(
                    &mut stream,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large\n",
                )
                .await;
                return;
            }
            Some(None) => {
                let _ = simple(&mut stream, StatusCode::BAD_REQUEST, "bad content-length\n").await;
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
        let get = parsed.method == Method::GET || head_only;
        let result = if get && blobs::is_blob_target(&parsed.target) {
            blobs::send(
                &mut stream,
                &st,
                head_only,
                &parsed.target,
                &parsed.headers,
                peer,
                keep_alive,
            )
            .await
        } else if let Some(req) = get
            .then(|| boot_script::Request::of_target(&parsed.target))
            .flatten()
        {
            boot_script::send(&mut stream, &st, req, head_only, peer.ip(), keep_alive).await
        } else {
            route(&mut stream, &router, parsed, body, peer, keep_alive).await
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection ended");
            return;
        }
        if !keep_alive {
            return;
        }
    }
}

/// Runs a request through the router and writes its (small, buffered) response.
async fn route(
    stream: &mut TcpStream,
    router: &Router,
    p: Parsed,
    body: Vec<u8>,
    peer: SocketAddr,
    keep_alive: bool,
) -> io::Result<()> {
    let head_only = p.method == Method::HEAD;
    let mut req = match Request::builder()
        .method(p.method)
        .uri(p.target.as_str())
        .version(p.version)
        .body(Body::from(body))
    {
        Ok(r) => r,
        Err(_) => return simple(stream, StatusCode::BAD_REQUEST, "bad request target\n").await,
    };
    *req.headers_mut() = p.headers;
    req.extensions_mut().insert(ConnectInfo(peer));
    let res = match router.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut out = Vec::with_capacity(256 + bytes.len());
    let mut h = HeadWriter::new(&mut out, parts.status);
    for (k, v) in parts
        .headers
        .iter()
        .filter(|(k, _)| *k != "content-length" && *k != "transfer-encoding" && *k != "connection")
    {
        h.header(k.as_str(), v.as_bytes());
    }
    h.number("content-length", bytes.len() as u64);
    h.finish(keep_alive);
    if !head_only {
        out.extend_from_slice(&bytes);
    }
    stream.write_all(&out).await
}
