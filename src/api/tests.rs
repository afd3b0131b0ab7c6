//! The API listener in-process: its routes, problem+json refusals, a streamed (chunked)
//! response and a chunked request on one keep-alive connection, and graceful shutdown.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::routing::get;
use http_body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::*;

/// A body of three chunks whose length is not known up front, as an event stream's is.
struct Chunks(u8);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.0 == 3 {
            return Poll::Ready(None);
        }
        self.0 += 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(format!(
            "part {}\n",
            self.0
        ))))))
    }
}

/// Reads one response (head and body, chunked or by length) from `s`.
async fn response(s: &mut TcpStream, buf: &mut Vec<u8>) -> (String, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let rest = &buf[end + 4..];
            let body_end = if head.contains("transfer-encoding: chunked") {
                rest.windows(5)
                    .position(|w| w == b"0\r\n\r\n")
                    .map(|i| i + 5)
            } else {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.trim().parse().unwrap());
                (rest.len() >= len).then_some(len)
            };
            if let Some(n) = body_end {
                let body = String::from_utf8_lossy(&rest[..n]).into_owned();
                buf.drain(..end + 4 + n);
                return (head, body);
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .expect("response in time")
            .unwrap();
        assert!(
            n > 0,
            "connection closed early: {}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn ask(s: &mut TcpStream, req: &str) {
    s.write_all(req.as_bytes()).await.unwrap();
}

#[tokio::test]
async fn routes_problems_streaming_and_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let app = router(Health::default()).route("/stream", get(|| async { Body::new(Chunks(0)) }));
    let server = tokio::spawn(serve(listener, app, stop.clone()));

    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    ask(&mut s, "GET /api/v1/ HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let (h, body) = response(&mut s, &mut buf).await;
    assert!(h.starts_with("http/1.1 200"), "{h}");
    assert!(h.contains("content-type: application/json"), "{h}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["name"], "tabula");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));

    ask(&mut s, "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let (h, body) = response(&mut s, &mut buf).await;
    assert!(h.starts_with("http/1.1 200"), "{h}");
    assert_eq!(body, "ok\n");

    // Streamed: chunked on the wire, every part arrives.
    ask(&mut s, "GET /stream HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let (h, body) = response(&mut s, &mut buf).await;
    assert!(h.contains("transfer-encoding: chunked"), "{h}");
    for part in ["part 1\n", "part 2\n", "part 3\n"] {
        assert!(body.contains(part), "{body:?}");
    }

    // Unknown path: problem+json 404. A chunked request body is read, not refused.
    ask(
        &mut s,
        "POST /api/v1/nothing HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    let (h, body) = response(&mut s, &mut buf).await;
    assert!(h.starts_with("http/1.1 404"), "{h}");
    assert!(h.contains("content-type: application/problem+json"), "{h}");
    let p: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        p,
        serde_json::json!({"type": "about:blank", "title": "Not Found", "status": 404,
            "detail": "no API resource at /api/v1/nothing", "instance": "/api/v1/nothing"})
    );

    // Known path, wrong method: 405 problem+json with Allow.
    ask(&mut s, "DELETE /api/v1/ HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let (h, body) = response(&mut s, &mut buf).await;
    assert!(h.starts_with("http/1.1 405"), "{h}");
    assert!(h.contains("allow: get,head"), "{h}");
    assert!(h.contains("content-type: application/problem+json"), "{h}");
    let p: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(p["status"], 405);

    // Shutdown with this keep-alive connection still open and idle.
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
    TcpListener::bind(addr).await.expect("port free again");
}
