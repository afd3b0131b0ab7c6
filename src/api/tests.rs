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

/// The API's state on a fresh SQLite store (kept while the directory lives).
async fn state(shutdown: CancellationToken) -> (tempfile::TempDir, ApiState) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(&url).await.unwrap();
    let blobs = crate::images::BlobStore::open(&dir.path().join("blobs")).unwrap();
    let settings = crate::inventory::Settings {
        unknown_machines: crate::config::Config::defaults(None).boot.unknown_machines,
        console: None,
        base_url: "http://127.0.0.1:1".to_string(),
    };
    let inventory = crate::inventory::Inventory::new(store.clone(), blobs, settings);
    let st = ApiState {
        health: Health::default(),
        store,
        fleet: crate::fleet::Fleet::new(std::sync::Arc::new(inventory)),
        hub: crate::events::Hub::default(),
        shutdown,
        metrics: Default::default(),
        heartbeat: std::time::Duration::from_secs(1),
        loaders: crate::config::Loaders::default(),
    };
    (dir, st)
}

async fn ask(s: &mut TcpStream, req: &str) {
    s.write_all(req.as_bytes()).await.unwrap();
}

#[tokio::test]
async fn routes_problems_streaming_and_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let (_dir, st) = state(stop.clone()).await;
    let app = router(st).route("/stream", get(|| async { Body::new(Chunks(0)) }));
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

#[tokio::test]
async fn writes_are_refused_with_503_store_unavailable_while_degraded() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let (_dir, st) = state(stop.clone()).await;
    let health = st.health.clone();
    let server = tokio::spawn(serve(listener, router(st), stop.clone()));
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    let post = "POST /api/v1/machines HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
    // Reachable: the request reaches the resource (no token: 401).
    ask(&mut s, post).await;
    let (h, _) = response(&mut s, &mut buf).await;
    assert!(h.starts_with("http/1.1 401"), "{h}");
    health.store_reachable(false);
    ask(&mut s, post).await;
    let (h, body) = response(&mut s, &mut buf).await;
    assert!(h.starts_with("http/1.1 503"), "{h}");
    assert!(h.contains("content-type: application/problem+json"), "{h}");
    let p: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(p["type"], "urn:tabula:problem:store-unavailable");
    assert_eq!(p["instance"], "/api/v1/machines");
    // Reads are not refused (no token: 401, as before).
    ask(&mut s, "GET /api/v1/machines HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let (h, _) = response(&mut s, &mut buf).await;
    assert!(h.starts_with("http/1.1 401"), "{h}");
    ask(&mut s, "GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let (h, body) = response(&mut s, &mut buf).await;
    assert!(h.starts_with("http/1.1 503"), "{h}");
    assert!(body.contains("store unreachable: degraded"), "{body}");
    health.store_reachable(true);
    ask(&mut s, post).await;
    let (h, _) = response(&mut s, &mut buf).await;
    assert!(h.starts_with("http/1.1 401"), "back: {h}");
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
}

/// Reads from `s` into `buf` until it holds `needle` (10 s at most); returns what it read.
async fn read_until(s: &mut TcpStream, buf: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !buf.contains(needle) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in time; got {buf:?}"))
            .unwrap();
        assert!(n > 0, "stream closed before {needle:?}: {buf:?}");
        buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
}

fn event(mac: u8, stage: crate::boot::BootStage) -> crate::boot::EventText {
    crate::boot::EventText {
        at_ms: 1,
        mac: format!("52:54:00:00:00:{mac:02x}").parse().unwrap(),
        stage,
        manifest: None,
        via: crate::boot::Via::Http,
        peer: None,
        detail: "{}".into(),
        attempt: None,
    }
}

#[tokio::test]
async fn the_event_stream_replays_follows_live_resumes_filters_and_ends_at_shutdown() {
    use crate::boot::BootStage::{Booted, ScriptSent};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let (_dir, st) = state(stop.clone()).await;
    // Two stored before anyone listens.
    st.store
        .append_texts(&[event(1, ScriptSent), event(2, ScriptSent)])
        .await
        .unwrap();
    let (sink, queue) = crate::events::channel_with(crate::events::SinkLimits::of(
        &crate::config::Config::defaults(None).events,
    ));
    let writer = tokio::spawn(crate::events::write_events(
        st.store.clone(),
        queue,
        st.hub.clone(),
    ));
    let token = crate::auth::create(&st.store, "t", crate::auth::Scope::Read, None)
        .await
        .unwrap()
        .token;
    let auth = format!("authorization: Bearer {token}\r\n");
    let server = tokio::spawn(run(listener, st, None));

    // Without a token: 401 and the Bearer challenge.
    let mut n = TcpStream::connect(addr).await.unwrap();
    ask(
        &mut n,
        "GET /api/v1/events/stream HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    .await;
    let (h, body) = response(&mut n, &mut Vec::new()).await;
    assert!(h.starts_with("http/1.1 401"), "{h}");
    assert!(
        h.contains("www-authenticate: bearer realm=\"tabula\""),
        "{h}"
    );
    assert!(body.contains("urn:tabula:problem:unauthorized"), "{body}");

    // The whole history (after=0), then live events as the writer commits them.
    let mut s = TcpStream::connect(addr).await.unwrap();
    ask(
        &mut s,
        &format!("GET /api/v1/events/stream?after=0 HTTP/1.1\r\nhost: x\r\n{auth}\r\n"),
    )
    .await;
    let mut got = String::new();
    read_until(&mut s, &mut got, "id: 2\n").await;
    assert!(
        got.to_lowercase()
            .contains("content-type: text/event-stream"),
        "{got}"
    );
    assert!(
        got.contains("event: script-sent\ndata: {\"at_ms\":1,"),
        "{got}"
    );
    sink.record_text(event(1, Booted));
    sink.record_text(event(2, Booted));
    read_until(&mut s, &mut got, "id: 4\n").await;
    assert!(got.contains("id: 3\nevent: booted\n"), "{got}");
    assert_eq!(
        got.matches("\nid: ").count() + usize::from(got.starts_with("id: ")),
        4,
        "{got}"
    );

    // A reconnect with Last-Event-ID resumes after it; filters keep what they name.
    let mut r = TcpStream::connect(addr).await.unwrap();
    ask(
        &mut r,
        &format!("GET /api/v1/events/stream?stage=booted HTTP/1.1\r\nhost: x\r\n{auth}last-event-id: 3\r\n\r\n"),
    )
    .await;
    let mut resumed = String::new();
    read_until(&mut r, &mut resumed, "id: 4\n").await;
    assert!(!resumed.contains("id: 3\n"), "{resumed}");
    let mut m = TcpStream::connect(addr).await.unwrap();
    ask(
        &mut m,
        &format!("GET /api/v1/events/stream?after=0&mac=52:54:00:00:00:02 HTTP/1.1\r\nhost: x\r\n{auth}\r\n"),
    )
    .await;
    let mut one_mac = String::new();
    read_until(&mut m, &mut one_mac, "id: 4\n").await;
    assert!(
        one_mac.contains("id: 2\n") && !one_mac.contains("id: 1\n") && !one_mac.contains("id: 3\n"),
        "{one_mac}"
    );

    // A bad value is a problem+json 400 that names it.
    let mut b = TcpStream::connect(addr).await.unwrap();
    ask(
        &mut b,
        &format!("GET /api/v1/events/stream?stage=nope HTTP/1.1\r\nhost: x\r\n{auth}\r\n"),
    )
    .await;
    let (h, body) = response(&mut b, &mut Vec::new()).await;
    assert!(h.starts_with("http/1.1 400"), "{h}");
    assert!(body.contains("stage=\\\"nope\\\""), "{body}");

    // Shutdown ends the open streams, so the server stops.
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("stops with streams open")
        .unwrap()
        .unwrap();
    drop(sink);
    writer.await.unwrap();
}

#[tokio::test]
async fn the_server_list_shows_each_member_with_its_liveness_and_roles() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let (_dir, st) = state(stop.clone()).await;
    let store = st.store.clone();
    store
        .heartbeat(&crate::store::MemberRow {
            id: "pxe-1".into(),
            instance: "i1".into(),
            version: "9.9.9".into(),
            serves: "dhcp=full,http".into(),
            api_url: None,
            started_ms: 1,
            heartbeat_ms: 0,
        })
        .await
        .unwrap();
    store.try_lead("dhcp", "pxe-1", 60_000).await.unwrap();
    let token = crate::auth::create(&store, "t", crate::auth::Scope::Read, None)
        .await
        .unwrap()
        .token;
    let server = tokio::spawn(serve(listener, router(st), stop.clone()));
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    ask(
        &mut s,
        &format!(
            "GET /api/v1/servers HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n"
        ),
    )
    .await;
    let (h, body) = response(&mut s, &mut buf).await;
    assert!(h.starts_with("http/1.1 200"), "{h}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["id"], "pxe-1", "{body}");
    assert_eq!(v[0]["alive"], true, "{body}");
    assert_eq!(v[0]["roles"], serde_json::json!(["dhcp"]), "{body}");
    assert_eq!(v[0]["serves"], "dhcp=full,http", "{body}");
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
}

#[tokio::test]
async fn a_cursor_older_than_retention_gets_a_reset_then_the_oldest_kept() {
    use crate::boot::BootStage::ScriptSent;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let (_dir, st) = state(stop.clone()).await;
    let mut old = event(1, ScriptSent);
    old.at_ms = 1;
    let mut kept = event(1, ScriptSent);
    kept.at_ms = 10_000;
    st.store
        .append_texts(&[old.clone(), old, kept.clone(), kept])
        .await
        .unwrap();
    // Retention removes ids 1 and 2.
    assert_eq!(st.store.delete_events_before(5_000, 100).await.unwrap(), 2);
    let token = crate::auth::create(&st.store, "t", crate::auth::Scope::Read, None)
        .await
        .unwrap()
        .token;
    let server = tokio::spawn(run(listener, st, None));
    let ask_from = |last: u32| {
        format!(
            "GET /api/v1/events/stream HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\nlast-event-id: {last}\r\n\r\n"
        )
    };
    // Resuming after id 1: id 2 is gone, so a reset first, then 3 and 4.
    let mut s = TcpStream::connect(addr).await.unwrap();
    ask(&mut s, &ask_from(1)).await;
    let mut got = String::new();
    read_until(&mut s, &mut got, "id: 4\n").await;
    let reset = got
        .find("event: reset\ndata: {\"after\":1,\"oldest\":3}")
        .expect(&got);
    assert!(reset < got.find("id: 3\n").unwrap(), "{got}");
    // Resuming after id 2: nothing was lost, no reset.
    let mut s = TcpStream::connect(addr).await.unwrap();
    ask(&mut s, &ask_from(2)).await;
    let mut got = String::new();
    read_until(&mut s, &mut got, "id: 4\n").await;
    assert!(!got.contains("reset") && got.contains("id: 3\n"), "{got}");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
}
