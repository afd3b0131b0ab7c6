//! The iPXE script route (`/boot.ipxe?mac=…`, `/boot/{mac}/boot.ipxe`): the decision,
//! the rendered script and its boot event.
//!
//! Answers are cached per (MAC, firmware, UUID) for one inventory snapshot: a repeated
//! request (a machine retrying, a boot storm) costs a lookup, a boot event and one write.
//!
//! Each computed answer is one boot: its plan is rendered with a fresh boot id and the
//! report token of that id ([`select_for_boot`]). A retry within the same snapshot gets
//! the cached answer, so **the same token**: the script is the same text, and reports of
//! either attempt verify. A re-pin, a new version or a machine edit (a new snapshot)
//! renders a new boot with a new token; reports for the old one still verify, for the
//! manifest that boot was served (the token names its manifest). Every answer served
//! also tells [`super::attribution::Boots`] which blobs this MAC's boot downloads.
//! The cache is emptied whenever the inventory hands out a different snapshot, which it
//! does exactly when the store's revision changed (a re-pin, a new version, a machine
//! edit), so a cached script is never older than a freshly computed one would be. Every
//! request records its own event, with its own time and peer, within the events' rate
//! gates (per MAC and per client address, as for reports): a client fetching its
//! script in a loop cannot grow the history without bound, and the requests past its
//! rate are counted (`rate_limited`) instead of stored.
//!
//! Answered from the connection loop ([`send`]). Refusals (a malformed MAC, an unknown
//! platform, an unreadable inventory, a peer without the MAC's lease under
//! `http.require_lease_match`) are `route::Refusal`s, which choose their status codes.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::StatusCode;
use tokio::net::TcpStream;

use super::route::Refusal;
use super::wire::HeadWriter;
use super::{HttpState, grub, script};
use crate::attempt::Served;
use crate::boot::BootId;
use crate::boot::urls::{self, ScriptRequest, UrlError};
use crate::boot::{
    BootProgram, BootSeal, BootStage, Digest, EventDetail, EventText, Firmware, Ignored, Mac,
    Report, ReportKey, ScriptSent, Via,
};
use crate::inventory::{Decision, Facts, Snapshot, select_for_boot};
use crate::store::NewBoot;

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
    /// Appends the response: the head (its `Content-Length` the body's, for HEAD too),
    /// then the body unless `head_only`.
    fn write(&self, out: &mut Vec<u8>, head_only: bool, keep_alive: bool) {
        let mut h = HeadWriter::new(out, self.status);
        h.header("content-type", b"text/plain; charset=utf-8");
        if self.no_store {
            h.header("cache-control", b"no-store");
        }
        h.number("content-length", self.body.len() as u64);
        h.finish(keep_alive);
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }

    fn plain(status: StatusCode, msg: String) -> Reply {
        Reply {
            status,
            no_store: false,
            body: Bytes::from(msg),
        }
    }
}

/// The event every request for one answer records, short of its time and peer (a
/// column of its own): the detail is rendered once, then shared.
#[derive(Debug)]
struct EventTemplate {
    stage: BootStage,
    manifest: Option<Digest>,
    /// The detail's JSON text.
    detail: Arc<str>,
}

impl EventTemplate {
    fn new(manifest: Option<Digest>, detail: &EventDetail) -> EventTemplate {
        EventTemplate {
            stage: detail.stage(),
            manifest,
            detail: Arc::from(detail.to_json()),
        }
    }
}

#[derive(Debug)]
struct Answer {
    reply: Reply,
    event: EventTemplate,
    /// The blobs of the plan booted, when it boots one.
    blobs: Option<Arc<[Digest]>>,
    /// The boot attempt this answer opens, when it boots a plan.
    attempt: Option<(BootId, NewBoot)>,
}

type Key = (Mac, Firmware, Option<String>, BootProgram);

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

/// The answer to a script request (refused when malformed), its boot event recorded.
pub async fn reply(st: &HttpState, req: &Request, peer: Option<IpAddr>) -> Result<Reply, Refusal> {
    match &req.parsed {
        Ok(r) => answer(st, r, req.program, peer).await,
        Err(UrlError::Mac(e)) => Err(Refusal::BadRequest(
            format!("malformed MAC address {:?}\n", e.input).into(),
        )),
        Err(e) => Err(Refusal::BadRequest(format!("{e}\n").into())),
    }
}

/// The script for the machine of `req`, and its boot event recorded.
pub async fn answer(
    st: &HttpState,
    req: &ScriptRequest,
    program: BootProgram,
    peer: Option<IpAddr>,
) -> Result<Reply, Refusal> {
    let (mac, firmware) = (req.mac, req.firmware);
    // Before anything is rendered or recorded: a refused request is no boot.
    if let Some(gate) = &st.lease_match {
        gate.script(mac, peer)?;
    }
    let snap = match st.inventory.snapshot().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot load the inventory");
            return Err(Refusal::Unavailable("inventory unavailable\n"));
        }
    };
    let key = (mac, firmware, req.uuid.clone(), program);
    let facts = Facts {
        mac,
        uuid: key.2.clone(),
        firmware,
    };
    let mut answer = match st.scripts.get(&snap, &key) {
        Some(a) => a,
        None => {
            let a = Arc::new(compute(
                &snap,
                &facts,
                &st.base_url,
                &st.peers.get(),
                &st.report_key,
                program,
            ));
            st.scripts.put(&snap, key.clone(), a.clone());
            a
        }
    };
    if let (Some(tracker), Some((boot, _))) = (&st.attempts, &answer.attempt) {
        let mut served = tracker.script(mac, *boot);
        if served == Served::Renew {
            // The machine rebooted: a fresh boot (new id, new token) replaces the cached one.
            answer = Arc::new(compute(
                &snap,
                &facts,
                &st.base_url,
                &st.peers.get(),
                &st.report_key,
                program,
            ));
            st.scripts.put(&snap, key, answer.clone());
            served = match &answer.attempt {
                Some((boot, _)) => tracker.script(mac, *boot),
                None => Served::Reuse,
            };
        }
        if let (Served::Open, Some((_, new))) = (served, &answer.attempt) {
            tracker.open(new.clone());
        }
    }
    if let Some(blobs) = &answer.blobs {
        st.boots
            .served(mac, blobs.clone(), std::time::Instant::now());
    }
    let t = &answer.event;
    // The attempt this script opened or reuses (tracked attempts only): known here, so
    // the event carries it without a query.
    let attempt = st
        .attempts
        .as_ref()
        .and(answer.attempt.as_ref())
        .map(|(b, _)| *b);
    // A client can ask for its script at will: its events are rate-gated like reports
    // (events.per_mac_per_minute, events.per_peer_per_minute), counted when over.
    st.events.record_text_from(
        EventText {
            at_ms: crate::events::now_ms(),
            mac,
            stage: t.stage,
            manifest: t.manifest,
            via: Via::Http,
            peer,
            detail: t.detail.clone(),
            attempt,
        },
        peer,
    );
    Ok(answer.reply.clone())
}

/// Decides and renders one boot (a fresh boot id), without recording anything.
fn compute(
    snap: &Snapshot,
    facts: &Facts,
    base_url: &str,
    peers: &[String],
    key: &ReportKey,
    program: BootProgram,
) -> Answer {
    let seal = BootSeal {
        key,
        boot: super::report_key::boot_id(),
    };
    let sel = select_for_boot(snap, facts, &seal);
    let blobs = match &sel.decision {
        Decision::Boot { plan } => Some(super::attribution::plan_digests(plan)),
        _ => None,
    };
    let attempt = match &sel.decision {
        Decision::Boot { plan } => {
            let machine = sel.machine.clone().unwrap_or_else(|| facts.mac.to_string());
            let token = seal.token(facts.mac, plan.manifest).to_string();
            Some((
                seal.boot,
                NewBoot {
                    id: crate::attempt::id_text(seal.boot),
                    source: sel.source.key(&machine),
                    machine,
                    mac: facts.mac.to_string(),
                    manifest: plan.manifest.to_string(),
                    image: plan.image.clone(),
                    version: plan.version.clone(),
                    token_sha256: Digest::of(token.as_bytes()).hex(),
                    deadline_after_ms: 0,
                },
            ))
        }
        _ => None,
    };
    let rule = sel.candidates.first().map(|c| c.target.clone());
    let (manifest, detail) = match &sel.decision {
        Decision::Boot { plan } => (
            Some(plan.manifest),
            EventDetail::ScriptSent(ScriptSent {
                image: Some(plan.image.clone()),
                version: Some(plan.version.clone()),
                rule,
                firmware: Some(facts.firmware),
                local: false,
            }),
        ),
        Decision::Local => (
            None,
            EventDetail::ScriptSent(ScriptSent {
                rule,
                local: true,
                ..ScriptSent::default()
            }),
        ),
        Decision::Ignore { reason } => (
            None,
            EventDetail::Ignored(Ignored {
                reason: reason.to_string(),
                code: Some(reason.code().to_string()),
            }),
        ),
    };
    let rendered = match program {
        BootProgram::Ipxe => {
            script::render_with_peers(&sel, base_url, peers).map_err(|e| e.to_string())
        }
        BootProgram::Grub => grub::render(&sel).map_err(|e| e.to_string()),
    };
    match rendered {
        Ok(text) => Answer {
            reply: Reply {
                status: StatusCode::OK,
                no_store: true,
                body: Bytes::from(text),
            },
            event: EventTemplate::new(manifest, &detail),
            blobs,
            attempt,
        },
        Err(e) => Answer {
            reply: Reply::plain(
                StatusCode::OK,
                match program {
                    BootProgram::Ipxe => {
                        format!("#!ipxe\necho tabula: {}\nexit 1\n", script::echo_text(&e))
                    }
                    BootProgram::Grub => {
                        format!("echo 'tabula: {}'\nexit 1\n", grub::echo_text(&e))
                    }
                },
            ),
            event: EventTemplate::new(manifest, &EventDetail::Failed(Report::reason(e))),
            blobs: None,
            attempt: None,
        },
    }
}

/// A request for the script route, parsed ([`urls::parse_script`]) or not parseable.
#[derive(Debug)]
pub struct Request {
    parsed: Result<ScriptRequest, UrlError>,
    /// `boot.ipxe` or `grub.cfg`.
    program: BootProgram,
}

impl Request {
    /// What the target asks for, or why it cannot be answered.
    pub fn parsed(&self) -> Result<&ScriptRequest, &UrlError> {
        self.parsed.as_ref()
    }

    /// The program the request is for.
    pub fn program(&self) -> BootProgram {
        self.program
    }

    /// `/boot.ipxe?…`, `/boot/{mac}/boot.ipxe[?…]` (iPXE) or `/boot/{mac}/grub.cfg[?…]`
    /// (GRUB); `None` for any other path. A malformed script request is still a script
    /// request (answered with 400).
    pub fn of_target(target: &str) -> Option<Request> {
        match urls::parse_script(target) {
            Err(UrlError::Unmatched) => match urls::parse_grub_cfg(target) {
                Err(UrlError::Unmatched) => None,
                parsed => Some(Request {
                    parsed,
                    program: BootProgram::Grub,
                }),
            },
            parsed => Some(Request {
                parsed,
                program: BootProgram::Ipxe,
            }),
        }
    }
}

/// Answers a script request on `stream`.
pub async fn send(
    stream: &mut TcpStream,
    st: &HttpState,
    req: Request,
    head_only: bool,
    peer: IpAddr,
    keep_alive: bool,
) -> io::Result<()> {
    let reply = match reply(st, &req, Some(peer)).await {
        Ok(r) => r,
        Err(refused) => {
            let mut out = Vec::with_capacity(256);
            refused.write(&mut out, head_only, keep_alive);
            return super::conn::write_all(stream, &out, &st.limits).await;
        }
    };
    let mut out = Vec::with_capacity(256 + reply.body.len());
    reply.write(&mut out, head_only, keep_alive);
    super::conn::write_all(stream, &out, &st.limits).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cached_event_is_the_typed_detail_rendered_once() {
        let d = EventDetail::ScriptSent(ScriptSent {
            image: Some("a\"b".into()),
            ..ScriptSent::default()
        });
        let t = EventTemplate::new(None, &d);
        assert_eq!(t.stage, BootStage::ScriptSent);
        let back: serde_json::Value = serde_json::from_str(&t.detail).unwrap();
        assert_eq!(back, serde_json::json!({"image": "a\"b", "rule": null}));
        assert_eq!(EventDetail::from_value(BootStage::ScriptSent, back), d);
        let f = EventTemplate::new(None, &EventDetail::Failed(Report::reason("x")));
        assert_eq!(
            (f.stage, &*f.detail),
            (BootStage::Failed, r#"{"reason":"x"}"#)
        );
    }

    #[test]
    fn a_head_gets_the_scripts_head_and_length_without_the_body() {
        let reply = Reply {
            status: StatusCode::OK,
            no_store: true,
            body: Bytes::from_static(b"#!ipxe\nchain http://x/y\n"),
        };
        let (mut get, mut head) = (Vec::new(), Vec::new());
        reply.write(&mut get, false, true);
        reply.write(&mut head, true, true);
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        let (get, head) = (text(&get), text(&head));
        let strip = |t: &str| {
            t.split("\r\n")
                .filter(|l| !l.starts_with("date: "))
                .collect::<Vec<_>>()
                .join("\r\n")
        };
        assert_eq!(
            strip(&get),
            strip(&format!("{head}#!ipxe\nchain http://x/y\n"))
        );
        assert!(head.ends_with("\r\n\r\n"), "{head}");
        assert!(head.contains("content-length: 24\r\n"), "{head}");
        assert!(head.contains("cache-control: no-store\r\n"), "{head}");
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
