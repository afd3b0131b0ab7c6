//! Reports from booting machines: `POST /boot/<mac>/<manifest>/{booted,failed,progress}`,
//! sent by the netboot initramfs (and `GET` for clients that can only fetch, like iPXE).
//!
//! The body is optional JSON (`{"root_sha256": "…", "reason": "…", "stage": "…"}`) or
//! plain text (taken as the reason); the query's [`QUERY_KEYS`] are added to the detail
//! unless the body already names them (other query keys are ignored, so a URL cannot
//! grow the detail at will). Each report becomes a boot event, within the per-MAC and
//! per-client rates of `[events]` (over them: 429, nothing recorded); nothing else. The
//! URL is parsed by [`crate::boot::urls::parse_report`]; the answer is a small text body
//! written by the connection loop, and nothing here touches a socket.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::HttpState;
use super::route::Refusal;
use crate::boot::urls::{self, UrlError};
use crate::boot::{BootEvent, Callback, EventDetail, ReportKind, Via};

/// Largest report body accepted.
pub const MAX_REPORT: usize = 16 * 1024;

/// The query keys a report may add to its detail.
pub const QUERY_KEYS: [&str; 4] = ["stage", "reason", "attempt", "root_sha256"];

/// The body of a recorded report's answer.
pub const RECORDED: &str = "recorded\n";

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

    /// What the URL names: the callback, the report kind and the query.
    pub fn parsed(&self) -> Option<(Callback, ReportKind, &BTreeMap<String, String>)> {
        self.parsed
            .as_ref()
            .ok()
            .map(|p| (p.callback, p.kind, &p.query))
    }

    /// Refused on its URL alone (before any body is read), or fine so far.
    pub fn refusal(&self) -> Option<Refusal> {
        match &self.parsed {
            Ok(_) => None,
            Err(UrlError::Mac(_)) => Some(Refusal::BadRequest("malformed MAC\n".into())),
            Err(UrlError::Digest(_)) => {
                Some(Refusal::BadRequest("malformed manifest digest\n".into()))
            }
            Err(UrlError::Report(_)) => Some(Refusal::NotFound("unknown report\n")),
            Err(_) => Some(Refusal::BadRequest("malformed report URL\n".into())),
        }
    }
}

/// Records the report `req` with `body` from the client `peer` as a boot event.
pub fn answer(st: &HttpState, req: &Request, body: &[u8], peer: IpAddr) -> Result<(), Refusal> {
    if let Some(r) = req.refusal() {
        return Err(r);
    }
    let Ok(p) = &req.parsed else {
        return Err(Refusal::BadRequest("malformed report URL\n".into()));
    };
    if body.len() > MAX_REPORT {
        return Err(Refusal::PayloadTooLarge("report too large\n"));
    }
    let event = BootEvent {
        at_ms: crate::events::now_ms(),
        mac: p.callback.mac,
        manifest: Some(p.callback.manifest),
        via: Via::Http,
        peer: Some(peer),
        detail: detail(p.kind, body, &p.query),
    };
    if st.events.record_from(event, peer) {
        Ok(())
    } else {
        Err(Refusal::TooManyRequests)
    }
}

/// The body (a JSON object, plain text taken as the reason, or nothing) with the query
/// parameters it does not already have, typed as a [`crate::boot::Report`]; a report
/// that does not fit the schema is kept as sent ([`EventDetail::Unparsed`]).
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
        if QUERY_KEYS.contains(&k.as_str()) {
            obj.entry(k.clone())
                .or_insert(serde_json::Value::String(v.clone()));
        }
    }
    EventDetail::from_value(kind.stage(), serde_json::Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(target: &str) -> Option<Refusal> {
        Request::of_target(target)
            .expect("a report route")
            .refusal()
    }

    #[test]
    fn targets_are_checked_mac_then_manifest_then_kind() {
        let hex = "ab".repeat(32);
        assert!(refusal(&format!("/boot/52-54-00-00-00-07/{hex}/progress")).is_none());
        let msg = |r: Option<Refusal>| r.expect("refused").message().to_string();
        assert_eq!(msg(refusal("/boot/zz/x/nope")), "malformed MAC\n");
        assert_eq!(
            msg(refusal("/boot/52:54:00:00:00:07/x/nope")),
            "malformed manifest digest\n"
        );
        assert_eq!(
            refusal(&format!("/boot/52:54:00:00:00:07/{hex}/nope")),
            Some(Refusal::NotFound("unknown report\n"))
        );
        assert!(Request::of_target("/boot/52:54:00:00:00:07/boot.ipxe").is_none());
    }
}
