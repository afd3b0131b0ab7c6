//! Pins: which image reference a target (MAC, machine, label selector, default) boots,
//! with an append-only history of every change. Targets and references are stored as
//! their canonical text; parsing and meaning belong to the inventory.

use super::{Store, StoreError, bump, commit_changed, now_ms};

/// A pin as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct PinRow {
    pub target: String,
    pub reference: String,
    pub updated_ms: i64,
}

/// One entry of a pin's history (`reference` `None` = the pin was removed).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct PinChange {
    pub target: String,
    pub reference: Option<String>,
    pub at_ms: i64,
}

impl Store {
    /// Sets a pin (replacing any previous one) and records it in the history.
    pub async fn set_pin(&self, target: &str, reference: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO pins (target, reference, updated_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (target) DO UPDATE SET reference = excluded.reference, updated_ms = excluded.updated_ms",
        )
        .bind(target)
        .bind(reference)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO pin_history (target, reference, at_ms) VALUES ($1, $2, $3)")
            .bind(target)
            .bind(reference)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        commit_changed(tx).await?;
        Ok(())
    }

    /// Removes a pin; returns whether it existed.
    pub async fn remove_pin(&self, target: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM pins WHERE target = $1")
            .bind(target)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            sqlx::query("INSERT INTO pin_history (target, reference, at_ms) VALUES ($1, NULL, $2)")
                .bind(target)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            bump(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Every pin, by target.
    pub async fn pins(&self) -> Result<Vec<PinRow>, StoreError> {
        Ok(
            sqlx::query_as("SELECT target, reference, updated_ms FROM pins ORDER BY target")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The history of one target's pin, oldest first.
    pub async fn pin_history(&self, target: &str) -> Result<Vec<PinChange>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT target, reference, at_ms FROM pin_history WHERE target = $1 ORDER BY id",
        )
        .bind(target)
        .fetch_all(&self.pool)
        .await?)
    }
}
