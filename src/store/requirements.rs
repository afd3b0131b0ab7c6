//! What a write needs to exist, checked inside the write's own transaction.
//!
//! A pin names a machine and an image version or channel; checking those against a
//! snapshot and then writing in another transaction lets an `image rm` or `machine rm`
//! land in between and leave a pin to nothing. Writers pass their [`Requirement`]s here
//! instead, and the check runs under the same write lock as the write (SQLite's
//! `BEGIN IMMEDIATE`; on PostgreSQL the state writers' advisory lock, which `image rm`
//! takes too).

use super::{StoreError, Tx};

/// A row a write depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// A machine with this name.
    Machine(String),
    /// A published version.
    Version { image: String, version: String },
    /// A version of `image` whose manifest digest is `manifest` (`sha256:<hex>`).
    Manifest { image: String, manifest: String },
    /// A channel of `image`.
    Channel { image: String, channel: String },
}

/// The first requirement that does not hold, if any.
pub(crate) async fn first_missing(
    tx: &mut Tx,
    needs: &[Requirement],
) -> Result<Option<Requirement>, StoreError> {
    for need in needs {
        let found: Option<i64> = match need {
            Requirement::Machine(name) => {
                sqlx::query_scalar("SELECT 1 FROM machines WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut **tx)
                    .await?
            }
            Requirement::Version { image, version } => {
                sqlx::query_scalar("SELECT 1 FROM image_versions WHERE name = $1 AND version = $2")
                    .bind(image)
                    .bind(version)
                    .fetch_optional(&mut **tx)
                    .await?
            }
            Requirement::Manifest { image, manifest } => {
                sqlx::query_scalar("SELECT 1 FROM image_versions WHERE name = $1 AND manifest = $2")
                    .bind(image)
                    .bind(manifest)
                    .fetch_optional(&mut **tx)
                    .await?
            }
            Requirement::Channel { image, channel } => {
                sqlx::query_scalar("SELECT 1 FROM channels WHERE name = $1 AND channel = $2")
                    .bind(image)
                    .bind(channel)
                    .fetch_optional(&mut **tx)
                    .await?
            }
        };
        if found.is_none() {
            return Ok(Some(need.clone()));
        }
    }
    Ok(None)
}
