//! `GET|HEAD /loaders/<name>`: the iPXE loaders (the same directory TFTP serves) over
//! HTTP, for UEFI HTTP-boot firmware, which DHCP points at `{public_url}/loaders/<name>`.
//!
//! Deliberately narrower than TFTP: one plain file name (letters, digits, `.`, `_`, `-`;
//! no directories; checked by `route.rs` with [`plain_name`]), opened without following
//! symlinks, regular files only, at most [`MAX_LOADER`] bytes. The file is streamed with
//! `sendfile`, as blobs are, never read into memory.

use std::io;
use std::os::unix::fs::OpenOptionsExt;

use axum::http::StatusCode;
use tokio::net::TcpStream;

use super::HttpState;
use super::blobs::{send_more, sendfile_all};
use super::conn::write_all;
use super::route::Refusal;
use super::wire::HeadWriter;
use crate::boot::urls;

/// Largest loader served.
const MAX_LOADER: u64 = 16 << 20;

/// The body of a 404 for a loader.
pub(super) const NOT_FOUND: &str = "no such loader\n";

/// Whether `name` is a plain loader file name ([`urls::plain_loader_name`]).
pub(super) fn plain_name(name: &str) -> bool {
    urls::plain_loader_name(name)
}

/// Answers a request for the loader `name` (already a [`plain_name`]) on `stream`.
/// Errors are connection errors: the caller closes the connection.
pub(super) async fn send(
    stream: &mut TcpStream,
    st: &HttpState,
    name: &str,
    head_only: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let path = st.loader_dir.join(name);
    let opened =
        tokio::task::spawn_blocking(move || -> io::Result<Option<(std::fs::File, u64)>> {
            let f = match std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
            {
                Ok(f) => f,
                Err(_) => return Ok(None),
            };
            let meta = f.metadata()?;
            if !meta.is_file() || meta.len() > MAX_LOADER {
                return Ok(None);
            }
            Ok(Some((f, meta.len())))
        })
        .await;
    let mut out = Vec::with_capacity(192);
    let (file, len) = match opened {
        Ok(Ok(Some(opened))) => opened,
        refused => {
            let r = match refused {
                Ok(Ok(None)) => Refusal::NotFound(NOT_FOUND),
                _ => Refusal::Internal("cannot read loader\n"),
            };
            r.write(&mut out, head_only, keep_alive);
            return write_all(stream, &out, &st.limits).await;
        }
    };
    let mut h = HeadWriter::new(&mut out, StatusCode::OK);
    h.header("content-type", b"application/efi")
        .number("content-length", len);
    h.finish(keep_alive);
    if head_only || len == 0 {
        return write_all(stream, &out, &st.limits).await;
    }
    // The head goes out with the first bytes of the file, as a blob's does.
    send_more(stream, &out, &st.limits).await?;
    sendfile_all(stream, &file, 0, len, &st.limits)
        .await
        .map(|_| ())
}
