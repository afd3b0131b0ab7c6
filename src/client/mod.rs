//! The API's client: what the remote CLI (`tabula --server URL …`) calls instead of
//! opening the store. [`Client`] holds the server's base URL and a bearer token; its
//! typed functions, one per route ([`routes`]), send a request and decode the answer
//! into the types the local CLI prints (the API's JSON is the read models' JSON), and
//! every refusal becomes a [`ClientError`] from the problem+json document: its `detail`
//! is the sentence the local CLI would print, 401 and 403 say what to do about the token.
//!
//! HTTP/1.1 over plain TCP, or TLS for `https://` servers ([`tls`]: the system's roots
//! plus `--ca-file`, the host name verified), with hyper's client connection (no pool: a
//! command makes a few sequential requests). Must not: print, read configuration or
//! open the store.

pub(crate) mod routes;
pub(crate) mod sse;
pub(crate) mod tls;
pub(crate) mod wire;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

/// A request body: JSON in memory, or a file streamed from disk.
pub(crate) type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a plain request may take to be answered in full (uploads and the event
/// stream are not bounded by it).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest answer body read into memory.
const MAX_ANSWER: usize = 64 << 20;

/// Why a call to the API did not do what was asked. Each message is one line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// `--server` is not a URL this client can use.
    #[error("--server {url:?}: {why}")]
    BadServer { url: String, why: String },
    /// `--ca-file` cannot be used.
    #[error(transparent)]
    Ca(#[from] tls::CaError),
    /// No token was given.
    #[error(
        "no token for {server}: set TABULA_TOKEN or --token-file PATH (make one on the server with `tabula token create NAME --scope read|operate|admin`)"
    )]
    NoToken { server: String },
    /// The token file cannot be read or is empty.
    #[error("--token-file {path}: {why}")]
    TokenFile { path: String, why: String },
    /// 401: the server does not accept the token.
    #[error("the token is not valid for {server}{}: check TABULA_TOKEN or --token-file", why(.detail))]
    Unauthorized { server: String, detail: String },
    /// 403: the token's scope is too small.
    #[error("not allowed: {detail} (use a token of scope {scope})")]
    Forbidden { detail: String, scope: String },
    /// Any other problem document: its `detail` is the sentence the local CLI prints.
    #[error("{detail}")]
    Problem {
        status: u16,
        kind: String,
        title: String,
        detail: String,
    },
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach the API at {server}: {why}")]
    Transport { server: String, why: String },
    /// An answer this client cannot read.
    #[error("unexpected answer from {server} to {what}: {why}")]
    BadAnswer {
        server: String,
        what: String,
        why: String,
    },
}

impl ClientError {
    /// The problem's HTTP status, if the server answered with one.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            ClientError::Unauthorized { .. } => Some(401),
            ClientError::Forbidden { .. } => Some(403),
            ClientError::Problem { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The server's reason for a 401, when it says more than "not valid" (revoked, expired).
fn why(detail: &str) -> String {
    match detail {
        "" | "the token is not valid" => String::new(),
        d => format!(" ({d})"),
    }
}

/// The problem+json members this client reads.
#[derive(Debug, Default, serde::Deserialize)]
struct ProblemDoc {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    detail: String,
}

/// What a connection runs on: TCP, or TLS over it.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// TLS to an `https://` server: its configuration and the name its certificate must carry.
#[derive(Clone)]
struct Tls {
    config: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("name", &self.name).finish()
    }
}

/// A connection-less handle on one server, with one token.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    /// `host:port` to connect to.
    authority: String,
    /// For `https://`.
    tls: Option<Tls>,
    /// The path prefix before `/api/v1` (empty, or `/prefix` without a trailing slash).
    prefix: String,
    /// The URL as given, for messages.
    server: String,
    token: String,
}

impl Client {
    /// A client of `server` (`http://HOST:PORT[/PREFIX]`, or `https://…` trusting the
    /// system's roots and `ca_file`'s) with `token`.
    pub(crate) fn new(
        server: &str,
        token: &str,
        ca_file: Option<&Path>,
    ) -> Result<Client, ClientError> {
        let bad = |why: &str| ClientError::BadServer {
            url: server.to_string(),
            why: why.to_string(),
        };
        let uri: Uri = server.trim().parse().map_err(|_| bad("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("expected http://HOST:PORT or https://HOST:PORT")),
        };
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = match https {
            false => None,
            true => Some(Tls {
                config: tls::config(ca_file)?,
                name: tls::server_name(host)
                    .ok_or_else(|| bad("the host is not a name a certificate can carry"))?,
            }),
        };
        let authority = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let token = token.trim();
        if token.is_empty() {
            return Err(ClientError::NoToken {
                server: server.to_string(),
            });
        }
        if HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
            return Err(ClientError::Unauthorized {
                server: server.to_string(),
                detail: "the token has characters no header can carry".to_string(),
            });
        }
        Ok(Client {
            authority,
            tls,
            prefix: uri.path().trim_end_matches('/').to_string(),
            server: server.trim().trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    /// Sends one request (`path` from `/api/v1/…`, with its query) and returns the
    /// answer's head and streaming body when it is a success; a refusal is decoded.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, String)],
        body: Option<(Body, &'static str)>,
    ) -> Result<Response<Incoming>, ClientError> {
        let transport = |why: String| ClientError::Transport {
            server: self.server.clone(),
            why,
        };
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect(&self.authority),
        )
        .await
        .map_err(|_| transport(format!("connecting timed out after {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| transport(e.to_string()))?;
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some(t) => {
                let connector = tokio_rustls::TlsConnector::from(t.config.clone());
                let tls =
                    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(t.name.clone(), tcp))
                        .await
                        .map_err(|_| {
                            transport(format!(
                                "the TLS handshake timed out after {CONNECT_TIMEOUT:?}"
                            ))
                        })?
                        .map_err(|e| transport(tls::handshake_error(&e)))?;
                Box::new(tls)
            }
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| transport(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "api client: connection ended");
            }
        });
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.prefix))
            .header(header::HOST, &self.authority)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(
                header::USER_AGENT,
                concat!("tabula/", env!("CARGO_PKG_VERSION")),
            );
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let body = match body {
            Some((b, content_type)) => {
                req = req.header(header::CONTENT_TYPE, content_type);
                b
            }
            None => empty(),
        };
        let req = req.body(body).map_err(|e| self.bad(path, e.to_string()))?;
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| transport(e.to_string()))?;
        if res.status().is_success() {
            return Ok(res);
        }
        Err(self.refusal(&method, path, res).await)
    }

    /// Sends and decodes a JSON answer (bounded in time and size).
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, ClientError> {
        let (_, bytes) = self.call_raw(method, path, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| self.bad(path, format!("not the JSON expected: {e}")))
    }

    /// Sends, and returns the answer's head and whole body.
    pub(crate) async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(hyper::http::response::Parts, Bytes), ClientError> {
        let body = body.map(|v| (full(v.to_string().into_bytes()), "application/json"));
        let work = async {
            let res = self.send(method, path, &[], body).await?;
            let (parts, incoming) = res.into_parts();
            let bytes = self.read_body(path, incoming).await?;
            Ok((parts, bytes))
        };
        tokio::time::timeout(ANSWER_TIMEOUT, work)
            .await
            .map_err(|_| ClientError::Transport {
                server: self.server.clone(),
                why: format!("no answer to {path} within {ANSWER_TIMEOUT:?}"),
            })?
    }

    async fn read_body(&self, path: &str, incoming: Incoming) -> Result<Bytes, ClientError> {
        let limited = http_body_util::Limited::new(incoming, MAX_ANSWER);
        limited
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| ClientError::Transport {
                server: self.server.clone(),
                why: format!("reading the answer to {path}: {e}"),
            })
    }

    /// The error for a refusal: the problem document's sentence, or the status.
    async fn refusal(&self, method: &Method, path: &str, res: Response<Incoming>) -> ClientError {
        let status = res.status();
        let scope = res
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(challenge_scope);
        let doc: ProblemDoc = match self.read_body(path, res.into_body()).await {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|_| ProblemDoc {
                detail: String::from_utf8_lossy(&b).trim().to_string(),
                ..ProblemDoc::default()
            }),
            Err(e) => return e,
        };
        let detail = if doc.detail.is_empty() {
            format!(
                "{method} {path}: {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
        } else {
            doc.detail
        };
        match status {
            StatusCode::UNAUTHORIZED => ClientError::Unauthorized {
                server: self.server.clone(),
                detail,
            },
            StatusCode::FORBIDDEN => ClientError::Forbidden {
                detail,
                scope: scope.unwrap_or_else(|| "admin".to_string()),
            },
            s => ClientError::Problem {
                status: s.as_u16(),
                kind: doc.kind,
                title: doc.title,
                detail,
            },
        }
    }

    pub(crate) fn bad(&self, what: &str, why: String) -> ClientError {
        ClientError::BadAnswer {
            server: self.server.clone(),
            what: what.to_string(),
            why,
        }
    }
}

/// The `scope="…"` of a `WWW-Authenticate: Bearer …` challenge.
fn challenge_scope(v: &str) -> Option<String> {
    let at = v.find("scope=\"")? + "scope=\"".len();
    let rest = &v[at..];
    Some(rest[..rest.find('"')?].to_string())
}

/// An empty request body.
pub(crate) fn empty() -> Body {
    full(Vec::new())
}

/// A request body held in memory.
pub(crate) fn full(bytes: Vec<u8>) -> Body {
    Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// One path segment, percent-encoded (everything but RFC 3986's unreserved characters),
/// so a MAC, a `label:k=v` target or a version travels as one segment.
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_http_urls_with_a_token() {
        let c = Client::new("http://127.0.0.1:9090/", "t", None).unwrap();
        assert_eq!(c.authority, "127.0.0.1:9090");
        assert_eq!(c.prefix, "");
        assert_eq!(c.server, "http://127.0.0.1:9090");
        let c = Client::new("http://api.example/tabula", "t", None).unwrap();
        assert_eq!(
            (c.authority.as_str(), c.prefix.as_str()),
            ("api.example:80", "/tabula")
        );
        let c = Client::new("http://[::1]:9090", "t", None).unwrap();
        assert_eq!(c.authority, "[::1]:9090");
        let c = Client::new("https://api.example", "t", None).unwrap();
        assert_eq!(c.authority, "api.example:443");
        assert!(c.tls.is_some());
        assert!(matches!(
            Client::new("https://h:1", "t", Some(Path::new("/nonexistent/ca.pem"))),
            Err(ClientError::Ca(tls::CaError::Read { .. }))
        ));
        assert!(matches!(
            Client::new("ftp://h:1", "t", None),
            Err(ClientError::BadServer { .. })
        ));
        assert!(matches!(
            Client::new("h:1", "t", None),
            Err(ClientError::BadServer { .. })
        ));
        assert!(matches!(
            Client::new("http://h:1", " \n", None),
            Err(ClientError::NoToken { .. })
        ));
    }

    #[test]
    fn segments_keep_only_unreserved_characters() {
        assert_eq!(segment("52:54:00:00:00:01"), "52%3A54%3A00%3A00%3A00%3A01");
        assert_eq!(
            segment("label:role=web,a=b|c"),
            "label%3Arole%3Dweb%2Ca%3Db%7Cc"
        );
        assert_eq!(segment("demo-1.2_x~"), "demo-1.2_x~");
        assert_eq!(segment("a/b"), "a%2Fb");
    }

    #[test]
    fn the_scope_comes_from_the_challenge() {
        let v = r#"Bearer realm="tabula", error="insufficient_scope", scope="operate""#;
        assert_eq!(challenge_scope(v).as_deref(), Some("operate"));
        assert_eq!(challenge_scope(r#"Bearer realm="tabula""#), None);
    }

    #[test]
    fn messages_are_one_line_and_say_what_to_do() {
        let e = ClientError::Forbidden {
            detail: "token \"r\" has scope read; PUT /api/v1/pins/n1 needs operate".into(),
            scope: "operate".into(),
        };
        assert_eq!(
            e.to_string(),
            "not allowed: token \"r\" has scope read; PUT /api/v1/pins/n1 needs operate (use a token of scope operate)"
        );
        let e = ClientError::Unauthorized {
            server: "http://h:1".into(),
            detail: "unknown token".into(),
        };
        assert_eq!(
            e.to_string(),
            "the token is not valid for http://h:1 (unknown token): check TABULA_TOKEN or --token-file"
        );
        assert_eq!(e.status(), Some(401));
    }
}
