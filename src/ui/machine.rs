//! `GET /ui/machines/{name}`: one machine. What it boots now and why (the explain
//! answer on BIOS and x86-64 UEFI, every rule that applied and why it lost), its boot
//! timeline (each boot one row of stages drawn to scale, [`super::timeline`]), its
//! leases, its pin history and latest events. With an `operate` token: pin it to a
//! version or channel (`POST …/pin`), roll the pin back (`POST …/rollback`), both
//! through [`crate::fleet::Fleet`] on behalf of the token, both with the CSRF token.
//! Its hold, last known good, boot-once requests and boot attempts, with the release
//! and boot-once forms, are [`super::machine_fleet`]'s.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::machine_fleet::{self, MachineFleet};
use super::session::{Signed, forged, form_csrf, urlencode};
use super::state::{self, State as MState};
use super::timeline::{BootRow, boots, human_bytes};
use super::{Chrome, Ui, error, render, when};
use crate::auth::Scope;
use crate::fleet::FleetError;
use crate::inventory::{CandidateOutcome, Decision, PinRef, PinTarget};
use crate::store::now_ms;

/// Events read for the timeline.
const EVENTS: i64 = 400;
/// Boots drawn at most.
const BOOTS: usize = 12;
/// Latest events listed.
const LISTED: usize = 25;

pub(crate) struct Rule {
    pub target: String,
    pub reference: String,
    pub outcome: String,
    pub won: bool,
}

pub(crate) struct Explain {
    pub firmware: String,
    pub rules: Vec<Rule>,
    pub image: Option<String>,
    pub manifest: Option<String>,
    pub decision: String,
    /// Where the decision came from: a pin, a rollout step, a hold, a boot-once.
    pub source: String,
    /// (what, digest, name, size)
    pub blobs: Vec<(String, String, String, String)>,
    pub cmdline: Option<String>,
}

pub(crate) struct Line {
    pub at: String,
    pub stage: String,
    pub via: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "machine.html")]
struct MachinePage {
    chrome: Option<Chrome>,
    name: String,
    facts: Vec<(String, String)>,
    state: MState,
    explains: Vec<Explain>,
    boots: Vec<BootRow>,
    leases: Vec<(String, String, String)>,
    history: Vec<(String, String, String, String)>,
    events: Vec<Line>,
    choices: Vec<String>,
    current: String,
    done: Option<String>,
    fleet: MachineFleet,
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Done {
    done: Option<String>,
    /// A boot-once request to show the status of.
    once: Option<String>,
}

fn explain(b: &crate::fleet::Boots) -> Explain {
    let sel = &b.selection;
    let rules = sel
        .candidates
        .iter()
        .map(|c| Rule {
            target: c.target.clone(),
            reference: c.reference.clone(),
            outcome: c.outcome.to_string(),
            won: c.outcome == CandidateOutcome::Won,
        })
        .collect();
    let (decision, blobs, cmdline) = match &sel.decision {
        Decision::Boot { plan } => {
            let mut blobs = vec![(
                "kernel".to_string(),
                plan.kernel.digest.to_string(),
                plan.kernel.name.clone(),
                human_bytes(plan.kernel.size),
            )];
            for i in &plan.initrds {
                blobs.push((
                    "initrd".into(),
                    i.digest.to_string(),
                    i.name.clone(),
                    human_bytes(i.size),
                ));
            }
            if let Some(r) = &plan.rootfs {
                blobs.push((
                    "rootfs".into(),
                    r.digest.to_string(),
                    r.name.clone(),
                    human_bytes(r.size),
                ));
            }
            ("boot".to_string(), blobs, Some(plan.cmdline.clone()))
        }
        Decision::Local => ("local (boot from local disk)".into(), vec![], None),
        Decision::Ignore { reason } => (format!("ignore: {reason}"), vec![], None),
    };
    Explain {
        firmware: format!("{} ({})", b.firmware, b.firmware.arch()),
        rules,
        image: sel.resolved.as_ref().map(|r| match &r.channel {
            Some(ch) => format!("{}@{} (channel {}:{ch})", r.image, r.version, r.image),
            None => format!("{}@{}", r.image, r.version),
        }),
        manifest: sel.resolved.as_ref().map(|r| r.manifest.to_string()),
        decision,
        source: sel.source.to_string(),
        blobs,
        cmdline,
    }
}

pub(super) fn fleet_error(chrome: Chrome, e: &FleetError) -> Response {
    let status = match e {
        FleetError::NotFound { .. } => StatusCode::NOT_FOUND,
        FleetError::Conflict { .. } => StatusCode::CONFLICT,
        FleetError::Invalid { .. } => StatusCode::BAD_REQUEST,
        _ => {
            tracing::warn!(error = %e, "ui: machine page");
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    error(status, Some(chrome), &e.to_string())
}

pub(crate) async fn page(
    State(ui): State<Ui>,
    signed: Signed,
    Path(name): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let chrome = signed.chrome("fleet");
    let fleet = &ui.api.fleet;
    let view = match fleet.machine_view(&name, EVENTS).await {
        Ok(v) => v,
        Err(e) => return fleet_error(chrome, &e),
    };
    let m = &view.machine;
    let mut facts: Vec<(String, String)> = m
        .macs
        .iter()
        .map(|x| ("MAC".to_string(), x.to_string()))
        .collect();
    if let Some(u) = &m.uuid {
        facts.push(("UUID".into(), u.clone()));
    }
    if let Some(h) = &m.hostname {
        facts.push(("hostname".into(), h.clone()));
    }
    if let Some(a) = m.address {
        facts.push(("address".into(), a.to_string()));
    }
    for (k, v) in &m.labels {
        facts.push(("label".into(), format!("{k}={v}")));
    }
    let pinned = view
        .boots
        .first()
        .and_then(|b| state::pinned_manifest(&b.selection));
    let events: Vec<_> = view.recent.iter().map(|r| r.event.clone()).collect();
    let mut drawn = boots(&events);
    drawn.truncate(BOOTS);
    let store = fleet.store();
    let target = PinTarget::Machine(name.clone());
    let key = target.key();
    let (leases, history, snap) = tokio::join!(
        store.leases(),
        store.pin_history(&key),
        fleet.inventory().snapshot()
    );
    let leases = leases
        .unwrap_or_default()
        .into_iter()
        .filter(|l| m.macs.contains(&l.mac))
        .map(|l| {
            (
                l.address.to_string(),
                format!("{:?}", l.state).to_lowercase(),
                when(l.expires_ms),
            )
        })
        .collect();
    let mut history: Vec<_> = history
        .unwrap_or_default()
        .into_iter()
        .map(|h| {
            (
                when(h.at_ms),
                h.kind.to_string(),
                h.reference.unwrap_or_else(|| "(removed)".into()),
                h.actor.unwrap_or_else(|| "local CLI".into()),
            )
        })
        .collect();
    history.reverse();
    let mut choices = Vec::new();
    if let Ok(snap) = &snap {
        choices.extend(snap.versions.keys().map(|(i, v)| format!("{i}@{v}")));
        choices.extend(snap.channels.keys().map(|(i, c)| format!("{i}:{c}")));
    }
    let pending = snap
        .as_ref()
        .ok()
        .and_then(|s| s.fleet.boot_once.get(&name).map(|o| o.id.clone()));
    let current = snap
        .ok()
        .and_then(|s| {
            s.pins
                .iter()
                .find(|p| p.target == target)
                .map(|p| p.reference.to_string())
        })
        .unwrap_or_default();
    let listed = view
        .recent
        .iter()
        .rev()
        .take(LISTED)
        .map(|r| Line {
            at: when(r.event.at_ms),
            stage: r.event.stage().to_string(),
            via: r.event.via.to_string(),
            detail: r.event.detail.to_string(),
        })
        .collect();
    let fleet_part =
        machine_fleet::load(&ui, &name, done.once.as_deref(), pending.as_deref()).await;
    let st = if m.macs.is_empty() {
        MState::NeverSeen
    } else {
        state::classify(
            fleet_part.hold.is_some(),
            pinned,
            view.recent.last(),
            now_ms(),
        )
    };
    render(&MachinePage {
        chrome: Some(chrome),
        name: name.clone(),
        facts,
        state: st,
        explains: view.boots.iter().map(explain).collect(),
        boots: drawn,
        leases,
        history,
        events: listed,
        choices,
        current,
        done: done.done,
        fleet: fleet_part,
    })
}

#[derive(Debug, serde::Deserialize)]
struct PinForm {
    csrf: Option<String>,
    reference: Option<String>,
}

/// The refusal of a machine action without its CSRF token or the scope it needs.
pub(super) fn refused(signed: &Signed, csrf: Option<&str>) -> Option<Response> {
    if !signed.csrf_ok(csrf) {
        return Some(forged(signed));
    }
    if !signed.principal.allows(Scope::Operate) {
        return Some(error(
            StatusCode::FORBIDDEN,
            Some(signed.chrome("fleet")),
            &format!(
                "token {:?} has scope {}; changing a machine needs operate",
                signed.principal.name, signed.principal.scope
            ),
        ));
    }
    None
}

pub(super) fn back(name: &str, done: &str) -> Response {
    Redirect::to(&format!(
        "/ui/machines/{}?done={}",
        urlencode(name),
        urlencode(done)
    ))
    .into_response()
}

/// `POST /ui/machines/{name}/pin`: `reference=IMAGE@VERSION|IMAGE:CHANNEL`.
pub(crate) async fn pin(
    State(ui): State<Ui>,
    signed: Signed,
    Path(name): Path<String>,
    body: String,
) -> Response {
    let form: PinForm = serde_urlencoded::from_str(&body).unwrap_or(PinForm {
        csrf: None,
        reference: None,
    });
    if let Some(r) = refused(&signed, form.csrf.as_deref()) {
        return r;
    }
    let chrome = signed.chrome("fleet");
    let text = form.reference.unwrap_or_default();
    let reference: PinRef = match text.trim().parse() {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, Some(chrome), &e.to_string()),
    };
    let target = PinTarget::Machine(name.clone());
    match ui
        .api
        .fleet
        .set_pin_by(&target, &reference, Some(&signed.principal.name))
        .await
    {
        Ok(()) => {
            tracing::info!(actor = %signed.principal.name, %target, %reference, "ui: pin set");
            back(&name, &format!("pinned to {reference}"))
        }
        Err(e) => fleet_error(chrome, &e),
    }
}

/// `POST /ui/machines/{name}/rollback`: the pin goes back to the one before it.
pub(crate) async fn rollback(
    State(ui): State<Ui>,
    signed: Signed,
    Path(name): Path<String>,
    body: String,
) -> Response {
    let csrf = form_csrf(&body);
    if let Some(r) = refused(&signed, csrf.as_deref()) {
        return r;
    }
    let target = PinTarget::Machine(name.clone());
    match ui
        .api
        .fleet
        .rollback_pin_by(&target, Some(&signed.principal.name))
        .await
    {
        Ok((from, to)) => {
            tracing::info!(actor = %signed.principal.name, %target, ?from, %to, "ui: pin rolled back");
            back(&name, &format!("rolled back to {to}"))
        }
        Err(e) => fleet_error(signed.chrome("fleet"), &e),
    }
}
