//! The fleet's side of the machine page: its hold (a banner, and `POST …/release` through
//! [`crate::fleet::Fleet::release_hold`]), its last known good (the newest attempt that
//! booted), its boot-once requests and their status (`POST …/boot-once` through
//! [`crate::fleet::Fleet::create_boot_once`]: a reference, a TTL, then `revert` or
//! `local`), and its boot attempts ([`crate::fleet::Fleet::machine_boots`]). Both forms
//! carry the session's CSRF token and need an `operate` token.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::machine::{back, fleet_error, refused};
use super::session::{Signed, form_csrf, urlencode};
use super::{Ui, error, when};
use crate::fleet::Then;
use crate::inventory::{PinRef, PinTarget};
use crate::store::{BootOnceRow, BootRow};

/// Attempts listed.
const ATTEMPTS: i64 = 15;
/// Boot-once requests shown at most.
const ONCE_SHOWN: usize = 5;

/// A hold, as the banner says it.
pub(crate) struct HoldBanner {
    pub sentence: String,
    pub since: String,
}

/// One boot attempt.
pub(crate) struct Attempt {
    pub id: String,
    pub attempt: i64,
    pub image: String,
    pub source: String,
    pub state: String,
    pub started: String,
    pub took: String,
    pub reason: String,
}

/// One boot-once request and where it stands.
pub(crate) struct Once {
    pub id: String,
    pub reference: String,
    pub then_do: String,
    pub state: String,
    pub until: String,
}

/// What the machine page shows of the fleet's decisions about the machine.
#[derive(Default)]
pub(crate) struct MachineFleet {
    pub hold: Option<HoldBanner>,
    pub last_good: Option<String>,
    pub attempts: Vec<Attempt>,
    pub once: Vec<Once>,
}

fn attempt(b: &BootRow) -> Attempt {
    Attempt {
        id: b.id.chars().take(12).collect(),
        attempt: b.attempt,
        image: format!("{}@{}", b.image, b.version),
        source: b.source.clone(),
        state: b.state.replace('_', " "),
        started: when(b.started_ms),
        took: b.ended_ms.map_or_else(
            || "-".into(),
            |e| format!("{:.1} s", (e - b.started_ms) as f64 / 1000.0),
        ),
        reason: b.reason.clone().unwrap_or_default(),
    }
}

fn once(o: &BootOnceRow) -> Once {
    Once {
        id: o.id.clone(),
        reference: o.reference.clone(),
        then_do: o.then_do.clone(),
        state: o.state.clone(),
        until: when(o.expires_ms),
    }
}

/// Reads the machine's hold, attempts and boot-once requests (`asked`: one named by the
/// page's URL, `pending`: the one the snapshot has); a failed read leaves its part out.
pub(crate) async fn load(
    ui: &Ui,
    name: &str,
    asked: Option<&str>,
    pending: Option<&str>,
) -> MachineFleet {
    let fleet = &ui.api.fleet;
    let (holds, boots) = tokio::join!(fleet.holds(), fleet.machine_boots(name, ATTEMPTS));
    let mut out = MachineFleet::default();
    match holds {
        Ok(hs) => {
            out.hold = hs.iter().find(|h| h.machine == name).map(|h| HoldBanner {
                sentence: crate::attempt::record::hold_sentence(h),
                since: when(h.since_ms),
            });
        }
        Err(e) => tracing::warn!(error = %e, "ui: cannot read the holds"),
    }
    let boots = boots.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "ui: cannot read a machine's boot attempts");
        Vec::new()
    });
    out.last_good = boots.iter().find(|b| b.state == "booted").map(|b| {
        format!(
            "{}@{} ({}), booted {} UTC",
            b.image,
            b.version,
            b.manifest,
            when(b.ended_ms.unwrap_or(b.started_ms))
        )
    });
    let mut ids: Vec<String> = asked.into_iter().chain(pending).map(String::from).collect();
    ids.extend(
        boots
            .iter()
            .filter_map(|b| b.source.strip_prefix("boot-once:").map(String::from)),
    );
    let mut seen = BTreeSet::new();
    for id in ids {
        if out.once.len() >= ONCE_SHOWN || !seen.insert(id.clone()) {
            continue;
        }
        match fleet.boot_once(&id).await {
            Ok(o) if o.machine == name => out.once.push(once(&o)),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "ui: boot-once not shown"),
        }
    }
    out.attempts = boots.iter().map(attempt).collect();
    out
}

/// `POST /ui/machines/{name}/release`: clears its hold.
pub(crate) async fn release(
    State(ui): State<Ui>,
    signed: Signed,
    Path(name): Path<String>,
    body: String,
) -> Response {
    let csrf = form_csrf(&body);
    if let Some(r) = refused(&signed, csrf.as_deref()) {
        return r;
    }
    match ui.api.fleet.release_hold(&name).await {
        Ok(h) => {
            tracing::info!(actor = %signed.principal.name, machine = %name, bad = %h.bad_manifest, "ui: hold released");
            back(
                &name,
                "hold released: it boots what its pins say at its next boot",
            )
        }
        Err(e) => fleet_error(signed.chrome("fleet"), &e),
    }
}

#[derive(Debug, serde::Deserialize)]
struct OnceForm {
    csrf: Option<String>,
    reference: Option<String>,
    ttl: Option<String>,
    then: Option<String>,
}

/// `POST /ui/machines/{name}/boot-once`: `reference`, `ttl` (`30m`), `then=revert|local`.
pub(crate) async fn boot_once(
    State(ui): State<Ui>,
    signed: Signed,
    Path(name): Path<String>,
    body: String,
) -> Response {
    let form: OnceForm = serde_urlencoded::from_str(&body).unwrap_or(OnceForm {
        csrf: None,
        reference: None,
        ttl: None,
        then: None,
    });
    if let Some(r) = refused(&signed, form.csrf.as_deref()) {
        return r;
    }
    let chrome = signed.chrome("fleet");
    let bad = |m: String| error(StatusCode::BAD_REQUEST, Some(chrome.clone()), &m);
    let reference: PinRef = match form.reference.unwrap_or_default().trim().parse() {
        Ok(r) => r,
        Err(e) => return bad(format!("boot once: {e}")),
    };
    let ttl_text = form.ttl.unwrap_or_default();
    let ttl = match humantime::parse_duration(ttl_text.trim()) {
        Ok(t) if !t.is_zero() => t,
        Ok(_) => return bad("boot once: the TTL must be longer than 0s".into()),
        Err(e) => return bad(format!("boot once: TTL {ttl_text:?}: {e} (e.g. 30m)")),
    };
    let then = match form.then.as_deref() {
        Some("revert") | None => Then::Revert,
        Some("local") => Then::Local,
        Some(other) => return bad(format!("boot once: then is revert or local, not {other:?}")),
    };
    match ui
        .api
        .fleet
        .create_boot_once(&PinTarget::Machine(name.clone()), &reference, ttl, then)
        .await
    {
        Ok(o) => {
            tracing::info!(actor = %signed.principal.name, machine = %name, id = %o.id, %reference, "ui: boot-once created");
            Redirect::to(&format!(
                "/ui/machines/{}?once={}&done={}",
                urlencode(&name),
                urlencode(&o.id),
                urlencode(&format!(
                    "boot once {reference} requested (then {})",
                    then.as_str()
                ))
            ))
            .into_response()
        }
        Err(e) => fleet_error(chrome, &e),
    }
}
