//! The revision feed: on PostgreSQL, a `LISTEN tabula_revision` connection that yields
//! each revision the database announces (migration 0006's trigger fires `pg_notify` in
//! every transaction that bumps the revision, delivered at its commit). SQLite has no
//! feed; its readers keep polling [`super::Store::revision`].
//!
//! A notification is a hint, never the truth: NOTIFY has no replay, so one sent while
//! the connection was down is lost. Callers keep their revision poll as the backstop and
//! treat a notification only as "poll now".

use sqlx::postgres::PgListener;

use super::{Dialect, StoreError};

/// The channel migration 0006's trigger notifies.
const CHANNEL: &str = "tabula_revision";

/// A listening connection (PostgreSQL only).
#[derive(Debug)]
pub struct RevisionFeed {
    listener: PgListener,
}

impl RevisionFeed {
    /// Connects to the store at `url` and listens; `None` for a backend without
    /// notifications (SQLite).
    pub async fn connect(url: &str) -> Result<Option<RevisionFeed>, StoreError> {
        if Dialect::of_url(url) != Some(Dialect::Postgres) {
            return Ok(None);
        }
        let mut listener = PgListener::connect(url).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(RevisionFeed { listener }))
    }

    /// The next announced revision (its payload; 0 if unreadable). A lost connection is
    /// re-established by the next call (notifications in between are lost: poll too).
    pub async fn next(&mut self) -> Result<i64, StoreError> {
        let n = self.listener.recv().await?;
        Ok(n.payload().parse().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::testing::PgCluster;
    use crate::store::{Store, bump};

    #[tokio::test]
    async fn a_committed_revision_change_is_announced() {
        let cluster = PgCluster::shared();
        let url = cluster.database().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(&url).await.unwrap();
        let mut feed = RevisionFeed::connect(&url)
            .await
            .unwrap()
            .expect("postgres feed");
        let before = store.revision().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        bump(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .expect("announced within 10 s")
            .unwrap();
        assert_eq!(got, before + 1);
        // A rolled-back change is not announced.
        let mut tx = store.begin().await.unwrap();
        bump(&mut tx).await.unwrap();
        tx.rollback().await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(500), feed.next())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn sqlite_has_no_feed() {
        assert!(
            RevisionFeed::connect("sqlite://x.db")
                .await
                .unwrap()
                .is_none()
        );
    }
}
