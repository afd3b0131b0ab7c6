//! The state store: machines, pins, image versions and channels, leases and boot
//! events, in SQL: embedded SQLite by default, or one PostgreSQL server. Queries only: no
//! protocol, no policy.
//!
//! One query layer for both backends (sqlx's `Any` driver): every query is written once,
//! with `$n` placeholders (SQLite reads `$n` as parameter n too). What differs is the
//! [`Dialect`]: how a write transaction begins, the placeholders of the bulk statements
//! (lease and event batches), and the DDL with its migrations folder
//! (`migrations/sqlite/`, `migrations/postgres/`, the same numbered steps in each).
//!
//! Durability: SQLite runs a WAL journal with `synchronous = FULL`, so a committed
//! transaction survives `kill -9` and power loss; PostgreSQL commits durably with its
//! defaults (`fsync`, `synchronous_commit = on`). Every write that can change a boot
//! decision bumps the `revision` row in the same transaction; readers compare revisions
//! to know when to reload (see [`Store::revision`]).
//!
//! Writers are serialised as on SQLite, so read-check-write transactions (`remove_version`,
//! `rollback_pin`) hold on PostgreSQL too: see [`Dialect`]. Several servers may share one
//! database: lease writes are conditional (an address bound to one MAC is never rebound
//! to another before it expires, see `leases.rs`), leadership is an expiring row judged
//! by the database's clock (`members.rs`), and on PostgreSQL every revision change is
//! announced on a channel ([`RevisionFeed`]).

mod attempts;
mod event_reads;
mod events;
mod fleet_counts;
mod fleet_reads;
mod history;
mod images;
mod leases;
mod loader_marks;
mod machine_update;
mod machines;
mod members;
mod pins;
mod replicas;
mod requirements;
mod revision_feed;
mod rollouts;
pub mod schema;
#[doc(hidden)]
pub mod testing;
mod tokens;
mod webhooks;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, Executor, Transaction};

pub use attempts::{BootRow, FleetEventRow, HoldRow, NewBoot};
pub use events::EventRow;
pub use fleet_counts::FleetCounts;
pub use history::{MachineChange, VersionChange};
pub use images::{ChannelMove, ChannelRow, VersionRow};
pub use leases::{LeaseRow, LeaseWrite, Written};
pub use loader_marks::LoaderMark;
pub use members::{LeaderRow, MemberRow};
pub use pins::{PinChange, PinChangeKind, PinRow, UnknownPinChange};
pub use replicas::{Holder, ReplicaRow, SOURCE_ALIVE_MS};
pub use requirements::Requirement;
pub use revision_feed::RevisionFeed;
pub use rollouts::{AdmissionRow, BootOnceRow, MemberRow as RolloutMemberRow, RolloutRow};
pub use tokens::TokenRow;
pub use webhooks::{DeliveryRow, DueRow, WebhookRow};

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

/// Which SQL backend a store runs on: what the one query layer must spell differently.
///
/// Write transactions are serialised on both. SQLite's `BEGIN IMMEDIATE` takes the
/// database's write lock up front. PostgreSQL begins a plain (read committed)
/// transaction, and writers that read before they write take a transaction-scoped
/// advisory lock first ([`Writer`]), so a check and the write it guards are never split
/// by another writer, as on SQLite. Event inserts take a lock of their own, which makes
/// event ids visible in id order (see `events.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// An embedded SQLite file (`sqlite://PATH`, the default).
    Sqlite,
    /// A PostgreSQL server (`postgres://…` or `postgresql://…`).
    Postgres,
}

/// What a write transaction serialises against (on PostgreSQL; SQLite has one lock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Writer {
    /// Machines, pins, images, channels and the revision: read-check-write transactions.
    State,
    /// The DHCP lease batch: conditional upserts (see `leases.rs`) and deletes, one
    /// committer per server; row locks arbitrate between servers.
    Leases,
    /// Boot-event inserts: ids are handed out in commit order.
    Events,
}

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("src/store/migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("src/store/migrations/postgres");

impl Dialect {
    /// The dialect a store URL names, if it is one tabula can open.
    pub fn of_url(url: &str) -> Option<Dialect> {
        if url.starts_with("sqlite:") {
            Some(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Dialect::Postgres)
        } else {
            None
        }
    }

    /// The schema's migrations for this backend (the same numbered steps for each).
    fn migrations(self) -> &'static Migrator {
        match self {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// `n` parameter placeholders for a bulk statement, numbered from `from`:
    /// PostgreSQL wants `$n`; SQLite gets plain `?`. SQLite accepts `$n` too (every
    /// short query is written that way), but sqlx asks SQLite for every parameter's name
    /// when binding and SQLite finds a name by a linear search, so binding is quadratic
    /// in named parameters: a 2,500-parameter lease upsert took ~9 ms more per execution
    /// with `$n` (measured with `benches/lease_log.rs`).
    pub(crate) fn placeholders(self, from: usize, n: usize) -> String {
        let one = |i: usize| match self {
            Dialect::Sqlite => "?".to_string(),
            Dialect::Postgres => format!("${i}"),
        };
        (from..from + n).map(one).collect::<Vec<_>>().join(", ")
    }

    /// The statement that starts a write transaction.
    fn begin(self) -> &'static str {
        match self {
            // A deferred transaction that reads first and writes later cannot wait for
            // the lock in WAL mode (SQLite answers "database is locked" at once rather
            // than deadlock), so concurrent writers (CLI beside a daemon) would fail
            // instead of queueing.
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }

    /// The statement run first in a write transaction of `writer`, if any.
    fn lock(self, writer: Writer) -> Option<&'static str> {
        // Keys: 0x7461_6275_6c61_0001 and …_0002 ("tabula" and a number), one per kind
        // of writer, released by PostgreSQL at commit or rollback.
        const STATE: &str = "SELECT pg_advisory_xact_lock(8386092237609566209)";
        const EVENTS: &str = "SELECT pg_advisory_xact_lock(8386092237609566210)";
        match (self, writer) {
            (Dialect::Sqlite, _) | (Dialect::Postgres, Writer::Leases) => None,
            (Dialect::Postgres, Writer::State) => Some(STATE),
            (Dialect::Postgres, Writer::Events) => Some(EVENTS),
        }
    }
}

/// A write transaction on either backend.
pub(crate) type Tx = Transaction<'static, Any>;

/// A handle on the state store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `url` with any password replaced, for messages.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((user, _)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{name}:***@{}", &rest[user.len() + 1..])
        }
        _ => url.to_string(),
    }
}

impl Store {
    /// Opens the store at `url` and migrates it: `sqlite://PATH` (created if missing,
    /// with its directory) or `postgres://…` / `postgresql://…` (the database must exist).
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            url: redacted(url),
            source,
        };
        let dialect = Dialect::of_url(url).ok_or_else(|| {
            open_err(sqlx::Error::Configuration(
                "unsupported store URL: sqlite://PATH or postgres://… expected".into(),
            ))
        })?;
        sqlx::any::install_default_drivers();
        if dialect == Dialect::Sqlite {
            // Read-only, before the pool creates or touches anything.
            schema::refuse_newer(url).await?;
        }
        let pool = match dialect {
            Dialect::Sqlite => open_sqlite(url).await,
            Dialect::Postgres => AnyPoolOptions::new().max_connections(8).connect(url).await,
        }
        .map_err(open_err)?;
        // Migrations only go forward: a database from a newer tabula is left untouched.
        if dialect == Dialect::Postgres {
            schema::refuse_newer_pool(url, &pool).await?;
        }
        dialect.migrations().run(&pool).await?;
        Ok(Store { pool, dialect })
    }

    /// The backend this store runs on.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The current revision: changes whenever anything a boot decision reads changes.
    pub async fn revision(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Starts a write transaction on the state tables (machines, pins, images).
    pub(crate) async fn begin(&self) -> Result<Tx, StoreError> {
        self.begin_for(Writer::State).await
    }

    /// Starts a write transaction of `writer`, serialised as [`Dialect`] describes.
    pub(crate) async fn begin_for(&self, writer: Writer) -> Result<Tx, StoreError> {
        let mut tx = self.pool.begin_with(self.dialect.begin()).await?;
        if let Some(lock) = self.dialect.lock(writer) {
            sqlx::query(lock).execute(&mut *tx).await?;
        }
        Ok(tx)
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The SQLite pool: file and directory created if missing, and on every connection the
/// durability settings (WAL, `synchronous = FULL`), foreign keys and a 30 s busy timeout
/// (a writer waits for another's lock rather than failing).
async fn open_sqlite(url: &str) -> Result<AnyPool, sqlx::Error> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let path = base
        .strip_prefix("sqlite://")
        .or_else(|| base.strip_prefix("sqlite:"))
        .unwrap_or(base);
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(sqlx::Error::Io)?;
    }
    let url = if query.split('&').any(|kv| kv.starts_with("mode=")) {
        url.to_string()
    } else if query.is_empty() {
        format!("{base}?mode=rwc")
    } else {
        format!("{url}&mode=rwc")
    };
    let options: AnyConnectOptions = url.parse()?;
    AnyPoolOptions::new()
        .max_connections(4)
        .after_connect(|conn, _| {
            Box::pin(async move {
                for pragma in SQLITE_PRAGMAS {
                    conn.execute(pragma).await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
}

/// Set on every SQLite connection, in this order (the timeout first, so switching the
/// journal waits for a lock instead of failing).
const SQLITE_PRAGMAS: [&str; 4] = [
    "PRAGMA busy_timeout = 30000",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
];

/// Bumps the revision inside a write transaction.
pub(crate) async fn bump(tx: &mut Tx) -> Result<(), StoreError> {
    sqlx::query("UPDATE revision SET value = value + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Bumps the revision and commits: the end of every write that can change a decision.
pub(crate) async fn commit_changed(mut tx: Tx) -> Result<(), StoreError> {
    bump(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Whether a sqlx error is a uniqueness/primary-key violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[cfg(test)]
mod event_migration_tests;
#[cfg(test)]
pub(crate) mod tests;
