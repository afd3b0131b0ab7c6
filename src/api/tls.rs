//! The API listener over TLS (`api.tls_cert` and `api.tls_key`, PEM files): the
//! certificate chain and key are read once, before the daemon drops its privileges (so a
//! key only root may read works), into a rustls server configuration with the ring
//! provider ([`load`]); [`serve`] then accepts TCP connections, handshakes each in its
//! own task (a slow client never stalls the accept loop) and serves the same router over
//! HTTP/1.1.
//!
//! A client that speaks plain HTTP to the TLS port is told so in one plain-text 400
//! ([`PLAIN_HTTP_REFUSAL`]) and the connection closes: it never waits for a handshake
//! that will not come. Every wait is bounded ([`HANDSHAKE_TIMEOUT`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a client may take to send its first byte, and then to finish the handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// Why the TLS files cannot be used. Each names the file and the config key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// The file cannot be read.
    #[error("api.{key} {}: cannot read it: {source}", path.display())]
    Read {
        key: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The file is empty.
    #[error("api.{key} {}: the file is empty (expected PEM)", path.display())]
    Empty { key: &'static str, path: PathBuf },
    /// The file is not the PEM expected.
    #[error("api.{key} {}: {why}", path.display())]
    Pem {
        key: &'static str,
        path: PathBuf,
        why: String,
    },
    /// rustls refused the pair (a key that does not match the certificate, say).
    #[error("api.tls_cert {} with api.tls_key {}: {why}", cert.display(), key.display())]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        why: String,
    },
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(TlsError::Empty {
            key,
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// The certificates of a PEM file, in order (the server's first, then its chain).
pub(crate) fn certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(key, path)?;
    let pem = |why: String| TlsError::Pem {
        key,
        path: path.to_path_buf(),
        why,
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(pem(
            "no certificate in it (expected -----BEGIN CERTIFICATE-----)".to_string(),
        ));
    }
    Ok(certs)
}

/// The server configuration for a certificate chain and its private key.
pub(crate) fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates("tls_cert", cert)?;
    let key_bytes = read("tls_key", key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| TlsError::Pem {
        key: "tls_key",
        path: key.to_path_buf(),
        why: format!("no PEM private key in it (PKCS#8, PKCS#1 or SEC1): {e}"),
    })?;
    let pair = |why: String| TlsError::Pair {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        why,
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| pair(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| pair(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What a plain-HTTP request to the TLS port gets, whole: a 400 whose body says to use
/// `https://`, with its exact `Content-Length`, and the connection closed.
pub(crate) static PLAIN_HTTP_REFUSAL: std::sync::LazyLock<Vec<u8>> =
    std::sync::LazyLock::new(|| {
        let body = "This is tabula's API over TLS: use https:// for this address.\n";
        format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    });

/// Serves `app` over TLS on an already-bound listener until `shutdown` is cancelled,
/// then lets open connections finish their requests.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Arc<ServerConfig>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let tracker = TaskTracker::new();
    loop {
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of descriptors, a connection reset before accept: not fatal.
                    tracing::warn!(error = %e, "api: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let (acceptor, app, stop) = (acceptor.clone(), app.clone(), shutdown.clone());
        tracker.spawn(connection(tcp, acceptor, app, stop));
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// One connection: a plain-HTTP client is refused, a TLS one handshaken and served.
async fn connection(tcp: TcpStream, acceptor: TlsAcceptor, app: Router, stop: CancellationToken) {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE => {}
        Ok(Ok(1)) => return refuse_plain(tcp).await,
        _ => return,
    }
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "api: TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("api: TLS handshake timed out");
            return;
        }
    };
    let svc = TowerToHyperService::new(app);
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), svc)
        .with_upgrades();
    tokio::pin!(conn);
    let done = tokio::select! {
        r = conn.as_mut() => Some(r),
        () = stop.cancelled() => None,
    };
    let r = match done {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "api: TLS connection ended");
    }
}

/// Reads what the client sent (so closing does not reset the connection under the
/// answer), answers [`PLAIN_HTTP_REFUSAL`] and closes.
async fn refuse_plain(mut tcp: TcpStream) {
    let mut sink = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut sink)).await;
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        tcp.write_all(&PLAIN_HTTP_REFUSAL).await?;
        tcp.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_http_refusal_is_one_exact_response() {
        let raw = PLAIN_HTTP_REFUSAL.as_slice();
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut res = httparse::Response::new(&mut headers);
        let head = match res.parse(raw).unwrap() {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("incomplete head"),
        };
        assert_eq!(res.code, Some(400));
        let length: usize = res
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
            .unwrap();
        assert_eq!(
            length,
            raw.len() - head,
            "Content-Length is the body's length"
        );
        let body = std::str::from_utf8(&raw[head..]).unwrap();
        assert!(body.contains("https://"), "{body}");
        assert!(
            res.headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("connection") && h.value == b"close")
        );
    }

    #[test]
    fn missing_empty_and_garbage_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = load(&missing, &missing).unwrap_err().to_string();
        assert!(e.starts_with("api.tls_cert "), "{e}");
        assert!(e.contains("missing.pem: cannot read it"), "{e}");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "\n").unwrap();
        let e = load(&empty, &empty).unwrap_err().to_string();
        assert!(e.contains("empty.pem: the file is empty"), "{e}");

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let e = load(&junk, &junk).unwrap_err().to_string();
        assert!(e.contains("junk.pem: no certificate in it"), "{e}");
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        // The certificate where the key should be: no key in it.
        let e = load(&cert, &cert).unwrap_err().to_string();
        assert!(e.starts_with("api.tls_key "), "{e}");
        assert!(e.contains("no PEM private key"), "{e}");
        // Another certificate's key: the pair does not match.
        let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, other.signing_key.serialize_pem()).unwrap();
        let e = load(&cert, &key).unwrap_err().to_string();
        assert!(e.starts_with("api.tls_cert "), "{e}");
        // Its own key: loads.
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        load(&cert, &key).unwrap();
    }
}
