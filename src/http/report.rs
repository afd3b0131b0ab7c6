//! Reports from booting machines: `POST /boot/<mac>/<manifest>/{booted,failed,progress}`,
//! sent by the netboot initramfs (and `GET` for clients that can only fetch, like iPXE).
//!
//! The body is optional JSON (`{"root_sha256": "…", "reason": "…", "stage": "…"}`) or
//! plain text (taken as the reason). Each report becomes a boot event; nothing else.

use axum::body::Bytes;
use std::collections::BTreeMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::HttpState;
use crate::boot::{BootEvent, BootStage, Digest, Mac};

/// Largest report body accepted.
pub const MAX_REPORT: usize = 16 * 1024;

/// `/boot/{mac}/{manifest}/{report}`.
pub async fn post(
    State(st): State<HttpState>,
    Path((mac, manifest, report)): Path<(String, String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    req: Request,
) -> Response {
    let Ok(mac) = mac.parse::<Mac>() else {
        return (StatusCode::BAD_REQUEST, "malformed MAC\n").into_response();
    };
    let Ok(manifest) = Digest::from_hex(&manifest) else {
        return (StatusCode::BAD_REQUEST, "malformed manifest digest\n").into_response();
    };
    let stage = match report.as_str() {
        "booted" => BootStage::Booted,
        "failed" => BootStage::Failed,
        "progress" => BootStage::Progress,
        _ => return (StatusCode::NOT_FOUND, "unknown report\n").into_response(),
    };
    let peer = super::peer_ip(&req);
    let body: Bytes = match axum::body::to_bytes(req.into_body(), MAX_REPORT).await {
        Ok(b) => b,
        Err(_) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "report too large\n").into_response();
        }
    };
    let mut detail = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ if body.is_empty() => serde_json::json!({}),
        _ => serde_json::json!({ "reason": String::from_utf8_lossy(&body).trim() }),
    };
    if let Some(obj) = detail.as_object_mut() {
        for (k, v) in query {
            obj.entry(k).or_insert(serde_json::Value::String(v));
        }
        obj.insert("peer".into(), serde_json::json!(peer));
    }
    st.events.record(BootEvent {
        at_ms: crate::events::now_ms(),
        mac,
        stage,
        manifest: Some(manifest),
        detail,
    });
    (StatusCode::OK, "recorded\n").into_response()
}
