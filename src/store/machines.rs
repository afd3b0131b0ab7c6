//! Machines ([`Machine`]: a name, one or more MACs, an optional SMBIOS UUID, hostname,
//! fixed address and `key=value` labels), stored across three tables.

use std::collections::BTreeMap;

use sqlx::Row;

use super::history::record_machine;
use super::{Store, StoreError, commit_changed, is_unique_violation, now_ms};
use crate::boot::Machine;

impl Store {
    /// Adds a machine. Fails with [`StoreError::Conflict`] naming the clash if the name,
    /// a MAC, the UUID or the address already belongs to another machine.
    pub async fn add_machine(&self, m: &Machine) -> Result<(), StoreError> {
        self.add_machine_by(m, None).await
    }

    /// [`Store::add_machine`], recording `actor` (an API token's name) in its history.
    pub async fn add_machine_by(&self, m: &Machine, actor: Option<&str>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let conflict = |what: String| StoreError::Conflict(what);
        if let Err(e) = sqlx::query(
            "INSERT INTO machines (name, uuid, hostname, address, created_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&m.name)
        .bind(&m.uuid)
        .bind(&m.hostname)
        .bind(m.address.map(|a| a.to_string()))
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        {
            if is_unique_violation(&e) {
                // PostgreSQL refuses every statement of a transaction after an error:
                // end it, then look the owner up outside.
                tx.rollback().await?;
                let owner: Option<String> = sqlx::query_scalar(
                    "SELECT name FROM machines WHERE name = $1 OR uuid = $2 OR address = $3",
                )
                .bind(&m.name)
                .bind(&m.uuid)
                .bind(m.address.map(|a| a.to_string()))
                .fetch_optional(&self.pool)
                .await?;
                return Err(conflict(format!(
                    "machine {:?} clashes with existing machine {:?} (same name, UUID or address)",
                    m.name,
                    owner.unwrap_or_default()
                )));
            }
            return Err(e.into());
        }
        for mac in &m.macs {
            let r = sqlx::query("INSERT INTO machine_macs (mac, machine) VALUES ($1, $2)")
                .bind(mac.to_string())
                .bind(&m.name)
                .execute(&mut *tx)
                .await;
            if let Err(e) = r {
                if is_unique_violation(&e) {
                    tx.rollback().await?;
                    let owner: Option<String> =
                        sqlx::query_scalar("SELECT machine FROM machine_macs WHERE mac = $1")
                            .bind(mac.to_string())
                            .fetch_optional(&self.pool)
                            .await?;
                    return Err(conflict(format!(
                        "MAC {mac} already belongs to machine {:?}",
                        owner.unwrap_or_else(|| m.name.clone())
                    )));
                }
                return Err(e.into());
            }
        }
        for (k, v) in &m.labels {
            sqlx::query("INSERT INTO machine_labels (machine, key, value) VALUES ($1, $2, $3)")
                .bind(&m.name)
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
        }
        let detail = serde_json::to_string(m).ok();
        record_machine(&mut tx, &m.name, "add", actor, detail).await?;
        commit_changed(tx).await?;
        Ok(())
    }

    /// Removes a machine; returns whether it existed.
    pub async fn remove_machine(&self, name: &str) -> Result<bool, StoreError> {
        self.remove_machine_by(name, None).await
    }

    /// [`Store::remove_machine`], recording `actor` in its history.
    pub async fn remove_machine_by(
        &self,
        name: &str,
        actor: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM machines WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            record_machine(&mut tx, name, "rm", actor, None).await?;
        }
        commit_changed(tx).await?;
        Ok(n > 0)
    }

    /// Sets (`Some`) or removes (`None`) labels of a machine; returns whether it exists.
    pub async fn label_machine(
        &self,
        name: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<bool, StoreError> {
        self.label_machine_by(name, changes, None).await
    }

    /// [`Store::label_machine`], recording `actor` in its history.
    pub async fn label_machine_by(
        &self,
        name: &str,
        changes: &[(String, Option<String>)],
        actor: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT name FROM machines WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Ok(false);
        }
        for (k, v) in changes {
            match v {
                Some(v) => {
                    sqlx::query(
                        "INSERT INTO machine_labels (machine, key, value) VALUES ($1, $2, $3) \
                         ON CONFLICT (machine, key) DO UPDATE SET value = excluded.value",
                    )
                    .bind(name)
                    .bind(k)
                    .bind(v)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM machine_labels WHERE machine = $1 AND key = $2")
                        .bind(name)
                        .bind(k)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        let detail: std::collections::BTreeMap<&str, Option<&str>> = changes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        let detail = serde_json::json!({ "labels": detail }).to_string();
        record_machine(&mut tx, name, "label", actor, Some(detail)).await?;
        commit_changed(tx).await?;
        Ok(true)
    }

    /// Every machine, by name.
    pub async fn machines(&self) -> Result<Vec<Machine>, StoreError> {
        let rows = sqlx::query("SELECT name, uuid, hostname, address FROM machines ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let mut out: BTreeMap<String, Machine> = BTreeMap::new();
        for r in rows {
            let name: String = r.try_get("name")?;
            let address: Option<String> = r.try_get("address")?;
            let address = match address {
                Some(a) => Some(a.parse().map_err(|_| StoreError::Corrupt {
                    what: "machine address",
                    value: a,
                })?),
                None => None,
            };
            out.insert(
                name.clone(),
                Machine {
                    name,
                    macs: Vec::new(),
                    uuid: r.try_get("uuid")?,
                    hostname: r.try_get("hostname")?,
                    address,
                    labels: BTreeMap::new(),
                },
            );
        }
        for r in sqlx::query("SELECT mac, machine FROM machine_macs ORDER BY mac")
            .fetch_all(&self.pool)
            .await?
        {
            let mac: String = r.try_get("mac")?;
            let machine: String = r.try_get("machine")?;
            let mac = mac.parse().map_err(|_| StoreError::Corrupt {
                what: "MAC",
                value: mac,
            })?;
            if let Some(m) = out.get_mut(&machine) {
                m.macs.push(mac);
            }
        }
        for r in sqlx::query("SELECT machine, key, value FROM machine_labels")
            .fetch_all(&self.pool)
            .await?
        {
            let machine: String = r.try_get("machine")?;
            if let Some(m) = out.get_mut(&machine) {
                m.labels.insert(r.try_get("key")?, r.try_get("value")?);
            }
        }
        Ok(out.into_values().collect())
    }

    /// One machine by name.
    pub async fn machine(&self, name: &str) -> Result<Option<Machine>, StoreError> {
        Ok(self.machines().await?.into_iter().find(|m| m.name == name))
    }
}
