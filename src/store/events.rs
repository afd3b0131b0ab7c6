//! Boot events: an append-only history per MAC.

use std::sync::LazyLock;

use sqlx::Row;

use super::{Store, StoreError};
use crate::boot::{BootEvent, EventDetail, EventText, Mac};

/// Rows per INSERT statement, largest first; a batch is split greedily (1 must be last).
pub const ROWS_PER_INSERT: [usize; 4] = [64, 16, 4, 1];

/// The INSERT texts for [`ROWS_PER_INSERT`].
static INSERTS: LazyLock<Vec<(usize, String)>> = LazyLock::new(|| {
    ROWS_PER_INSERT
        .iter()
        .map(|&n| {
            let row = "(?, ?, ?, ?, ?, ?, ?)";
            let rows = vec![row; n].join(", ");
            (
                n,
                format!(
                    "INSERT INTO boot_events (at_ms, mac, stage, manifest, via, peer, detail) VALUES {rows} RETURNING id"
                ),
            )
        })
        .collect()
});

/// A stored boot event with its sequence number.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRow {
    pub id: i64,
    pub event: BootEvent,
}

impl Store {
    /// Appends events in one transaction, as multi-row INSERTs of a few fixed sizes
    /// ([`ROWS_PER_INSERT`]): per-statement overhead, not SQLite, is the cost at
    /// boot-storm rates, and fixed texts are prepared once and then reused from the
    /// connection's statement cache instead of being parsed for every batch.
    pub async fn append_events(&self, events: &[BootEvent]) -> Result<Vec<i64>, StoreError> {
        let texts: Vec<EventText> = events.iter().map(EventText::from).collect();
        self.append_texts(&texts).await
    }

    /// [`Store::append_events`] for events whose detail is JSON text already. Returns
    /// the ids assigned, in input order.
    pub async fn append_texts(&self, events: &[EventText]) -> Result<Vec<i64>, StoreError> {
        let mut ids = Vec::with_capacity(events.len());
        let mut tx = self.begin().await?;
        let mut rest = events;
        while !rest.is_empty() {
            let (rows, sql) = INSERTS
                .iter()
                .find(|(rows, _)| *rows <= rest.len())
                .unwrap_or(&INSERTS[INSERTS.len() - 1]);
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
                    .bind(&*e.detail);
            }
            // Ids grow in insertion order inside the (write-locked) transaction; the
            // order RETURNING emits them in is not promised, so sort each chunk's.
            let mut chunk_ids: Vec<i64> = q
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get::<i64, _>(0))
                .collect::<Result<_, _>>()?;
            chunk_ids.sort_unstable();
            ids.extend(chunk_ids);
            rest = after;
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

    /// Events after `after_id` (0 for all), optionally for one MAC, oldest first, at most `limit`.
    pub async fn events(
        &self,
        mac: Option<Mac>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, mac, stage, manifest, via, peer, detail FROM boot_events \
             WHERE id > $1 AND ($2 IS NULL OR mac = $2) ORDER BY id LIMIT $3",
        )
        .bind(after_id)
        .bind(mac.map(|m| m.to_string()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let corrupt = |what, value: String| StoreError::Corrupt { what, value };
                let mac: String = r.try_get("mac")?;
                let stage: String = r.try_get("stage")?;
                let manifest: Option<String> = r.try_get("manifest")?;
                let via: String = r.try_get("via")?;
                let peer: Option<String> = r.try_get("peer")?;
                let detail: String = r.try_get("detail")?;
                let stage: crate::boot::BootStage = stage
                    .parse()
                    .map_err(|_| corrupt("event stage", stage.clone()))?;
                Ok(EventRow {
                    id: r.try_get("id")?,
                    event: BootEvent {
                        at_ms: r.try_get("at_ms")?,
                        mac: mac.parse().map_err(|_| corrupt("event MAC", mac.clone()))?,
                        manifest: match manifest {
                            Some(m) => {
                                Some(m.parse().map_err(|_| corrupt("event digest", m.clone()))?)
                            }
                            None => None,
                        },
                        via: via.parse().map_err(|_| corrupt("event via", via.clone()))?,
                        peer: match peer {
                            Some(p) => {
                                Some(p.parse().map_err(|_| corrupt("event peer", p.clone()))?)
                            }
                            None => None,
                        },
                        // Lenient: a detail that does not fit its stage's schema is kept
                        // as the JSON it is (EventDetail::Unparsed).
                        detail: EventDetail::from_value(
                            stage,
                            serde_json::from_str(&detail)
                                .map_err(|_| corrupt("event detail", detail.clone()))?,
                        ),
                    },
                })
            })
            .collect()
    }
}
