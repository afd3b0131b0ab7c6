//! `/etc/tabula-release`, the image's identity written into the image itself, and the
//! disk-space check before a build writes.
//!
//! The file is shell assignments (`. /etc/tabula-release`): NAME, VERSION, SOURCE,
//! BUILD_TIME, KERNEL. The manifest digest cannot be in it (the manifest names the root
//! image's digest, which would change with it): the booted machine learns it from the
//! kernel command line (`tabula.manifest=`, also in `/run/tabula/boot.env` before
//! systemd mounts over /run) and can fetch `/blobs/sha256/<hex>` from tabula, hash it,
//! and check that it names this NAME, VERSION and the root digest the initramfs
//! verified (`images/debian/tabula-booted` does exactly that).

use std::io::Write as _;
use std::path::Path;

use super::{BuildError, layer};

pub(super) struct Release<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub source: &'a str,
    pub build_time: u64,
    pub kernel: &'a str,
}

/// Single-quotes a value for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Release<'_> {
    pub(super) fn text(&self) -> String {
        let time = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.build_time),
        );
        format!(
            "# Written by `tabula image build`. The manifest digest is tabula.manifest= on the\n\
             # kernel command line: fetch /blobs/sha256/<hex> from tabula to check it.\n\
             NAME={}\nVERSION={}\nSOURCE={}\nBUILD_TIME={}\nKERNEL={}\n",
            quote(self.name),
            quote(self.version),
            quote(self.source),
            quote(&time.to_string()),
            quote(self.kernel),
        )
    }
}

/// Writes `/etc/tabula-release` into the staged root, replacing (never writing through)
/// whatever was there: staged files may be hard links to the source.
pub(super) fn stamp(root: &Path, r: &Release<'_>) -> Result<(), BuildError> {
    let etc = layer::resolve(root, Path::new("etc"), true, "the image")?;
    let p = etc.join("tabula-release");
    layer::remove_any(&p)?;
    let mut f = std::fs::File::create(&p).map_err(|e| BuildError::io("cannot create", &p, e))?;
    f.write_all(r.text().as_bytes())
        .map_err(|e| BuildError::io("cannot write", &p, e))?;
    drop(f);
    layer::own(&p, 0, 0, Some(0o644))
}

/// Fails with [`BuildError::NoSpace`] unless `dir`'s filesystem has `need` bytes free
/// (plus a 64 MiB margin). `what` says what the room is for.
pub(super) fn check_space(dir: &Path, need: u64, what: &str) -> Result<(), BuildError> {
    let st = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| BuildError::io("cannot statvfs", dir, std::io::Error::from(e)))?;
    #[allow(clippy::useless_conversion)] // the field types differ between targets
    let free = u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size()));
    let need = need.saturating_add(64 << 20);
    if free < need {
        return Err(BuildError::NoSpace {
            path: dir.display().to_string(),
            detail: format!(
                "{what} needs about {} MiB, {} MiB are free",
                need >> 20,
                free >> 20
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_is_shell_assignments() {
        let r = Release {
            name: "debian",
            version: "1",
            source: "dir:/it's/here",
            build_time: 86400,
            kernel: "6.1.0-28-amd64",
        };
        let t = r.text();
        assert!(t.contains("NAME='debian'\nVERSION='1'\n"));
        assert!(t.contains(r"SOURCE='dir:/it'\''s/here'"));
        assert!(t.contains("BUILD_TIME='1970-01-02T00:00:00Z'"));
    }
}
