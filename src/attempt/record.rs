//! The recorder: applies what the HTTP front end saw (a script served, a kernel fetched, a
//! report with its token) to the stored attempts, one store transaction per input, and
//! holds a machine on its last known good manifest when it has spent its tries.
//!
//! One task ([`run`]) reads the notes in the order they were sent, so a report is never
//! applied before the opening of its attempt; a report's sender waits for its
//! transaction ([`Note::Report`]'s `ack`), so an answered report is durable. The same task
//! sweeps overdue attempts to `timed_out` with the store's clock.
//!
//! Must not: decide boots (the hold it writes is read by `inventory::select` through the
//! snapshot) or answer HTTP.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{AttemptState, Input, Step, counts_as_try, step};
use crate::store::{BootRow, HoldRow, NewBoot, Store, StoreError};

/// How often overdue attempts are swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// One thing that happened to an attempt.
#[derive(Debug)]
pub enum Note {
    /// A script was served for a new attempt.
    Open(NewBoot),
    /// An input for attempt `id`; `ack` is told once it is stored.
    Input {
        id: String,
        input: Input,
        reason: Option<String>,
        ack: Option<oneshot::Sender<()>>,
    },
}

/// What one input did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// No such attempt, or it had ended: nothing changed.
    Nothing,
    /// The attempt moved to this state.
    Moved(AttemptState),
    /// It moved, and the machine is now held (on a manifest, or quarantined: `None`).
    Held(AttemptState, Option<String>),
}

/// Applies notes to the store.
#[derive(Clone, Debug)]
pub struct Recorder {
    pub store: Store,
    /// `health.max_tries`.
    pub max_tries: u32,
}

impl Recorder {
    /// Opens an attempt in one transaction: the machine's open attempts are superseded
    /// first (a try spent if they had loaded), then the row is inserted with its number
    /// and deadline. Returns the attempt number.
    pub async fn open(&self, b: &NewBoot) -> Result<i64, StoreError> {
        let mut tx = self.store.begin().await?;
        let mut changed = false;
        for prev in self.store.open_boots_of(&mut tx, &b.machine, &b.id).await? {
            changed |= self
                .apply_in(&mut tx, &prev, Input::Replaced, None)
                .await?
                .1;
        }
        let n = self.store.insert_boot(&mut tx, b).await?;
        if let Some(once) = b.source.strip_prefix("boot-once:") {
            self.store
                .boot_once_booting_in(&mut tx, once, &b.id)
                .await?;
        }
        finish(tx, changed).await?;
        Ok(n)
    }

    /// Applies `input` to attempt `id` in one transaction.
    pub async fn input(
        &self,
        id: &str,
        input: Input,
        reason: Option<&str>,
    ) -> Result<Applied, StoreError> {
        let mut tx = self.store.begin().await?;
        let Some(row) = self.store.boot_in(&mut tx, id).await? else {
            return Ok(Applied::Nothing);
        };
        let (applied, changed) = self.apply_in(&mut tx, &row, input, reason).await?;
        finish(tx, changed).await?;
        Ok(applied)
    }

    /// Times out every overdue attempt (store clock); returns how many.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        let ids = self.store.overdue_boots().await?;
        let mut n = 0;
        for id in &ids {
            if self
                .input(id, Input::Deadline, Some("deadline passed"))
                .await?
                != Applied::Nothing
            {
                n += 1;
            }
        }
        let expired = self.store.expire_boot_once().await?;
        if !expired.is_empty() {
            tracing::info!(expired = expired.len(), "boot-once requests past their TTL");
        }
        Ok(n)
    }

    async fn apply_in(
        &self,
        tx: &mut crate::store::Tx,
        row: &BootRow,
        input: Input,
        reason: Option<&str>,
    ) -> Result<(Applied, bool), StoreError> {
        let state: AttemptState = row.state.parse().map_err(|_| StoreError::Corrupt {
            what: "boot attempt state",
            value: row.state.clone(),
        })?;
        let to = match step(state, input) {
            Step::Move(to) => to,
            Step::Stay | Step::Ignore => return Ok((Applied::Nothing, false)),
        };
        self.store
            .set_boot_state(tx, &row.id, to.as_str(), to.is_terminal(), reason)
            .await?;
        if !to.is_terminal() {
            return Ok((Applied::Moved(to), false));
        }
        let now = crate::store::now_ms();
        let data = serde_json::json!({
            "boot": row.id, "machine": row.machine, "mac": row.mac, "image": row.image,
            "version": row.version, "manifest": row.manifest, "source": row.source,
            "attempt": row.attempt, "state": to.as_str(), "reason": reason,
        });
        self.store
            .fleet_event(
                tx,
                now,
                &format!("boot.{}", to.as_str()),
                &row.machine,
                &data.to_string(),
            )
            .await?;
        let once_ended = match row.source.strip_prefix("boot-once:") {
            Some(once) => self.end_boot_once(tx, once, to, now).await?,
            None => false,
        };
        if !counts_as_try(to, row.loaded_ms.is_some()) {
            return Ok((Applied::Moved(to), once_ended));
        }
        match self.hold_if_spent(tx, row, now).await? {
            Some(h) => Ok((Applied::Held(to, h.manifest), true)),
            None => Ok((Applied::Moved(to), once_ended)),
        }
    }

    /// Ends a boot-once whose attempt ended (booted, or failed for any other ending):
    /// the machine goes back to its pin, or, with `then = local`, is pinned to local boot.
    async fn end_boot_once(
        &self,
        tx: &mut crate::store::Tx,
        id: &str,
        to: AttemptState,
        now: i64,
    ) -> Result<bool, StoreError> {
        let state = if to == AttemptState::Booted {
            "booted"
        } else {
            "failed"
        };
        let Some(o) = self.store.end_boot_once_in(tx, id, state, now).await? else {
            return Ok(false);
        };
        if o.then_do == "local" {
            let target = crate::inventory::PinTarget::Machine(o.machine.clone()).key();
            self.store.set_pin_in(tx, &target, "local", now).await?;
        }
        let data = serde_json::json!({
            "id": o.id, "machine": o.machine, "reference": o.reference, "state": state,
            "boot": o.boot_id, "then": o.then_do,
        });
        self.store
            .fleet_event(
                tx,
                now,
                &format!("boot_once.{state}"),
                &o.machine,
                &data.to_string(),
            )
            .await?;
        Ok(true)
    }

    /// Holds `row`'s machine when its tries on `row`'s manifest reach `max_tries`: on the
    /// last other manifest it booted, or quarantined without one. A machine already held
    /// on another manifest is left alone.
    async fn hold_if_spent(
        &self,
        tx: &mut crate::store::Tx,
        row: &BootRow,
        now: i64,
    ) -> Result<Option<HoldRow>, StoreError> {
        let tries = self.store.tries_in(tx, &row.machine, &row.manifest).await?;
        if tries < i64::from(self.max_tries) {
            return Ok(None);
        }
        let existing = self.store.hold_in(tx, &row.machine).await?;
        if existing
            .as_ref()
            .is_some_and(|h| h.manifest.as_deref() != Some(row.manifest.as_str()))
        {
            return Ok(None);
        }
        let good = self
            .store
            .known_good(tx, &row.machine, &row.manifest)
            .await?;
        let rollout = row
            .source
            .strip_prefix("rollout:")
            .and_then(|r| r.split('/').next())
            .map(str::to_string);
        let (manifest, image, version) = match good {
            Some((m, i, v)) => (Some(m), Some(i), Some(v)),
            None => (None, None, None),
        };
        let hold = HoldRow {
            machine: row.machine.clone(),
            manifest,
            image,
            version,
            bad_manifest: row.manifest.clone(),
            bad_image: row.image.clone(),
            bad_version: row.version.clone(),
            tries,
            rollout,
            since_ms: now,
        };
        let detail = hold_sentence(&hold);
        self.store.insert_hold(tx, &hold, &detail).await?;
        let data = serde_json::json!({
            "machine": hold.machine, "held_on": hold.manifest, "image": hold.image,
            "version": hold.version, "bad_manifest": hold.bad_manifest,
            "bad_image": hold.bad_image, "bad_version": hold.bad_version,
            "tries": tries, "rollout": hold.rollout, "detail": detail,
        });
        let kind = if hold.manifest.is_some() {
            "machine.rolled_back"
        } else {
            "machine.quarantined"
        };
        self.store
            .fleet_event(tx, now, kind, &hold.machine, &data.to_string())
            .await?;
        tracing::warn!(machine = %hold.machine, "{detail}");
        Ok(Some(hold))
    }
}

/// The sentence `explain` and the history show for a hold.
pub fn hold_sentence(h: &HoldRow) -> String {
    let on = match (&h.image, &h.version) {
        (Some(i), Some(v)) => format!("held on {i}@{v}"),
        _ => "quarantined (no known good image)".to_string(),
    };
    let from = match &h.rollout {
        Some(r) => format!(" (rollout {r})"),
        None => String::new(),
    };
    format!(
        "{on} after {} failed tries of {}@{}{from}",
        h.tries, h.bad_image, h.bad_version
    )
}

async fn finish(tx: crate::store::Tx, changed: bool) -> Result<(), StoreError> {
    if changed {
        crate::store::commit_changed(tx).await
    } else {
        tx.commit().await.map_err(StoreError::from)
    }
}

/// Applies notes in order until every sender is gone or `shutdown`, sweeping deadlines
/// meanwhile. A note that cannot be stored is logged (its sender is still told, so no
/// report waits forever).
pub async fn run(
    rec: Recorder,
    mut rx: mpsc::Receiver<Note>,
    held: crate::ha::Leadership,
    shutdown: CancellationToken,
) {
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            note = rx.recv() => {
                let Some(note) = note else { return };
                apply_note(&rec, note).await;
            }
            // Deadlines are swept by one server for the fleet (the `jobs` holder); notes
            // are applied by every server for its own machines.
            _ = sweep.tick(), if *held.borrow() => {
                match rec.sweep().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(timed_out = n, "boot attempts past their deadline"),
                    Err(e) => tracing::error!(error = %e, "cannot sweep boot attempt deadlines"),
                }
            }
            () = shutdown.cancelled() => {
                // Drain what is queued, then stop.
                while let Ok(note) = rx.try_recv() {
                    apply_note(&rec, note).await;
                }
                return;
            }
        }
    }
}

async fn apply_note(rec: &Recorder, note: Note) {
    match note {
        Note::Open(b) => {
            if let Err(e) = rec.open(&b).await {
                tracing::error!(error = %e, boot = %b.id, "cannot record a boot attempt");
            }
        }
        Note::Input {
            id,
            input,
            reason,
            ack,
        } => {
            if let Err(e) = rec.input(&id, input, reason.as_deref()).await {
                tracing::error!(error = %e, boot = %id, "cannot move a boot attempt");
            }
            if let Some(ack) = ack {
                let _ = ack.send(());
            }
        }
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
