//! Applies a tar stream (a rootfs tarball or one OCI/Docker layer) onto a staging
//! directory, the way a container runtime stacks layers: entries replace what lower
//! layers left at the same path, `.wh.NAME` deletes NAME, `.wh..wh..opq` empties its
//! directory of everything lower layers put there. Modes (setuid included), owners,
//! symlinks, hard links, device nodes and FIFOs are kept.
//!
//! Nothing is ever written outside the staging root: `..` in an entry is refused, and
//! symlinks met on the way to an entry's parent are resolved inside the root (an
//! absolute link `/usr/lib` means `<root>/usr/lib`), never on the host. Needs root for
//! other owners and device nodes.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt as _, lchown};
use std::path::{Component, Path, PathBuf};

use super::BuildError;

/// What applying layers saw.
#[derive(Clone, Debug, Default)]
pub(super) struct Stats {
    pub entries: u64,
    pub bytes: u64,
    pub max_mtime: u64,
}

/// Applies one tar stream. `what` names it in errors (a path, or a layer digest).
pub(super) fn apply(
    root: &Path,
    reader: impl Read,
    what: &str,
    stats: &mut Stats,
    on_bytes: &dyn Fn(u64),
) -> Result<(), BuildError> {
    let corrupt = |e: std::io::Error| BuildError::CorruptArchive {
        path: what.to_string(),
        reason: e.to_string(),
    };
    let mut archive = tar::Archive::new(reader);
    // Paths this layer wrote: an opaque marker hides only what lower layers left.
    let mut ours: HashSet<PathBuf> = HashSet::new();
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw = entry.path().map_err(corrupt)?.into_owned();
        let Some(rel) = clean(&raw, what)? else {
            continue; // the root itself
        };
        let name = rel.file_name().map(OsString::from).unwrap_or_default();
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let parent = resolve(root, parent_rel, true, what)?;
        if name == ".wh..wh..opq" {
            let parent_ours: PathBuf = parent_rel.to_path_buf();
            for child in read_dir_sorted(&parent)? {
                if !ours.contains(&parent_ours.join(&child)) {
                    remove_any(&parent.join(&child))?;
                }
            }
            continue;
        }
        if let Some(hidden) = name.to_str().and_then(|n| n.strip_prefix(".wh.")) {
            remove_any(&parent.join(hidden))?;
            continue;
        }
        let dst = parent.join(&name);
        let h = entry.header();
        let mode = h.mode().map_err(corrupt)? & 0o7777;
        let uid = h.uid().map_err(corrupt)?;
        let gid = h.gid().map_err(corrupt)?;
        let mtime = h.mtime().unwrap_or(0);
        let kind = h.entry_type();
        stats.max_mtime = stats.max_mtime.max(mtime);
        stats.entries += 1;
        let io = |what: &'static str| {
            let p = dst.clone();
            move |e| BuildError::io(what, &p, e)
        };
        match kind {
            tar::EntryType::Directory => {
                match std::fs::symlink_metadata(&dst) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove_any(&dst)?;
                        std::fs::create_dir(&dst).map_err(io("cannot create"))?;
                    }
                    Err(_) => std::fs::create_dir(&dst).map_err(io("cannot create"))?,
                }
                own(&dst, uid, gid, Some(mode))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_any(&dst)?;
                let mut f = std::fs::File::create(&dst).map_err(io("cannot create"))?;
                let n = std::io::copy(&mut entry, &mut f).map_err(|e| {
                    if e.raw_os_error() == Some(libc::ENOSPC) {
                        BuildError::io("cannot write", &dst, e)
                    } else {
                        corrupt(e)
                    }
                })?;
                stats.bytes += n;
                on_bytes(n);
                drop(f);
                own(&dst, uid, gid, Some(mode))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(corrupt)?
                    .ok_or_else(|| bad(what, &raw, "a symlink without a target"))?
                    .into_owned();
                remove_any(&dst)?;
                std::os::unix::fs::symlink(&target, &dst).map_err(io("cannot create symlink"))?;
                own(&dst, uid, gid, None)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(corrupt)?
                    .ok_or_else(|| bad(what, &raw, "a hard link without a target"))?
                    .into_owned();
                let t_rel = clean(&target, what)?
                    .ok_or_else(|| bad(what, &raw, "a hard link to the root"))?;
                let t_parent = resolve(root, t_rel.parent().unwrap_or(Path::new("")), false, what)?;
                let src = t_parent.join(t_rel.file_name().unwrap_or_default());
                remove_any(&dst)?;
                std::fs::hard_link(&src, &dst).map_err(|e| BuildError::CorruptArchive {
                    path: what.to_string(),
                    reason: format!("hard link {} -> {}: {e}", raw.display(), target.display()),
                })?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                remove_any(&dst)?;
                let major = h.device_major().map_err(corrupt)?.unwrap_or(0);
                let minor = h.device_minor().map_err(corrupt)?.unwrap_or(0);
                make_node(&dst, kind, mode, major, minor)?;
                own(&dst, uid, gid, Some(mode))?;
            }
            // Extended headers are folded into the entries they describe by the tar crate.
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            other => {
                return Err(bad(
                    what,
                    &raw,
                    &format!("entry type {other:?} is not supported"),
                ));
            }
        }
        ours.insert(rel);
    }
    Ok(())
}

fn bad(what: &str, entry: &Path, reason: &str) -> BuildError {
    BuildError::CorruptArchive {
        path: what.to_string(),
        reason: format!("entry {}: {reason}", entry.display()),
    }
}

/// An entry path relative to the root: `./`, `/` dropped; `..` refused; `None` for the
/// root itself.
pub(super) fn clean(p: &Path, what: &str) -> Result<Option<PathBuf>, BuildError> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(bad(what, p, "'..' would leave the image's root"));
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// The real path of directory `rel` under `root`, following symlinks inside the root;
/// missing directories are created (mode 0755, root) when `create`.
pub(super) fn resolve(
    root: &Path,
    rel: &Path,
    create: bool,
    what: &str,
) -> Result<PathBuf, BuildError> {
    let mut done: Vec<OsString> = Vec::new();
    let mut pending: Vec<OsString> = rel
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            done.pop();
            continue;
        }
        let here: PathBuf = root.join(done.iter().collect::<PathBuf>()).join(&name);
        match std::fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(bad(what, rel, "too many levels of symbolic links"));
                }
                let target = std::fs::read_link(&here)
                    .map_err(|e| BuildError::io("cannot read link", &here, e))?;
                if target.is_absolute() {
                    done.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push(OsString::from("..")),
                        _ => {}
                    }
                }
            }
            Ok(m) if m.is_dir() => done.push(name),
            Ok(_) => {
                return Err(bad(
                    what,
                    rel,
                    &format!("{} is not a directory", here.display()),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                std::fs::create_dir(&here)
                    .map_err(|e| BuildError::io("cannot create", &here, e))?;
                done.push(name);
            }
            Err(e) => return Err(BuildError::io("cannot open", &here, e)),
        }
    }
    Ok(root.join(done.iter().collect::<PathBuf>()))
}

/// Removes whatever is at `p` (a directory recursively); absent is fine.
pub(super) fn remove_any(p: &Path) -> Result<(), BuildError> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            std::fs::remove_dir_all(p).map_err(|e| BuildError::io("cannot remove", p, e))
        }
        Ok(_) => std::fs::remove_file(p).map_err(|e| BuildError::io("cannot remove", p, e)),
        Err(_) => Ok(()),
    }
}

/// Directory entries by name.
pub(super) fn read_dir_sorted(dir: &Path) -> Result<Vec<OsString>, BuildError> {
    let mut names: Vec<OsString> = std::fs::read_dir(dir)
        .map_err(|e| BuildError::io("cannot list", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    Ok(names)
}

/// Sets the owner (not following symlinks), then the mode (chown clears setuid bits).
pub(super) fn own(p: &Path, uid: u64, gid: u64, mode: Option<u32>) -> Result<(), BuildError> {
    let uid = u32::try_from(uid).ok();
    let gid = u32::try_from(gid).ok();
    lchown(p, uid, gid).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            BuildError::Io {
                what: "cannot keep the owner of (building from archives needs root)",
                path: p.display().to_string(),
                source: e,
            }
        } else {
            BuildError::io("cannot chown", p, e)
        }
    })?;
    if let Some(mode) = mode {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| BuildError::io("cannot chmod", p, e))?;
    }
    Ok(())
}

/// Creates a device node or FIFO.
pub(super) fn make_node(
    p: &Path,
    kind: tar::EntryType,
    mode: u32,
    major: u32,
    minor: u32,
) -> Result<(), BuildError> {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    let flag = match kind {
        tar::EntryType::Char => SFlag::S_IFCHR,
        tar::EntryType::Block => SFlag::S_IFBLK,
        _ => SFlag::S_IFIFO,
    };
    mknod(
        p,
        flag,
        Mode::from_bits_truncate(mode),
        makedev(u64::from(major), u64::from(minor)),
    )
    .map_err(|e| BuildError::io("cannot create device node", p, std::io::Error::from(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            match data {
                Some(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    h.set_mode(0o644);
                    h.set_mtime(7);
                    b.append_data(&mut h, path, *d).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    b.append_data(&mut h, path, &[][..]).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_and_opaque_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut st = Stats::default();
        let l1 = tar_of(&[
            ("etc/", None),
            ("etc/a", Some(b"a")),
            ("etc/b", Some(b"b")),
            ("opt/", None),
            ("opt/old", Some(b"old")),
        ]);
        apply(root, &l1[..], "l1", &mut st, &|_| {}).unwrap();
        let l2 = tar_of(&[
            ("etc/.wh.a", Some(b"")),
            ("opt/new", Some(b"new")),
            ("opt/.wh..wh..opq", Some(b"")),
        ]);
        apply(root, &l2[..], "l2", &mut st, &|_| {}).unwrap();
        assert!(!root.join("etc/a").exists());
        assert!(root.join("etc/b").exists());
        assert!(!root.join("opt/old").exists());
        assert_eq!(std::fs::read(root.join("opt/new")).unwrap(), b"new");
        assert!(!root.join("opt/.wh..wh..opq").exists());
        assert_eq!(st.max_mtime, 7);
    }

    #[test]
    fn never_leaves_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        // An absolute symlink resolves inside the root, not on the host.
        std::os::unix::fs::symlink("/elsewhere", root.join("lib")).unwrap();
        let p = resolve(&root, Path::new("lib/x"), true, "t").unwrap();
        assert_eq!(p, root.join("elsewhere/x"));
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        assert_eq!(resolve(&root, Path::new("up"), true, "t").unwrap(), root);
        assert!(clean(Path::new("a/../../etc/passwd"), "t").is_err());
        assert_eq!(clean(Path::new("./"), "t").unwrap(), None);
    }
}
