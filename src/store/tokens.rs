//! API tokens as stored: a name, a scope, the SHA-256 of the secret (hex), and when it
//! was created, expires and was revoked. Queries only: what a scope allows and how a
//! secret is checked belong to [`crate::auth`]. Tokens never change a boot decision, so
//! these writes do not bump the revision.

use super::{Store, StoreError, is_unique_violation};

/// A token as stored (the secret itself never is).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct TokenRow {
    pub name: String,
    pub scope: String,
    /// SHA-256 of the whole token text, lower-case hex.
    #[serde(skip)]
    pub hash: String,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

/// `SELECT` of every column, then the rest of the query (a literal: sqlx wants one).
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT name, scope, hash, created_ms, expires_ms, revoked_ms FROM api_tokens",
            $rest
        )
    };
}

impl Store {
    /// Records a new token; [`StoreError::Conflict`] if the name (or, by chance, the
    /// hash) is taken, revoked tokens included.
    pub async fn insert_token(&self, t: &TokenRow) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let r = sqlx::query(
            "INSERT INTO api_tokens (name, scope, hash, created_ms, expires_ms, revoked_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.name)
        .bind(&t.scope)
        .bind(&t.hash)
        .bind(t.created_ms)
        .bind(t.expires_ms)
        .bind(t.revoked_ms)
        .execute(&mut *tx)
        .await;
        match r {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "a token named {:?} exists (revoked tokens keep their name)",
                    t.name
                )));
            }
            r => r?,
        };
        tx.commit().await?;
        Ok(())
    }

    /// The token named `name`, revoked or not.
    pub async fn token(&self, name: &str) -> Result<Option<TokenRow>, StoreError> {
        Ok(sqlx::query_as(select!(" WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Every token, by name.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        Ok(sqlx::query_as(select!(" ORDER BY name"))
            .fetch_all(&self.pool)
            .await?)
    }

    /// Revokes `name` at `at_ms` (a token revoked before keeps its first time).
    /// `false`: no such token.
    pub async fn revoke_token(&self, name: &str, at_ms: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE api_tokens SET revoked_ms = COALESCE(revoked_ms, $2) WHERE name = $1",
        )
        .bind(name)
        .bind(at_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }
}
