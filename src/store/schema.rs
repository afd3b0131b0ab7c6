//! The schema guard: migrations only go forward. Before [`super::Store::open`] migrates,
//! [`refuse_newer`] reads the version a database was last migrated to, through its own
//! read-only connection, and refuses a database whose schema is newer than every
//! migration this binary carries (a downgrade): sqlx would stop too, but only after
//! creating its bookkeeping and with a message that names neither tabula. Refusing here
//! writes nothing, so the newer tabula can still open the file.
//!
//! [`inspect`] is the same read for `tabula doctor`: it never creates, migrates or
//! changes a database. Must not apply migrations (that stays in `Store::open`).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The migrations compiled into this binary (`src/store/migrations/sqlite`).
pub(crate) fn migrator() -> Migrator {
    sqlx::migrate!("src/store/migrations/sqlite")
}

/// The newest schema version this binary knows: its last migration.
pub fn known_version() -> i64 {
    migrator().iter().map(|m| m.version).max().unwrap_or(0)
}

/// What a database's schema is, relative to this binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaState {
    /// No database file yet: the first `tabula serve` (or any command) creates it.
    Missing(PathBuf),
    /// The file exists but was never migrated (empty, or not tabula's).
    Unmigrated,
    /// Older than this binary: migrated forward, from `db` to `known`, on the next open.
    Behind { db: i64, known: i64 },
    /// Exactly what this binary expects.
    Current(i64),
    /// Made by a newer tabula: this binary refuses to open it.
    Newer { db: i64, known: i64 },
    /// A migration was interrupted half-way (sqlx marks it unsuccessful).
    Dirty(i64),
}

/// Errors of the schema guard; each is one line naming the database.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A downgrade: the database has migrations this binary does not.
    #[error(
        "state store {path} has schema version {db}, newer than this tabula {tabula} knows \
         (up to {known}): it was made by a newer tabula; run that one, or restore a backup \
         (nothing was changed)"
    )]
    Newer {
        path: String,
        db: i64,
        known: i64,
        tabula: &'static str,
    },
    /// The database could not be read to find its version.
    #[error("cannot read the schema version of state store {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: sqlx::Error,
    },
}

/// The file behind a `sqlite://PATH` URL (`sqlite:PATH` and a bare path too).
pub fn sqlite_path(url: &str) -> &Path {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    Path::new(rest.split('?').next().unwrap_or(rest))
}

/// Reads the schema state of the SQLite database at `path`; changes nothing.
pub async fn inspect(path: &Path) -> Result<SchemaState, SchemaError> {
    let read_err = |source| SchemaError::Read {
        path: path.display().to_string(),
        source,
    };
    if !path.exists() {
        return Ok(SchemaState::Missing(path.to_path_buf()));
    }
    let opts = SqliteConnectOptions::from_str("sqlite:")
        .map_err(read_err)?
        .filename(path)
        .read_only(true)
        .create_if_missing(false);
    let mut conn = opts.connect().await.map_err(read_err)?;
    let result = read_state(&mut conn).await.map_err(read_err);
    let _ = conn.close().await;
    result
}

async fn read_state(conn: &mut sqlx::SqliteConnection) -> Result<SchemaState, sqlx::Error> {
    let has_table: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if has_table.is_none() {
        return Ok(SchemaState::Unmigrated);
    }
    let dirty: Option<i64> =
        sqlx::query_scalar("SELECT MIN(version) FROM _sqlx_migrations WHERE success = false")
            .fetch_one(&mut *conn)
            .await?;
    if let Some(v) = dirty {
        return Ok(SchemaState::Dirty(v));
    }
    let db: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&mut *conn)
        .await?;
    Ok(compare(db, known_version()))
}

/// Places a database's last applied migration (`None`: none applied) against `known`.
pub fn compare(db: Option<i64>, known: i64) -> SchemaState {
    match db {
        None => SchemaState::Unmigrated,
        Some(db) if db > known => SchemaState::Newer { db, known },
        Some(db) if db < known => SchemaState::Behind { db, known },
        Some(db) => SchemaState::Current(db),
    }
}

/// Refuses (before anything is written) a database made by a newer tabula.
pub(crate) async fn refuse_newer(url: &str) -> Result<(), SchemaError> {
    let path = sqlite_path(url);
    if let SchemaState::Newer { db, known } = inspect(path).await? {
        return Err(SchemaError::Newer {
            path: path.display().to_string(),
            db,
            known,
            tabula: crate::VERSION,
        });
    }
    Ok(())
}

/// [`refuse_newer`] for a PostgreSQL store, on its pool, before migrating (a read: the
/// bookkeeping table may not exist yet).
pub(crate) async fn refuse_newer_pool(url: &str, pool: &sqlx::AnyPool) -> Result<(), SchemaError> {
    let read_err = |source| SchemaError::Read {
        path: super::redacted(url),
        source,
    };
    let has_table: Option<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_name = '_sqlx_migrations'",
    )
    .fetch_optional(pool)
    .await
    .map_err(read_err)?;
    if has_table.is_none() {
        return Ok(());
    }
    let db: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .map_err(read_err)?;
    if let SchemaState::Newer { db, known } = compare(db, known_version()) {
        return Err(SchemaError::Newer {
            path: super::redacted(url),
            db,
            known,
            tabula: crate::VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_forward_only() {
        assert_eq!(compare(None, 3), SchemaState::Unmigrated);
        assert_eq!(compare(Some(2), 3), SchemaState::Behind { db: 2, known: 3 });
        assert_eq!(compare(Some(3), 3), SchemaState::Current(3));
        assert_eq!(compare(Some(4), 3), SchemaState::Newer { db: 4, known: 3 });
    }

    #[test]
    fn urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/t.db"),
            Path::new("/var/lib/t.db")
        );
        assert_eq!(sqlite_path("sqlite:rel.db?mode=rwc"), Path::new("rel.db"));
        assert_eq!(sqlite_path("/x/t.db"), Path::new("/x/t.db"));
    }

    #[test]
    fn this_binary_knows_its_last_migration() {
        let names: Vec<String> = std::fs::read_dir(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/migrations/sqlite"),
        )
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
        let newest = names
            .iter()
            .filter_map(|n| n.split('_').next()?.parse::<i64>().ok())
            .max()
            .unwrap();
        assert_eq!(known_version(), newest);
    }
}
