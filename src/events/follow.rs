//! Following the boot history: every stored event matching a filter, in id order,
//! exactly once, from a cursor on — first from the store, then live from the [`Hub`].
//!
//! Why this is exact: the store makes ids visible in id order (SQLite serialises writers;
//! on PostgreSQL event inserts take a transaction lock, see `store/events.rs`), so when
//! the newest id is N, every event up to N is either visible or will never exist. The
//! follower keeps `scanned`, the highest id it has looked at (matching or not), and
//! delivers only ids above it. A live commit that starts right after `scanned` is read
//! from the hub; anything else (a gap: another server's events, a lagging subscriber, or
//! nothing heard for [`Follower::POLL`]) goes back to the store from `scanned`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::broadcast;

use super::hub::{Committed, Hub};
use crate::boot::{BootStage, EventText, Mac};
use crate::store::{EventRow, Store, StoreError};

/// Which events a follower wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    pub mac: Option<Mac>,
    pub stage: Option<BootStage>,
}

impl Filter {
    fn matches(&self, e: &EventText) -> bool {
        self.mac.is_none_or(|m| m == e.mac) && self.stage.is_none_or(|s| s == e.stage)
    }
}

/// Reads every matching event after a cursor, then follows new ones.
#[derive(Debug)]
pub(crate) struct Follower {
    store: Store,
    rx: broadcast::Receiver<Committed>,
    filter: Filter,
    /// Highest id looked at.
    scanned: i64,
    /// Read from the store but not handed out yet.
    pending: VecDeque<EventRow>,
    /// Whether the next step reads the store (catching up) or waits on the hub.
    catch_up: bool,
}

impl Follower {
    /// Rows read from the store per query.
    pub(super) const PAGE: i64 = 1000;
    /// How long to wait on the hub before looking at the store anyway (events written
    /// by other processes reach the store without passing this hub).
    pub(super) const POLL: Duration = Duration::from_secs(1);

    /// Follows events with ids above `after` (0: the whole history). Subscribes before
    /// its first store read, so nothing committed in between is missed.
    pub(crate) fn new(store: Store, hub: &Hub, filter: Filter, after: i64) -> Follower {
        Follower {
            rx: hub.subscribe(),
            store,
            filter,
            scanned: after.max(0),
            pending: VecDeque::new(),
            catch_up: true,
        }
    }

    /// Where a reader that stops now resumes (`after`): every matching event up to it
    /// has been handed out.
    pub(crate) fn cursor(&self) -> i64 {
        self.pending.front().map_or(self.scanned, |e| e.id - 1)
    }

    /// The next matching event; `Ok(None)` once the hub is gone (shutdown) and the store
    /// holds nothing more.
    pub(crate) async fn next(&mut self) -> Result<Option<EventRow>, StoreError> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(Some(e));
            }
            if self.catch_up {
                if self.read_store().await? {
                    self.catch_up = false;
                }
                continue;
            }
            match tokio::time::timeout(Self::POLL, self.rx.recv()).await {
                Ok(Ok(commit)) => self.take(&commit)?,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => self.catch_up = true,
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    return if self.read_store().await? && self.pending.is_empty() {
                        Ok(None)
                    } else {
                        continue;
                    };
                }
            }
        }
    }

    /// One page from the store after `scanned`; true when it reached the newest event.
    async fn read_store(&mut self) -> Result<bool, StoreError> {
        // Read the newest id first: everything up to it is visible now or never.
        let newest = self.store.last_event_id().await?;
        let rows = self
            .store
            .events(self.filter.mac, self.scanned, Self::PAGE)
            .await?;
        let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= Self::PAGE;
        for r in rows {
            self.scanned = self.scanned.max(r.id);
            if self.filter.stage.is_none_or(|s| s == r.event.stage()) {
                self.pending.push_back(r);
            }
        }
        if full {
            return Ok(false);
        }
        self.scanned = self.scanned.max(newest);
        Ok(true)
    }

    /// A live commit: used when it continues right after `scanned`, else a gap to fill.
    fn take(&mut self, commit: &Committed) -> Result<(), StoreError> {
        let Some(first) = commit.first() else {
            return Ok(());
        };
        let last = commit.last().map_or(first.id, |s| s.id);
        if last <= self.scanned {
            return Ok(()); // already read from the store
        }
        if first.id > self.scanned + 1 {
            self.catch_up = true; // something in between came from elsewhere
            return Ok(());
        }
        for s in commit.iter().filter(|s| s.id > self.scanned) {
            if self.filter.matches(&s.event) {
                self.pending.push_back(s.row()?);
            }
        }
        self.scanned = last;
        Ok(())
    }
}
