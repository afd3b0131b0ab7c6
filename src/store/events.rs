//! Boot events: an append-only history per MAC, read by cursor (`id > cursor`).
//!
//! Ids become visible in id order, so a reader that pages with
//! `WHERE id > cursor ORDER BY id` never skips a row that commits late. SQLite gives this
//! by having one writer at a time. PostgreSQL hands identity values out before commit,
//! so two concurrent writers could commit ids 11 and 10 in that order, and a reader that
//! saw 11 first would never see 10. Every event INSERT therefore runs in a transaction that
//! first takes the events' transaction-scoped advisory lock ([`Writer::Events`]): ids are
//! drawn only by the lock's holder, and PostgreSQL releases the lock after the commit is
//! visible, so the next writer's ids are larger than every id a reader can see. Nothing
//! else inserts into `boot_events`. (Retention deletes old rows; deleting never lets a
//! cursor skip one.)

use std::sync::LazyLock;
use std::time::Duration;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Dialect, Store, StoreError, Writer};
use crate::boot::{BootEvent, BootStage, EventDetail, EventText, Mac};

/// Rows per INSERT statement, largest first; a batch is split greedily (1 must be last).
pub(super) const ROWS_PER_INSERT: [usize; 4] = [64, 16, 4, 1];

/// Parameters per event row.
const COLUMNS: usize = 8;

/// The INSERT texts for [`ROWS_PER_INSERT`], per dialect (placeholders differ).
static INSERTS: LazyLock<[Vec<(usize, String)>; 2]> =
    LazyLock::new(|| [inserts(Dialect::Sqlite), inserts(Dialect::Postgres)]);

fn inserts(dialect: Dialect) -> Vec<(usize, String)> {
    ROWS_PER_INSERT
        .iter()
        .map(|&n| {
            let rows: Vec<String> = (0..n)
                .map(|r| format!("({})", dialect.placeholders(1 + r * COLUMNS, COLUMNS)))
                .collect();
            (
                n,
                format!(
                    "INSERT INTO boot_events (at_ms, mac, stage, manifest, via, peer, detail, attempt) VALUES {} RETURNING id",
                    rows.join(", ")
                ),
            )
        })
        .collect()
}

/// Rows one retention statement deletes at most ([`Store::delete_events_before`]).
const DELETE_CHUNK: u64 = 1000;

/// The columns of an [`EventRow`], then `$tail` (a literal).
macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, at_ms, mac, stage, manifest, via, peer, detail, attempt FROM boot_events",
            $tail
        )
    };
}

/// A stored boot event with its sequence number.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRow {
    pub id: i64,
    pub event: BootEvent,
    /// The id of the boot attempt it belongs to (`boots.id`), when it was known.
    pub attempt: Option<String>,
}

impl Store {
    /// Appends events in one transaction; returns their ids, in input order.
    pub async fn append_events(&self, events: &[BootEvent]) -> Result<Vec<i64>, StoreError> {
        let texts: Vec<EventText> = events.iter().map(EventText::from).collect();
        self.append_texts(&texts).await
    }

    /// [`Store::append_events`] for events whose detail is JSON text already.
    ///
    /// Written as multi-row INSERTs of a few fixed sizes ([`ROWS_PER_INSERT`]):
    /// per-statement overhead, not the database, is the cost at boot-storm rates, and
    /// fixed texts are prepared once and then reused from the connection's statement
    /// cache instead of being parsed for every batch.
    pub async fn append_texts(&self, events: &[EventText]) -> Result<Vec<i64>, StoreError> {
        self.insert_texts(events, Duration::ZERO, None).await
    }

    /// [`Store::append_texts`] of events read from spool `spool`, recording in the same
    /// transaction that its first `replayed` events are now stored.
    pub async fn append_spooled(
        &self,
        events: &[EventText],
        spool: &str,
        replayed: i64,
    ) -> Result<Vec<i64>, StoreError> {
        self.insert_texts(events, Duration::ZERO, Some((spool, replayed)))
            .await
    }

    /// How many of spool `spool`'s events are stored (0 for a spool never replayed).
    pub async fn spool_replayed(&self, spool: &str) -> Result<i64, StoreError> {
        let n: Option<i64> =
            sqlx::query_scalar("SELECT replayed FROM event_spools WHERE spool = $1")
                .bind(spool)
                .fetch_optional(&self.pool)
                .await?;
        Ok(n.unwrap_or(0))
    }

    /// Forgets a spool that was replayed whole and removed.
    pub async fn forget_spool(&self, spool: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM event_spools WHERE spool = $1")
            .bind(spool)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// [`Store::append_texts`] that waits `pause` after inserting, before committing: a
    /// slow writer, for the tests of the cursor's guarantee.
    #[cfg(test)]
    pub(crate) async fn append_texts_slowly(
        &self,
        events: &[EventText],
        pause: Duration,
    ) -> Result<Vec<i64>, StoreError> {
        self.insert_texts(events, pause, None).await
    }

    async fn insert_texts(
        &self,
        events: &[EventText],
        pause: Duration,
        spooled: Option<(&str, i64)>,
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids = Vec::with_capacity(events.len());
        if events.is_empty() {
            return Ok(ids);
        }
        let mut tx = self.begin_for(Writer::Events).await?;
        let inserts = &INSERTS[match self.dialect {
            Dialect::Sqlite => 0,
            Dialect::Postgres => 1,
        }];
        let mut rest = events;
        while !rest.is_empty() {
            let (rows, sql) = inserts
                .iter()
                .find(|(rows, _)| *rows <= rest.len())
                .unwrap_or(&inserts[inserts.len() - 1]);
            let (chunk, after) = rest.split_at((*rows).min(rest.len()));
            let mut q = sqlx::query(sql.as_str());
            for e in chunk {
                q = q
                    .bind(e.at_ms)
                    .bind(e.mac.to_string())
                    .bind(e.stage.as_str())
                    .bind(e.manifest.map(|d| d.to_string()))
                    .bind(e.via.as_str())
                    .bind(e.peer.map(|p| p.to_string()))
                    .bind(&*e.detail)
                    .bind(e.attempt.map(crate::attempt::id_text));
            }
            // RETURNING's row order is unspecified, but one statement draws its ids in
            // VALUES order (and under the writer's lock nobody else draws any): sorted,
            // they are the input order.
            let mut got: Vec<i64> = q
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<_, _>>()?;
            got.sort_unstable();
            ids.extend(got);
            rest = after;
        }
        if let Some((spool, replayed)) = spooled {
            sqlx::query(
                "INSERT INTO event_spools (spool, replayed) VALUES ($1, $2) \
                 ON CONFLICT (spool) DO UPDATE SET replayed = excluded.replayed",
            )
            .bind(spool)
            .bind(replayed)
            .execute(&mut *tx)
            .await?;
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// The newest event's id (0 when there is none): where a follower starts.
    pub async fn last_event_id(&self) -> Result<i64, StoreError> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM boot_events")
            .fetch_one(&self.pool)
            .await?;
        Ok(id.unwrap_or(0))
    }

    /// The oldest stored event's id (`None` when there is none): what retention left.
    pub async fn first_event_id(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT MIN(id) FROM boot_events")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Events after `after_id` (0 for all), optionally for one MAC, oldest first, at most
    /// `limit`. Read by the primary key, or by the `(mac, id)` index for one MAC.
    pub async fn events(
        &self,
        mac: Option<Mac>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let rows = match mac {
            Some(mac) => {
                sqlx::query(select!(" WHERE mac = $1 AND id > $2 ORDER BY id LIMIT $3"))
                    .bind(mac.to_string())
                    .bind(after_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(select!(" WHERE id > $1 ORDER BY id LIMIT $2"))
                    .bind(after_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(event_row).collect()
    }

    /// The newest `limit` events, optionally of one MAC, returned oldest first. Read
    /// backwards along the primary key or the `(mac, id)` index: `limit` rows, never
    /// the whole history.
    pub async fn recent_events(
        &self,
        mac: Option<Mac>,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let rows = match mac {
            Some(mac) => {
                sqlx::query(select!(" WHERE mac = $1 ORDER BY id DESC LIMIT $2"))
                    .bind(mac.to_string())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(select!(" ORDER BY id DESC LIMIT $1"))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().rev().map(event_row).collect()
    }

    /// The events of boot attempt `attempt` (its id), oldest first, after `after_id`, at
    /// most `limit`: read along the `(attempt, id)` index.
    pub async fn events_of_attempt(
        &self,
        attempt: &str,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(select!(
            " WHERE attempt = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(attempt)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_row).collect()
    }

    /// The events of `mac` between two times (Unix ms, both included) that carry no
    /// attempt, oldest first, at most `limit`: an attempt's events by its time window,
    /// for events stored before they carried their attempt (migration 0009).
    pub async fn unlinked_events_between(
        &self,
        mac: Mac,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(select!(
            " WHERE mac = $1 AND attempt IS NULL AND at_ms >= $2 AND at_ms <= $3 \
             ORDER BY id LIMIT $4"
        ))
        .bind(mac.to_string())
        .bind(from_ms)
        .bind(to_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_row).collect()
    }

    /// Retention: deletes up to `max_rows` events recorded before `at_ms` (Unix ms),
    /// oldest first; returns how many went. Works in chunks of at most 1000 rows, each
    /// its own short statement, and each looks only at the oldest rows by id (so it reads
    /// a chunk's worth of rows, not the table): a row goes once every older row is past
    /// the cutoff too, which is the normal case since events are appended in time order.
    /// Call it again (e.g. until it returns 0) to go further.
    pub async fn delete_events_before(&self, at_ms: i64, max_rows: u64) -> Result<u64, StoreError> {
        let mut deleted = 0;
        while deleted < max_rows {
            let chunk = (max_rows - deleted).min(DELETE_CHUNK);
            let n = sqlx::query(
                "DELETE FROM boot_events WHERE at_ms < $1 AND id IN \
                 (SELECT id FROM boot_events ORDER BY id LIMIT $2)",
            )
            .bind(at_ms)
            .bind(i64::try_from(chunk).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await?
            .rows_affected();
            deleted += n;
            if n == 0 {
                break;
            }
        }
        Ok(deleted)
    }
}

/// One row of `select!` as an event.
pub(super) fn event_row(r: &AnyRow) -> Result<EventRow, StoreError> {
    let corrupt = |what, value: String| StoreError::Corrupt { what, value };
    let mac: String = r.try_get("mac")?;
    let stage: String = r.try_get("stage")?;
    let manifest: Option<String> = r.try_get("manifest")?;
    let via: String = r.try_get("via")?;
    let peer: Option<String> = r.try_get("peer")?;
    let detail: String = r.try_get("detail")?;
    let stage: BootStage = stage
        .parse()
        .map_err(|_| corrupt("event stage", stage.clone()))?;
    Ok(EventRow {
        id: r.try_get("id")?,
        attempt: r.try_get("attempt")?,
        event: BootEvent {
            at_ms: r.try_get("at_ms")?,
            mac: mac.parse().map_err(|_| corrupt("event MAC", mac.clone()))?,
            manifest: match manifest {
                Some(m) => Some(m.parse().map_err(|_| corrupt("event digest", m.clone()))?),
                None => None,
            },
            via: via.parse().map_err(|_| corrupt("event via", via.clone()))?,
            peer: match peer {
                Some(p) => Some(p.parse().map_err(|_| corrupt("event peer", p.clone()))?),
                None => None,
            },
            // Lenient: a detail that does not fit its stage's schema is kept as the JSON
            // it is (EventDetail::Unparsed).
            detail: EventDetail::from_value(
                stage,
                serde_json::from_str(&detail)
                    .map_err(|_| corrupt("event detail", detail.clone()))?,
            ),
        },
    })
}
