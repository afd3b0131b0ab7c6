//! Stages a build source into `<work>/root`: a directory is mirrored with hard links
//! (copies across devices), never modified; a rootfs tarball (`.tar`, gzip, zstd or xz,
//! recognised by content) is applied as one layer; an OCI image layout (a directory with
//! `oci-layout`) or an image archive (`docker save`, OCI layout tarball) has its layers
//! applied in order (see [`super::oci`]).
//!
//! Returns the source's reference for `/etc/tabula-release` and the manifest: a
//! directory's canonical path, an archive's file name and SHA-256, an OCI image's
//! manifest digest.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::Path;

use sha2::Digest as _;

use super::layer::{self, Stats};
use super::progress::Progress;
use super::{BuildError, oci, release};

/// What staging produced.
#[derive(Clone, Debug)]
pub(super) struct Staged {
    pub reference: String,
    pub entries: u64,
    pub bytes: u64,
    pub max_mtime: u64,
}

/// Stages `source` into `root` (which must not exist yet).
pub(super) fn stage(
    source: &Path,
    root: &Path,
    work: &Path,
    progress: &Progress,
) -> Result<Staged, BuildError> {
    let meta = std::fs::metadata(source).map_err(|e| BuildError::Source {
        path: source.display().to_string(),
        reason: e.to_string(),
    })?;
    std::fs::create_dir(root).map_err(|e| BuildError::io("cannot create", root, e))?;
    if meta.is_dir() {
        if source.join("oci-layout").is_file() {
            let image = oci::read(source)?;
            let reference = format!("oci:{}@{}", base(source), image.manifest);
            return apply_image(&image, root, work, reference, progress);
        }
        return mirror_dir(source, root, work, progress);
    }
    if !meta.is_file() {
        return Err(BuildError::Source {
            path: source.display().to_string(),
            reason: "neither a directory nor a file".into(),
        });
    }
    if is_image_archive(source)? {
        // Image archives are small trees of blobs: unpack them, then read them as a layout.
        let unpacked = work.join("archive");
        std::fs::create_dir(&unpacked)
            .map_err(|e| BuildError::io("cannot create", &unpacked, e))?;
        release::check_space(work, meta.len(), "the unpacked image archive")?;
        let mut ar = tar::Archive::new(decompressed(open(source)?, source)?);
        ar.set_preserve_ownerships(false);
        ar.unpack(&unpacked)
            .map_err(|e| BuildError::CorruptArchive {
                path: source.display().to_string(),
                reason: e.to_string(),
            })?;
        let (image, kind) = if unpacked.join("oci-layout").is_file() {
            (oci::read(&unpacked)?, "oci-archive")
        } else {
            (oci::read_docker(&unpacked)?, "docker-archive")
        };
        let reference = format!("{kind}:{}@{}", base(source), image.manifest);
        return apply_image(&image, root, work, reference, progress);
    }
    release::check_space(work, meta.len().saturating_mul(4), "the unpacked tarball")?;
    let step = progress.step(&format!("unpacking {}", base(source)), Some(meta.len()));
    let mut hashing = Hashing::new(Counting {
        inner: open(source)?,
        step: &step,
    });
    let mut stats = Stats::default();
    {
        let reader = decompressed(&mut hashing, source)?;
        layer::apply(
            root,
            reader,
            &source.display().to_string(),
            &mut stats,
            &|_| {},
        )?;
    }
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| BuildError::CorruptArchive {
        path: source.display().to_string(),
        reason: e.to_string(),
    })?;
    let digest = hex::encode(hashing.hasher.finalize());
    step.finish(&format!("{} entries, {} bytes", stats.entries, stats.bytes));
    Ok(Staged {
        reference: format!("tar:{}@sha256:{digest}", base(source)),
        entries: stats.entries,
        bytes: stats.bytes,
        max_mtime: stats.max_mtime,
    })
}

fn apply_image(
    image: &oci::Image,
    root: &Path,
    work: &Path,
    reference: String,
    progress: &Progress,
) -> Result<Staged, BuildError> {
    let total: u64 = image.layers.iter().map(|l| l.size).sum();
    release::check_space(work, total.saturating_mul(4), "the unpacked layers")?;
    let step = progress.step(
        &format!("applying {} layer(s)", image.layers.len()),
        Some(total),
    );
    let mut stats = Stats::default();
    for l in &image.layers {
        oci::apply_layer(l, root, &mut stats, &|n| step.inc(n))?;
    }
    step.finish(&format!("{} entries, {} bytes", stats.entries, stats.bytes));
    Ok(Staged {
        reference,
        entries: stats.entries,
        bytes: stats.bytes,
        max_mtime: stats.max_mtime,
    })
}

fn base(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

pub(super) fn open(p: &Path) -> Result<std::fs::File, BuildError> {
    std::fs::File::open(p).map_err(|e| BuildError::io("cannot open", p, e))
}

/// A reader decompressing by content: gzip, zstd, xz, or plain.
pub(super) fn decompressed<'a>(
    r: impl Read + 'a,
    what: &Path,
) -> Result<Box<dyn Read + 'a>, BuildError> {
    let mut r = BufReader::with_capacity(256 * 1024, r);
    let head = r
        .fill_buf()
        .map_err(|e| BuildError::io("cannot read", what, e))?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(r).map_err(|e| {
            BuildError::CorruptArchive {
                path: what.display().to_string(),
                reason: e.to_string(),
            }
        })?)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(r))
    } else {
        Box::new(r)
    })
}

/// Whether a tarball is an image archive rather than a root filesystem: its first entry
/// is one of the files of `docker save` or an OCI layout, or a digest-named directory.
fn is_image_archive(p: &Path) -> Result<bool, BuildError> {
    let corrupt = |e: std::io::Error| BuildError::CorruptArchive {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    let mut ar = tar::Archive::new(decompressed(open(p)?, p)?);
    let mut entries = ar.entries().map_err(corrupt)?;
    for e in entries.by_ref().take(4) {
        let e = e.map_err(corrupt)?;
        let path = e.path().map_err(corrupt)?.into_owned();
        let Some(rel) = layer::clean(&path, &p.display().to_string())? else {
            continue;
        };
        let first = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let hexy = first.trim_end_matches(".json");
        return Ok(matches!(
            first.as_str(),
            "blobs" | "oci-layout" | "index.json" | "manifest.json" | "repositories"
        ) || (hexy.len() == 64 && hexy.chars().all(|c| c.is_ascii_hexdigit())));
    }
    Ok(false)
}

/// Mirrors a directory tree with hard links (copies when on another device).
fn mirror_dir(
    source: &Path,
    root: &Path,
    work: &Path,
    progress: &Progress,
) -> Result<Staged, BuildError> {
    let source = source
        .canonicalize()
        .map_err(|e| BuildError::io("cannot resolve", source, e))?;
    let step = progress.step(&format!("staging {}", source.display()), None);
    let mut m = Mirror {
        copied: HashMap::new(),
        stats: Stats::default(),
        work_dev: std::fs::metadata(work)
            .map_err(|e| BuildError::io("cannot stat", work, e))?
            .dev(),
    };
    let src_meta =
        std::fs::metadata(&source).map_err(|e| BuildError::io("cannot stat", &source, e))?;
    if src_meta.dev() != m.work_dev {
        // Copies take room: check before, rather than fill the disk half-way.
        let size = tree_size(&source)?;
        release::check_space(work, size, "a copy of the source directory")?;
    }
    layer::own(
        root,
        u64::from(src_meta.uid()),
        u64::from(src_meta.gid()),
        Some(src_meta.mode() & 0o7777),
    )?;
    m.walk(&source, root)?;
    step.finish(&format!(
        "{} entries, {} bytes",
        m.stats.entries, m.stats.bytes
    ));
    Ok(Staged {
        reference: format!("dir:{}", source.display()),
        entries: m.stats.entries,
        bytes: m.stats.bytes,
        max_mtime: m.stats.max_mtime,
    })
}

struct Mirror {
    /// (dev, ino) of files already copied, for hard links across devices.
    copied: HashMap<(u64, u64), std::path::PathBuf>,
    stats: Stats,
    work_dev: u64,
}

impl Mirror {
    fn walk(&mut self, src: &Path, dst: &Path) -> Result<(), BuildError> {
        for name in layer::read_dir_sorted(src)? {
            let s = src.join(&name);
            let d = dst.join(&name);
            let m =
                std::fs::symlink_metadata(&s).map_err(|e| BuildError::io("cannot stat", &s, e))?;
            let ft = m.file_type();
            self.stats.entries += 1;
            self.stats.max_mtime = self
                .stats
                .max_mtime
                .max(u64::try_from(m.mtime()).unwrap_or(0));
            let (uid, gid, mode) = (u64::from(m.uid()), u64::from(m.gid()), m.mode() & 0o7777);
            if ft.is_dir() {
                std::fs::create_dir(&d).map_err(|e| BuildError::io("cannot create", &d, e))?;
                layer::own(&d, uid, gid, Some(mode))?;
                self.walk(&s, &d)?;
            } else if ft.is_file() {
                self.stats.bytes += m.len();
                if m.dev() == self.work_dev {
                    std::fs::hard_link(&s, &d).map_err(|e| BuildError::io("cannot link", &d, e))?;
                } else if let Some(first) = self.copied.get(&(m.dev(), m.ino())) {
                    std::fs::hard_link(first, &d)
                        .map_err(|e| BuildError::io("cannot link", &d, e))?;
                } else {
                    std::fs::copy(&s, &d).map_err(|e| BuildError::io("cannot copy to", &d, e))?;
                    layer::own(&d, uid, gid, Some(mode))?;
                    if m.nlink() > 1 {
                        self.copied.insert((m.dev(), m.ino()), d.clone());
                    }
                }
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&s)
                    .map_err(|e| BuildError::io("cannot read link", &s, e))?;
                std::os::unix::fs::symlink(&t, &d)
                    .map_err(|e| BuildError::io("cannot create symlink", &d, e))?;
                layer::own(&d, uid, gid, None)?;
            } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
                let kind = if ft.is_char_device() {
                    tar::EntryType::Char
                } else if ft.is_block_device() {
                    tar::EntryType::Block
                } else {
                    tar::EntryType::Fifo
                };
                let rdev = m.rdev();
                let (major, minor) = (
                    u32::try_from(nix::sys::stat::major(rdev)).unwrap_or(0),
                    u32::try_from(nix::sys::stat::minor(rdev)).unwrap_or(0),
                );
                layer::make_node(&d, kind, mode, major, minor)?;
                layer::own(&d, uid, gid, Some(mode))?;
            }
            // Sockets are runtime objects, not image content: skipped.
        }
        Ok(())
    }
}

/// The bytes of regular files under `dir`.
fn tree_size(dir: &Path) -> Result<u64, BuildError> {
    let mut total = 0;
    for name in layer::read_dir_sorted(dir)? {
        let p = dir.join(name);
        let m = std::fs::symlink_metadata(&p).map_err(|e| BuildError::io("cannot stat", &p, e))?;
        if m.is_dir() {
            total += tree_size(&p)?;
        } else if m.is_file() {
            total += m.len();
        }
    }
    Ok(total)
}

/// A reader that feeds a SHA-256 as it goes.
pub(super) struct Hashing<R> {
    inner: R,
    pub hasher: sha2::Sha256,
}

impl<R> Hashing<R> {
    pub(super) fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: sha2::Sha256::new(),
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A reader that advances a progress bar.
struct Counting<'a, R> {
    inner: R,
    step: &'a super::progress::Step,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.step.inc(n as u64);
        Ok(n)
    }
}
