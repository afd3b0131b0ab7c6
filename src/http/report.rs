//! Reports from booting machines: `POST /boot/<mac>/<manifest>/<token>/{booted,failed,progress}`,
//! sent by the netboot initramfs and the image's `tabula-booted` to the callback their
//! kernel command line names (`tabula.callback=`).
//!
//! Only a report carrying the token of the boot it claims is recorded: the token
//! ([`crate::boot::ReportToken`]) is an HMAC under the server's report key over the MAC,
//! the manifest and the boot id, so a report for another MAC, another manifest, or with
//! no or a made-up token is answered 403, counted in [`ReportRefusals`], logged at most
//! once per [`REFUSAL_LOG_EVERY`], and records nothing. The route takes `POST` only
//! (`route.rs`), so a link or an image tag cannot send one. With
//! `http.require_lease_match`, a report whose token verifies is still refused (403,
//! counted in [`super::lease_match::LeaseMatch`]) unless it comes from the address DHCP
//! leased its MAC.
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
use std::time::Duration;

use super::HttpState;
use super::route::Refusal;
use crate::boot::urls::{self, UrlError};
use crate::boot::{BootEvent, Callback, EventDetail, ReportKey, ReportKind, Via};
use crate::throttle::Throttle;

/// At most one log line per this long for each kind of refused report.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Reports refused for their token, by kind (each a counted, rate-limited log line;
/// `total()` of each is what a metrics endpoint reads).
#[derive(Debug)]
pub struct ReportRefusals {
    /// No token in the URL.
    pub missing: Throttle,
    /// A token that is not a token's text, or not the one of this MAC, manifest and key.
    pub invalid: Throttle,
}

impl Default for ReportRefusals {
    fn default() -> ReportRefusals {
        ReportRefusals {
            missing: Throttle::new("boot report without a token refused", REFUSAL_LOG_EVERY),
            invalid: Throttle::new(
                "boot report with an invalid token refused",
                REFUSAL_LOG_EVERY,
            ),
        }
    }
}

impl ReportRefusals {
    /// Every report refused for its token so far.
    pub fn total(&self) -> u64 {
        self.missing.total() + self.invalid.total()
    }
}

/// What a report with a bad or missing token is answered.
const FORBIDDEN: &str = "report token missing or invalid\n";

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

    /// Refused on its URL alone, or fine so far. A malformed token is not refused here
    /// but by [`answer`], which counts it with the other forged reports.
    pub fn refusal(&self) -> Option<Refusal> {
        match &self.parsed {
            Ok(_) | Err(UrlError::Token) => None,
            Err(UrlError::Mac(_)) => Some(Refusal::BadRequest("malformed MAC\n".into())),
            Err(UrlError::Digest(_)) => {
                Some(Refusal::BadRequest("malformed manifest digest\n".into()))
            }
            Err(UrlError::Report(_)) => Some(Refusal::NotFound("unknown report\n")),
            Err(_) => Some(Refusal::BadRequest("malformed report URL\n".into())),
        }
    }
}

/// Records the report `req` with `body` from `peer` as a boot event, if its token is
/// the one of its boot.
pub fn answer(st: &HttpState, req: &Request, body: &[u8], peer: IpAddr) -> Result<(), Refusal> {
    if let Some(r) = req.refusal() {
        return Err(r);
    }
    let p = match &req.parsed {
        Ok(p) => p,
        Err(UrlError::Token) => {
            st.report_refusals
                .invalid
                .warn(&Forged(Some(peer), "malformed token"));
            return Err(Refusal::Forbidden(FORBIDDEN));
        }
        Err(_) => return Err(Refusal::BadRequest("malformed report URL\n".into())),
    };
    check_token(&st.report_key, &st.report_refusals, &p.callback, Some(peer))?;
    if let Some(gate) = &st.lease_match {
        gate.report(p.callback.mac, peer)?;
    }
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
    // A verified token names its boot attempt (tracked attempts only).
    let attempt = st
        .attempts
        .as_ref()
        .and(p.callback.token.as_ref())
        .map(|t| t.boot);
    if st.events.record_attempt_from(event, attempt, peer) {
        Ok(())
    } else {
        Err(Refusal::TooManyRequests)
    }
}

/// Moves the attempt of a recorded report (its token's boot id), waiting until the
/// move is stored. Call only after [`answer`] accepted the report.
pub async fn track(tracker: &crate::attempt::tracker::Tracker, req: &Request, body: &[u8]) {
    let Some((cb, kind, query)) = req.parsed() else {
        return;
    };
    let Some(token) = cb.token else {
        return;
    };
    let input = match kind {
        ReportKind::Booted => crate::attempt::Input::Booted,
        ReportKind::Failed => crate::attempt::Input::Failed,
        ReportKind::Progress => crate::attempt::Input::Progress,
    };
    let reason = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_string))
        .or_else(|| query.get("reason").cloned())
        .or_else(|| {
            let t = String::from_utf8_lossy(body).trim().to_string();
            (!t.is_empty() && !t.starts_with('{')).then_some(t)
        })
        .map(|r| r.chars().take(512).collect());
    tracker.report(cb.mac, token.boot, input, reason).await;
}

/// Refuses (and counts) a callback whose token is missing or not the one `key` makes
/// for its MAC and manifest.
fn check_token(
    key: &ReportKey,
    refusals: &ReportRefusals,
    cb: &Callback,
    peer: Option<IpAddr>,
) -> Result<(), Refusal> {
    match &cb.token {
        None => {
            refusals.missing.warn(&Forged(peer, "no token"));
            Err(Refusal::Forbidden(FORBIDDEN))
        }
        Some(t) if !key.verify(cb.mac, cb.manifest, t) => {
            refusals.invalid.warn(&Forged(peer, "token does not match"));
            Err(Refusal::Forbidden(FORBIDDEN))
        }
        Some(_) => Ok(()),
    }
}

/// A refused report's log detail: where it came from and why (nothing the client chose
/// beyond what the URL parser already checked).
struct Forged(Option<IpAddr>, &'static str);

impl std::fmt::Display for Forged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(p) => write!(f, "{} from {p}", self.1),
            None => f.write_str(self.1),
        }
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
        // A malformed token is left to `answer`, which counts it.
        let r = Request::of_target(&format!("/boot/52-54-00-00-00-07/{hex}/zz/booted")).unwrap();
        assert!(r.refusal().is_none() && r.parsed().is_none());
    }

    #[test]
    fn only_the_token_of_this_mac_and_manifest_passes() {
        use crate::boot::{BootId, Digest, Mac};
        let key = ReportKey::from_bytes([1; 32]);
        let n = ReportRefusals::default();
        let (mac, m) = (Mac([2, 0, 0, 0, 0, 1]), Digest([3; 32]));
        let t = key.token(mac, m, BootId([4; 8]));
        let cb = Callback::new(mac, m);
        assert!(check_token(&key, &n, &cb.with_token(t), None).is_ok());
        let forged = [
            cb,
            Callback::new(Mac([2, 0, 0, 0, 0, 2]), m).with_token(t),
            Callback::new(mac, Digest([5; 32])).with_token(t),
            cb.with_token(ReportKey::from_bytes([9; 32]).token(mac, m, BootId([4; 8]))),
        ];
        for f in &forged {
            assert_eq!(
                check_token(&key, &n, f, None),
                Err(Refusal::Forbidden(FORBIDDEN)),
                "{f:?}"
            );
        }
        assert_eq!((n.missing.total(), n.invalid.total(), n.total()), (1, 3, 4));
    }
}
