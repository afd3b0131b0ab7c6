//! `tabula image build`: turns a root filesystem (a directory, a rootfs tarball, an OCI
//! image layout or a `docker save` archive) into a bootable, published image version:
//! the image's own kernel, a netboot initramfs made from the image's own kernel modules,
//! and a reproducible read-only squashfs root stamped with `/etc/tabula-release`.
//!
//! The steps, one file each: [`source`] stages the root into a work directory (`layer`
//! applies tar streams with OCI whiteouts, `oci` reads image layouts and archives),
//! [`kernel`] finds the kernel and resolves module closures from `modules.dep`,
//! [`initramfs`] (with [`cpio`]) writes the initramfs in-process, [`squashfs`] runs
//! mksquashfs, [`release`] stamps the identity and checks disk space. Publishing goes
//! through [`crate::catalog::publish`], which makes the version appear atomically.
//!
//! Reproducible: nothing reads the wall clock. The build time is `--build-time`, else
//! `SOURCE_DATE_EPOCH` (both resolved by the caller), else the newest mtime in the
//! source; it is every file's mtime in the squashfs, the squashfs creation time, the
//! initramfs mtimes and the manifest's `created`.

pub(crate) mod cpio;
mod initramfs;
pub(crate) mod kernel;
mod layer;
mod oci;
pub(crate) mod progress;
mod release;
mod source;
mod squashfs;

use std::path::{Path, PathBuf};

use crate::boot::{Arch, Digest};
use crate::catalog::{self, CatalogError, PublishRequest, Published};
use crate::images::{BlobStore, names};
use crate::store::Store;

pub(crate) use progress::Progress;
pub(crate) use squashfs::Compression;

/// The modules the initramfs needs for the root image, whatever the NIC.
pub(crate) const ROOT_MODULES: &[&str] = &["loop", "squashfs", "overlay"];
/// The default NIC set: QEMU's virtio-net and e1000 (virtio_pci finds virtio devices).
pub(crate) const DEFAULT_NIC_MODULES: &[&str] = &["virtio_pci", "virtio_net", "e1000"];

/// Errors of an image build. Each names the problem and what it concerns.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The image has no kernel to boot.
    #[error("no kernel in the image: {0}")]
    NoKernel(String),
    /// A module the initramfs needs is not in the image's kernel.
    #[error(
        "module {module} (needed for {purpose}) is missing from kernel {release}: it is neither in {dep_file} nor built in"
    )]
    MissingModule {
        module: String,
        purpose: String,
        release: String,
        dep_file: String,
    },
    /// An archive (tarball, layer, OCI blob) cannot be read.
    #[error("corrupt archive {path}: {reason}")]
    CorruptArchive { path: String, reason: String },
    /// An OCI layer or manifest of a kind tabula does not apply.
    #[error("unsupported media type {media_type:?} of {what} {digest}")]
    UnsupportedMediaType {
        media_type: String,
        what: &'static str,
        digest: String,
    },
    /// Not enough room to build.
    #[error("not enough disk space in {path}: {detail}")]
    NoSpace { path: String, detail: String },
    /// The source is not something tabula can build from.
    #[error("source {path}: {reason}")]
    Source { path: String, reason: String },
    /// An external tool is missing or failed.
    #[error("{tool}: {reason}")]
    Tool { tool: String, reason: String },
    /// A filesystem operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The version already exists.
    #[error(
        "{name}@{version} is already published (manifest {manifest}); versions are immutable: build a new version"
    )]
    Exists {
        name: String,
        version: String,
        manifest: Digest,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl BuildError {
    /// An I/O error; "no space left on device" becomes [`BuildError::NoSpace`].
    pub(crate) fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        if source.raw_os_error() == Some(libc::ENOSPC) {
            return BuildError::NoSpace {
                path: path.display().to_string(),
                detail: format!("{what}: the device is full"),
            };
        }
        BuildError::Io {
            what,
            path: path.display().to_string(),
            source,
        }
    }
}

/// What to build.
#[derive(Clone, Debug)]
pub(crate) struct BuildRequest {
    pub name: String,
    pub version: String,
    pub source: PathBuf,
    /// A kernel release (`6.1.0-28-amd64`) or a path inside the image (`/boot/vmlinuz-…`).
    pub kernel: Option<String>,
    pub nic_modules: Vec<String>,
    pub cmdline: String,
    pub architectures: Vec<Arch>,
    /// A static busybox for the initramfs.
    pub busybox: PathBuf,
    /// Unix seconds; `None`: the newest mtime in the source.
    pub build_time: Option<u64>,
    pub compression: Compression,
    /// Where the work directory goes (the data directory, so files stay on one device).
    pub work_parent: PathBuf,
}

/// What a build made.
#[derive(Clone, Debug)]
pub(crate) struct Built {
    pub published: Published,
    pub source: String,
    pub kernel_release: String,
    pub modules: Vec<String>,
    pub build_time: u64,
    pub rootfs_bytes: u64,
}

impl Built {
    pub(crate) fn manifest(&self) -> Digest {
        match &self.published {
            Published::New { manifest } | Published::Unchanged { manifest } => *manifest,
        }
    }
}

/// The work directory, removed when dropped.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes work directories of builds whose process is gone (a build killed with
/// `kill -9` cannot clean up after itself); `tabula image gc` calls it. Returns how many.
pub(crate) fn clean_stale(build_dir: &Path) -> Result<usize, BuildError> {
    let Ok(entries) = std::fs::read_dir(build_dir) else {
        return Ok(0);
    };
    let mut n = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name.rsplit('.').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let p = e.path();
            std::fs::remove_dir_all(&p).map_err(|err| BuildError::io("cannot remove", &p, err))?;
            n += 1;
        }
    }
    Ok(n)
}

/// The artifacts of the blocking part of a build.
struct Artifacts {
    kernel: PathBuf,
    initrd: PathBuf,
    rootfs: PathBuf,
    source: String,
    kernel_release: String,
    modules: Vec<String>,
    build_time: u64,
}

/// Builds and publishes an image version.
pub(crate) async fn build(
    blobs: &BlobStore,
    store: &Store,
    req: BuildRequest,
    progress: Progress,
) -> Result<Built, BuildError> {
    names::check_image(&req.name).map_err(CatalogError::from)?;
    names::check_version(&req.version).map_err(CatalogError::from)?;
    crate::images::cmdline::check_template(&req.cmdline).map_err(CatalogError::from)?;
    if let Some((manifest, _)) =
        catalog::find_version(blobs, store, &req.name, &req.version).await?
    {
        return Err(BuildError::Exists {
            name: req.name,
            version: req.version,
            manifest,
        });
    }
    std::fs::create_dir_all(&req.work_parent)
        .map_err(|e| BuildError::io("cannot create", &req.work_parent, e))?;
    let work = WorkDir(req.work_parent.join(format!(
        "{}-{}.{}",
        req.name,
        req.version,
        std::process::id()
    )));
    let _ = std::fs::remove_dir_all(&work.0);
    std::fs::create_dir(&work.0).map_err(|e| BuildError::io("cannot create", &work.0, e))?;

    let r = req.clone();
    let dir = work.0.clone();
    let p = progress.clone();
    let art = tokio::task::spawn_blocking(move || make(&r, &dir, &p))
        .await
        .map_err(|e| BuildError::Tool {
            tool: "build".into(),
            reason: format!("build task failed: {e}"),
        })??;

    let step = progress.step("publishing (hashing into the blob store)", None);
    let created = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(art.build_time),
    )
    .to_string();
    let rootfs_bytes = std::fs::metadata(&art.rootfs).map_or(0, |m| m.len());
    let published = catalog::publish(
        blobs,
        store,
        PublishRequest {
            name: req.name.clone(),
            version: req.version.clone(),
            architectures: req.architectures.clone(),
            kernel: art.kernel,
            initrds: vec![art.initrd],
            rootfs: Some(art.rootfs),
            cmdline: req.cmdline.clone(),
            annotations: [
                ("tabula.build.source".to_string(), art.source.clone()),
                (
                    "tabula.build.kernel".to_string(),
                    art.kernel_release.clone(),
                ),
                ("tabula.build.modules".to_string(), art.modules.join(" ")),
            ]
            .into(),
            created: Some(created),
        },
    )
    .await?;
    step.finish("published");
    Ok(Built {
        published,
        source: art.source,
        kernel_release: art.kernel_release,
        modules: art.modules,
        build_time: art.build_time,
        rootfs_bytes,
    })
}

/// The blocking part: stage, find the kernel, make the initramfs and the squashfs.
fn make(req: &BuildRequest, work: &Path, progress: &Progress) -> Result<Artifacts, BuildError> {
    let root = work.join("root");
    let staged = source::stage(&req.source, &root, work, progress)?;
    let build_time = req.build_time.unwrap_or(staged.max_mtime);

    let kernel = kernel::find(&root, req.kernel.as_deref())?;
    let mut wanted: Vec<(String, &str)> = ROOT_MODULES
        .iter()
        .map(|m| (m.to_string(), "the root image"))
        .collect();
    wanted.extend(req.nic_modules.iter().map(|m| (m.clone(), "the NIC set")));
    let modules = kernel.closure(&wanted)?;

    let step = progress.step("initramfs (busybox, /init, modules)", None);
    let initrd = work.join("initrd.img");
    initramfs::write(
        &initramfs::Input {
            busybox: &req.busybox,
            kernel: &kernel,
            modules: &modules,
            mtime: build_time,
        },
        &initrd,
    )?;
    step.finish(&format!(
        "{} modules, {} bytes",
        modules.len(),
        std::fs::metadata(&initrd).map_or(0, |m| m.len())
    ));

    release::stamp(
        &root,
        &release::Release {
            name: &req.name,
            version: &req.version,
            source: &staged.reference,
            build_time,
            kernel: &kernel.release,
        },
    )?;
    let kernel_copy = work.join(
        kernel
            .image
            .file_name()
            .map_or_else(|| "vmlinuz".into(), |n| n.to_os_string()),
    );
    std::fs::copy(&kernel.image, &kernel_copy)
        .map_err(|e| BuildError::io("cannot copy the kernel", &kernel.image, e))?;

    release::check_space(
        work,
        staged.bytes,
        "the root image and its copy in the blob store",
    )?;
    let rootfs = work.join("root.squashfs");
    let step = progress.step("squashfs (mksquashfs)", None);
    squashfs::make(&root, &rootfs, req.compression, build_time)?;
    step.finish(&format!(
        "{} bytes from {} entries",
        std::fs::metadata(&rootfs).map_or(0, |m| m.len()),
        staged.entries
    ));
    Ok(Artifacts {
        kernel: kernel_copy,
        initrd,
        rootfs,
        source: staged.reference,
        kernel_release: kernel.release,
        modules,
        build_time,
    })
}
