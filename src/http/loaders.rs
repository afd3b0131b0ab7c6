//! `GET|HEAD /loaders/<name>`: the iPXE loaders (the same directory TFTP serves) over
//! HTTP, for UEFI HTTP-boot firmware, which DHCP points at `{public_url}/loaders/<name>`.
//!
//! Deliberately narrower than TFTP: one plain file name (letters, digits, `.`, `_`, `-`;
//! no directories), opened without following symlinks, regular files only. Loaders are
//! small (≤ 16 MiB is enforced) and read whole.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::HttpState;

/// Largest loader served.
const MAX_LOADER: u64 = 16 << 20;

/// Whether `name` is a plain loader file name.
pub fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub async fn get(State(st): State<HttpState>, Path(name): Path<String>) -> Response {
    if !plain_name(&name) {
        return (StatusCode::NOT_FOUND, "no such loader\n").into_response();
    }
    let path = st.loader_dir.join(&name);
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

#[cfg(test)]
mod tests {
    use super::plain_name;

    #[test]
    fn only_plain_names() {
        for ok in ["snponly.efi", "ipxe-arm64.efi", "undionly.kpxe"] {
            assert!(plain_name(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            ".hidden",
            "a/b",
            "../etc/passwd",
            "x y",
            "a\\b",
            "%2e%2e",
        ] {
            assert!(!plain_name(bad), "{bad}");
        }
    }
}
