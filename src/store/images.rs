//! Image versions (name, version → manifest digest) and channels (movable pointers to a
//! version, with their history). The manifests themselves live in the blob store.

use super::{Store, StoreError, commit_changed, is_unique_violation, now_ms};

/// A published image version.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct VersionRow {
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` of the manifest.
    pub manifest: String,
    pub created_ms: i64,
}

/// Where a channel points now.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct ChannelRow {
    pub name: String,
    pub channel: String,
    pub version: String,
    pub updated_ms: i64,
}

/// One move of a channel (`version` `None` = removed).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct ChannelMove {
    pub version: Option<String>,
    pub at_ms: i64,
    /// Who moved it: an API token's name; `None` for the local CLI.
    pub actor: Option<String>,
}

impl Store {
    /// Records a version. Returns `Ok(None)` when inserted, `Ok(Some(existing manifest))`
    /// when this name and version already exist (the caller compares contents).
    pub async fn insert_version(
        &self,
        name: &str,
        version: &str,
        manifest: &str,
    ) -> Result<Option<String>, StoreError> {
        self.insert_version_by(name, version, manifest, None).await
    }

    /// [`Store::insert_version`], recording `actor` in the version history.
    pub async fn insert_version_by(
        &self,
        name: &str,
        version: &str,
        manifest: &str,
        actor: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.begin().await?;
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT manifest FROM image_versions WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        if existing.is_some() {
            return Ok(existing);
        }
        let r = sqlx::query(
            "INSERT INTO image_versions (name, version, manifest, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(name)
        .bind(version)
        .bind(manifest)
        .bind(now_ms())
        .execute(&mut *tx)
        .await;
        if let Err(e) = r {
            if is_unique_violation(&e) {
                return Err(StoreError::Conflict(format!(
                    "{name}@{version} was published concurrently; retry"
                )));
            }
            return Err(e.into());
        }
        super::history::record_version(&mut tx, name, version, "publish", Some(manifest), actor)
            .await?;
        commit_changed(tx).await?;
        Ok(None)
    }

    /// Every version, by name then publication order.
    pub async fn versions(&self) -> Result<Vec<VersionRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT name, version, manifest, created_ms FROM image_versions ORDER BY name, created_ms, version",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Removes a version unless a channel points at it or a pin's reference is one of
    /// `pin_refs` (every spelling that resolves to this version). Checked and removed in
    /// one transaction, so a concurrent `pin set` cannot slip in between.
    pub async fn remove_version(
        &self,
        name: &str,
        version: &str,
        pin_refs: &[String],
    ) -> Result<bool, StoreError> {
        self.remove_version_by(name, version, pin_refs, None).await
    }

    /// [`Store::remove_version`], recording `actor` in the version history.
    pub async fn remove_version_by(
        &self,
        name: &str,
        version: &str,
        pin_refs: &[String],
        actor: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let chans: Vec<String> = sqlx::query_scalar(
            "SELECT channel FROM channels WHERE name = $1 AND version = $2 ORDER BY channel",
        )
        .bind(name)
        .bind(version)
        .fetch_all(&mut *tx)
        .await?;
        if !chans.is_empty() {
            return Err(StoreError::Conflict(format!(
                "{name}@{version} is in use by channel(s) {}; move them first (tabula image tag)",
                chans.join(", ")
            )));
        }
        let mut pinned = Vec::new();
        for r in pin_refs {
            let targets: Vec<String> =
                sqlx::query_scalar("SELECT target FROM pins WHERE reference = $1 ORDER BY target")
                    .bind(r)
                    .fetch_all(&mut *tx)
                    .await?;
            pinned.extend(targets);
        }
        if !pinned.is_empty() {
            return Err(StoreError::Conflict(format!(
                "{name}@{version} is pinned by {}; re-pin them first",
                pinned.join(", ")
            )));
        }
        let manifest: Option<String> = sqlx::query_scalar(
            "SELECT manifest FROM image_versions WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        let n = sqlx::query("DELETE FROM image_versions WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            let m = manifest.as_deref();
            super::history::record_version(&mut tx, name, version, "rm", m, actor).await?;
        }
        commit_changed(tx).await?;
        Ok(n > 0)
    }

    /// Points `name:channel` at `version` (which must exist) and records the move.
    pub async fn set_channel(
        &self,
        name: &str,
        channel: &str,
        version: &str,
    ) -> Result<(), StoreError> {
        self.set_channel_by(name, channel, version, None).await
    }

    /// [`Store::set_channel`], recording `actor` (an API token's name) in the history.
    pub async fn set_channel_by(
        &self,
        name: &str,
        channel: &str,
        version: &str,
        actor: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO channels (name, channel, version, updated_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name, channel) DO UPDATE SET version = excluded.version, updated_ms = excluded.updated_ms",
        )
        .bind(name)
        .bind(channel)
        .bind(version)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO channel_history (name, channel, version, at_ms, actor) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(channel)
        .bind(version)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        commit_changed(tx).await?;
        Ok(())
    }

    /// Every channel.
    pub async fn channels(&self) -> Result<Vec<ChannelRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT name, channel, version, updated_ms FROM channels ORDER BY name, channel",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// How a channel moved, oldest first.
    pub async fn channel_history(
        &self,
        name: &str,
        channel: &str,
    ) -> Result<Vec<ChannelMove>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT version, at_ms, actor FROM channel_history WHERE name = $1 AND channel = $2 ORDER BY id",
        )
        .bind(name)
        .bind(channel)
        .fetch_all(&self.pool)
        .await?)
    }
}
