//! The iPXE script route (`/boot.ipxe?mac=…`, `/boot/{mac}/boot.ipxe`): the decision,
//! the rendered script and its boot event.
//!
//! Answers are cached per (MAC, firmware, UUID) for one inventory snapshot: a repeated
//! request (a machine retrying, a boot storm) costs a lookup, a boot event and one write.
//! The cache is emptied whenever the inventory hands out a different snapshot, which it
//! does exactly when the store's revision changed (a re-pin, a new version, a machine
//! edit), so a cached script is never older than a freshly computed one would be. Every
//! request still records its own event, with its own time and peer.
//!
//! Hot requests are answered here straight from the connection loop ([`send`]), without
//! the router; the router's handlers call [`answer`] too, for whatever the fast path
//! leaves to it.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::wire::HeadWriter;
use super::{HttpState, script};
use crate::boot::urls::{self, ScriptRequest, UrlError};
use crate::boot::{BootStage, Digest, EventText, Firmware, Mac};
use crate::inventory::{Decision, Facts, Snapshot, select};

/// Most answers kept; past that the cache starts over.
const MAX_ANSWERS: usize = 16 * 1024;

/// A response of this route.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    /// Whether to send `cache-control: no-store` (scripts change with pins).
    pub no_store: bool,
    /// `text/plain; charset=utf-8`.
    pub body: Bytes,
}

impl Reply {
    fn plain(status: StatusCode, msg: String) -> Reply {
        Reply {
            status,
            no_store: false,
            body: Bytes::from(msg),
        }
    }

    /// For a target that is not a script route at all.
    pub fn not_found() -> Reply {
        Reply::plain(StatusCode::NOT_FOUND, "not found\n".into())
    }
}

/// The event every request for one answer records, short of its time and peer.
#[derive(Debug)]
struct EventTemplate {
    stage: BootStage,
    manifest: Option<Digest>,
    /// The detail's JSON text without its closing brace.
    detail_open: String,
    /// Whether the detail ends with the requester's address (`"peer"`).
    with_peer: bool,
}

impl EventTemplate {
    fn new(
        stage: BootStage,
        manifest: Option<Digest>,
        detail: &serde_json::Value,
        with_peer: bool,
    ) -> EventTemplate {
        let mut detail_open = detail.to_string();
        // An object always ends with its brace.
        detail_open.pop();
        EventTemplate {
            stage,
            manifest,
            detail_open,
            with_peer,
        }
    }

    /// The detail for a request from `peer` (IP address text, which needs no escaping).
    fn detail(&self, peer: Option<&str>) -> String {
        let mut d = String::with_capacity(self.detail_open.len() + 48);
        d.push_str(&self.detail_open);
        if self.with_peer {
            if !d.ends_with('{') {
                d.push(',');
            }
            d.push_str("\"peer\":");
            match peer {
                Some(p) => {
                    d.push('"');
                    d.push_str(p);
                    d.push('"');
                }
                None => d.push_str("null"),
            }
        }
        d.push('}');
        d
    }
}

#[derive(Debug)]
struct Answer {
    reply: Reply,
    event: EventTemplate,
}

type Key = (Mac, Firmware, Option<String>);

#[derive(Debug, Default)]
struct Answers {
    /// The snapshot every cached answer was computed from.
    snapshot: Option<Arc<Snapshot>>,
    by_key: HashMap<Key, Arc<Answer>>,
}

/// Rendered answers of the current snapshot. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct ScriptCache {
    answers: Arc<Mutex<Answers>>,
}

impl ScriptCache {
    fn get(&self, snap: &Arc<Snapshot>, key: &Key) -> Option<Arc<Answer>> {
        let a = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        a.snapshot
            .as_ref()
            .filter(|s| Arc::ptr_eq(s, snap))
            .and_then(|_| a.by_key.get(key).cloned())
    }

    fn put(&self, snap: &Arc<Snapshot>, key: Key, answer: Arc<Answer>) {
        let mut a = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        let same = a.snapshot.as_ref().is_some_and(|s| Arc::ptr_eq(s, snap));
        if !same {
            // Only a newer snapshot replaces the one held: a request that started on an
            // older one must not bring its answers back.
            if a.snapshot
                .as_ref()
                .is_some_and(|s| s.revision > snap.revision)
            {
                return;
            }
            a.snapshot = Some(snap.clone());
            a.by_key.clear();
        }
        if a.by_key.len() >= MAX_ANSWERS {
            a.by_key.clear();
        }
        a.by_key.insert(key, answer);
    }
}

/// The answer to a script request (400 for a malformed one), its boot event recorded.
pub async fn reply(st: &HttpState, req: &Request, peer: Option<&str>) -> Reply {
    match &req.parsed {
        Ok(r) => answer(st, r, peer).await,
        Err(UrlError::Mac(e)) => Reply::plain(
            StatusCode::BAD_REQUEST,
            format!("malformed MAC address {:?}\n", e.input),
        ),
        Err(e) => Reply::plain(StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}

/// The script for the machine of `req`, and its boot event recorded.
pub async fn answer(st: &HttpState, req: &ScriptRequest, peer: Option<&str>) -> Reply {
    let (mac, firmware) = (req.mac, req.firmware);
    let snap = match st.inventory.snapshot().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot load the inventory");
            return Reply::plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "inventory unavailable\n".into(),
            );
        }
    };
    let key = (mac, firmware, req.uuid.clone());
    let answer = match st.scripts.get(&snap, &key) {
        Some(a) => a,
        None => {
            let facts = Facts {
                mac,
                uuid: key.2.clone(),
                firmware,
            };
            let a = Arc::new(compute(&snap, &facts, &st.base_url));
            st.scripts.put(&snap, key, a.clone());
            a
        }
    };
    let t = &answer.event;
    st.events.record_text(EventText {
        at_ms: crate::events::now_ms(),
        mac,
        stage: t.stage,
        manifest: t.manifest,
        detail: t.detail(peer),
    });
    answer.reply.clone()
}

/// Decides and renders, without recording anything.
fn compute(snap: &Snapshot, facts: &Facts, base_url: &str) -> Answer {
    let sel = select(snap, facts);
    let rule = sel.candidates.first().map(|c| c.target.clone());
    let (stage, manifest, detail) = match &sel.decision {
        Decision::Boot { plan } => (
            BootStage::ScriptSent,
            Some(plan.manifest),
            serde_json::json!({"image": plan.image, "version": plan.version,
                "rule": rule, "firmware": facts.firmware.as_str()}),
        ),
        Decision::Local => (
            BootStage::ScriptSent,
            None,
            serde_json::json!({"local": true, "rule": rule}),
        ),
        Decision::Ignore { reason } => (
            BootStage::Ignored,
            None,
            serde_json::json!({"reason": reason.to_string(), "code": reason.code(), "via": "http"}),
        ),
    };
    match script::render(&sel, base_url) {
        Ok(text) => Answer {
            reply: Reply {
                status: StatusCode::OK,
                no_store: true,
                body: Bytes::from(text),
            },
            event: EventTemplate::new(stage, manifest, &detail, true),
        },
        Err(e) => Answer {
            reply: Reply::plain(
                StatusCode::OK,
                format!(
                    "#!ipxe\necho tabula: {}\nexit 1\n",
                    script::echo_text(&e.to_string())
                ),
            ),
            event: EventTemplate::new(
                BootStage::Failed,
                manifest,
                &serde_json::json!({"reason": e.to_string(), "via": "http"}),
                false,
            ),
        },
    }
}

/// A request for the script route, parsed ([`urls::parse_script`]) or not parseable.
#[derive(Debug)]
pub struct Request {
    parsed: Result<ScriptRequest, UrlError>,
}

impl Request {
    /// `/boot.ipxe?…` or `/boot/{mac}/boot.ipxe[?…]`; `None` for any other path. A
    /// malformed script request is still a script request (answered with 400).
    pub fn of_target(target: &str) -> Option<Request> {
        match urls::parse_script(target) {
            Err(UrlError::Unmatched) => None,
            parsed => Some(Request { parsed }),
        }
    }
}

/// Answers a script request on `stream`.
pub async fn send(
    stream: &mut TcpStream,
    st: &HttpState,
    req: Request,
    head_only: bool,
    peer: &str,
    keep_alive: bool,
) -> io::Result<()> {
    let reply = reply(st, &req, Some(peer)).await;
    let mut out = Vec::with_capacity(256 + reply.body.len());
    let mut h = HeadWriter::new(&mut out, reply.status);
    h.header("content-type", b"text/plain; charset=utf-8");
    if reply.no_store {
        h.header("cache-control", b"no-store");
    }
    h.number("content-length", reply.body.len() as u64);
    h.finish(keep_alive);
    if !head_only {
        out.extend_from_slice(&reply.body);
    }
    stream.write_all(&out).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_detail_gets_the_peer() {
        let v = serde_json::json!({"image": "a\"b", "rule": null});
        let t = EventTemplate::new(BootStage::ScriptSent, None, &v, true);
        let d: serde_json::Value = serde_json::from_str(&t.detail(Some("10.0.0.9"))).unwrap();
        assert_eq!(
            d,
            serde_json::json!({"image": "a\"b", "rule": null, "peer": "10.0.0.9"})
        );
        let d: serde_json::Value = serde_json::from_str(&t.detail(None)).unwrap();
        assert_eq!(d["peer"], serde_json::Value::Null);
        let t = EventTemplate::new(BootStage::Failed, None, &serde_json::json!({}), true);
        assert_eq!(t.detail(Some("::1")), r#"{"peer":"::1"}"#);
        let t = EventTemplate::new(BootStage::Failed, None, &v, false);
        let d: serde_json::Value = serde_json::from_str(&t.detail(Some("x"))).unwrap();
        assert_eq!(d, v);
    }

    #[test]
    fn targets_the_script_route_takes() {
        let mac = |t: &str| {
            Request::of_target(t)
                .unwrap()
                .parsed
                .map(|r| r.mac.to_string())
        };
        let r = Request::of_target("/boot.ipxe?mac=52-54-00-00-00-01&platform=efi").unwrap();
        let r = r.parsed.unwrap();
        assert_eq!(r.mac.to_string(), "52:54:00:00:00:01");
        assert_eq!(r.firmware, Firmware::EfiX64);
        assert_eq!(
            mac("/boot/52:54:00:00:00:02/boot.ipxe").as_deref(),
            Ok("52:54:00:00:00:02")
        );
        // Percent-encoded paths are decoded here, as the router would.
        assert_eq!(
            mac("/boot/52%3A54%3A00%3A00%3A00%3A02/boot.ipxe").as_deref(),
            Ok("52:54:00:00:00:02")
        );
        // Malformed script requests are still script requests (answered with 400).
        assert!(matches!(mac("/boot.ipxe"), Err(UrlError::Mac(_))));
        for other in [
            "/boot.ipxe/",
            "/boot//boot.ipxe",
            "/boot/a/b/boot.ipxe",
            "/boot/x/y/booted",
            "/healthz",
        ] {
            assert!(Request::of_target(other).is_none(), "{other}");
        }
    }
}
