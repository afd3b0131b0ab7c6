//! Reports from booting machines: `POST /boot/<mac>/<manifest>/{booted,failed,progress}`,
//! sent by the netboot initramfs (and `GET` for clients that can only fetch, like iPXE).
//!
//! The body is optional JSON (`{"root_sha256": "…", "reason": "…", "stage": "…"}`) or
//! plain text (taken as the reason); the query's [`QUERY_KEYS`] are added to the detail
//! unless the body already names them (other query keys are ignored, so a URL cannot
//! grow the detail at will). Each report becomes a boot event, within the per-MAC and
//! per-client rates of `[events]` (over them: 429, nothing recorded); nothing else. The
//! answer is a small text body written by the connection loop; nothing here touches a
//! socket.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::HttpState;
use super::route::Refusal;
use crate::boot::{BootEvent, BootStage, Digest, Mac};

/// Largest report body accepted.
pub const MAX_REPORT: usize = 16 * 1024;

/// The query keys a report may carry into its detail (what iPXE-only clients can send).
pub const QUERY_KEYS: [&str; 4] = ["stage", "reason", "attempt", "root_sha256"];

/// The body of a recorded report's answer.
pub const RECORDED: &str = "recorded\n";

/// The MAC, manifest and stage named by the (decoded) segments of
/// `/boot/<mac>/<manifest>/<kind>`, checked in that order.
pub fn target(mac: &str, manifest: &str, kind: &str) -> Result<(Mac, Digest, BootStage), Refusal> {
    let mac = mac
        .parse::<Mac>()
        .map_err(|_| Refusal::BadRequest("malformed MAC\n".into()))?;
    let manifest = Digest::from_hex(manifest)
        .map_err(|_| Refusal::BadRequest("malformed manifest digest\n".into()))?;
    let stage = match kind {
        "booted" => BootStage::Booted,
        "failed" => BootStage::Failed,
        "progress" => BootStage::Progress,
        _ => return Err(Refusal::NotFound("unknown report\n")),
    };
    Ok((mac, manifest, stage))
}

/// Records one report as a boot event from the client `peer`.
pub fn record(
    st: &HttpState,
    (mac, manifest, stage): (Mac, Digest, BootStage),
    query: &str,
    body: &[u8],
    peer: SocketAddr,
) -> Result<(), Refusal> {
    if body.len() > MAX_REPORT {
        return Err(Refusal::PayloadTooLarge("report too large\n"));
    }
    let query: BTreeMap<String, String> = serde_urlencoded::from_str(query).unwrap_or_default();
    let mut detail = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ if body.is_empty() => serde_json::json!({}),
        _ => serde_json::json!({ "reason": String::from_utf8_lossy(body).trim() }),
    };
    if let Some(obj) = detail.as_object_mut() {
        for (k, v) in query {
            if QUERY_KEYS.contains(&k.as_str()) {
                obj.entry(k).or_insert(serde_json::Value::String(v));
            }
        }
        obj.insert("peer".into(), serde_json::json!(peer.ip().to_string()));
    }
    let event = BootEvent {
        at_ms: crate::events::now_ms(),
        mac,
        stage,
        manifest: Some(manifest),
        detail,
    };
    if st.events.record_from(event, peer.ip()) {
        Ok(())
    } else {
        Err(Refusal::TooManyRequests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked_mac_then_manifest_then_kind() {
        let hex = "ab".repeat(32);
        let (mac, d, stage) = target("52-54-00-00-00-07", &hex, "progress").unwrap();
        assert_eq!(mac.to_string(), "52:54:00:00:00:07");
        assert_eq!(d.to_string(), format!("sha256:{hex}"));
        assert_eq!(stage, BootStage::Progress);
        let msg = |r: Result<_, Refusal>| r.unwrap_err().message().to_string();
        assert_eq!(msg(target("zz", "x", "nope")), "malformed MAC\n");
        assert_eq!(
            msg(target("52:54:00:00:00:07", "x", "nope")),
            "malformed manifest digest\n"
        );
        assert_eq!(
            target("52:54:00:00:00:07", &hex, "nope").unwrap_err(),
            Refusal::NotFound("unknown report\n")
        );
    }
}
