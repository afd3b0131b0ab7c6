//! One blob from one peer: `GET <peer>/blobs/sha256/<hex>`, appended to the blob's
//! partial file (resumed with `Range: bytes=<have>-` when part of it is there), then
//! hashed and linked into place only if it hashes to its name
//! ([`BlobStore::adopt_partial`]). A peer answering `200` to a range request restarts the
//! file from zero; anything else but `206`/`200` is an error for this attempt.

use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt as _;

use super::ReplicaError;
use crate::boot::Digest;
use crate::images::{BlobStore, ImageError};

/// Connecting to a peer gives up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer sending nothing for this long ends the attempt (the next resumes).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Progress is reported at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What one attempt achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fetched {
    /// The blob's size.
    pub size: u64,
    /// Where this attempt started (non-zero: it resumed by `Range`).
    pub resumed_at: u64,
}

/// Fetches `d` from the peer at `base` (`http://host:port`) into `blobs`, calling
/// `progress(bytes, size)` now and then. The blob is in place when this returns `Ok`.
pub(crate) async fn fetch(
    blobs: &BlobStore,
    base: &str,
    d: &Digest,
    mut progress: impl FnMut(u64, u64),
) -> Result<Fetched, ReplicaError> {
    let peer = |why: String| ReplicaError::Peer {
        url: base.to_string(),
        why,
    };
    let uri: Uri = format!("{}/blobs/sha256/{}", base.trim_end_matches('/'), d.hex())
        .parse()
        .map_err(|e| peer(format!("not a URL: {e}")))?;
    let authority = uri
        .authority()
        .ok_or_else(|| peer("no host in the URL".into()))?
        .to_string();
    let host_port = if uri.port().is_some() {
        authority.clone()
    } else {
        format!("{authority}:80")
    };
    let path = blobs.partial_path(d)?;
    let have = blobs.partial_len(d);
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&host_port))
        .await
        .map_err(|_| peer(format!("connecting timed out after {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| peer(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| peer(e.to_string()))?;
    let conn = tokio::spawn(conn);
    let mut req = Request::get(uri.path())
        .header(header::HOST, &authority)
        .header(
            header::USER_AGENT,
            concat!("tabula-replica/", env!("CARGO_PKG_VERSION")),
        );
    if have > 0 {
        req = req.header(header::RANGE, format!("bytes={have}-"));
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| peer(e.to_string()))?;
    let res = tokio::time::timeout(IDLE_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| peer(format!("no answer within {IDLE_TIMEOUT:?}")))?
        .map_err(|e| peer(e.to_string()))?;
    let (start, size) = match res.status() {
        StatusCode::PARTIAL_CONTENT if have > 0 => {
            let (first, total) = content_range(res.headers())
                .ok_or_else(|| peer("206 without a usable Content-Range".into()))?;
            if first != have {
                return Err(peer(format!("asked from byte {have}, got from {first}")));
            }
            (have, total)
        }
        StatusCode::OK => {
            let len = res
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| peer("200 without a Content-Length".into()))?;
            (0, len)
        }
        // The partial file is as long as the blob, or longer: start over.
        StatusCode::RANGE_NOT_SATISFIABLE => {
            blobs.drop_partial(d)?;
            return Err(peer(format!("range from {have} refused: restarting")));
        }
        s => return Err(peer(format!("answered {s}"))),
    };
    if start > 0 {
        tracing::info!(blob = %d, from = start, size, peer = %base, "resuming a blob fetch by Range");
    }
    let io = |e| ImageError::io("cannot write", &path, e);
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(start == 0)
        .append(start > 0)
        .open(&path)
        .await
        .map_err(io)?;
    let mut body = res.into_body();
    let mut got = start;
    let mut last = Instant::now();
    progress(got, size);
    loop {
        let frame = tokio::time::timeout(IDLE_TIMEOUT, body.frame())
            .await
            .map_err(|_| peer(format!("nothing received for {IDLE_TIMEOUT:?}")))?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| peer(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            file.write_all(&data).await.map_err(io)?;
            got += data.len() as u64;
            if got > size {
                drop(file);
                blobs.drop_partial(d)?;
                return Err(peer(format!("sent more than its {size} bytes")));
            }
            if last.elapsed() >= PROGRESS_EVERY {
                file.flush().await.map_err(io)?;
                progress(got, size);
                last = Instant::now();
            }
        }
    }
    file.flush().await.map_err(io)?;
    drop(file);
    conn.abort();
    if got < size {
        return Err(peer(format!("connection ended at byte {got} of {size}")));
    }
    progress(got, size);
    let b = blobs.clone();
    let digest = *d;
    let adopted = tokio::task::spawn_blocking(move || b.adopt_partial(&digest))
        .await
        .map_err(|e| ReplicaError::Task(e.to_string()))?;
    adopted?;
    Ok(Fetched {
        size,
        resumed_at: start,
    })
}

/// `bytes first-last/total` of a `Content-Range` header: (first, total).
fn content_range(h: &hyper::HeaderMap) -> Option<(u64, u64)> {
    let v = h.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let (range, total) = v.strip_prefix("bytes ")?.split_once('/')?;
    let (first, _) = range.split_once('-')?;
    Some((first.parse().ok()?, total.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_is_read() {
        let mut h = hyper::HeaderMap::new();
        h.insert(header::CONTENT_RANGE, "bytes 100-199/200".parse().unwrap());
        assert_eq!(content_range(&h), Some((100, 200)));
        h.insert(header::CONTENT_RANGE, "bytes */200".parse().unwrap());
        assert_eq!(content_range(&h), None);
    }
}
