//! The shared loader ledger (migration 0011): one row per MAC a DHCP reply named a loader
//! to, on any server. Queries only: what a mark means (the chainload rule) is decided in
//! `crate::dhcp` (`LoaderLedger`, `FleetLedger`).

use sqlx::Row;

use super::{Store, StoreError};

/// One MAC's stored marks (Unix ms of the server that wrote them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoaderMark {
    /// When a DHCP reply last named it a loader.
    pub named_ms: i64,
    /// When its "loader delivered" window started, if it did.
    pub since_ms: Option<i64>,
}

impl Store {
    /// Records that `mac` was named a loader at `named_ms` and, with `since_ms`, that its
    /// window started then. A window already open is kept (only a later start moves it).
    pub async fn record_loader_mark(
        &self,
        mac: &str,
        named_ms: i64,
        since_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO loader_marks (mac, named_ms, since_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (mac) DO UPDATE SET \
               named_ms = CASE WHEN excluded.named_ms > loader_marks.named_ms \
                               THEN excluded.named_ms ELSE loader_marks.named_ms END, \
               since_ms = CASE WHEN excluded.since_ms IS NULL THEN loader_marks.since_ms \
                               WHEN loader_marks.since_ms IS NULL THEN excluded.since_ms \
                               WHEN excluded.since_ms > loader_marks.since_ms THEN excluded.since_ms \
                               ELSE loader_marks.since_ms END",
        )
        .bind(mac)
        .bind(named_ms)
        .bind(since_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `mac`'s stored marks, if any server named it a loader.
    pub async fn loader_mark(&self, mac: &str) -> Result<Option<LoaderMark>, StoreError> {
        let row = sqlx::query("SELECT named_ms, since_ms FROM loader_marks WHERE mac = $1")
            .bind(mac)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(LoaderMark {
                named_ms: r.try_get("named_ms")?,
                since_ms: r.try_get("since_ms")?,
            })
        })
        .transpose()
    }

    /// Deletes the marks with nothing left in their window at `before_ms`; returns how many.
    pub async fn prune_loader_marks(&self, before_ms: i64) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "DELETE FROM loader_marks WHERE named_ms < $1 AND (since_ms IS NULL OR since_ms < $1)",
        )
        .bind(before_ms)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }
}
