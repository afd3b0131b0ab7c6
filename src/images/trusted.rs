//! Which blob files this process has verified: a blob is served only once its file,
//! as it is on disk now, has hashed to its name in this process.
//!
//! A file is known by its [`FileStamp`] (device, inode, length, modification and change
//! times): writing to a blob, replacing it or truncating it changes the stamp, so the
//! next request hashes it again. A file that does not hash to its name is quarantined
//! ([`BlobStore::quarantine`]) and never served; the replicator then fetches it again
//! from a peer. What the stamp cannot see (a disk flipping bits without a write) is left
//! to `tabula image verify`.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};

use super::{BlobStore, ImageError, Verified};
use crate::boot::Digest;

/// What identifies one version of a file on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileStamp {
    /// The stamp of an open file's metadata.
    pub fn of(m: &Metadata) -> FileStamp {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        }
    }
}

/// The outcome of [`Trusted::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// The file hashes to its name (now or when it last had this stamp).
    Good,
    /// There is no such blob here.
    Missing,
    /// It did not hash to its name: it was quarantined.
    Corrupt { actual: Digest },
}

/// The verified files of this process. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Trusted {
    map: Arc<Mutex<HashMap<Digest, FileStamp>>>,
    /// One lock per blob being hashed: the first requests of a storm for a blob not yet
    /// verified wait for one hash instead of each reading the whole file.
    hashing: Arc<Mutex<HashMap<Digest, Arc<Mutex<()>>>>>,
    /// Whole-file hashes done (tests read it).
    hashes: Arc<std::sync::atomic::AtomicU64>,
}

impl Trusted {
    /// Whether `d`'s file with `stamp` was verified (no I/O).
    pub fn is_trusted(&self, d: &Digest, stamp: &FileStamp) -> bool {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(d) == Some(stamp)
    }

    /// Records that `d`'s file as it is now hashes to `d` (it was just verified).
    pub fn mark(&self, store: &BlobStore, d: &Digest) {
        if let Ok(m) = std::fs::metadata(store.path(d)) {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.insert(*d, FileStamp::of(&m));
        }
    }

    /// Verifies `d`'s file unless its current stamp was verified; quarantines it when it
    /// does not hash to `d`. Blocking (hashes the whole file).
    pub fn check(&self, store: &BlobStore, d: &Digest) -> Result<Trust, ImageError> {
        let stamp = match File::open(store.path(d)).and_then(|f| f.metadata()) {
            Ok(m) if m.is_file() => FileStamp::of(&m),
            Ok(_) => return Ok(Trust::Missing),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Trust::Missing),
            Err(e) => return Err(ImageError::io("cannot open", &store.path(d), e)),
        };
        if self.is_trusted(d, &stamp) {
            return Ok(Trust::Good);
        }
        let lock = {
            let mut h = self.hashing.lock().unwrap_or_else(|p| p.into_inner());
            h.entry(*d).or_default().clone()
        };
        let _one = lock.lock().unwrap_or_else(|p| p.into_inner());
        // Another check may have hashed this very file while this one waited.
        if self.is_trusted(d, &stamp) {
            return Ok(Trust::Good);
        }
        self.hashes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let verified = store.verify(d);
        self.hashing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(d);
        match verified? {
            Verified::Ok { .. } => {
                let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
                map.insert(*d, stamp);
                Ok(Trust::Good)
            }
            Verified::Missing => Ok(Trust::Missing),
            Verified::Corrupt { actual } => {
                self.forget(d);
                tracing::error!(blob = %d, actual = %actual, "blob does not hash to its name: never served");
                store.quarantine(d)?;
                Ok(Trust::Corrupt { actual })
            }
        }
    }

    /// Forgets `d` (it was removed or replaced).
    pub fn forget(&self, d: &Digest) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(d);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn concurrent_first_checks_hash_the_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let d = s.put_bytes(&vec![7u8; 8 << 20]).unwrap();
        let t = Trusted::default();
        std::thread::scope(|sc| {
            for _ in 0..8 {
                sc.spawn(|| assert!(matches!(t.check(&s, &d).unwrap(), Trust::Good)));
            }
        });
        assert_eq!(t.hashes.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn a_written_blob_is_checked_again_and_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let d = s.put_bytes(b"precious").unwrap();
        let t = Trusted::default();
        assert_eq!(t.check(&s, &d).unwrap(), Trust::Good);
        let m = std::fs::metadata(s.path(&d)).unwrap();
        assert!(t.is_trusted(&d, &FileStamp::of(&m)));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let p = s.path(&d);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&p, b"tampered").unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert!(
            !t.is_trusted(&d, &FileStamp::of(&m)),
            "a write changes the stamp"
        );
        assert_eq!(
            t.check(&s, &d).unwrap(),
            Trust::Corrupt {
                actual: Digest::of(b"tampered")
            }
        );
        assert!(!s.contains(&d), "quarantined");
        assert_eq!(t.check(&s, &d).unwrap(), Trust::Missing);
    }
}
