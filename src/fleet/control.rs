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

/// Runs until `shutdown`, stepping only while this server holds the fleet's `jobs`
/// role (`held`): one controller moves the rollouts for every server, and the server
/// that takes the role over continues from the store at the same step.
pub(crate) async fn run(store: Store, held: crate::ha::Leadership, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if !*held.borrow() {
            continue;
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
    members: &[crate::store::RolloutMemberRow],
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RolloutMemberRow as MemberRow;
    use crate::store::tests::{Fixture, on_both_backends};

    on_both_backends!(a_step_admits_the_canary_once_then_the_next_step_on_its_boot);

    async fn a_step_admits_the_canary_once_then_the_next_step_on_its_boot(f: Fixture) {
        let s = f.store;
        let row = RolloutRow {
            name: "r".into(),
            selector: "role=web".into(),
            image: "demo".into(),
            version: "2".into(),
            manifest: "m2".into(),
            steps: "1,100%".into(),
            step: 0,
            state: "running".into(),
            paused: String::new(),
            max_in_flight: 5,
            budget: "0".into(),
            bake_ms: 0,
            deadline_ms: 60_000,
            on_budget: "pause".into(),
            reboot: "passive".into(),
            step_done_ms: None,
            created_ms: 0,
            updated_ms: 0,
        };
        let member = |m: &str, rank: &str, step| MemberRow {
            rollout: "r".into(),
            machine: m.into(),
            rank: rank.into(),
            step,
            state: "waiting".into(),
            reason: None,
            admitted_ms: None,
            done_ms: None,
        };
        s.insert_rollout(&row, &[member("a", "01", 0), member("b", "02", 1)])
            .await
            .unwrap();
        assert!(
            s.insert_rollout(&row, &[]).await.is_err(),
            "names are unique"
        );
        assert_eq!(step(&s, "r").await.unwrap(), [Action::Admit("a".into())]);
        assert_eq!(step(&s, "r").await.unwrap(), [], "replayed: nothing more");
        let adm = s.rollout_admissions().await.unwrap();
        assert_eq!((adm.len(), adm[0].machine.as_str()), (1, "a"));
        // The canary boots the new manifest.
        let rec = crate::attempt::record::Recorder {
            store: s.clone(),
            max_tries: 3,
        };
        let b = crate::store::NewBoot {
            id: "x1".into(),
            machine: "a".into(),
            mac: "52:54:00:00:00:01".into(),
            manifest: "m2".into(),
            image: "demo".into(),
            version: "2".into(),
            source: "rollout:r/0".into(),
            token_sha256: "t".into(),
            deadline_after_ms: 60_000,
        };
        rec.open(&b).await.unwrap();
        rec.input("x1", crate::attempt::Input::Booted, None)
            .await
            .unwrap();
        let mut all = Vec::new();
        for _ in 0..6 {
            all.extend(step(&s, "r").await.unwrap());
        }
        assert_eq!(
            all[..4],
            [
                Action::Succeed("a".into()),
                Action::StepDone(
                    all.iter()
                        .find_map(|a| match a {
                            Action::StepDone(t) => Some(*t),
                            _ => None,
                        })
                        .unwrap()
                ),
                Action::Advance(1),
                Action::Admit("b".into()),
            ]
        );
        let r = s.rollout("r").await.unwrap().unwrap();
        assert_eq!((r.state.as_str(), r.step), ("running", 1));
        let members = s.rollout_members("r").await.unwrap();
        let states: Vec<&str> = members.iter().map(|m| m.state.as_str()).collect();
        assert_eq!(states, ["succeeded", "admitted"]);
    }
}
