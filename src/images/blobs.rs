//! The content-addressed blob store: `<root>/sha256/<hex>` holds bytes that hash to
//! `<hex>`, and nothing else, ever.
//!
//! Writes go to `<root>/tmp/<pid>.<n>` while hashing, are fsynced, then hard-linked into
//! place (a link, unlike a rename, never replaces an existing file) and the directory is
//! fsynced. A process killed at any moment leaves at most a temporary file, which
//! [`BlobStore::clean_tmp`] removes once its writer is gone. Blobs are read-only (0444).
//! Synchronous I/O: async callers use `spawn_blocking`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::Digest as _;

use super::ImageError;
use crate::boot::Digest;

const CHUNK: usize = 1 << 20;
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory of content-addressed blobs.
#[derive(Clone, Debug)]
pub struct BlobStore {
    pub(super) root: PathBuf,
}

/// The result of re-hashing one blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verified {
    /// Content matches the name.
    Ok { size: u64 },
    /// Content hashes to something else.
    Corrupt { actual: Digest },
    /// No such blob.
    Missing,
}

impl BlobStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        for d in [root.join("sha256"), root.join("tmp")] {
            fs::create_dir_all(&d).map_err(|e| ImageError::io("cannot create", &d, e))?;
        }
        Ok(BlobStore {
            root: root.to_path_buf(),
        })
    }

    /// Where a blob lives (whether or not it exists).
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.root.join("sha256").join(d.hex())
    }

    /// Whether the blob exists.
    pub fn contains(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// Size of a stored blob.
    pub fn size(&self, d: &Digest) -> Result<u64, ImageError> {
        match fs::metadata(self.path(d)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ImageError::Missing(*d)),
            Err(e) => Err(ImageError::io("cannot stat", &self.path(d), e)),
        }
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File, ImageError> {
        File::open(self.path(d)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageError::Missing(*d),
            _ => ImageError::io("cannot open", &self.path(d), e),
        })
    }

    /// Reads a small blob (a manifest) whole, checking its digest.
    pub fn read_verified(&self, d: &Digest) -> Result<Vec<u8>, ImageError> {
        let mut buf = Vec::new();
        self.open_blob(d)?
            .read_to_end(&mut buf)
            .map_err(|e| ImageError::io("cannot read", &self.path(d), e))?;
        let actual = Digest::of(&buf);
        if actual != *d {
            return Err(ImageError::Corrupt {
                expected: *d,
                actual,
            });
        }
        Ok(buf)
    }

    /// Stores the content of a file. Returns its digest and size.
    pub fn put_file(&self, src: &Path) -> Result<(Digest, u64), ImageError> {
        let f = File::open(src).map_err(|e| ImageError::io("cannot open", src, e))?;
        if !f
            .metadata()
            .map_err(|e| ImageError::io("cannot stat", src, e))?
            .is_file()
        {
            return Err(ImageError::io(
                "not a regular file:",
                src,
                io::Error::from(io::ErrorKind::InvalidInput),
            ));
        }
        self.put_reader(f, src)
    }

    /// Stores bytes held in memory.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, ImageError> {
        Ok(self.put_reader(bytes, Path::new("<memory>"))?.0)
    }

    /// Stores everything `r` yields; `origin` names the source in errors.
    pub fn put_reader(&self, mut r: impl Read, origin: &Path) -> Result<(Digest, u64), ImageError> {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}.{n}", std::process::id()));
        let result = self
            .write_tmp(&mut r, &tmp, origin)
            .and_then(|(digest, size)| {
                self.link_into_place(&tmp, &digest)?;
                Ok((digest, size))
            });
        // The temporary name is never needed after this point, whatever happened.
        let _ = fs::remove_file(&tmp);
        result
    }

    /// Stores everything `r` yields if it hashes to `expected`: otherwise nothing is
    /// kept (the temporary file is removed) and the error is [`ImageError::Corrupt`].
    /// Returns the size and whether the blob is new (`false`: it was there already).
    pub fn put_expected(
        &self,
        mut r: impl Read,
        expected: &Digest,
        origin: &Path,
    ) -> Result<(u64, bool), ImageError> {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}.{n}", std::process::id()));
        let existed = self.contains(expected);
        let result = self
            .write_tmp(&mut r, &tmp, origin)
            .and_then(|(actual, size)| {
                if actual != *expected {
                    return Err(ImageError::Corrupt {
                        expected: *expected,
                        actual,
                    });
                }
                self.link_into_place(&tmp, expected)?;
                Ok((size, !existed))
            });
        let _ = fs::remove_file(&tmp);
        result
    }

    pub(super) fn write_tmp(
        &self,
        r: &mut impl Read,
        tmp: &Path,
        origin: &Path,
    ) -> Result<(Digest, u64), ImageError> {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
            .map_err(|e| ImageError::io("cannot create", tmp, e))?;
        let mut write_err = None;
        let (digest, size) = hash_reader(
            r,
            Some(&mut |chunk: &[u8]| {
                if write_err.is_none() {
                    write_err = out.write_all(chunk).err();
                }
            }),
        )
        .map_err(|e| ImageError::io("cannot read", origin, e))?;
        if let Some(e) = write_err {
            return Err(ImageError::io("cannot write", tmp, e));
        }
        out.set_permissions(fs::Permissions::from_mode(0o444))
            .map_err(|e| ImageError::io("cannot chmod", tmp, e))?;
        out.sync_all()
            .map_err(|e| ImageError::io("cannot fsync", tmp, e))?;
        Ok((digest, size))
    }

    pub(super) fn link_into_place(&self, tmp: &Path, digest: &Digest) -> Result<(), ImageError> {
        let dst = self.path(digest);
        match fs::hard_link(tmp, &dst) {
            Ok(()) => {}
            // Same digest, same bytes: the existing blob is kept (never overwritten).
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(ImageError::io("cannot link", &dst, e)),
        }
        let dir = self.root.join("sha256");
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| ImageError::io("cannot fsync", &dir, e))
    }

    /// Takes the store's advisory lock: shared for writers that will reference what they
    /// write (publish), exclusive for `gc`, so gc never removes blobs of a publish in
    /// flight. Released when the returned file is dropped, or by the kernel on `kill -9`.
    pub fn lock(&self, exclusive: bool) -> Result<File, ImageError> {
        let p = self.root.join("lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| ImageError::io("cannot open", &p, e))?;
        let r = if exclusive { f.lock() } else { f.lock_shared() };
        r.map_err(|e| ImageError::io("cannot lock", &p, e))?;
        Ok(f)
    }

    /// Every blob in the store, in digest order. Stray files are ignored.
    pub fn list(&self) -> Result<Vec<Digest>, ImageError> {
        let dir = self.root.join("sha256");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| ImageError::io("cannot list", &dir, e))? {
            let entry = entry.map_err(|e| ImageError::io("cannot list", &dir, e))?;
            if let Some(d) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Re-hashes one blob.
    pub fn verify(&self, d: &Digest) -> Result<Verified, ImageError> {
        let mut f = match self.open_blob(d) {
            Ok(f) => f,
            Err(ImageError::Missing(_)) => return Ok(Verified::Missing),
            Err(e) => return Err(e),
        };
        let (actual, size) = hash_reader(&mut f, None)
            .map_err(|e| ImageError::io("cannot read", &self.path(d), e))?;
        Ok(if actual == *d {
            Verified::Ok { size }
        } else {
            Verified::Corrupt { actual }
        })
    }

    /// Deletes a blob (the caller has checked nothing references it).
    pub fn remove(&self, d: &Digest) -> Result<(), ImageError> {
        match fs::remove_file(self.path(d)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ImageError::io("cannot remove", &self.path(d), e)),
        }
    }

    /// Removes temporary files whose writing process no longer runs. Returns how many.
    pub fn clean_tmp(&self) -> Result<usize, ImageError> {
        let dir = self.root.join("tmp");
        let mut removed = 0;
        for entry in fs::read_dir(&dir).map_err(|e| ImageError::io("cannot list", &dir, e))? {
            let entry = entry.map_err(|e| ImageError::io("cannot list", &dir, e))?;
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.split('.').next())
                .and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                fs::remove_file(entry.path())
                    .map_err(|e| ImageError::io("cannot remove", &entry.path(), e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Receives each chunk as it is hashed.
type ChunkSink<'a> = &'a mut dyn FnMut(&[u8]);

/// Hashes everything `r` yields in 1 MiB chunks, handing each chunk to `sink`.
pub(super) fn hash_reader(
    r: &mut impl Read,
    mut sink: Option<ChunkSink<'_>>,
) -> io::Result<(Digest, u64)> {
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..k]);
        if let Some(s) = sink.as_mut() {
            s(&buf[..k]);
        }
        size += k as u64;
    }
    Ok((Digest(hasher.finalize().into()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_is_idempotent_and_addressed_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let d1 = s.put_bytes(b"hello").unwrap();
        let d2 = s.put_bytes(b"hello").unwrap();
        assert_eq!(d1, d2);
        assert_eq!(d1, Digest::of(b"hello"));
        assert_eq!(s.list().unwrap(), vec![d1]);
        assert_eq!(s.read_verified(&d1).unwrap(), b"hello");
        assert_eq!(s.verify(&d1).unwrap(), Verified::Ok { size: 5 });
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        let mode = fs::metadata(s.path(&d1)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o444);
    }

    #[test]
    fn corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let d = s.put_bytes(b"precious").unwrap();
        let p = s.path(&d);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&p, b"tampered").unwrap();
        assert_eq!(
            s.verify(&d).unwrap(),
            Verified::Corrupt {
                actual: Digest::of(b"tampered")
            }
        );
        assert!(matches!(
            s.read_verified(&d),
            Err(ImageError::Corrupt { .. })
        ));
        let missing = Digest::of(b"nope");
        assert_eq!(s.verify(&missing).unwrap(), Verified::Missing);
    }

    #[test]
    fn stale_tmp_files_are_cleaned_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        fs::write(dir.path().join("tmp/4194305.0"), b"x").unwrap(); // above pid_max default
        fs::write(dir.path().join("tmp/garbage"), b"x").unwrap();
        let mine = dir.path().join(format!("tmp/{}.99", std::process::id()));
        fs::write(&mine, b"x").unwrap();
        assert_eq!(s.clean_tmp().unwrap(), 2);
        assert!(mine.exists());
    }
}
