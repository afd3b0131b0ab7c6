//! Pins: which image reference a target (MAC, machine, label selector, default) boots,
//! with an append-only history of every change. Targets and references are stored as
//! their canonical text; parsing and meaning belong to the inventory.

use std::fmt;

use super::requirements::{Requirement, first_missing};
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
    #[sqlx(try_from = "String")]
    pub kind: PinChangeKind,
    /// Who made the change: an API token's name; `None` for the local CLI.
    pub actor: Option<String>,
}

/// How a pin change came about (the `kind` column: `set`, `rm`, `rollback`, the names
/// the queries below write).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PinChangeKind {
    /// `pin set`.
    Set,
    /// `pin rm`.
    Rm,
    /// `pin rollback`: undoes the change before it.
    Rollback,
}

/// A `kind` column that names no [`PinChangeKind`].
#[derive(Debug, thiserror::Error)]
#[error("unknown pin change kind {0:?}")]
pub struct UnknownPinChange(pub String);

impl PinChangeKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PinChangeKind::Set => "set",
            PinChangeKind::Rm => "rm",
            PinChangeKind::Rollback => "rollback",
        }
    }
}

impl TryFrom<String> for PinChangeKind {
    type Error = UnknownPinChange;
    fn try_from(s: String) -> Result<Self, UnknownPinChange> {
        Ok(match s.as_str() {
            "set" => PinChangeKind::Set,
            "rm" => PinChangeKind::Rm,
            "rollback" => PinChangeKind::Rollback,
            _ => return Err(UnknownPinChange(s)),
        })
    }
}

impl fmt::Display for PinChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for PinChangeKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The pin a rollback goes back to: the history replayed as a stack (`set` and `rm`
/// push, `rollback` pops back to the pin it restored); the current entry is popped,
/// then removals, and the top is the answer. Pure.
pub(super) fn rollback_target(history: &[PinChange]) -> Option<String> {
    let mut stack = replay(history);
    stack.pop();
    while let Some(None) = stack.last() {
        stack.pop();
    }
    stack.pop().flatten()
}

fn replay(history: &[PinChange]) -> Vec<Option<String>> {
    let mut stack: Vec<Option<String>> = Vec::new();
    for c in history {
        if c.kind == PinChangeKind::Rollback {
            stack.pop();
            while let Some(None) = stack.last() {
                stack.pop();
            }
            if stack.last() != Some(&c.reference) {
                stack.push(c.reference.clone());
            }
        } else {
            stack.push(c.reference.clone());
        }
    }
    stack
}

impl Store {
    /// Sets a pin (replacing any previous one) and records it in the history, if every
    /// requirement holds in the same transaction ([`StoreError::Missing`] otherwise, with
    /// nothing written).
    pub async fn set_pin(
        &self,
        target: &str,
        reference: &str,
        needs: &[Requirement],
    ) -> Result<(), StoreError> {
        self.set_pin_by(target, reference, needs, None).await
    }

    /// [`Store::set_pin`], recording `actor` (an API token's name) in the history.
    pub async fn set_pin_by(
        &self,
        target: &str,
        reference: &str,
        needs: &[Requirement],
        actor: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        if let Some(missing) = first_missing(&mut tx, needs).await? {
            return Err(StoreError::Missing(missing));
        }
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
        sqlx::query(
            "INSERT INTO pin_history (target, reference, at_ms, kind, actor) VALUES ($1, $2, $3, 'set', $4)",
        )
        .bind(target)
        .bind(reference)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        commit_changed(tx).await?;
        Ok(())
    }

    /// Moves a pin back to the one before it ([`rollback_target`]) in one transaction,
    /// recording a `rollback` entry. `needs_of` names what the earlier reference needs
    /// (its version or channel), checked in the same transaction: a missing one is
    /// [`StoreError::Missing`] and a reference `needs_of` cannot read is
    /// [`StoreError::Corrupt`], both with nothing written. `Ok(None)`: no earlier pin.
    pub async fn rollback_pin(
        &self,
        target: &str,
        needs_of: impl FnOnce(&str) -> Option<Vec<Requirement>>,
    ) -> Result<Option<(Option<String>, String)>, StoreError> {
        self.rollback_pin_by(target, needs_of, None).await
    }

    /// [`Store::rollback_pin`], recording `actor` in the history.
    pub async fn rollback_pin_by(
        &self,
        target: &str,
        needs_of: impl FnOnce(&str) -> Option<Vec<Requirement>>,
        actor: Option<&str>,
    ) -> Result<Option<(Option<String>, String)>, StoreError> {
        let mut tx = self.begin().await?;
        let history: Vec<PinChange> = sqlx::query_as(
            "SELECT target, reference, at_ms, kind, actor FROM pin_history WHERE target = $1 ORDER BY id",
        )
        .bind(target)
        .fetch_all(&mut *tx)
        .await?;
        let Some(to) = rollback_target(&history) else {
            return Ok(None);
        };
        let Some(needs) = needs_of(&to) else {
            return Err(StoreError::Corrupt {
                what: "pin reference in the history",
                value: to,
            });
        };
        if let Some(missing) = first_missing(&mut tx, &needs).await? {
            return Err(StoreError::Missing(missing));
        }
        let from: Option<String> =
            sqlx::query_scalar("SELECT reference FROM pins WHERE target = $1")
                .bind(target)
                .fetch_optional(&mut *tx)
                .await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO pins (target, reference, updated_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (target) DO UPDATE SET reference = excluded.reference, updated_ms = excluded.updated_ms",
        )
        .bind(target)
        .bind(&to)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO pin_history (target, reference, at_ms, kind, actor) VALUES ($1, $2, $3, 'rollback', $4)",
        )
        .bind(target)
        .bind(&to)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        commit_changed(tx).await?;
        Ok(Some((from, to)))
    }

    /// Removes a pin; returns whether it existed.
    pub async fn remove_pin(&self, target: &str) -> Result<bool, StoreError> {
        self.remove_pin_by(target, None).await
    }

    /// [`Store::remove_pin`], recording `actor` in the history.
    pub async fn remove_pin_by(
        &self,
        target: &str,
        actor: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM pins WHERE target = $1")
            .bind(target)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            sqlx::query(
                "INSERT INTO pin_history (target, reference, at_ms, kind, actor) VALUES ($1, NULL, $2, 'rm', $3)",
            )
                .bind(target)
                .bind(now_ms())
                .bind(actor)
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
            "SELECT target, reference, at_ms, kind, actor FROM pin_history WHERE target = $1 ORDER BY id",
        )
        .bind(target)
        .fetch_all(&self.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(entries: &[(&str, Option<&str>)]) -> Vec<PinChange> {
        entries
            .iter()
            .map(|(kind, r)| PinChange {
                target: "default".into(),
                reference: r.map(String::from),
                at_ms: 0,
                kind: PinChangeKind::try_from(kind.to_string()).unwrap(),
                actor: None,
            })
            .collect()
    }

    #[test]
    fn kinds_round_trip_and_unknown_is_refused() {
        for k in [
            PinChangeKind::Set,
            PinChangeKind::Rm,
            PinChangeKind::Rollback,
        ] {
            assert_eq!(PinChangeKind::try_from(k.as_str().to_string()).unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert!(PinChangeKind::try_from("undo".to_string()).is_err());
    }

    #[test]
    fn rollbacks_walk_back_through_the_history() {
        let mut hist = h(&[
            ("set", Some("a@1")),
            ("set", Some("a@2")),
            ("set", Some("a@3")),
        ]);
        assert_eq!(rollback_target(&hist).as_deref(), Some("a@2"));
        hist.extend(h(&[("rollback", Some("a@2"))]));
        assert_eq!(rollback_target(&hist).as_deref(), Some("a@1"));
        hist.extend(h(&[("rollback", Some("a@1"))]));
        assert_eq!(rollback_target(&hist), None);
        // A removal is skipped over; a removed pin comes back.
        let hist = h(&[("set", Some("a@1")), ("rm", None), ("set", Some("a@2"))]);
        assert_eq!(rollback_target(&hist).as_deref(), Some("a@1"));
        let hist = h(&[("set", Some("a@1")), ("rm", None)]);
        assert_eq!(rollback_target(&hist).as_deref(), Some("a@1"));
        assert_eq!(rollback_target(&h(&[("set", Some("a@1"))])), None);
    }
}
