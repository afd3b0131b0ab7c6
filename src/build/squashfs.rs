//! The read-only root: `mksquashfs` over the staged tree.
//!
//! Why mksquashfs and not backhand's in-process writer (figures in
//! `bench/results/squashfs-build.txt`): on the debootstrap'd Debian tree mksquashfs is
//! faster (it compresses on every core; backhand's writer on one), keeps hard links
//! (backhand deduplicates them into copies) and is already a lab dependency
//! (squashfs-tools). backhand is used to *read* images (`tabula image diff`).
//!
//! Reproducible: mksquashfs 4.5 orders directories itself and writes the same bytes for
//! the same tree; every inode time and the creation time are set to the build time;
//! xattrs are left out (their order on disk is the source filesystem's). Owners and
//! modes are kept as staged (no `-all-root`).

use std::path::Path;
use std::process::Command;

use super::BuildError;

/// The squashfs compressor (the Debian kernel reads all three).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Compression {
    /// Fast to build and to mount; the default.
    #[default]
    Zstd,
    /// Smallest, slowest to build.
    Xz,
    Gzip,
}

impl Compression {
    fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
            Compression::Gzip => "gzip",
        }
    }
}

/// Runs mksquashfs `root` → `out`.
pub(super) fn make(
    root: &Path,
    out: &Path,
    comp: Compression,
    time: u64,
) -> Result<(), BuildError> {
    let time = time.min(u64::from(u32::MAX)).to_string();
    let result = Command::new("mksquashfs")
        // It reads SOURCE_DATE_EPOCH itself and refuses it beside -all-time.
        .env_remove("SOURCE_DATE_EPOCH")
        .arg(root)
        .arg(out)
        .args(["-noappend", "-quiet", "-no-progress", "-no-xattrs"])
        .args(["-comp", comp.as_str()])
        // mksquashfs's default zstd level (15) took 216 s on the Debian tree, level 3 5 s
        // for a root 12 % larger (bench/results/squashfs-build.txt).
        .args(if comp == Compression::Zstd {
            &["-Xcompression-level", "3"][..]
        } else {
            &[][..]
        })
        .args(["-mkfs-time", &time, "-all-time", &time])
        .output()
        .map_err(|e| BuildError::Tool {
            tool: "mksquashfs".into(),
            reason: format!("cannot run it ({e}): install squashfs-tools"),
        })?;
    if !result.status.success() {
        let err = String::from_utf8_lossy(&result.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        if err.contains("No space left") {
            return Err(BuildError::NoSpace {
                path: out.display().to_string(),
                detail: format!("mksquashfs: {last}"),
            });
        }
        return Err(BuildError::Tool {
            tool: "mksquashfs".into(),
            reason: format!("failed ({}): {last}", result.status),
        });
    }
    Ok(())
}
