//! Rollouts, their members and boot-once requests: the rows of `0007_fleet_rollouts.sql`.
//! Queries only; what the rows mean is `crate::rollout`'s, and the controller runs each
//! of its steps in one transaction through the `_in` functions here. Every update is
//! guarded by the state it expects, so a step applied twice changes nothing the second
//! time.

use sqlx::AssertSqlSafe;

use super::{Store, StoreError, Tx};

/// A rollout as stored.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct RolloutRow {
    pub name: String,
    pub selector: String,
    pub image: String,
    pub version: String,
    pub manifest: String,
    pub steps: String,
    pub step: i64,
    pub state: String,
    pub paused: String,
    pub max_in_flight: i64,
    pub budget: String,
    pub bake_ms: i64,
    pub deadline_ms: i64,
    pub on_budget: String,
    pub reboot: String,
    pub step_done_ms: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A rollout member as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct MemberRow {
    pub rollout: String,
    pub machine: String,
    pub rank: String,
    pub step: i64,
    pub state: String,
    pub reason: Option<String>,
    pub admitted_ms: Option<i64>,
    pub done_ms: Option<i64>,
}

/// A machine admitted by a running or paused rollout.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AdmissionRow {
    pub machine: String,
    pub rollout: String,
    pub step: i64,
    pub image: String,
    pub version: String,
}

/// A boot-once request as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct BootOnceRow {
    pub id: String,
    pub machine: String,
    pub reference: String,
    pub then_do: String,
    pub state: String,
    pub boot_id: Option<String>,
    pub expires_ms: i64,
    pub created_ms: i64,
    pub ended_ms: Option<i64>,
}

const ROLLOUT: &str = "SELECT name, selector, image, version, manifest, steps, step, state, paused, \
     max_in_flight, budget, bake_ms, deadline_ms, on_budget, reboot, step_done_ms, created_ms, updated_ms \
     FROM rollouts";
const ONCE: &str = "SELECT id, machine, reference, then_do, state, boot_id, expires_ms, created_ms, ended_ms FROM boot_once";
const MEMBER: &str =
    "SELECT rollout, machine, rank, step, state, reason, admitted_ms, done_ms FROM rollout_members";

impl Store {
    /// Creates a rollout with its members; [`StoreError::Conflict`] if the name is taken.
    pub async fn insert_rollout(
        &self,
        r: &RolloutRow,
        members: &[MemberRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let taken: Option<String> = sqlx::query_scalar("SELECT name FROM rollouts WHERE name = $1")
            .bind(&r.name)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!("rollout {:?} exists", r.name)));
        }
        sqlx::query(
            "INSERT INTO rollouts (name, selector, image, version, manifest, steps, step, state, paused, \
             max_in_flight, budget, bake_ms, deadline_ms, on_budget, reboot, step_done_ms, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(&r.name)
        .bind(&r.selector)
        .bind(&r.image)
        .bind(&r.version)
        .bind(&r.manifest)
        .bind(&r.steps)
        .bind(r.step)
        .bind(&r.state)
        .bind(&r.paused)
        .bind(r.max_in_flight)
        .bind(&r.budget)
        .bind(r.bake_ms)
        .bind(r.deadline_ms)
        .bind(&r.on_budget)
        .bind(&r.reboot)
        .bind(r.step_done_ms)
        .bind(r.created_ms)
        .bind(r.updated_ms)
        .execute(&mut *tx)
        .await?;
        for m in members {
            sqlx::query(
                "INSERT INTO rollout_members (rollout, machine, rank, step, state, reason) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&m.rollout)
            .bind(&m.machine)
            .bind(&m.rank)
            .bind(m.step)
            .bind(&m.state)
            .bind(&m.reason)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One rollout.
    pub async fn rollout(&self, name: &str) -> Result<Option<RolloutRow>, StoreError> {
        Ok(
            sqlx::query_as(AssertSqlSafe(format!("{ROLLOUT} WHERE name = $1")))
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Every rollout, newest first.
    pub async fn rollouts(&self) -> Result<Vec<RolloutRow>, StoreError> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "{ROLLOUT} ORDER BY created_ms DESC, name"
        )))
        .fetch_all(&self.pool)
        .await?)
    }

    /// A rollout's members, in rank order.
    pub async fn rollout_members(&self, name: &str) -> Result<Vec<MemberRow>, StoreError> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "{MEMBER} WHERE rollout = $1 ORDER BY rank"
        )))
        .bind(name)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Rollouts the controller has work in (running, paused, rolling back).
    pub async fn active_rollouts(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT name FROM rollouts WHERE state IN ('running', 'paused', 'rolling_back') ORDER BY created_ms, name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Machines admitted by a running or paused rollout (the decision reads them).
    pub async fn rollout_admissions(&self) -> Result<Vec<AdmissionRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT m.machine, m.rollout, m.step, r.image, r.version FROM rollout_members m \
             JOIN rollouts r ON r.name = m.rollout \
             WHERE r.state IN ('running', 'paused') AND m.state IN ('admitted', 'succeeded', 'failed') \
             ORDER BY r.created_ms, m.machine",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// A rollout, in a transaction.
    pub(crate) async fn rollout_in(
        &self,
        tx: &mut Tx,
        name: &str,
    ) -> Result<Option<RolloutRow>, StoreError> {
        Ok(
            sqlx::query_as(AssertSqlSafe(format!("{ROLLOUT} WHERE name = $1")))
                .bind(name)
                .fetch_optional(&mut **tx)
                .await?,
        )
    }

    /// A rollout's members, in a transaction.
    pub(crate) async fn members_in(
        &self,
        tx: &mut Tx,
        name: &str,
    ) -> Result<Vec<MemberRow>, StoreError> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "{MEMBER} WHERE rollout = $1 ORDER BY rank"
        )))
        .bind(name)
        .fetch_all(&mut **tx)
        .await?)
    }

    /// The attempts on `manifest` of `rollout`'s admitted members since each was
    /// admitted: `(machine, state, loaded)`.
    pub(crate) async fn member_boots_in(
        &self,
        tx: &mut Tx,
        rollout: &str,
        manifest: &str,
    ) -> Result<Vec<(String, String, bool)>, StoreError> {
        let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
            "SELECT b.machine, b.state, b.loaded_ms FROM boots b JOIN rollout_members m \
             ON m.machine = b.machine AND m.rollout = $1 \
             WHERE b.manifest = $2 AND m.state = 'admitted' AND b.started_ms >= m.admitted_ms",
        )
        .bind(rollout)
        .bind(manifest)
        .fetch_all(&mut **tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(m, s, l)| (m, s, l.is_some()))
            .collect())
    }

    /// Moves a member from `from` to `to` (no-op if it is not in `from`); `true` if it moved.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn move_member_in(
        &self,
        tx: &mut Tx,
        rollout: &str,
        machine: &str,
        from: &str,
        to: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let q = if to == "admitted" {
            "UPDATE rollout_members SET state = $4, reason = $5, admitted_ms = $6, done_ms = NULL \
             WHERE rollout = $1 AND machine = $2 AND state = $3"
        } else {
            "UPDATE rollout_members SET state = $4, reason = $5, done_ms = $6 \
             WHERE rollout = $1 AND machine = $2 AND state = $3"
        };
        let r = sqlx::query(q)
            .bind(rollout)
            .bind(machine)
            .bind(from)
            .bind(to)
            .bind(reason)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Sets a rollout's state, pause reasons, step and bake start.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn update_rollout_in(
        &self,
        tx: &mut Tx,
        name: &str,
        state: &str,
        paused: &str,
        step: i64,
        step_done_ms: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE rollouts SET state = $2, paused = $3, step = $4, step_done_ms = $5, updated_ms = $6 WHERE name = $1",
        )
        .bind(name)
        .bind(state)
        .bind(paused)
        .bind(step)
        .bind(step_done_ms)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Sets a pin in a transaction (a `set` in its history): what a completed rollout
    /// leaves behind.
    pub(crate) async fn set_pin_in(
        &self,
        tx: &mut Tx,
        target: &str,
        reference: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pins (target, reference, updated_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (target) DO UPDATE SET reference = excluded.reference, updated_ms = excluded.updated_ms",
        )
        .bind(target)
        .bind(reference)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO pin_history (target, reference, at_ms, kind) VALUES ($1, $2, $3, 'set')",
        )
        .bind(target)
        .bind(reference)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Resets a rollout's failed members to waiting (a retry); how many.
    pub(crate) async fn retry_members_in(
        &self,
        tx: &mut Tx,
        rollout: &str,
    ) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE rollout_members SET state = 'waiting', reason = NULL, admitted_ms = NULL, done_ms = NULL \
             WHERE rollout = $1 AND state = 'failed'",
        )
        .bind(rollout)
        .execute(&mut **tx)
        .await?;
        Ok(r.rows_affected())
    }

    /// Boot-once requests still to be used or in use (pending or booting), oldest first.
    pub async fn pending_boot_once(&self) -> Result<Vec<BootOnceRow>, StoreError> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "{ONCE} WHERE state IN ('pending', 'booting') ORDER BY created_ms"
        )))
        .fetch_all(&self.pool)
        .await?)
    }

    /// A boot-once request by id.
    pub async fn boot_once(&self, id: &str) -> Result<Option<BootOnceRow>, StoreError> {
        Ok(
            sqlx::query_as(AssertSqlSafe(format!("{ONCE} WHERE id = $1")))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Creates a boot-once request (ending any other open one of the machine, as
    /// `cancelled`) with its fleet event; the revision moves.
    pub async fn insert_boot_once(&self, o: &BootOnceRow, event: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE boot_once SET state = 'cancelled', ended_ms = $2 WHERE machine = $1 AND state IN ('pending', 'booting')",
        )
        .bind(&o.machine)
        .bind(o.created_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO boot_once (id, machine, reference, then_do, state, expires_ms, created_ms) \
             VALUES ($1, $2, $3, $4, 'pending', $5, $6)",
        )
        .bind(&o.id)
        .bind(&o.machine)
        .bind(&o.reference)
        .bind(&o.then_do)
        .bind(o.expires_ms)
        .bind(o.created_ms)
        .execute(&mut *tx)
        .await?;
        self.fleet_event(
            &mut tx,
            o.created_ms,
            "boot_once.created",
            &o.machine,
            event,
        )
        .await?;
        super::commit_changed(tx).await
    }

    /// Marks boot-once `id` as booting attempt `boot` (once).
    pub(crate) async fn boot_once_booting_in(
        &self,
        tx: &mut Tx,
        id: &str,
        boot: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE boot_once SET state = 'booting', boot_id = $2 WHERE id = $1 AND state = 'pending'")
            .bind(id)
            .bind(boot)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Ends boot-once `id` as `state` (booted, failed) if it is still open; the row if it ended.
    pub(crate) async fn end_boot_once_in(
        &self,
        tx: &mut Tx,
        id: &str,
        state: &str,
        now: i64,
    ) -> Result<Option<BootOnceRow>, StoreError> {
        let r = sqlx::query(
            "UPDATE boot_once SET state = $2, ended_ms = $3 WHERE id = $1 AND state IN ('pending', 'booting')",
        )
        .bind(id)
        .bind(state)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        Ok(
            sqlx::query_as(AssertSqlSafe(format!("{ONCE} WHERE id = $1")))
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?,
        )
    }

    /// Pending boot-once requests whose TTL passed (store clock) become `expired`; their ids.
    pub(crate) async fn expire_boot_once(&self) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin().await?;
        let ids: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT id FROM boot_once WHERE state = 'pending' AND expires_ms <= {}",
            super::attempts::store_now(self.dialect)
        )))
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            return Ok(ids);
        }
        let now = super::now_ms();
        for id in &ids {
            if let Some(o) = self.end_boot_once_in(&mut tx, id, "expired", now).await? {
                let data = serde_json::json!({"id": o.id, "machine": o.machine, "reference": o.reference, "state": "expired"});
                self.fleet_event(
                    &mut tx,
                    now,
                    "boot_once.expired",
                    &o.machine,
                    &data.to_string(),
                )
                .await?;
            }
        }
        super::commit_changed(tx).await?;
        Ok(ids)
    }
}
