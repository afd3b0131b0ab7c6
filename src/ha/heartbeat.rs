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
    let mut first = true;
    let mut warned = false;
    loop {
        let beat = beat_once(&store, &me, first).await;
        if let Ok(Some(other)) = &beat
            && !warned
        {
            warned = true;
            tracing::error!(
                server = %me.id,
                other = %other,
                "another running server uses this server.id: ids must be unique (both hold the same leader rows)"
            );
        }
        let beat = beat.map(|_| ());
        first = false;
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

/// Writes one heartbeat. Unless this is the process's `first` beat, the row is read
/// first: another instance token there means another process beats with the same id
/// (returned). On the first beat a different token is this server's previous run.
pub async fn beat_once(
    store: &Store,
    me: &MemberRow,
    first: bool,
) -> Result<Option<String>, StoreError> {
    let seen = if first {
        None
    } else {
        store
            .member_instance(&me.id)
            .await?
            .filter(|i| *i != me.instance)
    };
    store.heartbeat(me).await?;
    Ok(seen)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_process_with_the_same_id_is_noticed() {
        let f = crate::store::tests::sqlite().await;
        let me = |instance: &str| MemberRow {
            id: "pxe-1".into(),
            instance: instance.into(),
            version: "0".into(),
            serves: "dhcp=full".into(),
            api_url: None,
            started_ms: 0,
            heartbeat_ms: 0,
        };
        let (a, b) = (me("aaaa"), me("bbbb"));
        // A restart (a new token on the first beat) is not a duplicate.
        assert_eq!(beat_once(&f.store, &a, true).await.unwrap(), None);
        assert_eq!(beat_once(&f.store, &a, false).await.unwrap(), None);
        assert_eq!(beat_once(&f.store, &b, true).await.unwrap(), None);
        assert_eq!(
            beat_once(&f.store, &a, false).await.unwrap(),
            Some("bbbb".into())
        );
        let list = list(&f.store, Duration::from_secs(1)).await.unwrap();
        assert_eq!(list.len(), 1);
        assert!(list[0].alive);
    }
}
