//! What the rollout pages draw, from a [`RolloutView`] (pure: no store, no clock; the
//! caller passes the time). Every number comes from the stored rollout and its members:
//!
//! - a bar per step: its members waiting, in flight (admitted, no result yet),
//!   succeeded and failed, drawn to the largest step's scale;
//! - the failure budget: failed members against what the budget allows at the current
//!   admissions (the controller's rule: `max(count, percent × admitted)`);
//! - the version breakdown over time: at each moment a member was admitted or got its
//!   result, how many members ran the new version (succeeded by then), were in flight,
//!   had failed, or were still on what their pins say. Members a pin keeps out of the
//!   rollout are not counted;
//! - the operator's commands that apply to the state ([`crate::rollout::command`]).

use crate::fleet::RolloutView;
use crate::rollout::plan::Budget;
use crate::rollout::{Command, RolloutState, command};
use crate::store::RolloutMemberRow as MemberRow;

/// Points drawn at most in the version breakdown.
pub(crate) const POINTS: usize = 12;

/// One step's bar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StepBar {
    /// From 1.
    pub n: usize,
    /// Its share as written (`1`, `10%`).
    pub size: String,
    pub members: usize,
    pub waiting: usize,
    pub in_flight: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Admitted so far: in flight, succeeded or failed.
    pub admitted: usize,
    pub current: bool,
    /// The bar's width against the largest step, in percent.
    pub scale: u32,
}

impl StepBar {
    /// A segment's width inside the bar, in percent (`n` of the step's members).
    pub(crate) fn pct(&self, n: &usize) -> String {
        if self.members == 0 {
            return "0".into();
        }
        format!("{:.2}", *n as f64 * 100.0 / self.members as f64)
    }
}

/// Failures against the budget.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BudgetMeter {
    pub failed: usize,
    pub admitted: usize,
    /// Failures tolerated at the current admissions.
    pub allowed: f64,
    /// The budget as written (`2`, `5%`).
    pub written: String,
    /// Used, in percent of allowed (capped at 100 for the bar).
    pub used_pct: u32,
    pub spent: bool,
}

impl BudgetMeter {
    pub(crate) fn allowed_text(&self) -> String {
        if self.allowed.fract() == 0.0 {
            format!("{:.0}", self.allowed)
        } else {
            format!("{:.1}", self.allowed)
        }
    }
}

/// The members at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Point {
    pub at_ms: i64,
    pub new: usize,
    pub in_flight: usize,
    pub failed: usize,
    pub old: usize,
}

impl Point {
    pub(crate) fn total(&self) -> usize {
        self.new + self.in_flight + self.failed + self.old
    }

    /// `n` members' share of the point, in percent.
    pub(crate) fn pct(&self, n: &usize) -> String {
        match self.total() {
            0 => "0".into(),
            t => format!("{:.2}", *n as f64 * 100.0 / t as f64),
        }
    }
}

fn count(members: &[&MemberRow], state: &str) -> usize {
    members.iter().filter(|m| m.state == state).count()
}

/// A bar per step, from the members' stored states.
pub(crate) fn step_bars(v: &RolloutView) -> Vec<StepBar> {
    let sizes: Vec<String> = v.rollout.steps.split(',').map(str::to_string).collect();
    let largest = v.per_step.iter().copied().max().unwrap_or(0).max(1);
    (0..v.per_step.len())
        .map(|k| {
            let of: Vec<&MemberRow> = v
                .members
                .iter()
                .filter(|m| usize::try_from(m.step).ok() == Some(k))
                .collect();
            let (in_flight, succeeded, failed) = (
                count(&of, "admitted"),
                count(&of, "succeeded"),
                count(&of, "failed"),
            );
            StepBar {
                n: k + 1,
                size: sizes.get(k).cloned().unwrap_or_default(),
                members: of.len(),
                waiting: count(&of, "waiting"),
                in_flight,
                succeeded,
                failed,
                admitted: in_flight + succeeded + failed,
                current: usize::try_from(v.rollout.step).ok() == Some(k),
                scale: u32::try_from(of.len() * 100 / largest).unwrap_or(100),
            }
        })
        .collect()
}

/// The failure budget's use.
pub(crate) fn budget(v: &RolloutView) -> BudgetMeter {
    let c = |s: &str| v.counts.get(s).copied().unwrap_or(0);
    let failed = c("failed");
    let admitted = failed + c("succeeded") + c("admitted");
    let (allowed, written) = match v.rollout.budget.parse::<Budget>() {
        Ok(b) => (
            f64::from(b.count).max(admitted as f64 * f64::from(b.percent) / 100.0),
            b.to_string(),
        ),
        Err(_) => (0.0, v.rollout.budget.clone()),
    };
    let used_pct = if allowed > 0.0 {
        ((failed as f64 / allowed) * 100.0).min(100.0)
    } else if failed > 0 {
        100.0
    } else {
        0.0
    };
    BudgetMeter {
        failed,
        admitted,
        allowed,
        written,
        // In 0..=100 by construction.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        used_pct: used_pct.round() as u32,
        spent: failed as f64 > allowed,
    }
}

/// The members at `t`: what each had reached by then.
fn at(members: &[&MemberRow], t: i64) -> Point {
    let mut p = Point {
        at_ms: t,
        new: 0,
        in_flight: 0,
        failed: 0,
        old: 0,
    };
    for m in members {
        let done = m.done_ms.is_some_and(|d| d <= t);
        let admitted = m.admitted_ms.is_some_and(|a| a <= t);
        match m.state.as_str() {
            "succeeded" if done => p.new += 1,
            "failed" if done => p.failed += 1,
            _ if admitted => p.in_flight += 1,
            _ => p.old += 1,
        }
    }
    p
}

/// The version breakdown over time: at the rollout's creation, then at the members'
/// admissions and results (at most [`POINTS`], evenly spread when there are more), and
/// at `now_ms` while the rollout is still moving.
pub(crate) fn breakdown(v: &RolloutView, now_ms: i64) -> Vec<Point> {
    let members: Vec<&MemberRow> = v.members.iter().filter(|m| m.step >= 0).collect();
    let mut times: Vec<i64> = members
        .iter()
        .flat_map(|m| [m.admitted_ms, m.done_ms])
        .flatten()
        .collect();
    times.sort_unstable();
    times.dedup();
    let first = v.rollout.created_ms;
    let moving = v.rollout.state.parse::<RolloutState>().is_ok_and(|s| {
        matches!(
            s,
            RolloutState::Running | RolloutState::Paused | RolloutState::RollingBack
        )
    });
    let last = times.last().copied().unwrap_or(first).max(first);
    let end = if moving { now_ms.max(last) } else { last };
    let mut chosen: Vec<i64> = vec![first];
    if times.len() + 2 <= POINTS {
        chosen.extend(times.iter().copied().filter(|t| *t > first));
    } else if end > first {
        let span = end - first;
        let n = i64::try_from(POINTS - 1).unwrap_or(1);
        chosen.extend((1..n).map(|i| first + span * i / n));
    }
    chosen.push(end);
    chosen.sort_unstable();
    chosen.dedup();
    chosen.into_iter().map(|t| at(&members, t)).collect()
}

/// Why a paused rollout is paused, in words.
pub(crate) fn pause_reasons(paused: &str) -> Vec<String> {
    paused
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p {
            "manual" => "paused by an operator".to_string(),
            "budget" => "failure budget spent".to_string(),
            other => other.to_string(),
        })
        .collect()
}

/// The operator's commands that apply to a rollout in `state`, in the order shown.
pub(crate) fn commands(state: &str) -> Vec<Command> {
    let Ok(s) = state.parse::<RolloutState>() else {
        return Vec::new();
    };
    [
        Command::Start,
        Command::Pause,
        Command::Resume,
        Command::Promote,
        Command::Retry,
        Command::Abort,
    ]
    .into_iter()
    .filter(|c| command(s, *c).is_ok())
    .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::RolloutRow;

    fn member(step: i64, state: &str, admitted: Option<i64>, done: Option<i64>) -> MemberRow {
        MemberRow {
            rollout: "r".into(),
            machine: format!("m{step}{state}{admitted:?}"),
            rank: "0".into(),
            step,
            state: state.into(),
            reason: None,
            admitted_ms: admitted,
            done_ms: done,
        }
    }

    fn view(state: &str, members: Vec<MemberRow>) -> RolloutView {
        let mut counts = BTreeMap::new();
        for m in &members {
            *counts.entry(m.state.clone()).or_default() += 1;
        }
        let per_step = (0..2)
            .map(|k| members.iter().filter(|m| m.step == k).count())
            .collect();
        RolloutView {
            rollout: RolloutRow {
                name: "r".into(),
                selector: "role=web".into(),
                image: "demo".into(),
                version: "2".into(),
                manifest: "m".into(),
                steps: "1,100%".into(),
                step: 1,
                state: state.into(),
                paused: String::new(),
                max_in_flight: 2,
                budget: "1".into(),
                bake_ms: 0,
                deadline_ms: 1,
                on_budget: "pause".into(),
                reboot: "passive".into(),
                step_done_ms: None,
                created_ms: 100,
                updated_ms: 100,
            },
            counts,
            per_step,
            budget_used: String::new(),
            members,
        }
    }

    #[test]
    fn bars_budget_and_breakdown_follow_the_members() {
        let v = view(
            "running",
            vec![
                member(0, "succeeded", Some(110), Some(120)),
                member(1, "failed", Some(130), Some(140)),
                member(1, "admitted", Some(130), None),
                member(1, "waiting", None, None),
                member(-1, "skipped_pinned", None, None),
            ],
        );
        let bars = step_bars(&v);
        assert_eq!(bars.len(), 2);
        assert_eq!(
            (bars[0].members, bars[0].succeeded, bars[0].scale),
            (1, 1, 33)
        );
        let b = &bars[1];
        assert_eq!(
            (b.waiting, b.in_flight, b.failed, b.admitted, b.current),
            (1, 1, 1, 2, true)
        );
        assert_eq!(b.pct(&b.waiting), "33.33");
        let m = budget(&v);
        assert_eq!(
            (m.failed, m.admitted, m.allowed_text(), m.used_pct),
            (1, 3, "1".into(), 100)
        );
        assert!(!m.spent);
        let pts = breakdown(&v, 1000);
        let at = |t: i64| pts.iter().find(|p| p.at_ms == t).unwrap();
        assert_eq!(
            (at(100).old, at(100).total()),
            (4, 4),
            "the skipped one is not counted"
        );
        assert_eq!((at(110).in_flight, at(120).new), (1, 1));
        assert_eq!(
            (at(140).new, at(140).failed, at(140).in_flight, at(140).old),
            (1, 1, 1, 1)
        );
        assert_eq!(
            pts.last().unwrap().at_ms,
            1000,
            "a running rollout ends now"
        );
        assert_eq!(breakdown(&view("completed", vec![]), 1000).len(), 1);
    }

    #[test]
    fn many_moments_are_sampled_evenly() {
        let members = (0..50)
            .map(|i| member(1, "succeeded", Some(100 + i * 10), Some(105 + i * 10)))
            .collect();
        let pts = breakdown(&view("completed", members), 10_000);
        assert!(pts.len() <= POINTS, "{}", pts.len());
        assert_eq!(pts.last().unwrap().new, 50);
        assert!(pts.windows(2).all(|w| w[0].new <= w[1].new));
    }

    #[test]
    fn commands_follow_the_state_and_reasons_read() {
        assert_eq!(commands("draft"), [Command::Start, Command::Abort]);
        assert_eq!(
            commands("running"),
            [Command::Pause, Command::Promote, Command::Abort]
        );
        assert_eq!(
            commands("paused"),
            [
                Command::Resume,
                Command::Promote,
                Command::Retry,
                Command::Abort
            ]
        );
        assert!(commands("completed").is_empty() && commands("bogus").is_empty());
        assert_eq!(
            pause_reasons("manual,budget"),
            ["paused by an operator", "failure budget spent"]
        );
    }
}
