//! What every blob server must hold: the manifest of every published version, and,
//! once that manifest is here to be read, every blob it names. Manifests are parsed
//! once per process (they are immutable) and kept by digest.

use std::collections::{BTreeMap, HashMap};

use super::ReplicaError;
use crate::boot::Digest;
use crate::images::{BlobStore, Manifest};
use crate::store::Store;

/// The digests wanted, each with the versions that need it and its size when known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub blobs: BTreeMap<Digest, Need>,
}

/// Why a blob is wanted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Need {
    /// Its size, from the manifest naming it (0 for a manifest itself: not known ahead).
    pub size: u64,
    /// `name@version` of the versions that need it.
    pub versions: Vec<String>,
}

/// Parsed manifests, by digest.
#[derive(Debug, Default)]
pub(crate) struct Manifests {
    parsed: HashMap<Digest, Manifest>,
}

impl Manifests {
    /// The manifest `d`, read from `blobs` if it is there (and verified: a manifest blob
    /// that does not hash to its name is not parsed); `None` while it is not here.
    pub(crate) async fn get(&mut self, blobs: &BlobStore, d: &Digest) -> Option<&Manifest> {
        if !self.parsed.contains_key(d) {
            let b = blobs.clone();
            let digest = *d;
            let read = tokio::task::spawn_blocking(move || {
                b.read_verified(&digest)
                    .and_then(|bytes| Manifest::from_bytes(&bytes, &digest))
            })
            .await
            .ok()?;
            match read {
                Ok(m) => {
                    self.parsed.insert(*d, m);
                }
                Err(e) => {
                    tracing::debug!(manifest = %d, error = %e, "manifest not readable here yet");
                    return None;
                }
            }
        }
        self.parsed.get(d)
    }
}

/// Every blob the published versions need, as far as this server can tell now.
pub(crate) async fn scan(
    store: &Store,
    blobs: &BlobStore,
    manifests: &mut Manifests,
) -> Result<Wanted, ReplicaError> {
    let mut w = Wanted::default();
    for v in store.versions().await? {
        let label = format!("{}@{}", v.name, v.version);
        let Ok(d) = v.manifest.parse::<Digest>() else {
            tracing::warn!(version = %label, manifest = %v.manifest, "version names no digest");
            continue;
        };
        w.blobs.entry(d).or_default().versions.push(label.clone());
        if let Some(m) = manifests.get(blobs, &d).await {
            for b in m.blobs() {
                let need = w.blobs.entry(b.digest).or_default();
                need.size = b.size;
                need.versions.push(label.clone());
            }
        }
    }
    Ok(w)
}
