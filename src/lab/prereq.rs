//! What `tabula lab` needs before it touches anything: root, and the tools and firmware
//! files of the lab packages (images/setup-packages.sh installs them). The first missing
//! piece is reported with the Debian package that provides it.
//!
//! The check itself ([`first_missing`]) is pure over two lookups, so it is tested
//! without a machine that lacks the packages.

use std::path::Path;

use super::LabError;

/// The PXE loaders tabula serves over TFTP to lab VMs (`tftp.root` of lab.toml).
pub const IPXE_DIR: &str = "/usr/lib/ipxe";
/// OVMF's code and variable store templates.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// A program or file, and the package that provides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// A program found on `PATH`.
    Program(&'static str, &'static str),
    /// A file at a fixed path.
    File(&'static str, &'static str),
}

/// Needed to boot lab VMs.
pub const BOOT: &[Need] = &[
    Need::Program("ip", "iproute2"),
    Need::Program("qemu-system-x86_64", "qemu-system-x86"),
    Need::File("/usr/share/seabios/bios-256k.bin", "seabios"),
    Need::File("/usr/lib/ipxe/qemu/pxe-virtio.rom", "ipxe-qemu"),
    Need::File("/usr/lib/ipxe/undionly.kpxe", "ipxe"),
    Need::File("/usr/lib/ipxe/snponly.efi", "ipxe"),
    Need::File(OVMF_CODE, "ovmf"),
    Need::File(OVMF_VARS, "ovmf"),
];

/// Needed to build the demo images (images/build.sh).
pub const BUILD: &[Need] = &[
    Need::Program("bash", "bash"),
    Need::File("/bin/busybox", "busybox-static"),
    Need::Program("mksquashfs", "squashfs-tools"),
    Need::Program("cpio", "cpio"),
];

/// The first of `needs` that is absent.
pub fn first_missing(
    needs: &[Need],
    program_exists: impl Fn(&str) -> bool,
    file_exists: impl Fn(&str) -> bool,
) -> Option<Need> {
    needs.iter().copied().find(|n| match *n {
        Need::Program(p, _) => !program_exists(p),
        Need::File(f, _) => !file_exists(f),
    })
}

/// Fails with [`LabError::Missing`] naming the first absent piece of `needs`.
pub fn check(needs: &[Need]) -> Result<(), LabError> {
    match first_missing(needs, on_path, |f| Path::new(f).exists()) {
        None => Ok(()),
        Some(Need::Program(p, package)) => Err(LabError::Missing {
            what: format!("the program {p}"),
            package,
        }),
        Some(Need::File(f, package)) => Err(LabError::Missing {
            what: f.to_string(),
            package,
        }),
    }
}

/// Fails with [`LabError::NotRoot`] unless the effective user is root.
pub fn require_root() -> Result<(), LabError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(LabError::NotRoot)
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_package_of_the_first_missing_piece() {
        assert_eq!(first_missing(BOOT, |_| true, |_| true), None);
        let m = first_missing(BOOT, |_| true, |f| !f.contains("OVMF"));
        assert_eq!(m, Some(Need::File(OVMF_CODE, "ovmf")));
        let m = first_missing(BOOT, |p| p != "qemu-system-x86_64", |_| true);
        assert_eq!(
            m,
            Some(Need::Program("qemu-system-x86_64", "qemu-system-x86"))
        );
    }

    #[test]
    fn the_error_names_package_and_set_up_command() {
        let e = LabError::Missing {
            what: "/usr/lib/ipxe/snponly.efi".into(),
            package: "ipxe",
        };
        let s = e.to_string();
        assert!(
            s.contains("package ipxe") && s.contains("images/setup-packages.sh"),
            "{s}"
        );
    }
}
