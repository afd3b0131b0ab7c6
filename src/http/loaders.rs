//! `GET|HEAD /loaders/<name>`: the iPXE loaders (the same directory TFTP serves) over
//! HTTP, for UEFI HTTP-boot firmware, which DHCP points at `{public_url}/loaders/<name>`.
//!
//! Deliberately narrower than TFTP: one plain file name (letters, digits, `.`, `_`, `-`;
//! no directories; [`crate::boot::urls::parse_loader`]), opened without following
//! symlinks, regular files only. Loaders are small (≤ 16 MiB is enforced) and read whole.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::HttpState;
use crate::boot::urls::{self, UrlError};

/// Largest loader served.
const MAX_LOADER: u64 = 16 << 20;

/// A request for the loader route: the plain name, or `None` when the name is not one.
#[derive(Debug)]
pub struct Request {
    name: Option<String>,
}

impl Request {
    /// `/loaders/<name>`; `None` for any other path.
    pub fn of_target(target: &str) -> Option<Request> {
        match urls::parse_loader(target) {
            Err(UrlError::Unmatched) => None,
            Ok(n) => Some(Request {
                name: Some(n.as_str().to_string()),
            }),
            Err(_) => Some(Request { name: None }),
        }
    }
}

/// The router's handler for `/loaders/{name}`.
pub async fn get(State(st): State<HttpState>, req: axum::extract::Request) -> Response {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    match Request::of_target(target) {
        Some(r) => answer(&st, &r).await,
        None => (StatusCode::NOT_FOUND, "no such loader\n").into_response(),
    }
}

/// The loader `req` names, read whole (404 when there is none by that name).
pub async fn answer(st: &HttpState, req: &Request) -> Response {
    let Some(name) = &req.name else {
        return (StatusCode::NOT_FOUND, "no such loader\n").into_response();
    };
    let path = st.loader_dir.join(name);
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Option<Vec<u8>>> {
        let mut f = match std::fs::OpenOptions::new()
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
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        f.read_to_end(&mut bytes)?;
        Ok(Some(bytes))
    })
    .await;
    match read {
        Ok(Ok(Some(bytes))) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/efi")],
            bytes,
        )
            .into_response(),
        Ok(Ok(None)) => (StatusCode::NOT_FOUND, "no such loader\n").into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "cannot read loader\n").into_response(),
    }
}
