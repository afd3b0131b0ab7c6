//! Boot attempts, holds and the fleet outbox: the rows of `0007_fleet_rollouts.sql`.
//! Queries only: which transition is allowed, what counts as a try and when a machine is
//! held are decided by `crate::attempt`; these functions run inside its transactions
//! (`&mut Tx`) so one report is one transaction.
//!
//! Deadlines are compared with the store's clock ([`store_now`]), not the caller's.

use sqlx::Row;

use sqlx::AssertSqlSafe;

use super::{Dialect, Store, StoreError, Tx};

/// One boot attempt as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct BootRow {
    pub id: String,
    pub machine: String,
    pub mac: String,
    pub manifest: String,
    pub image: String,
    pub version: String,
    pub source: String,
    pub attempt: i64,
    pub state: String,
    pub started_ms: i64,
    pub loaded_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub deadline_ms: i64,
    pub reason: Option<String>,
}

/// A new attempt, as the script route saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBoot {
    pub id: String,
    pub machine: String,
    pub mac: String,
    pub manifest: String,
    pub image: String,
    pub version: String,
    pub source: String,
    pub token_sha256: String,
    /// How long after the store's now its deadline is.
    pub deadline_after_ms: i64,
}

/// A hold as stored: `manifest` `None` is a quarantine (no known good).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct HoldRow {
    pub machine: String,
    pub manifest: Option<String>,
    pub image: Option<String>,
    pub version: Option<String>,
    pub bad_manifest: String,
    pub bad_image: String,
    pub bad_version: String,
    pub tries: i64,
    pub rollout: Option<String>,
    pub since_ms: i64,
}

/// A fleet event (the webhook outbox).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct FleetEventRow {
    pub id: i64,
    pub at_ms: i64,
    pub kind: String,
    pub subject: String,
    pub data: String,
}

const BOOT_COLUMNS: &str = "id, machine, mac, manifest, image, version, source, attempt, state, \
     started_ms, loaded_ms, ended_ms, deadline_ms, reason";

/// The SQL expression of the store's clock, in Unix milliseconds.
pub(crate) fn store_now(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS BIGINT)",
        Dialect::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    }
}

/// The "counts as a try" rule of `crate::attempt::counts_as_try`, as SQL.
const COUNTED: &str =
    "(state IN ('failed', 'timed_out') OR (state = 'superseded' AND loaded_ms IS NOT NULL))";

impl Store {
    /// The store's clock now.
    pub async fn clock_ms(&self) -> Result<i64, StoreError> {
        let q = format!("SELECT {}", store_now(self.dialect));
        Ok(sqlx::query_scalar(AssertSqlSafe(q))
            .fetch_one(&self.pool)
            .await?)
    }

    /// Inserts a new attempt (its number and deadline computed in the transaction); an id
    /// already stored is left alone. Returns the attempt number.
    pub(crate) async fn insert_boot(&self, tx: &mut Tx, b: &NewBoot) -> Result<i64, StoreError> {
        let tries = counted_tries(tx, &b.machine, &b.manifest).await?;
        let q = format!(
            "INSERT INTO boots (id, machine, mac, manifest, image, version, source, attempt, state, \
             token_sha256, started_ms, deadline_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, {now}, {now} + $10) \
             ON CONFLICT (id) DO NOTHING",
            now = store_now(self.dialect)
        );
        sqlx::query(AssertSqlSafe(q))
            .bind(&b.id)
            .bind(&b.machine)
            .bind(&b.mac)
            .bind(&b.manifest)
            .bind(&b.image)
            .bind(&b.version)
            .bind(&b.source)
            .bind(tries + 1)
            .bind(&b.token_sha256)
            .bind(b.deadline_after_ms)
            .execute(&mut **tx)
            .await?;
        Ok(tries + 1)
    }

    /// The open attempts of `machine` other than `except`.
    pub(crate) async fn open_boots_of(
        &self,
        tx: &mut Tx,
        machine: &str,
        except: &str,
    ) -> Result<Vec<BootRow>, StoreError> {
        let q = format!(
            "SELECT {BOOT_COLUMNS} FROM boots WHERE machine = $1 AND id <> $2 \
             AND state IN ('pending', 'loading') ORDER BY started_ms"
        );
        Ok(sqlx::query_as(AssertSqlSafe(q))
            .bind(machine)
            .bind(except)
            .fetch_all(&mut **tx)
            .await?)
    }

    /// One attempt, in a transaction.
    pub(crate) async fn boot_in(
        &self,
        tx: &mut Tx,
        id: &str,
    ) -> Result<Option<BootRow>, StoreError> {
        let q = format!("SELECT {BOOT_COLUMNS} FROM boots WHERE id = $1");
        Ok(sqlx::query_as(AssertSqlSafe(q))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?)
    }

    /// Moves an attempt to `state` (stamping `loaded_ms` for loading, `ended_ms` for an
    /// ending), with the store's clock.
    pub(crate) async fn set_boot_state(
        &self,
        tx: &mut Tx,
        id: &str,
        state: &str,
        terminal: bool,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = store_now(self.dialect);
        let q = if terminal {
            format!(
                "UPDATE boots SET state = $2, ended_ms = {now}, reason = COALESCE($3, reason) WHERE id = $1"
            )
        } else {
            format!(
                "UPDATE boots SET state = $2, loaded_ms = COALESCE(loaded_ms, {now}), reason = COALESCE($3, reason) WHERE id = $1"
            )
        };
        sqlx::query(AssertSqlSafe(q))
            .bind(id)
            .bind(state)
            .bind(reason)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// The ids of open attempts whose deadline passed (store clock).
    pub(crate) async fn overdue_boots(&self) -> Result<Vec<String>, StoreError> {
        let q = format!(
            "SELECT id FROM boots WHERE state IN ('pending', 'loading') AND deadline_ms <= {} ORDER BY deadline_ms LIMIT 1000",
            store_now(self.dialect)
        );
        Ok(sqlx::query_scalar(AssertSqlSafe(q))
            .fetch_all(&self.pool)
            .await?)
    }

    /// Tries of `machine` on `manifest` spent since it last booted it, in a transaction.
    pub(crate) async fn tries_in(
        &self,
        tx: &mut Tx,
        machine: &str,
        manifest: &str,
    ) -> Result<i64, StoreError> {
        counted_tries(tx, machine, manifest).await
    }

    /// The manifest (and its image and version) `machine` last booted, other than `not`.
    pub(crate) async fn known_good(
        &self,
        tx: &mut Tx,
        machine: &str,
        not: &str,
    ) -> Result<Option<(String, String, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT manifest, image, version FROM boots WHERE machine = $1 AND state = 'booted' \
             AND manifest <> $2 ORDER BY ended_ms DESC LIMIT 1",
        )
        .bind(machine)
        .bind(not)
        .fetch_optional(&mut **tx)
        .await?;
        Ok(match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)),
            None => None,
        })
    }

    /// A machine's attempts, newest first.
    pub async fn boots_of(&self, machine: &str, limit: i64) -> Result<Vec<BootRow>, StoreError> {
        let q = format!(
            "SELECT {BOOT_COLUMNS} FROM boots WHERE machine = $1 ORDER BY started_ms DESC, id LIMIT $2"
        );
        Ok(sqlx::query_as(AssertSqlSafe(q))
            .bind(machine)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// One attempt by id.
    pub async fn boot(&self, id: &str) -> Result<Option<BootRow>, StoreError> {
        let q = format!("SELECT {BOOT_COLUMNS} FROM boots WHERE id = $1");
        Ok(sqlx::query_as(AssertSqlSafe(q))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Every attempt (for the fleet's read models), newest first, at most `limit`.
    pub async fn boots(&self, limit: i64) -> Result<Vec<BootRow>, StoreError> {
        let q = format!("SELECT {BOOT_COLUMNS} FROM boots ORDER BY started_ms DESC, id LIMIT $1");
        Ok(sqlx::query_as(AssertSqlSafe(q))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// The boot events of `mac` between two times (an attempt's events).
    pub async fn event_count_between(
        &self,
        mac: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM boot_events WHERE mac = $1 AND at_ms >= $2 AND at_ms <= $3",
        )
        .bind(mac)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Writes a hold (replacing any) and its history entry.
    pub(crate) async fn insert_hold(
        &self,
        tx: &mut Tx,
        h: &HoldRow,
        detail: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO holds (machine, manifest, image, version, bad_manifest, bad_image, bad_version, tries, rollout, since_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (machine) DO UPDATE SET \
             manifest = excluded.manifest, image = excluded.image, version = excluded.version, \
             bad_manifest = excluded.bad_manifest, bad_image = excluded.bad_image, bad_version = excluded.bad_version, \
             tries = excluded.tries, rollout = excluded.rollout, since_ms = excluded.since_ms",
        )
        .bind(&h.machine)
        .bind(&h.manifest)
        .bind(&h.image)
        .bind(&h.version)
        .bind(&h.bad_manifest)
        .bind(&h.bad_image)
        .bind(&h.bad_version)
        .bind(h.tries)
        .bind(&h.rollout)
        .bind(h.since_ms)
        .execute(&mut **tx)
        .await?;
        history(
            tx,
            &h.machine,
            "hold",
            h.manifest.as_deref(),
            Some(&h.bad_manifest),
            detail,
            h.since_ms,
        )
        .await
    }

    /// The hold of `machine`, in a transaction.
    pub(crate) async fn hold_in(
        &self,
        tx: &mut Tx,
        machine: &str,
    ) -> Result<Option<HoldRow>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM holds WHERE machine = $1")
            .bind(machine)
            .fetch_optional(&mut **tx)
            .await?)
    }

    /// Every hold.
    pub async fn holds(&self) -> Result<Vec<HoldRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT machine, manifest, image, version, bad_manifest, bad_image, bad_version, tries, rollout, since_ms \
             FROM holds ORDER BY machine",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Clears `machine`'s hold, recording it; `None` when it had none.
    pub async fn release_hold(
        &self,
        machine: &str,
        now: i64,
    ) -> Result<Option<HoldRow>, StoreError> {
        let mut tx = self.begin().await?;
        let Some(h) = self.hold_in(&mut tx, machine).await? else {
            return Ok(None);
        };
        sqlx::query("DELETE FROM holds WHERE machine = $1")
            .bind(machine)
            .execute(&mut *tx)
            .await?;
        history(
            &mut tx,
            machine,
            "release",
            h.manifest.as_deref(),
            Some(&h.bad_manifest),
            "released by the operator",
            now,
        )
        .await?;
        self.fleet_event(
            &mut tx,
            now,
            "machine.released",
            machine,
            &serde_json::json!({
                "machine": machine, "bad_manifest": h.bad_manifest,
            })
            .to_string(),
        )
        .await?;
        super::commit_changed(tx).await?;
        Ok(Some(h))
    }

    /// Appends a fleet event (the webhook outbox) in a transaction.
    pub(crate) async fn fleet_event(
        &self,
        tx: &mut Tx,
        at_ms: i64,
        kind: &str,
        subject: &str,
        data: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO fleet_events (at_ms, kind, subject, data) VALUES ($1, $2, $3, $4)",
        )
        .bind(at_ms)
        .bind(kind)
        .bind(subject)
        .bind(data)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Fleet events after `after`, oldest first.
    pub async fn fleet_events(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<FleetEventRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, at_ms, kind, subject, data FROM fleet_events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

async fn counted_tries(tx: &mut Tx, machine: &str, manifest: &str) -> Result<i64, StoreError> {
    let q = format!(
        "SELECT COUNT(*) FROM boots WHERE machine = $1 AND manifest = $2 AND {COUNTED} AND started_ms > \
         COALESCE((SELECT MAX(started_ms) FROM boots WHERE machine = $1 AND manifest = $2 AND state = 'booted'), -1)"
    );
    Ok(sqlx::query_scalar(AssertSqlSafe(q))
        .bind(machine)
        .bind(manifest)
        .fetch_one(&mut **tx)
        .await?)
}

async fn history(
    tx: &mut Tx,
    machine: &str,
    kind: &str,
    manifest: Option<&str>,
    bad: Option<&str>,
    detail: &str,
    at_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO hold_history (machine, kind, manifest, bad_manifest, detail, at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(machine)
    .bind(kind)
    .bind(manifest)
    .bind(bad)
    .bind(detail)
    .bind(at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
