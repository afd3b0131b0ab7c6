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
//! `route.rs` classifies the request into a [`Request`]; [`send`] answers it on the
//! connection. Refusals (a malformed MAC, an unknown platform, an unreadable inventory)
//! are `route::Refusal`s, which choose their status codes.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::StatusCode;
use tokio::net::TcpStream;

use super::route::Refusal;
use super::wire::HeadWriter;
use super::{HttpState, script};
use crate::boot::{BootStage, Digest, EventText, Firmware, Mac};
use crate::inventory::{Decision, Facts, Snapshot, select};

/// Most answers kept; past that the cache starts over.
const MAX_ANSWERS: usize = 16 * 1024;

/// A `200 OK` of this route: a script, or one that says why it does not boot.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Whether to send `cache-control: no-store` (scripts change with pins).
    pub no_store: bool,
    /// `text/plain; charset=utf-8`.
    pub body: Bytes,
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

/// Firmware from the script URL: tabula's own `arch=` name, or iPXE's
/// `platform=pcbios|efi` with `buildarch=i386|x86_64|arm64`.
fn firmware_of(q: &BTreeMap<String, String>) -> Result<Firmware, String> {
    if let Some(a) = q.get("arch") {
        return a
            .parse()
            .map_err(|e: crate::boot::FirmwareError| e.to_string());
    }
    let build = q.get("buildarch").map(String::as_str);
    match q.get("platform").map(String::as_str) {
        None | Some("pcbios") => Ok(Firmware::Bios),
        Some("efi") => match build {
            None | Some("x86_64") => Ok(Firmware::EfiX64),
            Some("i386") => Ok(Firmware::EfiIa32),
            Some("arm64") => Ok(Firmware::EfiArm64),
            Some(o) => Err(format!("unsupported buildarch {o:?}")),
        },
        Some(o) => Err(format!("unsupported platform {o:?}")),
    }
}

/// The script for the machine `mac` (as written in the URL) asking with query `q`, and
/// its boot event recorded.
async fn answer(
    st: &HttpState,
    mac: &str,
    q: &BTreeMap<String, String>,
    peer: Option<&str>,
) -> Result<Reply, Refusal> {
    let Ok(mac) = mac.parse::<Mac>() else {
        return Err(Refusal::BadRequest(
            format!("malformed MAC address {mac:?}\n").into(),
        ));
    };
    let firmware = firmware_of(q).map_err(|e| Refusal::BadRequest(format!("{e}\n").into()))?;
    let snap = match st.inventory.snapshot().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot load the inventory");
            return Err(Refusal::Unavailable("inventory unavailable\n"));
        }
    };
    let key = (mac, firmware, q.get("uuid").map(|u| u.to_ascii_lowercase()));
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
    Ok(answer.reply.clone())
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
            serde_json::json!({"reason": reason, "via": "http"}),
        ),
    };
    match script::render(&sel, base_url) {
        Ok(text) => Answer {
            reply: Reply {
                no_store: true,
                body: Bytes::from(text),
            },
            event: EventTemplate::new(stage, manifest, &detail, true),
        },
        Err(e) => Answer {
            reply: Reply {
                no_store: false,
                body: Bytes::from(format!(
                    "#!ipxe\necho tabula: {}\nexit 1\n",
                    script::echo_text(&e.to_string())
                )),
            },
            event: EventTemplate::new(
                BootStage::Failed,
                manifest,
                &serde_json::json!({"reason": e.to_string(), "via": "http"}),
                false,
            ),
        },
    }
}

/// A script request: the MAC as written in the URL and the parsed query.
#[derive(Debug)]
pub struct Request {
    mac: String,
    query: BTreeMap<String, String>,
}

impl Request {
    /// `/boot.ipxe?…` or `/boot/{mac}/boot.ipxe[?…]` with a MAC segment that needs no
    /// decoding; `route.rs` decodes a percent-encoded one and calls [`Request::for_mac`].
    pub fn of_target(target: &str) -> Option<Request> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mac = if path == "/boot.ipxe" {
            None
        } else {
            let seg = path.strip_prefix("/boot/")?.strip_suffix("/boot.ipxe")?;
            if seg.is_empty() || seg.contains(['/', '%']) {
                return None;
            }
            Some(seg)
        };
        let query: BTreeMap<String, String> = serde_urlencoded::from_str(query).ok()?;
        let mac = match mac {
            Some(m) => m.to_string(),
            None => query.get("mac").cloned().unwrap_or_default(),
        };
        Some(Request { mac, query })
    }

    /// The MAC as written in the URL (decoded).
    #[cfg(test)]
    pub(crate) fn mac(&self) -> &str {
        &self.mac
    }

    /// The path form with its MAC segment already decoded, and the raw query.
    pub fn for_mac(mac: String, query: &str) -> Request {
        Request {
            mac,
            query: serde_urlencoded::from_str(query).unwrap_or_default(),
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
    let reply = match answer(st, &req.mac, &req.query, Some(peer)).await {
        Ok(r) => r,
        Err(refused) => {
            let mut out = Vec::with_capacity(256);
            refused.write(&mut out, head_only, keep_alive);
            return super::conn::write_all(stream, &out, &st.limits).await;
        }
    };
    let mut out = Vec::with_capacity(256 + reply.body.len());
    let mut h = HeadWriter::new(&mut out, StatusCode::OK);
    h.header("content-type", b"text/plain; charset=utf-8");
    if reply.no_store {
        h.header("cache-control", b"no-store");
    }
    h.number("content-length", reply.body.len() as u64);
    h.finish(keep_alive);
    if !head_only {
        out.extend_from_slice(&reply.body);
    }
    super::conn::write_all(stream, &out, &st.limits).await
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
    fn targets_the_fast_path_takes() {
        let r = Request::of_target("/boot.ipxe?mac=52-54-00-00-00-01&platform=efi").unwrap();
        assert_eq!(r.mac, "52-54-00-00-00-01");
        assert_eq!(r.query.get("platform").map(String::as_str), Some("efi"));
        let r = Request::of_target("/boot/52:54:00:00:00:02/boot.ipxe").unwrap();
        assert_eq!(r.mac, "52:54:00:00:00:02");
        assert!(r.query.is_empty());
        assert_eq!(Request::of_target("/boot.ipxe").unwrap().mac, "");
        for other in [
            "/boot.ipxe/",
            "/boot//boot.ipxe",
            "/boot/a/b/boot.ipxe",
            "/boot/52%3A54%3A00%3A00%3A00%3A02/boot.ipxe",
            "/boot/x/y/booted",
            "/healthz",
        ] {
            assert!(Request::of_target(other).is_none(), "{other}");
        }
    }
}
