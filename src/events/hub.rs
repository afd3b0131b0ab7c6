//! The live side of the pipeline: after each commit the writer publishes what it stored,
//! with the ids the store assigned, to every in-process subscriber.
//!
//! One message per commit (an `Arc` of the batch, so a subscriber costs no copy). A
//! subscriber that falls more than [`Hub::new`]'s capacity behind is told it lagged and
//! catches up from the store ([`super::Follower`] does that); the writer never waits for
//! a subscriber.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::boot::EventText;
use crate::store::{EventRow, StoreError};

/// An event as stored: its id and its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stored {
    pub id: i64,
    pub event: EventText,
}

impl Stored {
    /// The event as the store would read it back (its detail parsed).
    pub(crate) fn row(&self) -> Result<EventRow, StoreError> {
        EventRow::from_text(self.id, &self.event)
    }
}

/// One commit's events, ids ascending.
pub(super) type Committed = Arc<[Stored]>;

/// The broadcast of committed events. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Hub {
    tx: broadcast::Sender<Committed>,
}

impl Hub {
    /// A hub that keeps up to `commits` commits for its slowest subscriber.
    pub(crate) fn new(commits: usize) -> Hub {
        let (tx, _) = broadcast::channel(commits.max(1));
        Hub { tx }
    }

    /// Every commit from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Committed> {
        self.tx.subscribe()
    }

    /// Publishes one commit (nobody listening is fine).
    pub(super) fn publish(&self, commit: Committed) {
        let _ = self.tx.send(commit);
    }
}

impl Default for Hub {
    /// Room for 1,024 commits: at a boot storm's ~100 commits/s, ten seconds.
    fn default() -> Hub {
        Hub::new(1024)
    }
}
