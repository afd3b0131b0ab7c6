//! Reports from booting machines: `POST /boot/<mac>/<manifest>/{booted,failed,progress}`,
//! sent by the netboot initramfs (and `GET` for clients that can only fetch, like iPXE).
//!
//! The body is optional JSON (`{"root_sha256": "…", "reason": "…", "stage": "…"}`) or
//! plain text (taken as the reason). Each report becomes a boot event; nothing else.
//! The URL is parsed by [`crate::boot::urls::parse_report`].

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::HttpState;
use crate::boot::urls::{self, UrlError};
use crate::boot::{BootEvent, Callback, ReportKind};

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
    peer: Option<String>,
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
    let mut detail = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ if body.is_empty() => serde_json::json!({}),
        _ => serde_json::json!({ "reason": String::from_utf8_lossy(body).trim() }),
    };
    if let Some(obj) = detail.as_object_mut() {
        for (k, v) in &p.query {
            obj.entry(k.clone())
                .or_insert(serde_json::Value::String(v.clone()));
        }
        obj.insert("peer".into(), serde_json::json!(peer));
    }
    st.events.record(BootEvent {
        at_ms: crate::events::now_ms(),
        mac: p.callback.mac,
        stage: p.kind.stage(),
        manifest: Some(p.callback.manifest),
        detail,
    });
    (StatusCode::OK, "recorded\n")
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
