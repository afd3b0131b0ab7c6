//! Membership: this server's row in `servers`, renewed every `ha.heartbeat`, and the
//! read model `tabula server list` shows (who is alive, what it serves, its version,
//! which roles it holds).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{LeaderRow, MemberRow, Store, StoreError};

/// A server counts as alive while its last beat is younger than this many heartbeats.
pub const ALIVE_BEATS: u32 = 3;

/// Beats `me` into the store every `every` until `stop` (failures logged, retried); each
/// outcome is the store's reachability in `health` (what `/readyz` reports).
pub async fn run(
    store: Store,
    me: MemberRow,
    every: Duration,
    health: crate::health::Health,
    stop: CancellationToken,
) {
    let mut failing = false;
    loop {
        let beat = store.heartbeat(&me).await;
        health.store_reachable(beat.is_ok());
        match beat {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("membership heartbeat written again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "membership heartbeat not written");
            }
            Err(_) => {}
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// A random per-process instance token (distinguishes restarts and duplicate ids).
pub fn instance() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        b = crate::store::now_ms().to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One line of `tabula server list`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MemberView {
    #[serde(flatten)]
    pub row: MemberRow,
    /// Milliseconds since its last heartbeat (database clock).
    pub age_ms: i64,
    pub alive: bool,
    /// The roles whose unexpired leader row names it.
    pub roles: Vec<String>,
}

/// Every server with its liveness (alive while younger than [`ALIVE_BEATS`] beats of
/// `every`) and the roles it holds now.
pub async fn list(store: &Store, every: Duration) -> Result<Vec<MemberView>, StoreError> {
    let (rows, now) = store.members().await?;
    let leaders: Vec<LeaderRow> = store.leaders().await?;
    let limit = i64::try_from((every * ALIVE_BEATS).as_millis()).unwrap_or(i64::MAX);
    Ok(rows
        .into_iter()
        .map(|row| {
            let age_ms = now - row.heartbeat_ms;
            let roles = leaders
                .iter()
                .filter(|l| l.holder == row.id && l.expires_ms > now)
                .map(|l| l.role.clone())
                .collect();
            MemberView {
                alive: age_ms < limit,
                age_ms,
                roles,
                row,
            }
        })
        .collect())
}
