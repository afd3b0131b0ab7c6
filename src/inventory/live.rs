//! Loading decisions' state from the stores, and keeping it current.
//!
//! [`Inventory::snapshot`] hands out the cached snapshot while it is younger than the
//! configured maximum age (zero for the CLI, a fraction of a second for the daemon, so a
//! boot storm does not query the database per request); past that it costs one `SELECT` of
//! the revision, and a changed revision rebuilds the snapshot (machines, pins, channels,
//! and every manifest read from the blob store and verified against its digest).
//!
//! When the store cannot be read, a service that has a snapshot keeps deciding from it
//! (degraded mode: known machines keep booting as last decided) and asks the store again
//! on the next call; only a first load fails.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::InventoryError;
use super::pin::PinTarget;
use super::snapshot::{Pin, Settings, Snapshot, Version};
use crate::boot::Digest;
use crate::images::{BlobStore, Manifest};
use crate::store::Store;

/// The inventory as a running service sees it.
#[derive(Debug)]
pub struct Inventory {
    store: Store,
    blobs: BlobStore,
    settings: Settings,
    max_age: Duration,
    /// `health.quarantine = "ignore"`.
    quarantine_ignore: bool,
    /// The last snapshot and when its revision was last confirmed.
    cached: std::sync::Mutex<Option<(Arc<Snapshot>, Instant)>>,
    /// Serializes reloads.
    current: Mutex<()>,
    /// Set when the store announced a new revision: the cache is not reused, however young.
    stale: std::sync::atomic::AtomicBool,
    /// Set while the store cannot be read: snapshots are the last one loaded.
    unreachable: std::sync::atomic::AtomicBool,
    /// Set when blobs arrived on this server's disk (replication): the next snapshot
    /// re-reads the manifests even if the revision did not change.
    reread: std::sync::atomic::AtomicBool,
}

impl Inventory {
    /// Wraps the stores; nothing is loaded until first asked.
    pub fn new(store: Store, blobs: BlobStore, settings: Settings) -> Inventory {
        Inventory {
            store,
            blobs,
            settings,
            max_age: Duration::ZERO,
            quarantine_ignore: false,
            cached: std::sync::Mutex::new(None),
            current: Mutex::new(()),
            stale: std::sync::atomic::AtomicBool::new(false),
            unreachable: std::sync::atomic::AtomicBool::new(false),
            reread: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Blobs arrived on this server's disk (a replicated manifest): the next
    /// [`Inventory::snapshot`] loads the versions again, whatever the revision.
    pub fn blobs_arrived(&self) {
        self.reread
            .store(true, std::sync::atomic::Ordering::Release);
        self.mark_stale();
    }

    /// Lets [`Inventory::snapshot`] reuse a snapshot confirmed within `max_age`: changes
    /// then show within that time instead of at once.
    pub fn with_max_age(mut self, max_age: Duration) -> Inventory {
        self.max_age = max_age;
        self
    }

    /// Makes the next [`Inventory::snapshot`] confirm the revision with the store (another
    /// server announced a change), whatever the maximum age.
    pub fn mark_stale(&self) {
        self.stale.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Quarantined machines get no answer (`health.quarantine = "ignore"`) instead of
    /// local boot.
    pub fn with_quarantine_ignore(mut self, ignore: bool) -> Inventory {
        self.quarantine_ignore = ignore;
        self
    }

    fn fresh_cached(&self, max_age: Duration) -> Option<Arc<Snapshot>> {
        if self.stale.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        let c = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        c.as_ref()
            .filter(|(_, at)| at.elapsed() < max_age)
            .map(|(s, _)| s.clone())
    }

    /// The state store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The settings decisions are made with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A snapshot reflecting the store's revision (as of at most the maximum age ago).
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, InventoryError> {
        if let Some(s) = self.fresh_cached(self.max_age) {
            return Ok(s);
        }
        let _reload = self.current.lock().await;
        // Another caller may have refreshed while this one waited.
        if let Some(s) = self.fresh_cached(self.max_age.min(Duration::from_millis(5))) {
            return Ok(s);
        }
        self.stale
            .store(false, std::sync::atomic::Ordering::Release);
        let previous = self
            .cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(s, _)| s.clone());
        let rev = match (self.store.revision().await, &previous) {
            (Ok(rev), _) => {
                if self
                    .unreachable
                    .swap(false, std::sync::atomic::Ordering::AcqRel)
                {
                    tracing::info!("state store reachable again: decisions follow it");
                }
                rev
            }
            // Degraded: keep deciding from the last snapshot (asked again next time).
            (Err(e), Some(last)) => {
                if !self
                    .unreachable
                    .swap(true, std::sync::atomic::Ordering::AcqRel)
                {
                    tracing::warn!(error = %e, revision = last.revision, "state store unreachable: deciding from the last snapshot");
                }
                return Ok(last.clone());
            }
            (Err(e), None) => return Err(e.into()),
        };
        let reread = self.reread.swap(false, std::sync::atomic::Ordering::AcqRel);
        let snap = match previous {
            Some(s) if s.revision == rev && !reread => s,
            _ => Arc::new(self.load(rev).await?),
        };
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((snap.clone(), Instant::now()));
        Ok(snap)
    }

    async fn load(&self, revision: i64) -> Result<Snapshot, InventoryError> {
        let machines = self.store.machines().await?;
        let mut pins = Vec::new();
        for row in self.store.pins().await? {
            pins.push(Pin {
                target: PinTarget::from_key(&row.target)?,
                reference: row.reference.parse()?,
            });
        }
        let mut versions = BTreeMap::new();
        for row in self.store.versions().await? {
            let digest: Digest = row.manifest.parse().map_err(|_| {
                InventoryError::Invalid(format!(
                    "state store holds an invalid manifest digest {:?} for {}@{}",
                    row.manifest, row.name, row.version
                ))
            })?;
            let blobs = self.blobs.clone();
            let manifest = tokio::task::spawn_blocking(move || {
                blobs
                    .read_verified(&digest)
                    .and_then(|b| Manifest::from_bytes(&b, &digest))
                    .map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(format!("manifest load failed: {e}")));
            versions.insert(
                (row.name, row.version),
                Version {
                    manifest_digest: digest,
                    manifest,
                },
            );
        }
        let channels = self
            .store
            .channels()
            .await?
            .into_iter()
            .map(|c| ((c.name, c.channel), c.version))
            .collect();
        // Note: the revision read before loading may be older than what was loaded; the
        // next call then reloads once more, which is harmless.
        let fleet = super::fleet_load::load(&self.store, self.quarantine_ignore).await?;
        Ok(Snapshot::new(
            revision,
            self.settings.clone(),
            machines,
            pins,
            versions,
            channels,
        )
        .with_fleet(fleet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UnknownMachines;

    #[tokio::test]
    async fn an_unreachable_store_keeps_the_last_snapshot() {
        let f = crate::store::tests::sqlite().await;
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            unknown_machines: UnknownMachines::Default,
            console: None,
            base_url: "http://x".into(),
        };
        let blobs = BlobStore::open(dir.path()).unwrap();
        let fresh = Inventory::new(f.store.clone(), blobs.clone(), settings.clone());
        let inv = Inventory::new(f.store.clone(), blobs, settings);
        let first = inv.snapshot().await.unwrap();
        f.store.close().await; // every query fails from now on
        let again = inv.snapshot().await.expect("the last snapshot, degraded");
        assert!(Arc::ptr_eq(&first, &again));
        inv.mark_stale();
        assert!(
            inv.snapshot().await.is_ok(),
            "still degraded, still answering"
        );
        assert!(
            fresh.snapshot().await.is_err(),
            "no snapshot yet: the error shows"
        );
    }
}
