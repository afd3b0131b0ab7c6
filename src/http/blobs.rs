//! `GET|HEAD /blobs/sha256/<hex>[/<name>]`: immutable content by digest.
//!
//! Range, HEAD and conditional requests on modification time come from tower-http's
//! `ServeFile` (streamed in 1 MiB chunks, never buffered whole). On top of it: the ETag is
//! the digest (the same bytes always have the same tag, on every server), `If-None-Match`
//! is answered from the digest alone, and responses are cacheable forever. Only names that
//! parse as a digest reach the filesystem, so nothing outside the blob store is served.
//! A whole download requested with `?mac=…&as=kernel|initrd|rootfs` (as scripts and
//! command lines do) records a boot event with its bytes and seconds when it ends.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt as _;
use tower_http::services::ServeFile;

use super::HttpState;
use crate::boot::{BootEvent, BootStage, Digest, Mac};

/// Query of a blob request.
#[derive(Debug, serde::Deserialize)]
pub struct BlobQuery {
    mac: Option<String>,
    #[serde(rename = "as")]
    role: Option<String>,
}

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// `/blobs/sha256/{hex}` and `/blobs/sha256/{hex}/{name}`.
pub async fn get(
    State(st): State<HttpState>,
    Path(params): Path<Vec<(String, String)>>,
    Query(q): Query<BlobQuery>,
    req: Request,
) -> Response {
    let hex = params
        .iter()
        .find(|(k, _)| k == "hex")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let Ok(digest) = Digest::from_hex(hex) else {
        return (StatusCode::NOT_FOUND, "not a sha256 digest\n").into_response();
    };
    let path = st.blobs.path(&digest);
    if !path.is_file() {
        return (StatusCode::NOT_FOUND, "no such blob\n").into_response();
    }
    let etag = format!("\"{digest}\"");
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    if etag_matches(req.headers(), &etag) {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag_value),
                (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
            ],
        )
            .into_response();
    }
    let is_get = req.method() == Method::GET;
    let peer = super::peer_ip(&req);
    let res = match ServeFile::new(&path)
        .with_buf_chunk_size(1 << 20)
        .oneshot(req)
        .await
    {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (mut parts, body) = res.into_parts();
    parts.headers.insert(header::ETAG, etag_value);
    parts
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    let stage = match q.role.as_deref() {
        Some("kernel") => Some(BootStage::KernelSent),
        Some("initrd") => Some(BootStage::InitrdSent),
        Some("rootfs") => Some(BootStage::RootfsSent),
        _ => None,
    };
    let mac = q.mac.as_deref().and_then(|m| m.parse::<Mac>().ok());
    let body = match (stage, mac, is_get && parts.status == StatusCode::OK) {
        (Some(stage), Some(mac), true) => {
            let sink = st.events.clone();
            let expected = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            Body::new(Counted {
                inner: Body::new(body),
                bytes: 0,
                start: Instant::now(),
                done: Some(Box::new(move |bytes, elapsed| {
                    // hyper may drop a body right after its last frame without polling
                    // for the end, so completeness is judged by the byte count.
                    let complete = expected == Some(bytes);
                    sink.record(BootEvent {
                        at_ms: crate::events::now_ms(),
                        mac,
                        stage,
                        manifest: None,
                        detail: serde_json::json!({
                            "digest": digest.to_string(),
                            "bytes": bytes,
                            "expected": expected,
                            "seconds": elapsed.as_secs_f64(),
                            "complete": complete,
                            "peer": peer,
                        }),
                    });
                })),
            })
        }
        _ => Body::new(body),
    };
    Response::from_parts(parts, body)
}

type Done = Box<dyn FnOnce(u64, Duration) + Send>;

/// A body that counts what it yields and reports once, at its end or when dropped early.
struct Counted {
    inner: Body,
    bytes: u64,
    start: Instant,
    done: Option<Done>,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.bytes += d.len() as u64;
                }
            }
            Poll::Ready(None) => {
                if let Some(done) = self.done.take() {
                    done(self.bytes, self.start.elapsed());
                }
            }
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done(self.bytes, self.start.elapsed());
        }
    }
}
