//! Open blob files, kept by digest for a moment so that a storm of requests for the same
//! blobs (every machine fetching one kernel; random ranges of one root image) costs no
//! `open`/`fstat`/`close` per request, and no digest formatting for the `ETag`.
//!
//! Safe because blobs are immutable: a file named by its digest always holds that
//! content (verified when it was published). An entry is reused for at most [`TTL`], so a
//! blob removed by `tabula image gc` stops being served within that time, as a new one is
//! served at once (misses are not remembered). At most [`MAX_OPEN`] files are held.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::boot::Digest;
use crate::images::{BlobStore, FileStamp};

/// How long an opened blob is reused.
pub(super) const TTL: Duration = Duration::from_secs(1);
/// Most blobs held open at once.
pub(super) const MAX_OPEN: usize = 64;

/// One open blob.
#[derive(Debug)]
pub struct OpenBlob {
    pub file: File,
    pub size: u64,
    /// `"sha256:<hex>"`, quoted, for the `ETag` header.
    pub etag: String,
    /// The file's stamp when opened (what [`crate::images::Trusted`] compares).
    pub stamp: FileStamp,
    opened: Instant,
}

/// The cache of open blobs. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct BlobFiles {
    open: Arc<Mutex<HashMap<Digest, Arc<OpenBlob>>>>,
}

impl BlobFiles {
    /// The blob `digest` of `store`, opened now or within the last [`TTL`]; `None` when
    /// there is no such regular file.
    pub fn get(&self, store: &BlobStore, digest: &Digest) -> Option<Arc<OpenBlob>> {
        let now = Instant::now();
        {
            let map = self.open.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(b) = map.get(digest)
                && now.duration_since(b.opened) < TTL
            {
                return Some(b.clone());
            }
        }
        let file = File::open(store.path(digest)).ok()?;
        let meta = file.metadata().ok().filter(|m| m.is_file())?;
        let (size, stamp) = (meta.len(), FileStamp::of(&meta));
        let blob = Arc::new(OpenBlob {
            file,
            size,
            stamp,
            etag: super::blob_head::etag_of(digest),
            opened: now,
        });
        let mut map = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_OPEN {
            map.retain(|_, b| now.duration_since(b.opened) < TTL);
            if map.len() >= MAX_OPEN {
                map.clear();
            }
        }
        map.insert(*digest, blob.clone());
        Some(blob)
    }
}

impl BlobFiles {
    /// Drops `digest`'s open file (it was found corrupt or replaced).
    pub fn forget(&self, digest: &Digest) {
        let mut map = self.open.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(digest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_then_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let d = store.put_bytes(b"hello").unwrap();
        let files = BlobFiles::default();
        let a = files.get(&store, &d).unwrap();
        assert_eq!((a.size, a.etag.clone()), (5, format!("\"{d}\"")));
        let b = files.get(&store, &d).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "reused within the TTL");
        std::fs::remove_file(store.path(&d)).unwrap();
        assert!(files.get(&store, &d).is_some(), "still open within the TTL");
        std::thread::sleep(TTL + Duration::from_millis(50));
        assert!(files.get(&store, &d).is_none(), "gone after the TTL");
        assert!(files.get(&store, &Digest::of(b"none")).is_none());
    }
}
