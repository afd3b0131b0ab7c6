//! Webhooks and their deliveries (the outbox): queries only. The dispatcher
//! (`crate::notify::deliver`) fans fleet events out into deliveries, in one transaction
//! with its cursor, so an event is queued for each webhook exactly once.

use sqlx::AssertSqlSafe;

use super::{Store, StoreError};

/// A registered webhook.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct WebhookRow {
    pub id: String,
    pub url: String,
    pub events: String,
    #[serde(skip)]
    pub secret: String,
    pub created_ms: i64,
}

/// One delivery (the log and the outbox).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct DeliveryRow {
    pub webhook: String,
    pub event: i64,
    pub state: String,
    pub attempts: i64,
    pub next_ms: i64,
    pub last_code: Option<i64>,
    pub last_error: Option<String>,
    pub updated_ms: i64,
}

/// A due delivery with what it sends.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DueRow {
    pub webhook: String,
    pub event: i64,
    pub attempts: i64,
    pub url: String,
    pub secret: String,
    pub kind: String,
    pub subject: String,
    pub at_ms: i64,
    pub data: String,
}

impl Store {
    /// Registers a webhook; it receives events from now on (not the past ones).
    pub async fn insert_webhook(&self, w: &WebhookRow) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO webhooks (id, url, events, secret, created_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(&w.id)
            .bind(&w.url)
            .bind(&w.events)
            .bind(&w.secret)
            .bind(w.created_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every webhook.
    pub async fn webhooks(&self) -> Result<Vec<WebhookRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, url, events, secret, created_ms FROM webhooks ORDER BY created_ms, id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Removes a webhook and its deliveries; `false` if there was none.
    pub async fn remove_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE webhook = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    /// A webhook's deliveries, newest first.
    pub async fn deliveries(
        &self,
        webhook: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT webhook, event, state, attempts, next_ms, last_code, last_error, updated_ms \
             FROM webhook_deliveries WHERE webhook = $1 ORDER BY event DESC LIMIT $2",
        )
        .bind(webhook)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Queues the fleet events after the dispatcher's cursor for every webhook that wants
    /// them (`wants(events, kind)`), and moves the cursor, in one transaction; how many
    /// deliveries were queued.
    pub async fn fan_out(
        &self,
        wants: impl Fn(&str, &str) -> bool,
        now: i64,
    ) -> Result<usize, StoreError> {
        let mut tx = self.begin().await?;
        let cursor: i64 = sqlx::query_scalar("SELECT event FROM webhook_cursor WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let events: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT id, kind, at_ms FROM fleet_events WHERE id > $1 ORDER BY id LIMIT 500",
        )
        .bind(cursor)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = events.last().map(|e| e.0) else {
            return Ok(0);
        };
        let hooks: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT id, events, created_ms FROM webhooks")
                .fetch_all(&mut *tx)
                .await?;
        let mut n = 0;
        for (event, kind, at_ms) in &events {
            for (hook, patterns, created) in &hooks {
                if *at_ms < *created || !wants(patterns, kind) {
                    continue;
                }
                sqlx::query(
                    "INSERT INTO webhook_deliveries (webhook, event, state, attempts, next_ms, updated_ms) \
                     VALUES ($1, $2, 'pending', 0, $3, $3) ON CONFLICT (webhook, event) DO NOTHING",
                )
                .bind(hook)
                .bind(event)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                n += 1;
            }
        }
        sqlx::query("UPDATE webhook_cursor SET event = $1 WHERE id = 1")
            .bind(last)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Pending deliveries due at `now`, oldest first.
    pub async fn due_deliveries(&self, now: i64, limit: i64) -> Result<Vec<DueRow>, StoreError> {
        Ok(sqlx::query_as(AssertSqlSafe(
            "SELECT d.webhook, d.event, d.attempts, w.url, w.secret, e.kind, e.subject, e.at_ms, e.data \
             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook JOIN fleet_events e ON e.id = d.event \
             WHERE d.state = 'pending' AND d.next_ms <= $1 ORDER BY d.next_ms, d.event LIMIT $2"
                .to_string(),
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records one try of a delivery: its new state, when to try next, the answer.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_delivery(
        &self,
        webhook: &str,
        event: i64,
        state: &str,
        attempts: i64,
        next_ms: i64,
        code: Option<i64>,
        error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $3, attempts = $4, next_ms = $5, last_code = $6, \
             last_error = $7, updated_ms = $8 WHERE webhook = $1 AND event = $2",
        )
        .bind(webhook)
        .bind(event)
        .bind(state)
        .bind(attempts)
        .bind(next_ms)
        .bind(code)
        .bind(error)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
