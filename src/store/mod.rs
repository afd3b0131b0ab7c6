//! The state store: machines, pins, image versions and channels, leases and boot
//! events, in SQL (embedded SQLite by default). Queries only: no protocol, no policy.
//!
//! Durability: WAL journal with `synchronous = FULL`, so a committed transaction
//! survives `kill -9` and power loss. Every write that can change a boot decision bumps
//! the `revision` row in the same transaction; readers compare revisions to know when
//! to reload (see [`Store::revision`]).

mod event_reads;
mod events;
mod images;
mod leases;
mod machines;
mod pins;
mod requirements;
pub mod schema;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

pub use events::EventRow;
pub use images::{ChannelMove, ChannelRow, VersionRow};
pub use leases::{LeaseRow, LeaseWrite};
pub use machines::Machine;
pub use pins::{PinChange, PinRow};
pub use requirements::Requirement;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or migrated.
    #[error("cannot open state store {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// A query failed.
    #[error("state store: {0}")]
    Sql(#[from] sqlx::Error),
    /// The database's schema is newer than this binary (a downgrade), or unreadable.
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
    /// A schema migration failed.
    #[error("state store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row violates a uniqueness rule the caller should have checked.
    #[error("{0}")]
    Conflict(String),
    /// A row the write depends on does not exist (checked in the write's transaction).
    #[error("{0:?} does not exist")]
    Missing(Requirement),
    /// A row read back does not parse (hand-edited or corrupt database).
    #[error("state store holds an invalid {what}: {value:?}")]
    Corrupt { what: &'static str, value: String },
}

/// A handle on the state store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Opens (creating if needed) the store at `url` (`sqlite://PATH`) and migrates it.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            url: url.to_string(),
            source,
        };
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if let Some(parent) = std::path::Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| open_err(sqlx::Error::Io(e)))?;
        }
        // Migrations only go forward: a database from a newer tabula is left untouched.
        schema::refuse_newer(url).await?;
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        schema::migrator().run(&pool).await?;
        Ok(Store { pool })
    }

    /// The current revision: changes whenever anything a boot decision reads changes.
    pub async fn revision(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Starts a write transaction. `BEGIN IMMEDIATE` takes SQLite's write lock up front:
    /// a deferred transaction that reads first and writes later cannot wait for the lock
    /// in WAL mode (SQLite answers "database is locked" at once rather than deadlock), so
    /// concurrent writers (CLI beside a daemon) would fail instead of queueing.
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Bumps the revision inside a write transaction.
pub(crate) async fn bump(tx: &mut Transaction<'static, Sqlite>) -> Result<(), StoreError> {
    sqlx::query("UPDATE revision SET value = value + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Bumps the revision and commits: the end of every write that can change a decision.
pub(crate) async fn commit_changed(mut tx: Transaction<'static, Sqlite>) -> Result<(), StoreError> {
    bump(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Whether a sqlx error is a uniqueness/primary-key violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[cfg(test)]
mod tests;
