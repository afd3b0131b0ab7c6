//! Blob replicas between servers (migration 0010): each server's data-plane URL, the
//! per-server state of every blob it holds or fetches, and the fleet's shared secrets.
//! Queries only: what to fetch, from whom, and when is decided in `crate::replica`.
//!
//! None of these writes bumps the store's revision: replica progress changes no boot
//! decision, and a revision bump per progress row would reload every snapshot.

use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreError};

/// A blob server whose source row (renewed every 2 s by its replicator) is younger
/// than this is alive: it can be fetched from, and a rollout waits for it.
pub const SOURCE_ALIVE_MS: i64 = 5_000;

/// One server's state of one blob.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReplicaRow {
    pub server: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// `present`, `fetching`, `failed` or `corrupt`.
    pub state: String,
    /// Bytes on this server's disk (all of them once `present`).
    pub bytes: i64,
    /// The blob's size, when known (0 while unknown).
    pub size: i64,
    /// Why the last attempt failed, or what the corruption was.
    pub error: Option<String>,
    pub updated_ms: i64,
}

/// A server that holds a blob, with the URL to fetch it from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub server: String,
    /// Its data-plane base URL (`http.public_url`), no trailing slash.
    pub url: String,
}

impl Store {
    /// Records `server`'s data-plane URL, stamped with the database's clock: a server
    /// whose row is younger than [`SOURCE_ALIVE_MS`] is a live blob server.
    pub async fn set_blob_source(&self, server: &str, url: &str) -> Result<(), StoreError> {
        let now = self.dialect.now_ms_sql();
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO blob_sources (server, url, updated_ms) VALUES ($1, $2, {now}) \
             ON CONFLICT (server) DO UPDATE SET url = excluded.url, updated_ms = excluded.updated_ms"
        )))
        .bind(server)
        .bind(url.trim_end_matches('/'))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes one replica row (insert or replace).
    pub async fn set_replica(&self, r: &ReplicaRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO blob_replicas (server, digest, state, bytes, size, error, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (server, digest) DO UPDATE SET state = excluded.state, \
             bytes = excluded.bytes, size = excluded.size, error = excluded.error, \
             updated_ms = excluded.updated_ms",
        )
        .bind(&r.server)
        .bind(&r.digest)
        .bind(&r.state)
        .bind(r.bytes)
        .bind(r.size)
        .bind(r.error.as_deref())
        .bind(r.updated_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets `server`'s row for `digest` (the blob was removed from its disk).
    pub async fn forget_replica(&self, server: &str, digest: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM blob_replicas WHERE server = $1 AND digest = $2")
            .bind(server)
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every replica row, by digest then server.
    pub async fn replicas(&self) -> Result<Vec<ReplicaRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT server, digest, state, bytes, size, error, updated_ms FROM blob_replicas \
             ORDER BY digest, server",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReplicaRow {
                    server: r.try_get("server")?,
                    digest: r.try_get("digest")?,
                    state: r.try_get("state")?,
                    bytes: r.try_get("bytes")?,
                    size: r.try_get("size")?,
                    error: r.try_get("error")?,
                    updated_ms: r.try_get("updated_ms")?,
                })
            })
            .collect()
    }

    /// The live blob servers other than `except` (their source row younger than
    /// [`SOURCE_ALIVE_MS`], database clock) that hold `digest`.
    pub async fn holders(&self, digest: &str, except: &str) -> Result<Vec<Holder>, StoreError> {
        let now = self.dialect.now_ms_sql();
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT r.server, s.url FROM blob_replicas r \
             JOIN blob_sources s ON s.server = r.server \
             WHERE r.digest = $1 AND r.state = 'present' AND r.server <> $2 \
             AND s.updated_ms > {now} - {SOURCE_ALIVE_MS} ORDER BY r.server"
        )))
        .bind(digest)
        .bind(except)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Holder {
                    server: r.try_get("server")?,
                    url: r.try_get("url")?,
                })
            })
            .collect()
    }

    /// The ids of the live blob servers (source row younger than [`SOURCE_ALIVE_MS`]).
    pub async fn live_blob_servers(&self) -> Result<Vec<String>, StoreError> {
        let now = self.dialect.now_ms_sql();
        Ok(sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT server FROM blob_sources WHERE updated_ms > {now} - {SOURCE_ALIVE_MS} \
             ORDER BY server"
        )))
        .fetch_all(&self.pool)
        .await?)
    }

    /// The live blob servers with their data-plane URLs, by id.
    pub async fn live_sources(&self) -> Result<Vec<(String, String)>, StoreError> {
        let now = self.dialect.now_ms_sql();
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT server, url FROM blob_sources WHERE updated_ms > {now} - {SOURCE_ALIVE_MS} \
             ORDER BY server"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("server")?, r.try_get("url")?)))
            .collect()
    }

    /// Every server that has a source row (live or not), by id.
    pub async fn blob_servers(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT server FROM blob_sources ORDER BY server")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Forgets `server`'s source row (it stopped cleanly: no longer a holder).
    pub async fn forget_blob_source(&self, server: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM blob_sources WHERE server = $1")
            .bind(server)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The fleet secret `name`: the stored one, or `value` stored now if there is none
    /// yet (the first server to ask writes it; every later one reads it).
    pub async fn fleet_secret(&self, name: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO fleet_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM fleet_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    crate::store::tests::on_both_backends!(
        holders_are_live_present_and_have_a_url,
        secrets_are_first_writer_wins
    );

    fn row(server: &str, digest: &str, state: &str) -> ReplicaRow {
        ReplicaRow {
            server: server.into(),
            digest: digest.into(),
            state: state.into(),
            bytes: 5,
            size: 5,
            error: None,
            updated_ms: 1,
        }
    }

    async fn holders_are_live_present_and_have_a_url(f: crate::store::tests::Fixture) {
        let s = f.store;
        s.set_blob_source("a", "http://10.0.0.1:8080/")
            .await
            .unwrap();
        s.set_blob_source("b", "http://10.0.0.2:8080")
            .await
            .unwrap();
        s.set_replica(&row("a", "sha256:aa", "present"))
            .await
            .unwrap();
        s.set_replica(&row("b", "sha256:aa", "fetching"))
            .await
            .unwrap();
        // c holds it but serves no blobs (no source row): not a holder.
        s.set_replica(&row("c", "sha256:aa", "present"))
            .await
            .unwrap();
        let h = s.holders("sha256:aa", "b").await.unwrap();
        assert_eq!(
            h,
            vec![Holder {
                server: "a".into(),
                url: "http://10.0.0.1:8080".into()
            }]
        );
        assert!(s.holders("sha256:aa", "a").await.unwrap().is_empty());
        s.set_replica(&row("b", "sha256:aa", "present"))
            .await
            .unwrap();
        assert_eq!(s.holders("sha256:aa", "a").await.unwrap().len(), 1);
        assert_eq!(s.replicas().await.unwrap().len(), 3);
        s.forget_replica("c", "sha256:aa").await.unwrap();
        assert_eq!(s.replicas().await.unwrap().len(), 2);
        assert_eq!(s.live_blob_servers().await.unwrap(), ["a", "b"]);
        s.forget_blob_source("a").await.unwrap();
        assert!(s.holders("sha256:aa", "b").await.unwrap().is_empty());
    }

    async fn secrets_are_first_writer_wins(f: crate::store::tests::Fixture) {
        let s = f.store;
        assert_eq!(s.fleet_secret("k", "one").await.unwrap(), "one");
        assert_eq!(s.fleet_secret("k", "two").await.unwrap(), "one");
        assert_eq!(s.fleet_secret("j", "two").await.unwrap(), "two");
    }
}
