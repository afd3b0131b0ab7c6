//! Reloads on other servers' writes: on PostgreSQL, each revision the store announces
//! (the [`RevisionFeed`]) marks the inventory snapshot stale and wakes whoever waits on
//! `changed` (the DHCP snapshot refresher), so a `pin set` on one server reaches every
//! server's decisions in well under the revision poll's second. The poll stays: a
//! notification sent while this connection was down is lost.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::inventory::Inventory;
use crate::store::RevisionFeed;

/// Follows the feed of the store at `url` until `stop` (nothing to do on SQLite).
pub async fn run(
    url: String,
    inventory: Arc<Inventory>,
    changed: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        let feed = tokio::select! {
            () = stop.cancelled() => return,
            f = RevisionFeed::connect(&url) => f,
        };
        let mut feed = match feed {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "revision feed not connected: relying on the revision poll");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
        };
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return,
                n = feed.next() => n,
            };
            match next {
                Ok(revision) => {
                    tracing::debug!(revision, "store revision announced");
                    inventory.mark_stale();
                    changed.notify_waiters();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "revision feed lost: relying on the revision poll");
                    break;
                }
            }
        }
    }
}
