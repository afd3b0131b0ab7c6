//! `https://` servers: the roots a server's certificate may chain to (the system's CA
//! bundle, plus `--ca-file` / `TABULA_CA_FILE`, an extra root such as a site's own CA),
//! the rustls client configuration with the ring provider, and the one-line errors of a
//! failed handshake. The host name of the URL is verified against the certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

/// Where Debian (and most distributions) keep the system's trusted roots; `SSL_CERT_FILE`
/// overrides it, as for other TLS clients.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why TLS to the server cannot be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CaError {
    #[error("--ca-file {}: cannot read it: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--ca-file {}: {why}", path.display())]
    Pem { path: PathBuf, why: String },
}

/// The client configuration: the system's roots and those of `ca_file`.
pub(crate) fn config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, CaError> {
    let mut roots = RootCertStore::empty();
    let system = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SYSTEM_BUNDLE));
    if let Ok(bytes) = std::fs::read(&system) {
        let certs = CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok);
        let (_added, _ignored) = roots.add_parsable_certificates(certs);
    }
    if let Some(path) = ca_file {
        let bytes = std::fs::read(path).map_err(|source| CaError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let pem = |why: String| CaError::Pem {
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
        for c in certs {
            roots
                .add(c)
                .map_err(|e| pem(format!("not a usable CA certificate: {e}")))?;
        }
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| CaError::Pem {
                path: PathBuf::new(),
                why: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The name the certificate must carry: the URL's host (an IP address or a DNS name).
pub(crate) fn server_name(host: &str) -> Option<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).ok()
}

/// A failed handshake, said so that the fix is plain.
pub(crate) fn handshake_error(e: &std::io::Error) -> String {
    let inner = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .cloned();
    match inner {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature => {
                format!(
                    "TLS: the server's certificate is not signed by a CA this client trusts ({c:?}): pass the CA that signed it with --ca-file or TABULA_CA_FILE"
                )
            }
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. } => format!(
                "TLS: the server's certificate is not for this host name ({c:?}): use a --server URL with a name the certificate lists"
            ),
            c => format!("TLS: the server's certificate is not acceptable: {c:?}"),
        },
        Some(other) => format!("TLS handshake failed: {other}"),
        None => format!("TLS handshake failed: {e} (is it an https:// server?)"),
    }
}
