//! `PUT /api/v1/blobs/sha256/{hex}`: uploads one blob by digest, streamed: the body is
//! hashed as it is written to a temporary file of the blob store and kept only if it
//! hashes to `{hex}` ([`crate::images::BlobStore::put_expected`]); otherwise 422
//! `digest-mismatch` and nothing is left behind. 201 when new, 200 when the store held
//! it already (idempotent). The body is never held in memory whole: chunks cross to the
//! blocking writer through a small channel, so a slow disk slows the client instead.

use std::io::{self, Read};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde_json::json;
use tokio::sync::mpsc;

use super::problem::types;
use super::{ApiState, Problem};
use crate::boot::Digest;
use crate::images::ImageError;

/// Chunks in flight between the connection and the writer.
const IN_FLIGHT: usize = 8;

/// The blocking writer's view of the request body.
struct Chunks {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// The handler.
pub(crate) async fn put(
    State(st): State<ApiState>,
    uri: Uri,
    Path(hex): Path<String>,
    body: axum::body::Body,
) -> Result<Response, Problem> {
    let path = uri.path().to_string();
    let digest = Digest::from_hex(&hex).map_err(|_| {
        Problem::bad_request(
            &path,
            format!("{hex:?} is not a SHA-256 digest (64 hex digits)"),
        )
    })?;
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let blobs = st.fleet.blobs().clone();
    let writer = tokio::task::spawn_blocking(move || {
        let r = Chunks {
            rx,
            current: Bytes::new(),
        };
        blobs.put_expected(r, &digest, std::path::Path::new("<upload>"))
    });
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let item = chunk.map_err(io::Error::other);
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    let written = writer.await.map_err(|e| Problem::internal(&path, &e))?;
    match written {
        Ok((size, new)) => {
            let status = if new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let body = json!({"digest": digest.to_string(), "size": size});
            Ok((status, Json(body)).into_response())
        }
        Err(ImageError::Corrupt { expected, actual }) => Err(Problem::typed(
            StatusCode::UNPROCESSABLE_ENTITY,
            types::DIGEST_MISMATCH,
            &path,
            format!("the body hashes to {actual}, not {expected}: nothing was stored"),
        )
        .about(Some("blob"), expected.to_string())),
        // Reading the body failed: the client went away or sent a broken stream.
        Err(ImageError::Io {
            what: "cannot read",
            source,
            ..
        }) => Err(Problem::typed(
            StatusCode::BAD_REQUEST,
            types::BAD_BODY,
            &path,
            format!("the body could not be read ({source}); nothing was stored"),
        )),
        Err(e) => Err(Problem::internal(&path, &e)),
    }
}
