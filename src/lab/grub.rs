//! The lab's GRUB kinds (`--firmware secureboot`): Debian's signed shim and GRUB, and
//! OVMF's Secure Boot firmware with Microsoft's keys enrolled. The lab serves TFTP from
//! its own directory (`<work>/tftp`) of links to the packages' files, the way an operator
//! links Debian's loaders into a TFTP root, and its config says `grub` for x64 UEFI.
//!
//! Blocking file system calls only; no process, no socket.

use std::path::Path;

use super::prereq::{self, Need};
use super::{FirmwareChoice, LabError, VmFirmware};

/// OVMF built with Secure Boot (needs SMM), and its variable store with Microsoft's
/// keys enrolled (Debian's `ovmf`; `OVMF_CODE_4M.ms.fd` is a link to the same code).
pub const OVMF_SB_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
pub const OVMF_SB_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";
/// Microsoft-signed shim, and the Debian-signed GRUB network loader shim accepts.
pub const SHIM_X64: &str = "/usr/lib/shim/shimx64.efi.signed";
pub const GRUB_X64: &str = "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed";

/// What the Secure Boot kind needs beyond the lab's defaults.
pub const SECUREBOOT: &[Need] = &[
    Need::File(OVMF_SB_CODE, "ovmf"),
    Need::File(OVMF_SB_VARS, "ovmf"),
    Need::File(SHIM_X64, "shim-signed"),
    Need::File(GRUB_X64, "grub-efi-amd64-signed"),
];

/// Whether any VM of `choice` boots GRUB.
pub fn uses_grub(choice: FirmwareChoice) -> bool {
    choice.kinds().contains(&VmFirmware::SecureBoot)
}

/// The TFTP directory of a GRUB run: links named as the config names them.
fn links() -> Vec<(&'static str, String)> {
    let ipxe = |f: &str| format!("{}/{f}", prereq::IPXE_DIR);
    vec![
        ("undionly.kpxe", ipxe("undionly.kpxe")),
        ("snponly.efi", ipxe("snponly.efi")),
        ("ipxe.efi", ipxe("ipxe.efi")),
        ("shimx64.efi", SHIM_X64.into()),
        ("grubx64.efi", GRUB_X64.into()),
    ]
}

/// `config` (the lab's config text) for `choice`: unchanged unless a VM boots GRUB;
/// then TFTP serves `<work>/tftp` (made here, links to the packages' files) and x64 UEFI
/// machines get shim → GRUB.
pub fn config(config: String, choice: FirmwareChoice, work: &Path) -> Result<String, LabError> {
    if !uses_grub(choice) {
        return Ok(config);
    }
    prereq::check(SECUREBOOT)?;
    let dir = work.join("tftp");
    std::fs::create_dir_all(&dir).map_err(LabError::io(&dir))?;
    for (name, target) in links() {
        let at = dir.join(name);
        let _ = std::fs::remove_file(&at);
        std::os::unix::fs::symlink(&target, &at).map_err(LabError::io(&at))?;
    }
    rewrite(&config, &dir)
}

/// The text change alone (pure): the TFTP root, the GRUB loaders and `[dhcp.programs]`.
pub fn rewrite(config: &str, tftp_root: &Path) -> Result<String, LabError> {
    with_grub(
        config,
        tftp_root,
        "GRUB",
        "[dhcp.programs]\n\
         # x64 UEFI machines boot Debian's signed shim, which loads grubx64.efi beside it.\n\
         efi_x64 = \"grub\"\n\n\
         [dhcp.loaders]\n\
         shim_x64 = \"shimx64.efi\"\n\
         grub_x64 = \"grubx64.efi\"\n",
    )
}

/// The lab config with its TFTP root set to `tftp_root` (a folder of links) and its
/// `[dhcp.loaders]` header replaced by `block` (a `[dhcp.programs]` table, then the
/// loaders header with the GRUB kind's loaders): shared by the GRUB kinds.
pub(super) fn with_grub(
    config: &str,
    tftp_root: &Path,
    kind: &str,
    block: &str,
) -> Result<String, LabError> {
    const ROOT: &str = "root = \"/usr/lib/ipxe\"";
    const LOADERS: &str = "[dhcp.loaders]\n";
    let root = tftp_root.display().to_string();
    if !config.contains(ROOT) || !config.contains(LOADERS) || root.contains(['"', '\\', '\n']) {
        return Err(LabError::Options(format!(
            "the lab config has no TFTP root or [dhcp.loaders] to set for {kind}"
        )));
    }
    Ok(config
        .replace(ROOT, &format!("root = \"{root}\""))
        .replace(LOADERS, block))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_config_gets_shim_and_grub_for_x64_uefi() {
        let text = rewrite(crate::lab::session::LAB_CONFIG, Path::new("/w/tftp")).unwrap();
        let c = crate::config::Config::parse(&text, "lab.toml", None).unwrap();
        assert_eq!(c.tftp.root, Path::new("/w/tftp"));
        let l = &c.dhcp.loaders;
        assert_eq!(l.for_firmware(crate::boot::Firmware::EfiX64), "shimx64.efi");
        assert_eq!(l.for_firmware(crate::boot::Firmware::Bios), "undionly.kpxe");
        assert_eq!(l.grub_x64.as_deref(), Some("grubx64.efi"));
        let names: Vec<_> = links().into_iter().map(|(n, _)| n).collect();
        for (_, n) in l.named() {
            assert!(
                names.contains(&n) || n.starts_with("ipxe-"),
                "{n} not linked"
            );
        }
        assert!(rewrite("[dhcp]\n", Path::new("/w")).is_err());
    }
}
