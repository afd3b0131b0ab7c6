//! Scoped API tokens: what a token is, what its scope allows, and the one check every
//! control-plane front end makes ([`verify`]: the API's middleware today, the dashboard
//! next). A token reads `tabula.<name>.<secret>`: the name says which stored row to
//! compare with, the secret is 32 random bytes in hex. Only the SHA-256 of the whole
//! text is stored; it is compared in constant time.
//!
//! Must not: know HTTP (status codes and headers are `api::auth`'s), or print.

mod scope;

use std::time::Duration;

use sha2::{Digest as _, Sha256};

pub(crate) use scope::{Scope, UnknownScope};

use crate::store::{Store, StoreError, TokenRow, now_ms};

/// The text every token starts with (so a leaked one is recognisable in a scan).
const PREFIX: &str = "tabula.";

/// Who a verified request comes from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Principal {
    /// The token's name: the actor recorded in the histories its writes change.
    pub name: String,
    pub scope: Scope,
}

impl Principal {
    /// Whether this principal may do what `needed` guards.
    pub(crate) fn allows(&self, needed: Scope) -> bool {
        self.scope >= needed
    }
}

/// Why a token was not accepted, or a token command did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    /// No credentials were given.
    #[error(
        "no token: send `Authorization: Bearer <token>` (create one with `tabula token create`)"
    )]
    Missing,
    /// The credentials are not a tabula token, or no token matches them.
    #[error("the token is not valid")]
    Invalid,
    /// The token was revoked.
    #[error("the token was revoked")]
    Revoked,
    /// The token has expired.
    #[error("the token has expired")]
    Expired,
    /// A token name that cannot be used.
    #[error("token name {0:?}: 1 to 64 of a-z, A-Z, 0-9, '-' and '_'")]
    BadName(String),
    /// An expiry that cannot be used.
    #[error("expiry {0:?}: a duration such as 90d, 12h or 30m, more than zero")]
    BadExpiry(String),
    /// A token of that name exists (or existed: names are not reused).
    #[error("{0}")]
    Exists(String),
    /// No token of that name.
    #[error("no token named {0:?}")]
    NotFound(String),
    /// The state store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl AuthError {
    /// Whether the caller's credentials are the problem (an HTTP 401), not the request.
    pub(crate) fn is_credentials(&self) -> bool {
        matches!(
            self,
            AuthError::Missing | AuthError::Invalid | AuthError::Revoked | AuthError::Expired
        )
    }
}

/// A token just created: its secret text, shown once, and its row.
#[derive(Debug)]
pub(crate) struct Issued {
    pub token: String,
    pub row: TokenRow,
}

/// Checks a token name: 1–64 of `[A-Za-z0-9_-]` (no `.`, the separator in a token).
pub(crate) fn check_name(name: &str) -> Result<(), AuthError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(AuthError::BadName(name.to_string()))
    }
}

/// Reads an expiry such as `90d` (humantime's syntax); zero is refused.
pub(crate) fn parse_expiry(text: &str) -> Result<Duration, AuthError> {
    humantime::parse_duration(text.trim())
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| AuthError::BadExpiry(text.to_string()))
}

/// The stored form of a token's text.
fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Equal bytes, in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The name a token's text claims, if it has the shape of a token.
fn claimed_name(token: &str) -> Option<&str> {
    let (name, secret) = token.strip_prefix(PREFIX)?.rsplit_once('.')?;
    (check_name(name).is_ok() && secret.len() == 64).then_some(name)
}

/// Creates a token `name` of `scope`, valid for `expires` (`None`: until revoked).
pub(crate) async fn create(
    store: &Store,
    name: &str,
    scope: Scope,
    expires: Option<Duration>,
) -> Result<Issued, AuthError> {
    check_name(name)?;
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| AuthError::Store(StoreError::Conflict(format!("no randomness: {e}"))))?;
    let token = format!("{PREFIX}{name}.{}", hex::encode(secret));
    let created_ms = now_ms();
    let expires_ms = expires
        .map(|d| created_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
    let row = TokenRow {
        name: name.to_string(),
        scope: scope.as_str().to_string(),
        hash: hash(&token),
        created_ms,
        expires_ms,
        revoked_ms: None,
    };
    match store.insert_token(&row).await {
        Err(StoreError::Conflict(m)) => return Err(AuthError::Exists(m)),
        r => r.map_err(AuthError::Store)?,
    }
    Ok(Issued { token, row })
}

/// Every token (revoked and expired ones too).
pub(crate) async fn list(store: &Store) -> Result<Vec<TokenRow>, AuthError> {
    store.tokens().await.map_err(AuthError::Store)
}

/// Revokes `name`: from now on it is refused. Revoking twice is not an error.
pub(crate) async fn revoke(store: &Store, name: &str) -> Result<(), AuthError> {
    if store
        .revoke_token(name, now_ms())
        .await
        .map_err(AuthError::Store)?
    {
        Ok(())
    } else {
        Err(AuthError::NotFound(name.to_string()))
    }
}

/// Who `token` is, if it is a live token of this store. The secret is compared in
/// constant time, and before revocation and expiry are looked at, so a caller learns
/// either state only with the secret.
pub(crate) async fn verify(store: &Store, token: &str) -> Result<Principal, AuthError> {
    let given = hash(token);
    let Some(name) = claimed_name(token) else {
        return Err(AuthError::Invalid);
    };
    let Some(row) = store.token(name).await.map_err(AuthError::Store)? else {
        return Err(AuthError::Invalid);
    };
    if !same(given.as_bytes(), row.hash.as_bytes()) {
        return Err(AuthError::Invalid);
    }
    if row.revoked_ms.is_some() {
        return Err(AuthError::Revoked);
    }
    if row.expires_ms.is_some_and(|e| e <= now_ms()) {
        return Err(AuthError::Expired);
    }
    let scope = row.scope.parse().map_err(|_| {
        AuthError::Store(StoreError::Corrupt {
            what: "token scope",
            value: row.scope.clone(),
        })
    })?;
    Ok(Principal {
        name: row.name,
        scope,
    })
}

#[cfg(test)]
mod tests;
