//! The data plane's one routing table: [`classify`] turns a request's method and target
//! into a [`Route`], and [`Refusal`] is every answer the data plane gives instead of
//! what was asked for, with its status code. Pure: no I/O, no store, no clock.
//!
//! | route | methods |
//! |---|---|
//! | `/boot.ipxe?mac=…&…`, `/boot/<mac>/boot.ipxe[?…]`, `/boot/<mac>/grub.cfg[?…]` | `GET`, `HEAD` → [`Route::Script`] (iPXE or GRUB) |
//! | `/blobs/sha256/<hex>[/<name>][?mac=…&as=…]` | `GET`, `HEAD` → [`Route::Blob`] |
//! | `/loaders/<name>` | `GET`, `HEAD` → [`Route::Loader`] |
//! | `/boot/<mac>/<manifest>[/<token>]/<booted\|failed\|progress>[?…]` | `POST` → [`Route::Report`] (a report is a write: never by `GET`, so a link cannot forge one) |
//! | `/healthz` | `GET`, `HEAD` → [`Route::Health`] |
//! | `/readyz` | `GET`, `HEAD` → [`Route::Ready`] |
//! | anything else | 404; a known path with another method: 405 with `Allow` |
//!
//! Path segments are matched as sent; the variable ones (a MAC, a manifest, a report or
//! loader name) are percent-decoded, as axum's router did before this file replaced it.
//! Blob paths are never decoded: only a literal digest reaches the filesystem. The hot
//! routes (scripts, blobs) cost no allocation here beyond the script's parsed query.
//!
//! Status codes: every refusal of the data plane is a [`Refusal`] and gets its status in
//! [`Refusal::status`]. Successful answers are `200 OK`, except a blob's range and
//! revalidation answers (206/304/416), which `blob_head.rs` decides from the headers.
//! The API listener (`src/api/`) chooses its own, as problem+json.

use std::borrow::Cow;

use axum::http::{Method, StatusCode};

use super::wire::HeadWriter;
use super::{blobs, boot_script, loaders, report};

/// `Allow` of a route that only reads.
const READ: &str = "GET, HEAD";
/// `Allow` of the report route: reports change what tabula knows of a boot, so they
/// are writes and come by `POST` only.
const REPORT: &str = "POST";

/// What a request asks for.
#[derive(Debug)]
pub enum Route<'a> {
    /// The iPXE script of the machine the request names.
    Script(boot_script::Request),
    /// A blob by digest; the target (path and query) as sent, for [`blobs::send`].
    Blob { target: &'a str },
    /// A loader from `tftp.root`, by a plain file name.
    Loader { name: Cow<'a, str> },
    /// A report from a booting machine (its URL parsed, possibly refused).
    Report(report::Request),
    /// Whether every configured front end serves (200 `ok` or 503 naming those down).
    Health,
    /// Each front end's state, one line each (200, or 503 when one is down).
    Ready,
    /// Not answerable as asked.
    Refused(Refusal),
}

impl Route<'_> {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Route::Script(_) => "script",
            Route::Blob { .. } => "blob",
            Route::Loader { .. } => "loader",
            Route::Report(_) => "report",
            Route::Health => "health",
            Route::Ready => "ready",
            Route::Refused(_) => "refused",
        }
    }
}

/// Every way the data plane declines a request; [`Refusal::status`] is the one place
/// their status codes are chosen. The message is the plain-text body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A malformed head, target, MAC, digest or query value.
    BadRequest(Cow<'static, str>),
    /// A report without a valid token for its MAC and manifest.
    Forbidden(&'static str),
    /// No such route, blob, loader or report kind.
    NotFound(&'static str),
    /// A known path asked with a method it does not take; `allow` lists those it takes.
    MethodNotAllowed { allow: &'static str },
    /// A chunked request body (only `Content-Length` bodies are read).
    LengthRequired,
    /// A request or report body over its limit.
    PayloadTooLarge(&'static str),
    /// A MAC or client over its report rate (`events.per_*_per_minute`).
    TooManyRequests,
    /// A request head over `conn::MAX_HEAD`.
    HeadTooLarge,
    /// The inventory could not be read.
    Unavailable(&'static str),
    /// A file that exists could not be read.
    Internal(&'static str),
    /// Every root-image slot is taken and the queue is full or was waited on too long
    /// ([`super::admission`]): come back after this many seconds.
    Busy { retry_after: u64 },
}

impl Refusal {
    /// The response status.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::NotFound(_) => StatusCode::NOT_FOUND,
            Refusal::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::LengthRequired => StatusCode::LENGTH_REQUIRED,
            Refusal::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Refusal::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::Unavailable(_) | Refusal::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The plain-text body, one line.
    pub fn message(&self) -> &str {
        match self {
            Refusal::BadRequest(m) => m.as_ref(),
            Refusal::NotFound(m)
            | Refusal::Forbidden(m)
            | Refusal::PayloadTooLarge(m)
            | Refusal::Unavailable(m)
            | Refusal::Internal(m) => m,
            Refusal::MethodNotAllowed { .. } => "method not allowed\n",
            Refusal::LengthRequired => "send a Content-Length\n",
            Refusal::TooManyRequests => "too many reports, slow down\n",
            Refusal::HeadTooLarge => "request head too large\n",
            Refusal::Busy { .. } => "too many root-image downloads at once; retry later\n",
        }
    }

    /// Appends the whole response (the head, and the body unless `head_only`).
    pub fn write(&self, out: &mut Vec<u8>, head_only: bool, keep_alive: bool) {
        let body = self.message().as_bytes();
        let mut h = HeadWriter::new(out, self.status());
        if let Refusal::MethodNotAllowed { allow } = self {
            h.header("allow", allow.as_bytes());
        }
        if let Refusal::Busy { retry_after } = self {
            h.number("retry-after", *retry_after);
        }
        h.header("content-type", b"text/plain; charset=utf-8")
            .number("content-length", body.len() as u64);
        h.finish(keep_alive);
        if !head_only {
            out.extend_from_slice(body);
        }
    }
}

/// Appends a `200 OK` with a short plain-text body (health, a recorded report).
pub fn ok_text(out: &mut Vec<u8>, body: &str, head_only: bool, keep_alive: bool) {
    status_text(out, StatusCode::OK, body, head_only, keep_alive);
}

/// Appends a health answer: `200 OK` when `ok`, else `503 Service Unavailable`.
pub fn health_text(out: &mut Vec<u8>, ok: bool, body: &str, head_only: bool, keep_alive: bool) {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    status_text(out, status, body, head_only, keep_alive);
}

fn status_text(
    out: &mut Vec<u8>,
    status: StatusCode,
    body: &str,
    head_only: bool,
    keep_alive: bool,
) {
    let mut h = HeadWriter::new(out, status);
    h.header("content-type", b"text/plain; charset=utf-8")
        .number("content-length", body.len() as u64);
    h.finish(keep_alive);
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
}

/// The route of a request with `method` for `target` (origin form `/path?query`, or
/// absolute form `http://host/path?query`).
pub fn classify<'a>(method: &Method, target: &'a str) -> Route<'a> {
    let Some(target) = origin_form(target) else {
        return Route::Refused(Refusal::BadRequest("bad request target\n".into()));
    };
    let reads = method == Method::GET || method == Method::HEAD;
    // Blobs first: the hottest route, decided by a prefix.
    if blobs::is_blob_target(target) {
        return match allowed(reads, READ) {
            Ok(()) => Route::Blob { target },
            Err(r) => Route::Refused(r),
        };
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let mut segs = path[1..].split('/');
    let segs = [
        segs.next(),
        segs.next(),
        segs.next(),
        segs.next(),
        segs.next(),
        segs.next(),
    ];
    let answer = match segs {
        [Some("healthz"), None, ..] => allowed(reads, READ).map(|()| Route::Health),
        [Some("readyz"), None, ..] => allowed(reads, READ).map(|()| Route::Ready),
        [Some("boot.ipxe"), None, ..] => allowed(reads, READ).and_then(|()| script(target)),
        [Some("boot"), Some(mac), Some("boot.ipxe"), None, ..] if !mac.is_empty() => {
            allowed(reads, READ).and_then(|()| script(target))
        }
        [Some("boot"), Some(mac), Some(manifest), Some(a), b, None]
            if !mac.is_empty() && !manifest.is_empty() && !a.is_empty() && b != Some("") =>
        {
            allowed(method == Method::POST, REPORT).and_then(|()| {
                let req =
                    report::Request::of_target(target).ok_or(Refusal::NotFound("not found\n"))?;
                match req.refusal() {
                    Some(r) => Err(r),
                    None => Ok(Route::Report(req)),
                }
            })
        }
        [Some("loaders"), Some(name), None, ..] if !name.is_empty() => allowed(reads, READ)
            .and_then(|()| {
                let name = decode(name)?;
                if loaders::plain_name(&name) {
                    Ok(Route::Loader { name })
                } else {
                    Err(Refusal::NotFound(loaders::NOT_FOUND))
                }
            }),
        _ => Err(Refusal::NotFound("not found\n")),
    };
    answer.unwrap_or_else(Route::Refused)
}

/// The script route, parsed by [`boot_script::Request::of_target`] (which decodes the
/// MAC segment; a malformed request is still a script request, answered 400 there).
fn script(target: &str) -> Result<Route<'static>, Refusal> {
    boot_script::Request::of_target(target)
        .map(Route::Script)
        .ok_or(Refusal::NotFound("not found\n"))
}

fn allowed(ok: bool, allow: &'static str) -> Result<(), Refusal> {
    if ok {
        Ok(())
    } else {
        Err(Refusal::MethodNotAllowed { allow })
    }
}

/// The `/path?query` part of a target in origin or absolute form.
fn origin_form(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return Some(target);
    }
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    let slash = rest.find('/')?;
    // A query right after the authority (`http://h?x`) has no path to route.
    if rest[..slash].contains('?') {
        return None;
    }
    Some(&rest[slash..])
}

/// A path segment percent-decoded (borrowed when it has no `%`). A `%` not followed by
/// two hex digits stays as it is; a result that is not UTF-8 is a bad request.
fn decode(seg: &str) -> Result<Cow<'_, str>, Refusal> {
    if !seg.contains('%') {
        return Ok(Cow::Borrowed(seg));
    }
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| Refusal::BadRequest("path segment is not UTF-8\n".into()))
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
