//! Reports from booting machines: `POST /boot/<mac>/<manifest>/{booted,failed,progress}`,
//! sent by the netboot initramfs (and `GET` for clients that can only fetch, like iPXE).
//!
//! The body is optional JSON (`{"root_sha256": "…", "reason": "…", "stage": "…"}`) or
//! plain text (taken as the reason). Each report becomes a boot event; nothing else.
//! The URL is parsed by [`crate::boot::urls::parse_report`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::HttpState;
use crate::boot::urls::{self, UrlError};
use crate::boot::{BootEvent, Callback, EventDetail, ReportKind, Via};

/// Largest report body accepted.
pub const MAX_REPORT: usize = 16 * 1024;

/// A request for the report route, parsed or not parseable.
#[derive(Debug)]
pub struct Request {
    parsed: Result<Parsed, UrlError>,
}

#[derive(Debug)]
struct Parsed {
    callback: Callback,
    kind: ReportKind,
    query: BTreeMap<String, String>,
}

impl Request {
    /// `/boot/<mac>/<manifest>/<kind>[?…]`; `None` for any other path. A malformed
    /// report URL is still a report request (answered with 400 or 404).
    pub fn of_target(target: &str) -> Option<Request> {
        let parsed = match urls::parse_report(target) {
            Err(UrlError::Unmatched) => return None,
            Err(e) => Err(e),
            Ok(t) => t.query().map(|query| Parsed {
                callback: t.callback,
                kind: t.kind,
                query,
            }),
        };
        Some(Request { parsed })
    }
}

/// Records the report `req` with `body` from `peer`; the status and text to answer.
pub fn answer(
    st: &HttpState,
    req: &Request,
    body: &[u8],
    peer: Option<IpAddr>,
) -> (StatusCode, &'static str) {
    let p = match &req.parsed {
        Ok(p) => p,
        Err(UrlError::Mac(_)) => return (StatusCode::BAD_REQUEST, "malformed MAC\n"),
        Err(UrlError::Digest(_)) => {
            return (StatusCode::BAD_REQUEST, "malformed manifest digest\n");
        }
        Err(UrlError::Report(_)) => return (StatusCode::NOT_FOUND, "unknown report\n"),
        Err(_) => return (StatusCode::BAD_REQUEST, "malformed report URL\n"),
    };
    st.events.record(BootEvent {
        at_ms: crate::events::now_ms(),
        mac: p.callback.mac,
        manifest: Some(p.callback.manifest),
        via: Via::Http,
        peer,
        detail: detail(p.kind, body, &p.query),
    });
    (StatusCode::OK, "recorded\n")
}

/// The body (a JSON object, plain text taken as the reason, or nothing) with the query
/// parameters it does not already have, typed as a [`crate::boot::Report`]; a report that does not
/// fit the schema is kept as sent ([`EventDetail::Unparsed`]).
fn detail(kind: ReportKind, body: &[u8], query: &BTreeMap<String, String>) -> EventDetail {
    let mut obj = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(m)) => m,
        _ if body.is_empty() => serde_json::Map::new(),
        _ => {
            let mut m = serde_json::Map::new();
            let reason = String::from_utf8_lossy(body).trim().to_string();
            m.insert("reason".into(), serde_json::Value::String(reason));
            m
        }
    };
    for (k, v) in query {
        obj.entry(k.clone())
            .or_insert(serde_json::Value::String(v.clone()));
    }
    EventDetail::from_value(kind.stage(), serde_json::Value::Object(obj))
}

/// The router's handler for `/boot/{mac}/{manifest}/{report}`.
pub async fn post(State(st): State<HttpState>, req: axum::extract::Request) -> Response {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let Some(report) = Request::of_target(target) else {
        return (StatusCode::NOT_FOUND, "unknown report\n").into_response();
    };
    let peer = super::peer_ip(&req);
    if report.parsed.is_err() {
        // Refused on its URL alone, before any body is read.
        return answer(&st, &report, &[], peer).into_response();
    }
    let body: Bytes = match axum::body::to_bytes(req.into_body(), MAX_REPORT).await {
        Ok(b) => b,
        Err(_) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "report too large\n").into_response();
        }
    };
    answer(&st, &report, &body, peer).into_response()
}
