//! `GET /ui/`: the fleet. Every machine's state ([`super::state`]) from one read of the
//! newest event per MAC and one inventory snapshot; counts on top; filters (a label
//! selector as pins write them, free text over name, MACs, hostname, labels and image,
//! a state); one page of rows at a time (server-side), each with its image, where the
//! decision came from (a pin, a rollout step, a hold, a boot-once), and its last boot's
//! start and length. The held group is the store's holds (from the snapshot).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::session::{Signed, urlencode};
use super::state::{self, State as MState};
use super::{Chrome, Ui, error, render, when};
use crate::boot::{Firmware, Mac, Machine};
use crate::events::timeline;
use crate::inventory::{Decision, Facts, Selection, Selector, Source, select};
use crate::store::{EventRow, now_ms};

/// Rows per page.
pub(crate) const PAGE: usize = 50;
/// Events read per row for its last boot.
const ROW_EVENTS: i64 = 40;

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct FleetQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    selector: String,
    #[serde(default)]
    state: String,
    page: Option<usize>,
}

pub(crate) struct Row {
    pub name: String,
    pub macs: String,
    pub labels: String,
    pub image: String,
    pub source: String,
    pub last_boot: String,
    pub duration: String,
}

pub(crate) struct Count {
    pub state: MState,
    pub n: usize,
    pub href: String,
    pub active: bool,
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    chrome: Option<Chrome>,
    q: String,
    selector: String,
    state: String,
    total: usize,
    matching: usize,
    counts: Vec<Count>,
    /// (state, rows of that state on this page), in the page's order.
    groups: Vec<(MState, Vec<Row>)>,
    page: usize,
    pages: usize,
    prev: Option<String>,
    next: Option<String>,
    states: Vec<MState>,
}

/// What the rows say about a decision: (image, source of the decision: the pin, the
/// rollout step, the hold or the boot-once request it came from).
pub(crate) fn decision_text(sel: &Selection) -> (String, String) {
    let source = match &sel.source {
        Source::None => sel.candidates.first().map_or("no pin".to_string(), |c| {
            format!("pin {} ({})", c.target, c.reference)
        }),
        Source::Pin { target } => format!("pin {target}"),
        Source::Channel { target, .. } => format!("pin {target}"),
        Source::Rollout { rollout, step } => format!("rollout {rollout} step {}", step + 1),
        Source::Hold { .. } => "hold".to_string(),
        Source::BootOnce { id } => format!("boot-once {}", id.get(..8).unwrap_or(id)),
    };
    let image = match &sel.decision {
        Decision::Boot { plan } => match sel.resolved.as_ref().and_then(|r| r.channel.as_ref()) {
            Some(ch) => format!("{}@{} ({}:{ch})", plan.image, plan.version, plan.image),
            None => format!("{}@{}", plan.image, plan.version),
        },
        Decision::Local => "local disk".to_string(),
        Decision::Ignore { reason } => format!("nothing: {reason}"),
    };
    (image, source)
}

/// Whether `m` (deciding `image`) matches the free text (any case).
fn matches_text(m: &Machine, image: &str, q: &str) -> bool {
    if q.is_empty() {
        return true;
    }
    let q = q.to_lowercase();
    let has = |s: &str| s.to_lowercase().contains(&q);
    has(&m.name)
        || m.macs.iter().any(|x| has(&x.to_string()))
        || m.hostname.as_deref().is_some_and(has)
        || m.labels.iter().any(|(k, v)| has(&format!("{k}={v}")))
        || has(image)
}

struct Entry<'a> {
    machine: &'a Machine,
    state: MState,
    sel: Option<Selection>,
    latest: Option<&'a EventRow>,
}

pub(crate) async fn page(
    State(ui): State<Ui>,
    signed: Signed,
    Query(fq): Query<FleetQuery>,
) -> Response {
    let chrome = signed.chrome("fleet");
    let fleet = &ui.api.fleet;
    let selector = fq.selector.trim().trim_start_matches("label:").to_string();
    let parsed: Option<Selector> = if selector.is_empty() {
        None
    } else {
        match selector.parse() {
            Ok(s) => Some(s),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    Some(chrome),
                    &format!("label selector {selector:?}: {e}"),
                );
            }
        }
    };
    let want_state = MState::from_key(&fq.state);
    let (snap, latest) = match tokio::join!(
        fleet.inventory().snapshot(),
        fleet.store().latest_event_per_mac()
    ) {
        (Ok(s), Ok(l)) => (s, l),
        (Err(e), _) => return unavailable(chrome, &e.to_string()),
        (_, Err(e)) => return unavailable(chrome, &e.to_string()),
    };
    let by_mac: HashMap<Mac, &EventRow> = latest.iter().map(|r| (r.event.mac, r)).collect();
    let now = now_ms();
    let mut entries: Vec<Entry<'_>> = Vec::new();
    for m in &snap.machines {
        if parsed.as_ref().is_some_and(|s| !s.matches(&m.labels)) {
            continue;
        }
        let sel = m.macs.first().map(|mac| {
            select(
                &snap,
                &Facts {
                    mac: *mac,
                    uuid: m.uuid.clone(),
                    firmware: Firmware::Bios,
                },
            )
        });
        let image = sel.as_ref().map(|s| decision_text(s).0).unwrap_or_default();
        if !matches_text(m, &image, fq.q.trim()) {
            continue;
        }
        let newest = m
            .macs
            .iter()
            .filter_map(|mac| by_mac.get(mac).copied())
            .max_by_key(|r| r.id);
        let st = match &sel {
            None => MState::NeverSeen,
            Some(s) => state::classify(
                snap.fleet.holds.contains_key(&m.name),
                state::pinned_manifest(s),
                newest,
                now,
            ),
        };
        entries.push(Entry {
            machine: m,
            state: st,
            sel,
            latest: newest,
        });
    }
    let counts_of = |s: MState| entries.iter().filter(|e| e.state == s).count();
    let base = |state: &str, page: usize| {
        let mut q = format!(
            "/ui/?q={}&selector={}&state={}",
            urlencode(fq.q.trim()),
            urlencode(&selector),
            urlencode(state)
        );
        if page > 1 {
            q.push_str(&format!("&page={page}"));
        }
        q
    };
    let counts: Vec<Count> = MState::ALL
        .into_iter()
        .map(|s| Count {
            state: s,
            n: counts_of(s),
            href: base(if want_state == Some(s) { "" } else { s.key() }, 1),
            active: want_state == Some(s),
        })
        .collect();
    let matching = entries.len();
    let mut shown: Vec<Entry<'_>> = entries
        .into_iter()
        .filter(|e| want_state.is_none_or(|w| w == e.state))
        .collect();
    shown.sort_by(|a, b| (a.state, &a.machine.name).cmp(&(b.state, &b.machine.name)));
    let pages = shown.len().div_ceil(PAGE).max(1);
    let page = fq.page.unwrap_or(1).clamp(1, pages);
    let slice: Vec<Entry<'_>> = shown
        .into_iter()
        .skip((page - 1) * PAGE)
        .take(PAGE)
        .collect();
    let mut groups: Vec<(MState, Vec<Row>)> = Vec::new();
    for e in slice {
        let row = row(&ui, &e).await;
        match groups.last_mut() {
            Some((s, rows)) if *s == e.state => rows.push(row),
            _ => groups.push((e.state, vec![row])),
        }
    }
    let st_key = want_state.map_or("", MState::key);
    render(&FleetPage {
        chrome: Some(chrome),
        q: fq.q.trim().to_string(),
        selector: selector.clone(),
        state: st_key.to_string(),
        total: snap.machines.len(),
        matching,
        counts,
        groups,
        page,
        pages,
        prev: (page > 1).then(|| base(st_key, page - 1)),
        next: (page < pages).then(|| base(st_key, page + 1)),
        states: MState::ALL.to_vec(),
    })
}

/// One row: the last boot is read for the rows shown only.
async fn row(ui: &Ui, e: &Entry<'_>) -> Row {
    let m = e.machine;
    let (image, source) = e
        .sel
        .as_ref()
        .map_or(("-".into(), "no MAC".into()), decision_text);
    let mut last_boot = "-".to_string();
    let mut duration = "-".to_string();
    if let Some(latest) = e.latest {
        match ui
            .api
            .store
            .recent_events(Some(latest.event.mac), ROW_EVENTS)
            .await
        {
            Ok(rows) => {
                let evs: Vec<_> = rows.into_iter().map(|r| r.event).collect();
                if let Some(t) = timeline::last_boot(&evs) {
                    last_boot = when(t.start_ms);
                    if let Some(s) = t.total() {
                        duration = format!("{s:.1} s");
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "ui: cannot read a machine's events"),
        }
    }
    Row {
        name: m.name.clone(),
        macs: m
            .macs
            .iter()
            .map(Mac::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        labels: m
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        image,
        source,
        last_boot,
        duration,
    }
}

fn unavailable(chrome: Chrome, why: &str) -> Response {
    tracing::warn!(error = %why, "ui: fleet read failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        Some(chrome),
        "the state store cannot be read",
    )
}
