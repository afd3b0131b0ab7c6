//! What the fleet metrics count, read from the store (the rows are never deleted, so the
//! totals only grow): automatic rollbacks, boot-once results, and the members of the
//! rollouts in progress by state. The daemon reads it every few seconds for `/metrics`.

use sqlx::Row;

use super::{Store, StoreError};

/// The counts behind the fleet metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetCounts {
    /// `machine.rolled_back` fleet events.
    pub rollbacks: u64,
    /// Ended boot-once requests by state (`booted`, `failed`, `expired`).
    pub boot_once: Vec<(String, u64)>,
    /// Members of running, paused or rolling-back rollouts, by member state.
    pub members: Vec<(String, u64)>,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Store {
    /// Reads the [`FleetCounts`].
    pub async fn fleet_counts(&self) -> Result<FleetCounts, StoreError> {
        let rollbacks: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM fleet_events WHERE kind = 'machine.rolled_back'",
        )
        .fetch_one(&self.pool)
        .await?;
        let mut out = FleetCounts {
            rollbacks: count(rollbacks),
            ..FleetCounts::default()
        };
        for r in sqlx::query(
            "SELECT state, COUNT(*) AS n FROM boot_once WHERE state IN ('booted', 'failed', 'expired') GROUP BY state",
        )
        .fetch_all(&self.pool)
        .await?
        {
            out.boot_once.push((r.try_get("state")?, count(r.try_get("n")?)));
        }
        for r in sqlx::query(
            "SELECT m.state AS state, COUNT(*) AS n FROM rollout_members m JOIN rollouts r ON r.name = m.rollout \
             WHERE r.state IN ('running', 'paused', 'rolling_back') GROUP BY m.state",
        )
        .fetch_all(&self.pool)
        .await?
        {
            out.members.push((r.try_get("state")?, count(r.try_get("n")?)));
        }
        Ok(out)
    }
}
