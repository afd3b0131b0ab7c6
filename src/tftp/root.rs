//! What may be served: regular files under the configured root, nothing else.
//!
//! A requested name is always relative to the root. One leading `/` is accepted and
//! ignored (PXE clients send `/ipxe.efi` when the DHCP boot file name has one), so
//! `/etc/hostname` means `<root>/etc/hostname`, never the host's file. Refused before any
//! file system access: NUL, backslash, empty, `.` or `..` components, and more than one
//! leading `/`. Then the path is canonicalized and must still lie under the canonical
//! root (a symlink inside the root may point elsewhere inside it, never outside), and it
//! is opened with `O_NOFOLLOW | O_NONBLOCK` and checked to be a regular file before
//! (so a FIFO or device never blocks `open`) and through the opened handle. The root itself is trusted: someone who can write into it while tabula runs
//! could still race a directory swap; TFTP clients cannot write at all.
//!
//! One exception, for the loaders the configuration names (`dhcp.loaders.*`): such a
//! name is served from the file it resolved to at start-up ([`LoaderFiles`]), even when
//! that file lies outside the root (Debian's `/usr/lib/ipxe/ipxe.efi -> /boot/ipxe.efi`).
//! Only the exact configured name gets this; any other name reaching the same file (a
//! second link, a link to the link) is refused as above. The remembered file is still
//! opened `O_NOFOLLOW | O_NONBLOCK` and must still be a regular file.
//!
//! Files tabula renders itself (GRUB's bootstrap config, see `http::grub`) are served
//! from memory under their names, ahead of the directory.
//!
//! A first path component spelled as a hyphenated MAC (`52-54-00-12-34-56/undionly.kpxe`)
//! names the client, not a directory: the DHCP side puts it there so a transfer says
//! which machine it served without any lookup (see [`client_prefix`]). The rest of the
//! name is what is served.
//!
//! Small files (boot loaders) are read whole into [`Bytes`] and cached by canonical path,
//! keyed on inode, size, mtime and ctime, so a replaced file is never served stale.
//! Everything here is blocking file I/O: call it from `spawn_blocking`. The cache lock is
//! never held across I/O. This module must not know about packets or sockets.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::TftpError;
use crate::loader_files::LoaderFiles;

/// Files up to this size are read whole and cached; larger ones are read in chunks.
pub const MAX_CACHED_FILE: u64 = 16 * 1024 * 1024;
/// Total bytes the cache keeps; the oldest entries go first.
pub const CACHE_BYTES: u64 = 128 * 1024 * 1024;

/// The bytes of one opened file.
#[derive(Debug, Clone)]
pub enum Content {
    /// The whole file, shared with the cache.
    Memory(Bytes),
    /// A large file, read on demand with positioned reads.
    File { file: Arc<File>, len: u64 },
}

impl Content {
    /// The file size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Content::Memory(b) => b.len() as u64,
            Content::File { len, .. } => *len,
        }
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Stamp {
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }
}

#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<PathBuf, (Stamp, u64, Bytes)>,
    bytes: u64,
    seq: u64,
}

/// The served directory and its file cache. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Root {
    dir: PathBuf,
    /// The configured loaders, resolved at start-up.
    loaders: LoaderFiles,
    cache: Mutex<Cache>,
}

impl Root {
    /// Opens the root directory; it must exist.
    pub fn new(dir: &Path) -> Result<Root, TftpError> {
        let canonical = dir.canonicalize().map_err(|source| TftpError::Root {
            path: dir.to_path_buf(),
            source,
        })?;
        if !canonical.is_dir() {
            return Err(TftpError::Root {
                path: dir.to_path_buf(),
                source: std::io::Error::other("not a directory"),
            });
        }
        Ok(Root {
            dir: canonical,
            loaders: LoaderFiles::default(),
            cache: Mutex::default(),
        })
    }

    /// Serves each configured loader of `loaders` from its resolved file.
    pub fn with_loaders(self, loaders: LoaderFiles) -> Root {
        Root { loaders, ..self }
    }

    /// The canonical root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens `name` for reading if it may be served. Blocking.
    pub fn open(&self, name: &str) -> Result<Content, TftpError> {
        let forbidden = |reason: &'static str| TftpError::Forbidden {
            name: name.to_string(),
            reason,
        };
        let (_, served) = client_prefix(name);
        let relative = relative_path(served).map_err(forbidden)?;
        if let Some(text) = self.loaders.generated_of(&relative) {
            return Ok(Content::Memory(text.clone()));
        }
        let canonical = match self.loaders.file_of(&relative) {
            // A configured loader: the file it resolved to at start-up, wherever it is.
            Some(file) => file.to_path_buf(),
            None => {
                let joined = self.dir.join(&relative);
                let canonical = joined.canonicalize().map_err(|e| io_refusal(name, e))?;
                if !canonical.starts_with(&self.dir) {
                    return Err(forbidden("resolves outside the TFTP root"));
                }
                canonical
            }
        };
        // A FIFO (or a device) would block `open` itself until a writer shows up, holding
        // a blocking thread and a transfer slot forever: refuse anything but a regular
        // file before opening, and open non-blocking so a swap in between cannot block
        // either (the handle is checked again below).
        let kind = std::fs::symlink_metadata(&canonical).map_err(|e| io_refusal(name, e))?;
        if !kind.file_type().is_file() {
            return Err(forbidden("not a regular file"));
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(&canonical)
            .map_err(|e| io_refusal(name, e))?;
        let meta = file.metadata().map_err(|e| io_refusal(name, e))?;
        if !meta.file_type().is_file() {
            return Err(forbidden("not a regular file"));
        }
        let stamp = Stamp::of(&meta);
        if stamp.len > MAX_CACHED_FILE {
            return Ok(Content::File {
                file: Arc::new(file),
                len: stamp.len,
            });
        }
        if let Some(hit) = self.cached(&canonical, stamp) {
            return Ok(Content::Memory(hit));
        }
        let mut data = Vec::with_capacity(usize::try_from(stamp.len).unwrap_or(0));
        (&file)
            .take(stamp.len)
            .read_to_end(&mut data)
            .map_err(|e| io_refusal(name, e))?;
        let data = Bytes::from(data);
        // Only what was read at the stamped size is cached; a file that changed size
        // while being read is served as read, and not cached.
        if data.len() as u64 == stamp.len {
            self.insert(canonical, stamp, data.clone());
        }
        Ok(Content::Memory(data))
    }

    fn cached(&self, path: &Path, stamp: Stamp) -> Option<Bytes> {
        let cache = self.cache.lock().ok()?;
        match cache.entries.get(path) {
            Some((s, _, bytes)) if *s == stamp => Some(bytes.clone()),
            _ => None,
        }
    }

    fn insert(&self, path: PathBuf, stamp: Stamp, data: Bytes) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        let len = data.len() as u64;
        if let Some((_, _, old)) = cache.entries.remove(&path) {
            cache.bytes -= old.len() as u64;
        }
        while cache.bytes + len > CACHE_BYTES {
            let oldest = cache
                .entries
                .iter()
                .min_by_key(|(_, (_, seq, _))| *seq)
                .map(|(p, _)| p.clone());
            let Some(oldest) = oldest else { break };
            if let Some((_, _, old)) = cache.entries.remove(&oldest) {
                cache.bytes -= old.len() as u64;
            }
        }
        cache.seq += 1;
        let seq = cache.seq;
        cache.bytes += len;
        cache.entries.insert(path, (stamp, seq, data));
    }
}

/// Maps an I/O failure while opening to a refusal the client can be told about.
fn io_refusal(name: &str, e: std::io::Error) -> TftpError {
    match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => TftpError::NotFound {
            name: name.to_string(),
        },
        std::io::ErrorKind::PermissionDenied => TftpError::Forbidden {
            name: name.to_string(),
            reason: "permission denied",
        },
        // ELOOP from O_NOFOLLOW means the last component became a symlink after the check.
        _ if e.raw_os_error() == Some(libc::ELOOP) => TftpError::Forbidden {
            name: name.to_string(),
            reason: "symbolic link",
        },
        _ => TftpError::Io {
            context: "opening a file",
            source: e,
        },
    }
}

/// Splits a leading `<mac-hyphenated>/` client component off a requested name
/// ([`crate::boot::urls::parse_tftp_loader`], the inverse of what DHCP hands out).
pub fn client_prefix(name: &str) -> (Option<crate::boot::Mac>, &str) {
    crate::boot::urls::parse_tftp_loader(name)
}

/// Checks a requested name and turns it into a path relative to the root, without
/// touching the file system.
pub fn relative_path(name: &str) -> Result<PathBuf, &'static str> {
    if name.contains('\0') {
        return Err("NUL in file name");
    }
    if name.contains('\\') {
        return Err("backslash in file name");
    }
    let rest = name.strip_prefix('/').unwrap_or(name);
    if rest.is_empty() {
        return Err("empty file name");
    }
    let mut out = PathBuf::new();
    for part in rest.split('/') {
        match part {
            "" => return Err("empty path component or absolute path"),
            "." | ".." => return Err("`.` or `..` in file name"),
            _ => {}
        }
        // Belt and braces: the component must be one plain name to std as well.
        let mut comps = Path::new(part).components();
        match (comps.next(), comps.next()) {
            (Some(Component::Normal(_)), None) => out.push(part),
            _ => return Err("unusual path component"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
