//! What changed between two image versions: the kernel, initrds, command line and, file
//! by file, the root image (added, removed, changed by content, type, mode, owner,
//! symlink target or device number).
//!
//! [`list_squashfs`] reads a squashfs in-process with backhand (contents hashed with
//! SHA-256); [`compare`] and [`compare_manifests`] are pure.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use sha2::Digest as _;

use super::{ImageError, Manifest};

/// One file of a root image, as compared.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileEntry {
    /// `file`, `dir`, `symlink`, `char`, `block`, `fifo`, `socket`.
    pub kind: &'static str,
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// SHA-256 of a regular file's content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A symlink's target, a device's number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// A changed path and what changed about it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Changed {
    pub path: String,
    pub what: Vec<String>,
}

/// The file-level difference of two root images.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FileDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<Changed>,
}

/// One manifest field that differs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FieldDiff {
    pub field: String,
    pub a: String,
    pub b: String,
}

/// Lists every entry of a squashfs image: path → entry.
pub fn list_squashfs(path: &Path) -> Result<BTreeMap<String, FileEntry>, ImageError> {
    let f = std::fs::File::open(path).map_err(|e| ImageError::io("cannot open", path, e))?;
    let bad = |e: backhand::BackhandError| {
        ImageError::io(
            "cannot read squashfs",
            path,
            std::io::Error::other(e.to_string()),
        )
    };
    let fs = backhand::FilesystemReader::from_reader(std::io::BufReader::new(f)).map_err(bad)?;
    let mut out = BTreeMap::new();
    for node in fs.files() {
        let h = &node.header;
        let (kind, size, sha256, target) = match &node.inner {
            backhand::InnerNode::File(file) => {
                let mut hasher = sha2::Sha256::new();
                let mut r = fs.file(file).reader();
                let mut buf = vec![0u8; 128 * 1024];
                let mut size = 0u64;
                loop {
                    let n = r
                        .read(&mut buf)
                        .map_err(|e| ImageError::io("cannot read squashfs", path, e))?;
                    if n == 0 {
                        break;
                    }
                    size += n as u64;
                    hasher.update(&buf[..n]);
                }
                ("file", size, Some(hex::encode(hasher.finalize())), None)
            }
            backhand::InnerNode::Dir(_) => ("dir", 0, None, None),
            backhand::InnerNode::Symlink(s) => {
                ("symlink", 0, None, Some(s.link.display().to_string()))
            }
            backhand::InnerNode::CharacterDevice(d) => {
                ("char", 0, None, Some(device(d.device_number)))
            }
            backhand::InnerNode::BlockDevice(d) => {
                ("block", 0, None, Some(device(d.device_number)))
            }
            backhand::InnerNode::NamedPipe => ("fifo", 0, None, None),
            backhand::InnerNode::Socket => ("socket", 0, None, None),
        };
        out.insert(
            node.fullpath.display().to_string(),
            FileEntry {
                kind,
                mode: h.permissions,
                uid: h.uid,
                gid: h.gid,
                size,
                sha256,
                target,
            },
        );
    }
    Ok(out)
}

/// `major:minor` of a squashfs device number.
fn device(n: u32) -> String {
    let major = (n >> 8) & 0xfff;
    let minor = (n & 0xff) | ((n >> 12) & 0xfff00);
    format!("{major}:{minor}")
}

/// Compares two listings.
pub fn compare(a: &BTreeMap<String, FileEntry>, b: &BTreeMap<String, FileEntry>) -> FileDiff {
    let mut d = FileDiff::default();
    for (path, ea) in a {
        let Some(eb) = b.get(path) else {
            d.removed.push(path.clone());
            continue;
        };
        let mut what = Vec::new();
        if ea.kind != eb.kind {
            what.push(format!("type {} -> {}", ea.kind, eb.kind));
        } else {
            if ea.sha256 != eb.sha256 {
                what.push(format!("content ({} -> {} bytes)", ea.size, eb.size));
            }
            if ea.target != eb.target {
                what.push(format!(
                    "target {} -> {}",
                    ea.target.as_deref().unwrap_or(""),
                    eb.target.as_deref().unwrap_or("")
                ));
            }
        }
        if ea.mode != eb.mode {
            what.push(format!("mode {:04o} -> {:04o}", ea.mode, eb.mode));
        }
        if (ea.uid, ea.gid) != (eb.uid, eb.gid) {
            what.push(format!(
                "owner {}:{} -> {}:{}",
                ea.uid, ea.gid, eb.uid, eb.gid
            ));
        }
        if !what.is_empty() {
            d.changed.push(Changed {
                path: path.clone(),
                what,
            });
        }
    }
    d.added = b.keys().filter(|p| !a.contains_key(*p)).cloned().collect();
    d
}

/// The boot-relevant fields of two manifests that differ (kernel, initrds, root image,
/// command line, architectures).
pub fn compare_manifests(a: &Manifest, b: &Manifest) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let mut field = |name: &str, x: String, y: String| {
        if x != y {
            out.push(FieldDiff {
                field: name.to_string(),
                a: x,
                b: y,
            });
        }
    };
    let blob = |r: &crate::boot::BlobRef| format!("{} ({} B, {})", r.digest, r.size, r.name);
    field("kernel", blob(&a.kernel), blob(&b.kernel));
    let initrds = |m: &Manifest| m.initrds.iter().map(blob).collect::<Vec<_>>().join(", ");
    field("initrds", initrds(a), initrds(b));
    let root = |m: &Manifest| m.rootfs.as_ref().map_or_else(|| "none".into(), blob);
    field("rootfs", root(a), root(b));
    field("cmdline", a.cmdline.clone(), b.cmdline.clone());
    let arches = |m: &Manifest| {
        m.architectures
            .iter()
            .map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    field("architectures", arches(a), arches(b));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &str, mode: u16) -> FileEntry {
        FileEntry {
            kind: "file",
            mode,
            uid: 0,
            gid: 0,
            size: content.len() as u64,
            sha256: Some(hex::encode(sha2::Sha256::digest(content.as_bytes()))),
            target: None,
        }
    }

    #[test]
    fn added_removed_changed() {
        let link = |t: &str| FileEntry {
            kind: "symlink",
            mode: 0o777,
            uid: 0,
            gid: 0,
            size: 0,
            sha256: None,
            target: Some(t.into()),
        };
        let a = BTreeMap::from([
            ("/same".to_string(), file("x", 0o644)),
            ("/gone".to_string(), file("x", 0o644)),
            ("/edited".to_string(), file("old", 0o644)),
            ("/chmod".to_string(), file("x", 0o644)),
            ("/link".to_string(), link("a")),
        ]);
        let mut chowned = file("x", 0o755);
        chowned.uid = 1000;
        let b = BTreeMap::from([
            ("/same".to_string(), file("x", 0o644)),
            ("/new".to_string(), file("n", 0o644)),
            ("/edited".to_string(), file("newer", 0o644)),
            ("/chmod".to_string(), chowned),
            ("/link".to_string(), link("b")),
        ]);
        let d = compare(&a, &b);
        assert_eq!(d.added, ["/new"]);
        assert_eq!(d.removed, ["/gone"]);
        let changed: Vec<(&str, String)> = d
            .changed
            .iter()
            .map(|c| (c.path.as_str(), c.what.join("; ")))
            .collect();
        assert_eq!(
            changed,
            [
                (
                    "/chmod",
                    "mode 0644 -> 0755; owner 0:0 -> 1000:0".to_string()
                ),
                ("/edited", "content (3 -> 5 bytes)".to_string()),
                ("/link", "target a -> b".to_string()),
            ]
        );
        assert_eq!(compare(&a, &a), FileDiff::default());
    }
}
