//! The report key's file: `<data_dir>/report.key`, 32 random bytes, mode 0600, made on
//! the first start and read on every later one (so tokens handed out before a restart
//! still verify after it). `tabula serve` shares it through the state store
//! ([`shared`]): the first server of a store writes its key there and every server then
//! uses the stored key, so a report is accepted by any server of the fleet. The stored
//! key wins over the file (which is rewritten to it).
//!
//! Created atomically: the bytes go to a private temporary file, are synced, and are
//! hard-linked into place, which fails if another process made the key first (then that
//! key is read). The key is never logged (its `Debug` is redacted) and leaves this
//! process only for the store.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::boot::{BootId, ReportKey};

/// The key's file name inside the data directory.
pub const FILE: &str = "report.key";

/// Why the report key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or create the report key {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("report key {path} is not 32 bytes (delete it to make a new key)")]
    Size { path: PathBuf },
    #[error("no randomness for the report key: {0}")]
    Random(String),
    #[error("cannot share the report key through the state store: {0}")]
    Store(String),
}

/// The key in `dir`, made first if there is none.
pub fn load_or_create(dir: &Path) -> Result<ReportKey, KeyError> {
    load_or_create_bytes(dir).map(ReportKey::from_bytes)
}

/// The fleet's key: the one in `store` (every server of one store must accept every
/// boot's report, wherever it was served), written there first from `dir`'s key if the
/// store has none (the first server of a fleet, or the upgrade of a single server: its
/// tokens stay valid). `dir`'s file is rewritten to the store's key when they differ,
/// so the file always holds the key in use.
pub async fn shared(store: &crate::store::Store, dir: &Path) -> Result<ReportKey, KeyError> {
    let local = load_or_create_bytes(dir)?;
    let stored = store
        .fleet_secret(STORE_NAME, &hex::encode(local))
        .await
        .map_err(|e| KeyError::Store(e.to_string()))?;
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(stored.trim(), &mut bytes)
        .map_err(|_| KeyError::Store("the stored report key is not 32 bytes of hex".into()))?;
    if bytes != local {
        let path = dir.join(FILE);
        let tmp = dir.join(format!(".{FILE}.{}.tmp", std::process::id()));
        let written = (|| {
            let _ = fs::remove_file(&tmp);
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        let _ = fs::remove_file(&tmp);
        written.map_err(|source| KeyError::Io { path, source })?;
        tracing::info!("report key taken from the store (shared by every server)");
    }
    Ok(ReportKey::from_bytes(bytes))
}

/// The key's name in the store's `fleet_secrets`.
const STORE_NAME: &str = "report_key";

fn load_or_create_bytes(dir: &Path) -> Result<[u8; 32], KeyError> {
    let path = dir.join(FILE);
    let io = |source| KeyError::Io {
        path: path.clone(),
        source,
    };
    match read(&path) {
        Ok(k) => return Ok(k),
        Err(KeyError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
    let tmp = dir.join(format!(".{FILE}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::hard_link(&tmp, &path)
    })();
    let _ = fs::remove_file(&tmp);
    match written {
        Ok(()) => {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            tracing::info!(path = %path.display(), "made a new report key");
            Ok(bytes)
        }
        // Another process made it between our read and our link: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read(&path),
        Err(e) => Err(io(e)),
    }
}

fn read(path: &Path) -> Result<[u8; 32], KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::File::open(path).map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    if meta.len() != 32 {
        return Err(KeyError::Size {
            path: path.to_path_buf(),
        });
    }
    if meta.permissions().mode() & 0o077 != 0 {
        // A key others could read is fixed, not trusted as it was.
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
        tracing::warn!(path = %path.display(), "report key was readable by others; now 0600");
    }
    let mut bytes = [0u8; 32];
    f.read_exact(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// A fresh boot id, for one rendered plan.
pub fn boot_id() -> BootId {
    let mut b = [0u8; 8];
    // The boot id is not a secret (it is in the token's text) and only has to differ
    // between boots; if the OS has no randomness, the clock still makes it differ.
    if getrandom::fill(&mut b).is_err() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let low = now.to_le_bytes();
        b.copy_from_slice(&low[..8]);
    }
    BootId(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{Digest, Mac};

    #[test]
    fn made_once_private_and_kept_across_starts() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let meta = fs::metadata(dir.path().join(FILE)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
        let b = load_or_create(dir.path()).unwrap();
        let (mac, m, id) = (Mac([2, 0, 0, 0, 0, 9]), Digest([1; 32]), BootId([0; 8]));
        assert!(b.verify(mac, m, &a.token(mac, m, id)));
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        // A widened mode is narrowed again; a truncated key is an error, not replaced.
        fs::set_permissions(dir.path().join(FILE), fs::Permissions::from_mode(0o644)).unwrap();
        load_or_create(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::write(dir.path().join(FILE), b"short").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(KeyError::Size { .. })
        ));
        assert_ne!(boot_id(), boot_id());
    }
}
