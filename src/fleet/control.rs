//! The fleet controller: one task that moves every active rollout on, one store
//! transaction per rollout per tick ([`step`]): read the rollout, its members and their
//! boots; [`crate::rollout::control::advance`]; write the actions, each guarded by the
//! state it expects, and bump the revision so the next boot decision sees the change.
//! Killed between two ticks (or inside one: the transaction rolls back), it resumes at the
//! same step after a restart, since everything it knows is in the store.
//!
//! Must not: decide boots or answer machines.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::inventory::{PinRef, PinTarget, Selector};
use crate::rollout::control::{Action, Member, OnBudget, Outcome, View, advance, apply};
use crate::rollout::plan::{Budget, Steps};
use crate::rollout::{MemberState, RolloutState};
use crate::store::{RolloutRow, Store, StoreError};

/// How often the controller looks at the active rollouts.
pub(crate) const TICK: Duration = Duration::from_millis(500);

/// Runs until `shutdown`.
pub(crate) async fn run(store: Store, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let names = match store.active_rollouts().await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "rollout controller cannot read the rollouts");
                continue;
            }
        };
        for name in names {
            match step(&store, &name).await {
                Ok(actions) if !actions.is_empty() => {
                    tracing::info!(rollout = %name, ?actions, "rollout step");
                }
                Ok(_) => {}
                Err(e) => tracing::error!(rollout = %name, error = %e, "rollout step failed"),
            }
        }
    }
}

fn corrupt(what: &'static str, value: &str) -> StoreError {
    StoreError::Corrupt {
        what,
        value: value.to_string(),
    }
}

/// The controller's view of a stored rollout.
pub(crate) fn view_of(
    r: &RolloutRow,
    members: &[crate::store::MemberRow],
    boots: &[(String, String, bool)],
    now_ms: i64,
) -> Result<View, StoreError> {
    let state: RolloutState = r
        .state
        .parse()
        .map_err(|_| corrupt("rollout state", &r.state))?;
    let steps: Steps = r
        .steps
        .parse()
        .map_err(|_| corrupt("rollout steps", &r.steps))?;
    let budget: Budget = r
        .budget
        .parse()
        .map_err(|_| corrupt("rollout budget", &r.budget))?;
    let mut out = Vec::with_capacity(members.len());
    for m in members {
        let mstate: MemberState = m
            .state
            .parse()
            .map_err(|_| corrupt("member state", &m.state))?;
        let mine = boots.iter().filter(|(n, _, _)| *n == m.machine);
        let mut outcome = Outcome::None;
        for (_, s, loaded) in mine {
            match s.as_str() {
                "booted" => {
                    outcome = Outcome::Booted;
                    break;
                }
                "failed" | "timed_out" => outcome = Outcome::Failed(s.clone()),
                "superseded" if *loaded => outcome = Outcome::Failed(s.clone()),
                _ => {}
            }
        }
        out.push(Member {
            machine: m.machine.clone(),
            rank: m.rank.clone(),
            step: usize::try_from(m.step).unwrap_or(0),
            state: mstate,
            admitted_ms: m.admitted_ms,
            outcome,
        });
    }
    Ok(View {
        state,
        step: usize::try_from(r.step).unwrap_or(0),
        steps: steps.0.len(),
        budget,
        on_budget: if r.on_budget == "rollback" {
            OnBudget::Rollback
        } else {
            OnBudget::Pause
        },
        max_in_flight: usize::try_from(r.max_in_flight).unwrap_or(1).max(1),
        bake_ms: r.bake_ms,
        deadline_ms: r.deadline_ms,
        step_done_ms: r.step_done_ms,
        budget_paused: r.paused.split(',').any(|p| p == "budget"),
        members: out,
        now_ms,
    })
}

/// One controller step of rollout `name`, in one transaction; the actions it took.
pub(crate) async fn step(store: &Store, name: &str) -> Result<Vec<Action>, StoreError> {
    let now = store.clock_ms().await?;
    let mut tx = store.begin().await?;
    let Some(r) = store.rollout_in(&mut tx, name).await? else {
        return Ok(Vec::new());
    };
    let members = store.members_in(&mut tx, name).await?;
    let boots = store.member_boots_in(&mut tx, name, &r.manifest).await?;
    let v = view_of(&r, &members, &boots, now)?;
    let actions = advance(&v);
    if actions.is_empty() {
        return Ok(actions);
    }
    let after = apply(&v, &actions);
    for a in &actions {
        let ev = |kind: &str, data: serde_json::Value| (kind.to_string(), data);
        let event = match a {
            Action::Succeed(m) => {
                store
                    .move_member_in(&mut tx, name, m, "admitted", "succeeded", None, now)
                    .await?;
                None
            }
            Action::Fail(m, why) => {
                store
                    .move_member_in(&mut tx, name, m, "admitted", "failed", Some(why), now)
                    .await?;
                Some(ev(
                    "rollout.member_failed",
                    serde_json::json!({"machine": m, "reason": why}),
                ))
            }
            Action::Admit(m) => {
                store
                    .move_member_in(&mut tx, name, m, "waiting", "admitted", None, now)
                    .await?;
                (r.reboot == "webhook").then(|| {
                    ev(
                        "rollout.reboot_requested",
                        serde_json::json!({"machine": m}),
                    )
                })
            }
            Action::StepDone(_) => None,
            Action::Advance(k) => Some(ev("rollout.step", serde_json::json!({"step": k + 1}))),
            Action::PauseBudget => Some(ev(
                "rollout.paused",
                serde_json::json!({"reason": "budget"}),
            )),
            Action::RollBack => Some(ev(
                "rollout.rolling_back",
                serde_json::json!({"reason": "budget"}),
            )),
            Action::Complete => {
                complete(store, &mut tx, &r, now).await?;
                Some(ev("rollout.completed", serde_json::json!({})))
            }
            Action::Aborted => Some(ev("rollout.aborted", serde_json::json!({}))),
        };
        if let Some((kind, mut data)) = event {
            data["rollout"] = serde_json::Value::String(name.to_string());
            data["image"] = serde_json::Value::String(format!("{}@{}", r.image, r.version));
            store
                .fleet_event(&mut tx, now, &kind, name, &data.to_string())
                .await?;
        }
    }
    let mut paused: Vec<&str> = r.paused.split(',').filter(|p| !p.is_empty()).collect();
    if after.budget_paused && !paused.contains(&"budget") {
        paused.push("budget");
    }
    store
        .update_rollout_in(
            &mut tx,
            name,
            after.state.as_str(),
            &paused.join(","),
            i64::try_from(after.step).unwrap_or(0),
            after.step_done_ms,
            now,
        )
        .await?;
    crate::store::commit_changed(tx).await?;
    Ok(actions)
}

/// A completed rollout's result: the selector's pin names the new version (a `set` in
/// its history), so what runs where stays explainable after the rollout.
async fn complete(
    store: &Store,
    tx: &mut crate::store::Tx,
    r: &RolloutRow,
    now: i64,
) -> Result<(), StoreError> {
    let sel: Selector = r
        .selector
        .parse()
        .map_err(|_| corrupt("rollout selector", &r.selector))?;
    let target = PinTarget::Selector(sel).key();
    let reference = PinRef::Version {
        image: r.image.clone(),
        version: r.version.clone(),
    }
    .to_string();
    store.set_pin_in(tx, &target, &reference, now).await
}
