//! The loaders the configuration names (`dhcp.loaders.*`), resolved once, at start-up,
//! under `tftp.root`: [`LoaderFiles::resolve`] follows symbolic links (canonicalizes),
//! requires a regular file at the end, and remembers that file per configured name.
//! TFTP (`tftp::root`) and HTTP (`/loaders/`, `http::loaders`) serve a configured name
//! from its remembered file, even when the file lies outside the root: Debian installs
//! `/usr/lib/ipxe/ipxe.efi` as a link to `/boot/ipxe.efi`. Every other name keeps the
//! front ends' own rules (no symlink out of the root, regular files only).
//!
//! Why resolve once rather than per request: what is served outside the root is exactly
//! what the operator's configuration named when tabula started (and what start-up logged),
//! so someone who can later replace a link inside the root still cannot point a configured
//! name at another file. A link retargeted on purpose (a package upgrade that moves the
//! file) takes effect at the next restart; a file replaced in place is seen at once.
//!
//! [`LoaderCheck::problem`] is the one line `config check`, `tabula doctor` and `serve`
//! print for a configured loader that cannot be served, with its fix.
//!
//! Blocking file system calls only (canonicalize, stat, open); no sockets, no clock.
//! Must not know about TFTP or HTTP: both front ends depend on it, never the reverse.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::config::{DhcpMode, Loaders, SHIM_SECOND_STAGE};

/// Whether a front end of a configuration in DHCP mode `mode` would hand out the loader
/// firmware key `key` names as `name`, i.e. whether it being unservable is worth a
/// warning. tabula's DHCP (full or proxy) names each configured loader to the firmware
/// it is for, so every one counts. With DHCP off, another server names the files; only a
/// loader the configuration names on purpose (not the default name, such as the
/// `ipxe-ia32.efi` and `ipxe-arm64.efi` Debian does not ship) is expected to be asked for.
pub fn handed_out(mode: DhcpMode, key: &str, name: &str) -> bool {
    match mode {
        DhcpMode::Full | DhcpMode::Proxy => true,
        DhcpMode::Off => Loaders::default_name(key) != Some(name),
    }
}

/// The Debian package that ships the loader of firmware key `key`.
fn package(key: &str) -> &'static str {
    match key {
        "shim_x64" => "shim-signed",
        "grub_x64" => "grub-efi-amd64-signed",
        "grub_arm64" => "grub-efi-arm64-bin",
        _ => "ipxe",
    }
}

/// What one configured loader name resolves to under the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// A regular file this process can open, by its canonical path; `linked` when a
    /// symbolic link led there (the path then differs from `<root>/<name>`).
    File { path: PathBuf, linked: bool },
    /// Nothing by that name under the root (or no root).
    Missing,
    /// A symbolic link to nothing: the link, and what it points at.
    Dangling { link: PathBuf, target: PathBuf },
    /// It resolves to `path`, which is not a regular file (`kind`: "a directory", …).
    NotRegular { path: PathBuf, kind: &'static str },
    /// It resolves, but cannot be opened by this user (permission), or a link loops.
    Unreadable { path: PathBuf, error: String },
    /// Not a plain relative name (`..`, absolute, `.`): never looked up.
    BadName,
}

/// One configured loader and what it resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoaderCheck {
    /// The firmware key: `bios`, `efi_ia32`, `efi_x64`, `efi_arm64`.
    pub key: &'static str,
    /// The configured name (relative to the root).
    pub name: String,
    /// The root it was resolved under, as configured.
    pub root: PathBuf,
    pub resolution: Resolution,
}

impl LoaderCheck {
    /// Whether a front end in DHCP mode `mode` would hand this loader out ([`handed_out`]).
    pub fn handed_out(&self, mode: DhcpMode) -> bool {
        handed_out(mode, self.key, &self.name)
    }

    /// Whether TFTP and HTTP can serve this name.
    pub fn servable(&self) -> bool {
        matches!(self.resolution, Resolution::File { .. })
    }

    /// One line naming what is wrong and the fix (`None` when servable):
    /// `dhcp.loaders.efi_x64 = "ipxe.efi": /usr/lib/ipxe/ipxe.efi is a symlink to
    /// /boot/ipxe.efi, which does not exist; fix: …`.
    pub fn problem(&self) -> Option<String> {
        let (what, fix) = self.diagnosis()?;
        Some(format!("{what}; fix: {fix}"))
    }

    /// What is wrong (naming the key and the file) and what to do, apart; `None` when
    /// servable.
    pub fn diagnosis(&self) -> Option<(String, String)> {
        let key = format!("dhcp.loaders.{}", self.key);
        let at = self.root.join(&self.name);
        let root = self.root.display();
        let (what, fix) = match &self.resolution {
            Resolution::File { .. } => return None,
            Resolution::Missing => (
                format!("{} does not exist", at.display()),
                format!(
                    "install the loader into {root} (Debian: apt install {}), or set {key} \
                     to a loader that is there",
                    package(self.key)
                ),
            ),
            Resolution::Dangling { link, target } => (
                format!(
                    "{} is a symlink to {}, which does not exist",
                    link.display(),
                    target.display()
                ),
                format!(
                    "install what the link points at (Debian: apt install --reinstall {}), \
                     or set {key} to a loader that exists",
                    package(self.key)
                ),
            ),
            Resolution::NotRegular { path, kind } => (
                format!(
                    "{} resolves to {}, which is {kind}, not a regular file",
                    at.display(),
                    path.display()
                ),
                format!("set {key} to a regular file under {root}"),
            ),
            Resolution::Unreadable { path, error } => (
                format!("{} cannot be opened: {error}", path.display()),
                format!(
                    "make it readable by the user tabula serves as (server.user), or set {key} \
                     to another loader"
                ),
            ),
            Resolution::BadName => (
                "is not a plain relative name".to_string(),
                format!("set {key} to a file name under {root}"),
            ),
        };
        Some((format!("{key} = {:?}: {what}", self.name), fix))
    }
}

/// The configured loaders that resolved to a regular file, by name. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct LoaderFiles {
    files: Arc<HashMap<PathBuf, PathBuf>>,
    /// Files tabula renders itself (GRUB's bootstrap `grub/grub.cfg`), by name.
    generated: Arc<HashMap<PathBuf, bytes::Bytes>>,
}

impl LoaderFiles {
    /// Resolves every loader `loaders` names under `root`, in firmware order. Blocking.
    ///
    /// With `shim_x64` set, shim asks for its fixed second stage `grubx64.efi` beside
    /// itself: that name is served from the file `grub_x64` resolved to, whatever
    /// `grub_x64` is called under the root.
    pub fn resolve(root: &Path, loaders: &Loaders) -> (LoaderFiles, Vec<LoaderCheck>) {
        let (mut files, checks) = Self::resolve_names(root, &loaders.named());
        if let (Some(_), Some(grub)) = (&loaders.shim_x64, &loaders.grub_x64)
            && let Some(rel) = plain_relative(grub)
            && let Some(path) = files.files.get(&rel).cloned()
        {
            Arc::make_mut(&mut files.files).insert(PathBuf::from(SHIM_SECOND_STAGE), path);
        }
        (files, checks)
    }

    /// Resolves `(key, name)` pairs under `root`. Blocking.
    pub fn resolve_names(
        root: &Path,
        names: &[(&'static str, &str)],
    ) -> (LoaderFiles, Vec<LoaderCheck>) {
        let canonical_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        let mut files = HashMap::new();
        let mut checks = Vec::with_capacity(names.len());
        for &(key, name) in names {
            let resolution = match plain_relative(name) {
                Some(rel) => {
                    let r = resolve_one(&canonical_root, &rel);
                    if let Resolution::File { path, .. } = &r {
                        files.insert(rel, path.clone());
                    }
                    r
                }
                None => Resolution::BadName,
            };
            checks.push(LoaderCheck {
                key,
                name: name.to_string(),
                root: root.to_path_buf(),
                resolution,
            });
        }
        (
            LoaderFiles {
                files: Arc::new(files),
                generated: Arc::default(),
            },
            checks,
        )
    }

    /// The file a configured name resolved to; `None` for any name not configured (or
    /// configured but not servable at start-up), which the caller serves by its own
    /// rules. `relative` is the requested name already checked by the caller (no `..`,
    /// no leading `/`).
    pub fn file_of(&self, relative: &Path) -> Option<&Path> {
        self.files.get(relative).map(PathBuf::as_path)
    }

    /// Serves `text` under `name` (relative, checked by the caller), ahead of any file.
    pub fn with_generated(mut self, name: &str, text: bytes::Bytes) -> LoaderFiles {
        Arc::make_mut(&mut self.generated).insert(PathBuf::from(name), text);
        self
    }

    /// The bytes of a generated file (`None` for any other name).
    pub fn generated_of(&self, relative: &Path) -> Option<&bytes::Bytes> {
        self.generated.get(relative)
    }
}

/// `name` as a relative path of plain components, or `None` (`..`, `.`, absolute, NUL,
/// empty).
fn plain_relative(name: &str) -> Option<PathBuf> {
    if name.is_empty() || name.contains('\0') || name.contains('\\') {
        return None;
    }
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(part) => out.push(part),
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Resolves `root/rel`: follows links, then requires a regular file this user can open.
fn resolve_one(root: &Path, rel: &Path) -> Resolution {
    let at = root.join(rel);
    let Ok(meta) = std::fs::symlink_metadata(&at) else {
        return Resolution::Missing;
    };
    let path = match at.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let target = std::fs::read_link(&at).unwrap_or_default();
            return Resolution::Dangling { link: at, target };
        }
        Err(e) => {
            return Resolution::Unreadable {
                path: at,
                error: e.to_string(),
            };
        }
    };
    let kind = match std::fs::symlink_metadata(&path) {
        Ok(m) => m.file_type(),
        Err(e) => {
            return Resolution::Unreadable {
                path,
                error: e.to_string(),
            };
        }
    };
    if !kind.is_file() {
        let kind = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_block_device() || kind.is_char_device() {
            "a device"
        } else {
            "not a file"
        };
        return Resolution::NotRegular { path, kind };
    }
    // Opened as the front ends will open it (non-blocking, not through a link), so a
    // file this user may not read is named now rather than at the first boot.
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(_) => Resolution::File {
            linked: meta.file_type().is_symlink() || path != at,
            path,
        },
        Err(e) => Resolution::Unreadable {
            path,
            error: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
