//! A boot plan: everything a machine will fetch, named by digest, plus the rendered
//! kernel command line. Once a plan is handed out, nothing it names can change, so a
//! re-pin in the middle of a boot can never mix two versions.

use super::{Arch, Digest};

/// One blob in a plan: a digest, its size, and the file name the loader gives it
/// (the `initrd=NAME` on an EFI kernel command line refers to this name).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlobRef {
    /// What the bytes hash to.
    pub digest: Digest,
    /// Length in bytes.
    pub size: u64,
    /// The name a loader presents the blob under (`vmlinuz`, `initrd.img`, `root.squashfs`).
    pub name: String,
}

/// What one machine boots, decided once and then only read.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BootPlan {
    /// Image name.
    pub image: String,
    /// Image version.
    pub version: String,
    /// Digest of the image version's manifest: the identity of what boots.
    pub manifest: Digest,
    /// The CPU the plan was chosen for.
    pub arch: Arch,
    /// The kernel.
    pub kernel: BlobRef,
    /// Initrds, in load order.
    pub initrds: Vec<BlobRef>,
    /// The read-only root image, if the image has one.
    pub rootfs: Option<BlobRef>,
    /// The kernel command line, fully rendered.
    pub cmdline: String,
}
