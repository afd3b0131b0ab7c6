//! `GET|HEAD /loaders/<name>`: the iPXE loaders (the same directory TFTP serves) over
//! HTTP, for UEFI HTTP-boot firmware, which DHCP points at `{public_url}/loaders/<name>`.
//!
//! Deliberately narrower than TFTP: one plain file name (letters, digits, `.`, `_`, `-`;
//! no directories; checked by `route.rs` with [`plain_name`]), opened without following
//! symlinks and non-blocking (a FIFO never holds a thread), regular files only, at most
//! [`MAX_LOADER`] bytes. A loader the configuration names (`dhcp.loaders.*`) is opened
//! from the file it resolved to at start-up instead, even outside `tftp.root`
//! ([`LoaderFiles`]; Debian links `ipxe.efi` to `/boot/ipxe.efi`); only that exact name.
//! The file is streamed with `sendfile`, as blobs are, never read into memory. HEAD gets
//! the head GET gets, with the file's real length.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use axum::http::StatusCode;
use tokio::net::TcpStream;

use super::HttpState;
use super::blobs::{send_more, sendfile_all};
use super::conn::write_all;
use super::route::Refusal;
use super::wire::HeadWriter;
use crate::boot::urls;
use crate::loader_files::LoaderFiles;

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
    let (dir, files, owned) = (
        st.loader_dir.clone(),
        st.loader_files.clone(),
        name.to_string(),
    );
    let opened = tokio::task::spawn_blocking(move || open(&dir, &files, &owned)).await;
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
    write_head(&mut out, len, keep_alive);
    if head_only || len == 0 {
        return write_all(stream, &out, &st.limits).await;
    }
    // The head goes out with the first bytes of the file, as a blob's does.
    send_more(stream, &out, &st.limits).await?;
    sendfile_all(stream, &file, 0, len, &st.limits)
        .await
        .map(|_| ())
}

/// Appends the head of a loader of `len` bytes: the same for GET and HEAD (a HEAD is how
/// UEFI HTTP boot learns the size before it GETs).
fn write_head(out: &mut Vec<u8>, len: u64, keep_alive: bool) {
    let mut h = HeadWriter::new(out, StatusCode::OK);
    h.header("content-type", b"application/efi")
        .number("content-length", len);
    h.finish(keep_alive);
}

/// Opens the loader `name` (a [`plain_name`]) for sending, with its length: a configured
/// loader from its resolved file, any other name from `dir` without following a link.
/// `Ok(None)` when it is not served (missing, a link, not a regular file, too large).
/// Blocking.
pub(super) fn open(dir: &Path, files: &LoaderFiles, name: &str) -> io::Result<Option<(File, u64)>> {
    let path = match files.file_of(Path::new(name)) {
        Some(resolved) => resolved.to_path_buf(),
        None => dir.join(name),
    };
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
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
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::os::unix::fs::symlink;

    use super::*;

    fn body(got: io::Result<Option<(File, u64)>>) -> Option<Vec<u8>> {
        let (mut f, len) = got.unwrap()?;
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        assert_eq!(v.len() as u64, len);
        Some(v)
    }

    #[test]
    fn the_head_carries_the_loaders_real_length() {
        let mut out = Vec::new();
        write_head(&mut out, 173_792, true);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "HTTP/1.1 200 OK\r\ncontent-type: application/efi\r\ncontent-length: 173792\r\n"
            ),
            "{text}"
        );
        assert!(text.ends_with(" GMT\r\n\r\n"), "{text}");
    }

    #[test]
    fn a_configured_link_out_of_the_root_is_served_and_no_other_name_is() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, elsewhere) = (tmp.path().join("root"), tmp.path().join("elsewhere"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("ipxe.efi"), b"efi").unwrap();
        std::fs::write(root.join("snponly.efi"), b"snp").unwrap();
        symlink("../elsewhere/ipxe.efi", root.join("ipxe.efi")).unwrap();
        symlink(elsewhere.join("ipxe.efi"), root.join("other.efi")).unwrap();
        let fifo = root.join("pipe.efi");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();

        // Today's rules without configured loaders: plain files only, no links.
        let none = LoaderFiles::default();
        assert_eq!(
            body(open(&root, &none, "snponly.efi")).as_deref(),
            Some(&b"snp"[..])
        );
        assert_eq!(body(open(&root, &none, "ipxe.efi")), None);

        let (files, _) = LoaderFiles::resolve_names(&root, &[("efi_x64", "ipxe.efi")]);
        assert_eq!(
            body(open(&root, &files, "ipxe.efi")).as_deref(),
            Some(&b"efi"[..])
        );
        // The same file under another name stays refused; other plain files still serve.
        assert_eq!(body(open(&root, &files, "other.efi")), None);
        assert_eq!(
            body(open(&root, &files, "snponly.efi")).as_deref(),
            Some(&b"snp"[..])
        );
        assert_eq!(body(open(&root, &files, "nope.efi")), None);
        // A FIFO is refused at once (the open is non-blocking), configured or not.
        let (tx, rx) = std::sync::mpsc::channel();
        let (r, f) = (root.clone(), files.clone());
        std::thread::spawn(move || {
            let _ = tx.send(body(open(&r, &f, "pipe.efi")));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(5));
        assert_eq!(got.expect("opening a FIFO blocked"), None);
    }
}
