//! `GET /ui/rollouts` (every rollout, its state and progress) and `GET
//! /ui/rollouts/{name}` (its steps as bars, the failure budget, pause reasons, the
//! version breakdown over time, and its members one page at a time, filtered by state
//! server-side). With an `operate` token, the commands that apply to its state as forms
//! (`POST /ui/rollouts/{name}/{command}`, each with the session's CSRF token), run
//! through [`crate::fleet::Fleet::rollout_command`], as `tabula rollout …` runs them.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::rollout_view::{self, BudgetMeter, Point, StepBar};
use super::session::{Signed, forged, form_csrf, urlencode};
use super::{Chrome, Ui, error, render, when};
use crate::auth::Scope;
use crate::fleet::{FleetError, RolloutView};
use crate::rollout::Command;
use crate::store::now_ms;

/// Members per page.
pub(crate) const MEMBERS: usize = 100;
/// Member states, in the order the filter offers them.
const MEMBER_STATES: [&str; 5] = [
    "waiting",
    "admitted",
    "succeeded",
    "failed",
    "skipped_pinned",
];

/// One rollout in the list.
pub(crate) struct Item {
    pub name: String,
    pub state: String,
    pub status: String,
    pub to: String,
    pub target: String,
    pub members: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub in_flight: usize,
    /// Succeeded members, in percent of the eligible ones.
    pub done_pct: String,
    pub updated: String,
}

/// A rollout's state in words: `running (step 2/4)`, `paused (manual) at step 2/4`.
pub(crate) fn status(v: &RolloutView) -> String {
    let r = &v.rollout;
    let steps = v.per_step.len();
    match r.state.as_str() {
        "running" => format!("running (step {}/{steps})", r.step + 1),
        "paused" => format!("paused ({}) at step {}/{steps}", r.paused, r.step + 1),
        s => s.replace('_', " "),
    }
}

fn item(v: &RolloutView) -> Item {
    let c = |s: &str| v.counts.get(s).copied().unwrap_or(0);
    let eligible = v.per_step.iter().sum::<usize>();
    Item {
        name: v.rollout.name.clone(),
        state: v.rollout.state.clone(),
        status: status(v),
        to: format!("{}@{}", v.rollout.image, v.rollout.version),
        target: format!("label:{}", v.rollout.selector),
        members: v.members.len(),
        succeeded: c("succeeded"),
        failed: c("failed"),
        in_flight: c("admitted"),
        done_pct: if eligible == 0 {
            "0".into()
        } else {
            format!("{:.1}", c("succeeded") as f64 * 100.0 / eligible as f64)
        },
        updated: when(v.rollout.updated_ms),
    }
}

#[derive(Template)]
#[template(path = "rollouts.html")]
struct ListPage {
    chrome: Option<Chrome>,
    items: Vec<Item>,
}

fn fleet_error(chrome: Chrome, e: &FleetError) -> Response {
    let status = match e {
        FleetError::NotFound { .. } => StatusCode::NOT_FOUND,
        FleetError::Conflict { .. } => StatusCode::CONFLICT,
        FleetError::Invalid { .. } => StatusCode::BAD_REQUEST,
        _ => {
            tracing::warn!(error = %e, "ui: rollout page");
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    error(status, Some(chrome), &e.to_string())
}

/// `GET /ui/rollouts`.
pub(crate) async fn list(State(ui): State<Ui>, signed: Signed) -> Response {
    let chrome = signed.chrome("rollouts");
    match ui.api.fleet.rollouts().await {
        Ok(all) => render(&ListPage {
            chrome: Some(chrome),
            items: all.iter().map(item).collect(),
        }),
        Err(e) => fleet_error(chrome, &e),
    }
}

/// One member row.
pub(crate) struct MemberLine {
    pub machine: String,
    pub step: String,
    pub state: String,
    pub reason: String,
    pub admitted: String,
    pub done: String,
}

#[derive(Template)]
#[template(path = "rollout.html")]
struct RolloutPage {
    chrome: Option<Chrome>,
    item: Item,
    selector: String,
    manifest: String,
    steps_text: String,
    plan: String,
    created: String,
    reasons: Vec<String>,
    bars: Vec<StepBar>,
    budget: BudgetMeter,
    points: Vec<(String, Point)>,
    commands: Vec<Command>,
    counts: Vec<(String, usize, String, bool)>,
    members: Vec<MemberLine>,
    shown: usize,
    page: usize,
    pages: usize,
    prev: Option<String>,
    next: Option<String>,
    done: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct PageQuery {
    #[serde(default)]
    state: String,
    page: Option<usize>,
    done: Option<String>,
}

fn page_url(name: &str, state: &str, page: usize) -> String {
    let mut u = format!(
        "/ui/rollouts/{}?state={}",
        urlencode(name),
        urlencode(state)
    );
    if page > 1 {
        u.push_str(&format!("&page={page}"));
    }
    u
}

/// `GET /ui/rollouts/{name}`.
pub(crate) async fn page(
    State(ui): State<Ui>,
    signed: Signed,
    Path(name): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let chrome = signed.chrome("rollouts");
    let v = match ui.api.fleet.rollout_view(&name).await {
        Ok(v) => v,
        Err(e) => return fleet_error(chrome, &e),
    };
    let r = &v.rollout;
    let want = MEMBER_STATES
        .into_iter()
        .find(|s| *s == q.state)
        .unwrap_or("");
    let counts = MEMBER_STATES
        .into_iter()
        .map(|s| {
            let n = v.counts.get(s).copied().unwrap_or(0);
            let href = page_url(&name, if want == s { "" } else { s }, 1);
            (s.to_string(), n, href, want == s)
        })
        .collect();
    let filtered: Vec<_> = v
        .members
        .iter()
        .filter(|m| want.is_empty() || m.state == want)
        .collect();
    let pages = filtered.len().div_ceil(MEMBERS).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let members = filtered
        .iter()
        .skip((page - 1) * MEMBERS)
        .take(MEMBERS)
        .map(|m| MemberLine {
            machine: m.machine.clone(),
            step: if m.step < 0 {
                "-".into()
            } else {
                (m.step + 1).to_string()
            },
            state: m.state.clone(),
            reason: m.reason.clone().unwrap_or_default(),
            admitted: m.admitted_ms.map(when).unwrap_or_default(),
            done: m.done_ms.map(when).unwrap_or_default(),
        })
        .collect();
    let points = rollout_view::breakdown(&v, now_ms())
        .into_iter()
        .map(|p| (when(p.at_ms), p))
        .collect();
    let commands = if signed.principal.allows(Scope::Operate) {
        rollout_view::commands(&r.state)
    } else {
        Vec::new()
    };
    render(&RolloutPage {
        chrome: Some(chrome),
        item: item(&v),
        selector: r.selector.clone(),
        manifest: r.manifest.clone(),
        steps_text: r.steps.clone(),
        plan: format!(
            "at most {} in flight; bake {}; deadline {}; on budget: {}; reboot: {}",
            r.max_in_flight,
            humantime::format_duration(std::time::Duration::from_millis(
                u64::try_from(r.bake_ms).unwrap_or(0)
            )),
            humantime::format_duration(std::time::Duration::from_millis(
                u64::try_from(r.deadline_ms).unwrap_or(0)
            )),
            r.on_budget,
            r.reboot
        ),
        created: when(r.created_ms),
        reasons: if r.state == "paused" {
            rollout_view::pause_reasons(&r.paused)
        } else {
            Vec::new()
        },
        bars: rollout_view::step_bars(&v),
        budget: rollout_view::budget(&v),
        points,
        commands,
        counts,
        members,
        shown: filtered.len(),
        page,
        pages,
        prev: (page > 1).then(|| page_url(&name, want, page - 1)),
        next: (page < pages).then(|| page_url(&name, want, page + 1)),
        done: q.done,
    })
}

/// `POST /ui/rollouts/{name}/{command}`: pause, resume, promote, abort, start, retry.
pub(crate) async fn command(
    State(ui): State<Ui>,
    signed: Signed,
    Path((name, cmd)): Path<(String, String)>,
    body: String,
) -> Response {
    let csrf = form_csrf(&body);
    if !signed.csrf_ok(csrf.as_deref()) {
        return forged(&signed);
    }
    let chrome = signed.chrome("rollouts");
    if !signed.principal.allows(Scope::Operate) {
        return error(
            StatusCode::FORBIDDEN,
            Some(chrome),
            &format!(
                "token {:?} has scope {}; a rollout command needs operate",
                signed.principal.name, signed.principal.scope
            ),
        );
    }
    let cmd: Command = match cmd.parse() {
        Ok(c) => c,
        Err(e) => return error(StatusCode::NOT_FOUND, Some(chrome), &e),
    };
    match ui.api.fleet.rollout_command(&name, cmd).await {
        Ok(to) => {
            tracing::info!(actor = %signed.principal.name, rollout = %name, command = %cmd, %to, "ui: rollout command");
            Redirect::to(&format!(
                "/ui/rollouts/{}?done={}",
                urlencode(&name),
                urlencode(&format!("{cmd}: now {}", to.as_str().replace('_', " ")))
            ))
            .into_response()
        }
        Err(e) => fleet_error(chrome, &e),
    }
}
