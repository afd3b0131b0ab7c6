//! Blobs arriving from a peer, and blobs found corrupt.
//!
//! A replicated blob is written to `<root>/partial/<hex>` as its bytes arrive, so a
//! fetch cut off half way (a dead peer, a restart of this server) resumes from the
//! partial file's length with an HTTP `Range`. The file is **not** named by a writer's
//! pid (unlike `tmp/`): it outlives the process on purpose. Only [`BlobStore::adopt_partial`]
//! moves it into `sha256/`, and only after the whole file hashed to its name; a file that
//! does not is removed, never linked.
//!
//! A blob in `sha256/` found not to hash to its name is moved to `<root>/quarantine/`
//! ([`BlobStore::quarantine`]), out of every path that serves or references blobs, and
//! kept there for an operator to look at.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::blobs::hash_reader;
use super::{BlobStore, ImageError};
use crate::boot::Digest;

impl BlobStore {
    /// Where a partial download of `d` is kept (its parent is created).
    pub fn partial_path(&self, d: &Digest) -> Result<PathBuf, ImageError> {
        let dir = self.root.join("partial");
        fs::create_dir_all(&dir).map_err(|e| ImageError::io("cannot create", &dir, e))?;
        Ok(dir.join(d.hex()))
    }

    /// Bytes of `d` already downloaded (0 when none).
    pub fn partial_len(&self, d: &Digest) -> u64 {
        self.partial_path(d)
            .ok()
            .and_then(|p| fs::metadata(p).ok())
            .map_or(0, |m| m.len())
    }

    /// Removes the partial download of `d`, if any.
    pub fn drop_partial(&self, d: &Digest) -> Result<(), ImageError> {
        let p = self.partial_path(d)?;
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ImageError::io("cannot remove", &p, e)),
        }
    }

    /// Hashes the complete partial download of `d`: when it hashes to `d` it is made
    /// read-only, fsynced and linked into place (its size returned); otherwise it is
    /// removed and the error is [`ImageError::Corrupt`]. Blocking.
    pub fn adopt_partial(&self, d: &Digest) -> Result<u64, ImageError> {
        let p = self.partial_path(d)?;
        let mut f = File::open(&p).map_err(|e| ImageError::io("cannot open", &p, e))?;
        let hashed = hash_reader(&mut f, None).map_err(|e| ImageError::io("cannot read", &p, e));
        let result = hashed.and_then(|(actual, size)| {
            if actual != *d {
                return Err(ImageError::Corrupt {
                    expected: *d,
                    actual,
                });
            }
            let f = OpenOptions::new()
                .write(true)
                .open(&p)
                .map_err(|e| ImageError::io("cannot open", &p, e))?;
            f.set_permissions(fs::Permissions::from_mode(0o444))
                .map_err(|e| ImageError::io("cannot chmod", &p, e))?;
            f.sync_all()
                .map_err(|e| ImageError::io("cannot fsync", &p, e))?;
            self.link_into_place(&p, d)?;
            Ok(size)
        });
        // Linked or refused: the partial name is never needed again.
        let _ = fs::remove_file(&p);
        result
    }

    /// Moves the blob `d` out of `sha256/` into `quarantine/<hex>` (replacing an older
    /// quarantined copy), so it is never served again. Whether there was one to move.
    pub fn quarantine(&self, d: &Digest) -> Result<bool, ImageError> {
        let dir = self.root.join("quarantine");
        fs::create_dir_all(&dir).map_err(|e| ImageError::io("cannot create", &dir, e))?;
        let to = dir.join(d.hex());
        match fs::rename(self.path(d), &to) {
            Ok(()) => {
                tracing::warn!(blob = %d, to = %to.display(), "corrupt blob quarantined");
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ImageError::io("cannot quarantine", &self.path(d), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn a_partial_is_linked_only_when_it_hashes_to_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let d = Digest::of(b"hello world");
        let p = s.partial_path(&d).unwrap();
        fs::write(&p, b"hello").unwrap();
        assert_eq!(s.partial_len(&d), 5);
        OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b" world")
            .unwrap();
        assert_eq!(s.adopt_partial(&d).unwrap(), 11);
        assert!(s.contains(&d));
        assert_eq!(s.partial_len(&d), 0);

        let other = Digest::of(b"other");
        fs::write(s.partial_path(&other).unwrap(), b"not other").unwrap();
        assert!(matches!(
            s.adopt_partial(&other),
            Err(ImageError::Corrupt { .. })
        ));
        assert!(!s.contains(&other), "a mismatch is never linked");
        assert_eq!(s.partial_len(&other), 0, "and not kept");

        assert!(s.quarantine(&d).unwrap());
        assert!(!s.contains(&d));
        assert!(dir.path().join("quarantine").join(d.hex()).exists());
        assert!(!s.quarantine(&d).unwrap());
    }
}
