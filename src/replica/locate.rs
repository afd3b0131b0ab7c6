//! Who holds what: the live peer a server sends a machine to for a blob it lacks
//! ([`Locator`]), and the rollout gate ([`Gate`]): a version is rolled out only once every
//! live blob server holds all of it.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::ReplicaError;
use crate::boot::Digest;
use crate::store::Store;

/// Finds a live peer holding a blob. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Locator {
    pub store: Store,
    /// This server's `server.id` (never its own holder).
    pub me: String,
}

impl Locator {
    /// The data-plane base URL of a live server other than this one that holds `d`
    /// (the first by id), or `None`.
    pub async fn holder(&self, d: &Digest) -> Option<String> {
        match self.store.holders(&d.to_string(), &self.me).await {
            Ok(h) => h.into_iter().next().map(|h| h.url),
            Err(e) => {
                tracing::warn!(blob = %d, error = %e, "cannot look up a holder");
                None
            }
        }
    }
}

/// The data-plane URLs of the live peers (other blob servers), as the replicator last
/// read them: boot scripts name them after this server's own. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Peers(Arc<RwLock<Arc<[String]>>>);

impl Peers {
    /// The peers now (possibly none).
    pub fn get(&self) -> Arc<[String]> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set(&self, urls: Vec<String>) {
        let mut w = self.0.write().unwrap_or_else(|p| p.into_inner());
        if **w != *urls {
            *w = urls.into();
        }
    }
}

/// The rollout gate: which live blob servers lack part of a version.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gate {
    /// How long to wait for servers to report what they hold before refusing (a
    /// version published a moment ago is reported by its server within a second or two).
    pub settle: Duration,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            settle: Duration::from_secs(3),
        }
    }
}

impl Gate {
    /// The live blob servers missing any of `digests`, with how many they miss; waits
    /// up to `settle` for the list to become empty.
    pub(crate) async fn check(
        &self,
        store: &Store,
        digests: &[Digest],
    ) -> Result<Vec<(String, usize)>, ReplicaError> {
        let until = Instant::now() + self.settle;
        loop {
            let missing = missing_on(store, digests).await?;
            if missing.is_empty() || Instant::now() >= until {
                return Ok(missing);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The live blob servers that do not report every one of `digests` present, each with
/// the number it lacks.
async fn missing_on(
    store: &Store,
    digests: &[Digest],
) -> Result<Vec<(String, usize)>, ReplicaError> {
    let live = store.live_blob_servers().await?;
    if live.is_empty() {
        return Ok(Vec::new());
    }
    let rows = store.replicas().await?;
    let mut out = Vec::new();
    for s in live {
        let lacking = digests
            .iter()
            .filter(|d| {
                let d = d.to_string();
                !rows
                    .iter()
                    .any(|r| r.server == s && r.digest == d && r.state == "present")
            })
            .count();
        if lacking > 0 {
            out.push((s, lacking));
        }
    }
    Ok(out)
}
