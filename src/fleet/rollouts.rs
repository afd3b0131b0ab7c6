//! Rollouts, holds and boot attempts through the facade: what `tabula rollout …`,
//! `tabula machine boots|release` (and the API's thin routes, later) call. Commands are
//! one transaction each: the state is read, the pure [`crate::rollout::command`] decides,
//! and the change is written with its fleet event, so an API route only maps a request to
//! a call and a [`FleetError`] to a status.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Fleet, FleetError, Kind};
use crate::inventory::{PinTarget, Selector};
use crate::rollout::plan::{Budget, Steps, cohorts};
use crate::rollout::{Command, MemberState, RolloutState};
use crate::store::{BootRow, HoldRow, RolloutMemberRow as MemberRow, RolloutRow};

/// What `rollout create` asks for.
#[derive(Clone, Debug)]
pub(crate) struct RolloutSpec {
    pub name: String,
    pub selector: Selector,
    pub image: String,
    pub version: String,
    pub steps: Steps,
    pub max_in_flight: u32,
    pub budget: Budget,
    pub bake: Duration,
    pub deadline: Duration,
    /// `pause` or `rollback`.
    pub on_budget: String,
    /// `passive` or `webhook`.
    pub reboot: String,
}

/// A rollout with its members, as `rollout show` and the API show it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct RolloutView {
    pub rollout: RolloutRow,
    /// Members per state.
    pub counts: BTreeMap<String, usize>,
    /// Members per step (from 0), admitted or not.
    pub per_step: Vec<usize>,
    /// Failed members, and the most the budget allows at the current admissions.
    pub budget_used: String,
    pub members: Vec<MemberRow>,
}

fn not_found(name: &str) -> FleetError {
    FleetError::NotFound {
        kind: Kind::Rollout,
        name: name.to_string(),
        message: format!("no rollout named {name:?} (see `tabula rollout list`)"),
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

impl Fleet {
    /// Creates a rollout in `draft` (or, with `dry_run`, only computes it): its members are
    /// the machines its selector matches, ranked by stable hash into the steps; a machine
    /// whose MAC or name is pinned is a member `skipped_pinned`.
    pub(crate) async fn create_rollout(
        &self,
        spec: &RolloutSpec,
        dry_run: bool,
    ) -> Result<RolloutView, FleetError> {
        crate::inventory::pin::check_machine_name(&spec.name)
            .map_err(|e| FleetError::invalid("name", &spec.name, e))?;
        for (field, v, ok) in [
            ("on_budget", &spec.on_budget, ["pause", "rollback"]),
            ("reboot", &spec.reboot, ["passive", "webhook"]),
        ] {
            if !ok.contains(&v.as_str()) {
                return Err(FleetError::invalid(
                    field,
                    v,
                    format!("{field} is {} or {}", ok[0], ok[1]),
                ));
            }
        }
        let snap = self.inventory().snapshot().await?;
        let Some(v) = snap
            .versions
            .get(&(spec.image.clone(), spec.version.clone()))
        else {
            return Err(super::missing(&crate::store::Requirement::Version {
                image: spec.image.clone(),
                version: spec.version.clone(),
            }));
        };
        let mut eligible = Vec::new();
        let mut skipped = Vec::new();
        for m in &snap.machines {
            if !spec.selector.matches(&m.labels) {
                continue;
            }
            let pinned = snap.pins.iter().find(|p| match &p.target {
                PinTarget::Mac(mac) => m.macs.contains(mac),
                PinTarget::Machine(n) => *n == m.name,
                _ => false,
            });
            match pinned {
                Some(p) => skipped.push((m.name.clone(), format!("pinned by {}", p.target.key()))),
                None => eligible.push(m.name.clone()),
            }
        }
        let now = self.store().clock_ms().await?;
        let mut members: Vec<MemberRow> = cohorts(&spec.name, &eligible, &spec.steps)
            .into_iter()
            .map(|(machine, rank, step)| MemberRow {
                rollout: spec.name.clone(),
                machine,
                rank,
                step: i64::try_from(step).unwrap_or(0),
                state: MemberState::Waiting.as_str().into(),
                reason: None,
                admitted_ms: None,
                done_ms: None,
            })
            .collect();
        for (machine, why) in skipped {
            members.push(MemberRow {
                rollout: spec.name.clone(),
                rank: crate::rollout::plan::rank(&spec.name, &machine),
                machine,
                step: -1,
                state: MemberState::SkippedPinned.as_str().into(),
                reason: Some(why),
                admitted_ms: None,
                done_ms: None,
            });
        }
        let row = RolloutRow {
            name: spec.name.clone(),
            selector: spec.selector.to_string(),
            image: spec.image.clone(),
            version: spec.version.clone(),
            manifest: v.manifest_digest.to_string(),
            steps: spec.steps.to_string(),
            step: 0,
            state: RolloutState::Draft.as_str().into(),
            paused: String::new(),
            max_in_flight: i64::from(spec.max_in_flight.max(1)),
            budget: spec.budget.to_string(),
            bake_ms: ms(spec.bake),
            deadline_ms: ms(spec.deadline),
            on_budget: spec.on_budget.clone(),
            reboot: spec.reboot.clone(),
            step_done_ms: None,
            created_ms: now,
            updated_ms: now,
        };
        if !dry_run {
            self.store()
                .insert_rollout(&row, &members)
                .await
                .map_err(|e| match e {
                    crate::store::StoreError::Conflict(message) => FleetError::Conflict {
                        kind: Kind::Rollout,
                        name: spec.name.clone(),
                        message: format!("{message}; choose another name"),
                    },
                    e => e.into(),
                })?;
        }
        Ok(view(row, members))
    }

    /// Runs an operator's command on rollout `name` in one transaction; the new state.
    pub(crate) async fn rollout_command(
        &self,
        name: &str,
        cmd: Command,
    ) -> Result<RolloutState, FleetError> {
        let store = self.store();
        if cmd == Command::Start {
            self.replicated_everywhere(name).await?;
        }
        let mut tx = store.begin().await?;
        let r = store
            .rollout_in(&mut tx, name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let state: RolloutState = r
            .state
            .parse()
            .map_err(|v: String| FleetError::invalid("state", &r.state, v))?;
        let to = crate::rollout::command(state, cmd).map_err(|e| FleetError::Conflict {
            kind: Kind::Rollout,
            name: name.to_string(),
            message: e.to_string(),
        })?;
        let steps: Steps = r
            .steps
            .parse()
            .map_err(|e| FleetError::invalid("steps", &r.steps, e))?;
        let now = store.clock_ms().await?;
        let (mut step, mut done, mut paused, mut to) =
            (r.step, r.step_done_ms, r.paused.clone(), to);
        match cmd {
            Command::Start => step = 0,
            Command::Pause => paused = "manual".into(),
            Command::Resume => paused.clear(),
            Command::Promote => {
                if usize::try_from(step + 1).unwrap_or(0) < steps.0.len() {
                    step += 1;
                    done = None;
                } else {
                    to = RolloutState::Completed;
                    store
                        .set_pin_in(
                            &mut tx,
                            &format!("label:{}", r.selector),
                            &format!("{}@{}", r.image, r.version),
                            now,
                        )
                        .await?;
                }
            }
            Command::Abort => {}
            Command::Retry => {
                store.retry_members_in(&mut tx, name).await?;
                paused.clear();
                done = None;
            }
        }
        store
            .update_rollout_in(&mut tx, name, to.as_str(), &paused, step, done, now)
            .await?;
        let data = serde_json::json!({
            "rollout": name, "command": cmd.as_str(), "from": state.as_str(), "to": to.as_str(),
            "step": step + 1, "image": format!("{}@{}", r.image, r.version),
        });
        store
            .fleet_event(
                &mut tx,
                now,
                &format!("rollout.{}", cmd.as_str()),
                name,
                &data.to_string(),
            )
            .await?;
        crate::store::commit_changed(tx).await?;
        Ok(to)
    }

    /// The rollout gate: `name`'s target version must be on every live blob server
    /// (`crate::replica`), else its start is a conflict naming who lacks what.
    async fn replicated_everywhere(&self, name: &str) -> Result<(), FleetError> {
        let Some(r) = self.store().rollout(name).await? else {
            return Err(not_found(name));
        };
        let snap = self.inventory().snapshot().await?;
        let Some(v) = snap.versions.get(&(r.image.clone(), r.version.clone())) else {
            return Err(super::missing(&crate::store::Requirement::Version {
                image: r.image.clone(),
                version: r.version.clone(),
            }));
        };
        // Without the manifest here, only the manifest itself can be asked for.
        let mut digests = vec![v.manifest_digest];
        if let Ok(m) = &v.manifest {
            digests.extend(m.blobs().map(|b| b.digest));
        }
        let missing = crate::replica::Gate::default()
            .check(self.store(), &digests)
            .await
            .map_err(|e| match e {
                crate::replica::ReplicaError::Store(e) => FleetError::Store(e),
                e => FleetError::Store(crate::store::StoreError::Conflict(e.to_string())),
            })?;
        if missing.is_empty() {
            return Ok(());
        }
        let who: Vec<String> = missing
            .iter()
            .map(|(s, n)| format!("{s} lacks {n} of its {} blobs", digests.len()))
            .collect();
        Err(FleetError::Conflict {
            kind: Kind::Rollout,
            name: name.to_string(),
            message: format!(
                "{}@{} is not yet on every live server ({}): a rollout starts only once every \
                 server can serve it; see `tabula image list` and start again once it has replicated",
                r.image,
                r.version,
                who.join(", ")
            ),
        })
    }

    /// A rollout with its members.
    pub(crate) async fn rollout_view(&self, name: &str) -> Result<RolloutView, FleetError> {
        let r = self
            .store()
            .rollout(name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let members = self.store().rollout_members(name).await?;
        Ok(view(r, members))
    }

    /// Every rollout, newest first.
    pub(crate) async fn rollouts(&self) -> Result<Vec<RolloutView>, FleetError> {
        let mut out = Vec::new();
        for r in self.store().rollouts().await? {
            let members = self.store().rollout_members(&r.name).await?;
            out.push(view(r, members));
        }
        Ok(out)
    }

    /// A machine's boot attempts, newest first (the machine must exist, or be a MAC).
    pub(crate) async fn machine_boots(
        &self,
        name: &str,
        limit: i64,
    ) -> Result<Vec<BootRow>, FleetError> {
        // The snapshot (cached per store revision), not a read of every machine.
        let known = self
            .inventory()
            .snapshot()
            .await?
            .machine_named(name)
            .is_some();
        if !known && name.parse::<crate::boot::Mac>().is_err() {
            return Err(super::missing(&crate::store::Requirement::Machine(
                name.to_string(),
            )));
        }
        Ok(self.store().boots_of(name, limit).await?)
    }

    /// Clears a machine's hold (automatic rollback or quarantine).
    pub(crate) async fn release_hold(&self, name: &str) -> Result<HoldRow, FleetError> {
        self.store()
            .release_hold(name, crate::store::now_ms())
            .await?
            .ok_or_else(|| FleetError::NotFound {
                kind: Kind::Hold,
                name: name.to_string(),
                message: format!("{name} is not held"),
            })
    }

    /// Every hold.
    pub(crate) async fn holds(&self) -> Result<Vec<HoldRow>, FleetError> {
        Ok(self.store().holds().await?)
    }
}

fn view(rollout: RolloutRow, members: Vec<MemberRow>) -> RolloutView {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for m in &members {
        *counts.entry(m.state.clone()).or_default() += 1;
    }
    let steps = rollout
        .steps
        .parse::<Steps>()
        .map(|s| s.0.len())
        .unwrap_or(1);
    let per_step = (0..steps)
        .map(|k| {
            members
                .iter()
                .filter(|m| m.step == i64::try_from(k).unwrap_or(-1))
                .count()
        })
        .collect();
    let c = |s: &str| counts.get(s).copied().unwrap_or(0);
    let failed = c("failed");
    let admitted = failed + c("succeeded") + c("admitted");
    let budget_used = match rollout.budget.parse::<Budget>() {
        Ok(b) => {
            let allowed = f64::from(b.count).max(admitted as f64 * f64::from(b.percent) / 100.0);
            format!("{failed} failed of {admitted} admitted (pauses past {allowed:.1}; budget {b})")
        }
        Err(_) => format!("{failed} failed"),
    };
    RolloutView {
        rollout,
        counts,
        per_step,
        budget_used,
        members,
    }
}
