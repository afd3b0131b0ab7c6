//! Replacing what a machine is (hostname, address, UUID, MACs, labels) in one
//! transaction: the API's `PATCH` reads the machine, applies the patch and writes the
//! whole result here. Queries only; validation is the fleet facade's.

use super::{Store, StoreError, Tx, commit_changed, is_unique_violation};
use crate::boot::Machine;

impl Store {
    /// Replaces every field of machine `m.name` but its name. `Ok(false)`: no such
    /// machine. A MAC, UUID or address of another machine is [`StoreError::Conflict`],
    /// with nothing written.
    pub async fn update_machine(&self, m: &Machine) -> Result<bool, StoreError> {
        self.update_machine_by(m, None).await
    }

    /// [`Store::update_machine`], recording `actor` (an API token's name) in its history.
    pub async fn update_machine_by(
        &self,
        m: &Machine,
        actor: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        match write(&mut tx, m).await {
            Ok(true) => {
                let detail = serde_json::to_string(m).ok();
                super::history::record_machine(&mut tx, &m.name, "update", actor, detail).await?;
                commit_changed(tx).await?;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await?;
                Err(StoreError::Conflict(format!(
                    "machine {:?}: a MAC, the UUID or the address belongs to another machine",
                    m.name
                )))
            }
            Err(e) => Err(e.into()),
        }
    }
}

async fn write(tx: &mut Tx, m: &Machine) -> Result<bool, sqlx::Error> {
    let n =
        sqlx::query("UPDATE machines SET uuid = $2, hostname = $3, address = $4 WHERE name = $1")
            .bind(&m.name)
            .bind(&m.uuid)
            .bind(&m.hostname)
            .bind(m.address.map(|a| a.to_string()))
            .execute(&mut **tx)
            .await?
            .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM machine_macs WHERE machine = $1")
        .bind(&m.name)
        .execute(&mut **tx)
        .await?;
    for mac in &m.macs {
        sqlx::query("INSERT INTO machine_macs (mac, machine) VALUES ($1, $2)")
            .bind(mac.to_string())
            .bind(&m.name)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query("DELETE FROM machine_labels WHERE machine = $1")
        .bind(&m.name)
        .execute(&mut **tx)
        .await?;
    for (k, v) in &m.labels {
        sqlx::query("INSERT INTO machine_labels (machine, key, value) VALUES ($1, $2, $3)")
            .bind(&m.name)
            .bind(k)
            .bind(v)
            .execute(&mut **tx)
            .await?;
    }
    Ok(true)
}
