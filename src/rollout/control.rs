//! The controller's step, pure: a rollout as stored and what its admitted members' boots
//! did, in; the actions that move it on, out ([`advance`]). [`apply`] is what the store
//! does with them, for the tests: each action is guarded by the state it expects, so
//! applying a list twice is applying it once.
//!
//! One step, in order: admitted members with a result succeed or fail (a member past
//! its deadline fails); if the failures exceed the budget the rollout pauses or rolls
//! back and nothing is admitted; otherwise waiting members of the current step are
//! admitted in rank order while fewer than `max_in_flight` are admitted without a
//! result; once every member of the step has a result, the bake starts, and when it has
//! passed the rollout moves to the next step, or completes after the last.

use super::plan::Budget;
use super::{MemberState, RolloutState};

/// What an on-budget breach does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBudget {
    Pause,
    Rollback,
}

/// What the latest boot of an admitted member on the new image did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No result yet.
    None,
    Booted,
    /// Failed, timed out, or rebooted after loading; the attempt's state.
    Failed(String),
}

/// One member as the controller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub machine: String,
    /// Its admission order.
    pub rank: String,
    pub step: usize,
    pub state: MemberState,
    pub admitted_ms: Option<i64>,
    pub outcome: Outcome,
}

/// A rollout as the controller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub state: RolloutState,
    pub step: usize,
    pub steps: usize,
    pub budget: Budget,
    pub on_budget: OnBudget,
    pub max_in_flight: usize,
    pub bake_ms: i64,
    pub deadline_ms: i64,
    /// When every member of the current step had a result (the bake's start).
    pub step_done_ms: Option<i64>,
    /// Paused for the budget already (a resume clears it).
    pub budget_paused: bool,
    pub members: Vec<Member>,
    pub now_ms: i64,
}

/// One change the controller makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Succeed(String),
    Fail(String, String),
    Admit(String),
    /// Every member of the current step has a result, at this time.
    StepDone(i64),
    /// Move to this step (from 0).
    Advance(usize),
    /// Over the budget: pause.
    PauseBudget,
    /// Over the budget: roll back.
    RollBack,
    Complete,
    /// Rolling back is done: members boot what their pins say again.
    Aborted,
}

/// The actions of one controller step (see the module documentation).
pub fn advance(v: &View) -> Vec<Action> {
    let mut out = Vec::new();
    match v.state {
        RolloutState::Running | RolloutState::Paused => {}
        RolloutState::RollingBack => return vec![Action::Aborted],
        RolloutState::Draft | RolloutState::Completed | RolloutState::Aborted => return out,
    }
    let mut members = v.members.clone();
    for m in &mut members {
        if m.state != MemberState::Admitted {
            continue;
        }
        let late = m.admitted_ms.is_some_and(|t| v.now_ms >= t + v.deadline_ms);
        match &m.outcome {
            Outcome::Booted => {
                out.push(Action::Succeed(m.machine.clone()));
                m.state = MemberState::Succeeded;
            }
            Outcome::Failed(why) => {
                out.push(Action::Fail(m.machine.clone(), why.clone()));
                m.state = MemberState::Failed;
            }
            Outcome::None if late => {
                out.push(Action::Fail(m.machine.clone(), "deadline".into()));
                m.state = MemberState::Failed;
            }
            Outcome::None => {}
        }
    }
    let count = |s: MemberState| members.iter().filter(|m| m.state == s).count();
    let failed = count(MemberState::Failed);
    let admitted = failed + count(MemberState::Succeeded) + count(MemberState::Admitted);
    if v.budget.exceeded(failed, admitted) {
        match v.on_budget {
            OnBudget::Rollback => out.push(Action::RollBack),
            OnBudget::Pause if v.state == RolloutState::Running && !v.budget_paused => {
                out.push(Action::PauseBudget)
            }
            OnBudget::Pause => {}
        }
        return out;
    }
    if v.state != RolloutState::Running {
        return out;
    }
    let mut in_flight = count(MemberState::Admitted);
    let mut waiting: Vec<&Member> = members
        .iter()
        .filter(|m| m.state == MemberState::Waiting && m.step <= v.step)
        .collect();
    waiting.sort_by(|a, b| a.rank.cmp(&b.rank));
    let mut still_waiting = waiting.len();
    for m in waiting {
        if in_flight >= v.max_in_flight {
            break;
        }
        out.push(Action::Admit(m.machine.clone()));
        in_flight += 1;
        still_waiting -= 1;
    }
    if in_flight > 0 || still_waiting > 0 {
        return out;
    }
    match v.step_done_ms {
        None => out.push(Action::StepDone(v.now_ms)),
        Some(t) if v.now_ms >= t + v.bake_ms => {
            if v.step + 1 < v.steps {
                out.push(Action::Advance(v.step + 1));
            } else {
                out.push(Action::Complete);
            }
        }
        Some(_) => {}
    }
    out
}

/// `actions` applied to `v`, each guarded by the state it expects (what the store's
/// statements do): applying a list twice is applying it once.
pub fn apply(v: &View, actions: &[Action]) -> View {
    let mut v = v.clone();
    let member = |v: &mut View, name: &str, from: MemberState, to: MemberState, now: i64| {
        if let Some(m) = v
            .members
            .iter_mut()
            .find(|m| m.machine == name && m.state == from)
        {
            m.state = to;
            if to == MemberState::Admitted {
                m.admitted_ms = Some(now);
                m.outcome = Outcome::None;
            }
        }
    };
    let now = v.now_ms;
    for a in actions {
        match a {
            Action::Succeed(n) => member(
                &mut v,
                n,
                MemberState::Admitted,
                MemberState::Succeeded,
                now,
            ),
            Action::Fail(n, _) => {
                member(&mut v, n, MemberState::Admitted, MemberState::Failed, now)
            }
            Action::Admit(n) => member(&mut v, n, MemberState::Waiting, MemberState::Admitted, now),
            Action::StepDone(t) => {
                v.step_done_ms.get_or_insert(*t);
            }
            Action::Advance(k) => {
                if v.step < *k {
                    v.step = *k;
                    v.step_done_ms = None;
                }
            }
            Action::PauseBudget => {
                if v.state == RolloutState::Running {
                    v.state = RolloutState::Paused;
                    v.budget_paused = true;
                }
            }
            Action::RollBack => {
                if v.state.admits() {
                    v.state = RolloutState::RollingBack;
                }
            }
            Action::Complete => {
                if v.state == RolloutState::Running {
                    v.state = RolloutState::Completed;
                }
            }
            Action::Aborted => {
                if v.state == RolloutState::RollingBack {
                    v.state = RolloutState::Aborted;
                }
            }
        }
    }
    v
}
