//! Who changed a machine or an image's versions, and how: the rows of
//! `0008_write_actors.sql`, written inside the transaction of the write they record
//! ([`record_machine`], [`record_version`]), so a change is never without its entry.
//! `actor` is the API token's name, `None` for the local CLI (as in the pin history).

use super::{Store, StoreError, Tx, now_ms};

/// One change of a machine.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct MachineChange {
    pub machine: String,
    /// `add`, `update` (the whole machine replaced), `label`, `rm`.
    pub kind: String,
    pub at_ms: i64,
    /// An API token's name; `None` for the local CLI.
    pub actor: Option<String>,
    /// What it set, as JSON text: the machine after an add or update, the label edits
    /// of a label; `None` for a removal.
    pub detail: Option<String>,
}

/// One change of an image's versions.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct VersionChange {
    pub name: String,
    pub version: String,
    /// `publish` or `rm`.
    pub kind: String,
    /// The version's manifest digest, when known.
    pub manifest: Option<String>,
    pub at_ms: i64,
    pub actor: Option<String>,
}

/// Appends a machine change inside `tx`.
pub(crate) async fn record_machine(
    tx: &mut Tx,
    machine: &str,
    kind: &str,
    actor: Option<&str>,
    detail: Option<String>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO machine_history (machine, kind, at_ms, actor, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(machine)
    .bind(kind)
    .bind(now_ms())
    .bind(actor)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Appends a version change inside `tx`.
pub(crate) async fn record_version(
    tx: &mut Tx,
    name: &str,
    version: &str,
    kind: &str,
    manifest: Option<&str>,
    actor: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO version_history (name, version, kind, manifest, at_ms, actor) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(name)
    .bind(version)
    .bind(kind)
    .bind(manifest)
    .bind(now_ms())
    .bind(actor)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Every change of machine `name`, oldest first (also after its removal).
    pub async fn machine_history(&self, name: &str) -> Result<Vec<MachineChange>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT machine, kind, at_ms, actor, detail FROM machine_history WHERE machine = $1 ORDER BY id",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every publication and removal of image `name`'s versions, oldest first.
    pub async fn version_history(&self, name: &str) -> Result<Vec<VersionChange>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT name, version, kind, manifest, at_ms, actor FROM version_history WHERE name = $1 ORDER BY id",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?)
    }
}
