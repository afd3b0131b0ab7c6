//! Retention: boot events older than `events.retention` are deleted in the background,
//! in bounded chunks, so the history (and every read of it) stays bounded in time.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError};

/// Rows deleted per transaction: short enough that DHCP's lease commits, which share
/// the write lock on SQLite, never wait long behind one.
pub(crate) const CHUNK: u64 = 5_000;

/// Deletes every event older than `keep` (as of `now_ms`); returns how many.
pub(crate) async fn sweep(store: &Store, keep: Duration, now_ms: i64) -> Result<u64, StoreError> {
    let cutoff = now_ms.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
    let mut total = 0;
    loop {
        let n = store.delete_events_before(cutoff, CHUNK).await?;
        total += n;
        if n < CHUNK {
            return Ok(total);
        }
        // Let other writers in between chunks.
        tokio::task::yield_now().await;
    }
}

/// Sweeps now and then every `every` until `shutdown`, while this server holds the
/// fleet's `jobs` role (`held`): one server sweeps for all.
pub(crate) async fn run(
    store: Store,
    keep: Duration,
    every: Duration,
    held: crate::ha::Leadership,
    shutdown: CancellationToken,
) {
    loop {
        if !*held.borrow() {
            tokio::select! {
                () = tokio::time::sleep(every) => continue,
                () = shutdown.cancelled() => return,
            }
        }
        match sweep(&store, keep, super::now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deleted = n,
                retention = %humantime::format_duration(keep),
                "old boot events deleted"
            ),
            Err(e) => tracing::warn!(error = %e, "boot event retention failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
