//! Fleet membership and leadership rows (migration 0006): each server's heartbeat, and
//! the leader row of each singleton role. Queries only: when to beat, whom to trust and
//! what a role lets its holder do are decided in `crate::ha`.
//!
//! Leadership is a conditional upsert judged by the database's clock
//! ([`Dialect::now_ms_sql`]), so clock skew between servers cannot make two holders: the
//! write succeeds only for the current holder or once the row has expired, and it
//! returns the row it wrote, so "did I win" is the presence of that row.

use sqlx::{AssertSqlSafe, Row};

use super::{Dialect, Store, StoreError};

/// One server's membership row.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemberRow {
    /// `server.id` (default: the host name).
    pub id: String,
    /// Random per process start: two processes with one id show as a changing instance.
    pub instance: String,
    /// The tabula version it runs.
    pub version: String,
    /// What it serves, e.g. `dhcp=full,tftp,http,api`.
    pub serves: String,
    /// Its control-plane URL, if it has an API listener.
    pub api_url: Option<String>,
    pub started_ms: i64,
    pub heartbeat_ms: i64,
}

/// One role's leader row.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LeaderRow {
    pub role: String,
    pub holder: String,
    /// Counts changes of holder: a takeover increments it.
    pub epoch: i64,
    /// When the current holder took the role (database clock, Unix ms).
    pub since_ms: i64,
    /// When the role lapses unless renewed (database clock, Unix ms).
    pub expires_ms: i64,
}

impl Dialect {
    /// An SQL expression for the database's clock in Unix milliseconds.
    pub(crate) fn now_ms_sql(self) -> &'static str {
        match self {
            Dialect::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS BIGINT)",
            Dialect::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }
}

impl Store {
    /// Records `m`'s heartbeat (insert or replace its row). `heartbeat_ms` is taken from
    /// the database clock, so liveness compares like with like.
    pub async fn heartbeat(&self, m: &MemberRow) -> Result<(), StoreError> {
        let now = self.dialect.now_ms_sql();
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO servers (id, instance, version, serves, api_url, started_ms, heartbeat_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, {now}) \
             ON CONFLICT (id) DO UPDATE SET instance = excluded.instance, \
             version = excluded.version, serves = excluded.serves, api_url = excluded.api_url, \
             started_ms = excluded.started_ms, heartbeat_ms = excluded.heartbeat_ms"
        )))
        .bind(&m.id)
        .bind(&m.instance)
        .bind(&m.version)
        .bind(&m.serves)
        .bind(m.api_url.as_deref())
        .bind(m.started_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The instance token in `id`'s row, if it has one.
    pub async fn member_instance(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT instance FROM servers WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Every server that ever beat, by id, and the database's clock now.
    pub async fn members(&self) -> Result<(Vec<MemberRow>, i64), StoreError> {
        let rows = sqlx::query(
            "SELECT id, instance, version, serves, api_url, started_ms, heartbeat_ms \
             FROM servers ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(MemberRow {
                id: r.try_get("id")?,
                instance: r.try_get("instance")?,
                version: r.try_get("version")?,
                serves: r.try_get("serves")?,
                api_url: r.try_get("api_url")?,
                started_ms: r.try_get("started_ms")?,
                heartbeat_ms: r.try_get("heartbeat_ms")?,
            });
        }
        Ok((out, self.db_now_ms().await?))
    }

    /// Forgets a server's row (it left the fleet on purpose).
    pub async fn forget_member(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM servers WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The database's clock, Unix milliseconds.
    pub async fn db_now_ms(&self) -> Result<i64, StoreError> {
        let sql = format!("SELECT {}", self.dialect.now_ms_sql());
        Ok(sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&self.pool)
            .await?)
    }

    /// Takes or renews `role` for `holder` for `ttl_ms` from the database's now: the row
    /// written if `holder` holds the role now, or nobody does (no row, or expired), else
    /// `None` (another server holds it).
    pub async fn try_lead(
        &self,
        role: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Option<LeaderRow>, StoreError> {
        let now = self.dialect.now_ms_sql();
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO leaders (role, holder, epoch, since_ms, expires_ms) \
             VALUES ($1, $2, 1, {now}, {now} + $3) \
             ON CONFLICT (role) DO UPDATE SET \
               epoch = CASE WHEN leaders.holder = excluded.holder THEN leaders.epoch \
                            ELSE leaders.epoch + 1 END, \
               since_ms = CASE WHEN leaders.holder = excluded.holder THEN leaders.since_ms \
                               ELSE excluded.since_ms END, \
               holder = excluded.holder, expires_ms = excluded.expires_ms \
             WHERE leaders.holder = excluded.holder OR leaders.expires_ms <= excluded.since_ms \
             RETURNING role, holder, epoch, since_ms, expires_ms"
        )))
        .bind(role)
        .bind(holder)
        .bind(ttl_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| leader_row(&r)).transpose()
    }

    /// Gives `role` up if `holder` holds it (a clean shutdown: the standby need not wait
    /// for the row to expire). Whether a row was removed.
    pub async fn resign(&self, role: &str, holder: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM leaders WHERE role = $1 AND holder = $2")
            .bind(role)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Every role's leader row (expired ones included: compare with [`Store::db_now_ms`]).
    pub async fn leaders(&self) -> Result<Vec<LeaderRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT role, holder, epoch, since_ms, expires_ms FROM leaders ORDER BY role",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(leader_row).collect()
    }
}

fn leader_row(r: &sqlx::any::AnyRow) -> Result<LeaderRow, StoreError> {
    Ok(LeaderRow {
        role: r.try_get("role")?,
        holder: r.try_get("holder")?,
        epoch: r.try_get("epoch")?,
        since_ms: r.try_get("since_ms")?,
        expires_ms: r.try_get("expires_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, instance: &str) -> MemberRow {
        MemberRow {
            id: id.into(),
            instance: instance.into(),
            version: "0.0.0".into(),
            serves: "dhcp=full".into(),
            api_url: None,
            started_ms: 1,
            heartbeat_ms: 0,
        }
    }

    crate::store::tests::on_both_backends!(heartbeats_replace_the_row, one_leader_until_expiry);

    async fn heartbeats_replace_the_row(f: crate::store::tests::Fixture) {
        let s = f.store;
        s.heartbeat(&member("a", "1")).await.unwrap();
        s.heartbeat(&member("b", "1")).await.unwrap();
        s.heartbeat(&member("a", "2")).await.unwrap();
        let (rows, now) = s.members().await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].instance, "2");
        assert!(
            (now - rows[0].heartbeat_ms).abs() < 60_000,
            "{now} {rows:?}"
        );
        assert!(s.forget_member("b").await.unwrap());
        assert_eq!(s.members().await.unwrap().0.len(), 1);
    }

    async fn one_leader_until_expiry(f: crate::store::tests::Fixture) {
        let s = f.store;
        let a = s
            .try_lead("dhcp", "a", 400)
            .await
            .unwrap()
            .expect("a leads");
        assert_eq!((a.holder.as_str(), a.epoch), ("a", 1));
        assert!(
            s.try_lead("dhcp", "b", 400).await.unwrap().is_none(),
            "held by a"
        );
        let renewed = s
            .try_lead("dhcp", "a", 400)
            .await
            .unwrap()
            .expect("a renews");
        assert_eq!(renewed.epoch, 1);
        assert_eq!(renewed.since_ms, a.since_ms);
        // Another role is independent.
        assert!(s.try_lead("jobs", "b", 400).await.unwrap().is_some());
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        let b = s
            .try_lead("dhcp", "b", 400)
            .await
            .unwrap()
            .expect("expired: b takes over");
        assert_eq!((b.holder.as_str(), b.epoch), ("b", 2));
        assert!(
            s.try_lead("dhcp", "a", 400).await.unwrap().is_none(),
            "a lost it"
        );
        assert!(!s.resign("dhcp", "a").await.unwrap(), "a does not hold it");
        assert!(s.resign("dhcp", "b").await.unwrap());
        assert!(
            s.try_lead("dhcp", "a", 400).await.unwrap().is_some(),
            "free after resign"
        );
        assert_eq!(s.leaders().await.unwrap().len(), 2);
    }
}
