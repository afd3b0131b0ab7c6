//! The lab's ARM64 kind (`--firmware arm64`, issue 18): QEMU's `virt` machine with a
//! Cortex-A57 under TCG, AAVMF (EDK2 for ARM64) doing PXE on a virtio NIC without an
//! option ROM, Debian's monolithic `grubnetaa64.efi` as the boot program (Debian has no
//! arm64 iPXE), then tabula's GRUB configs, the arm64 kernel and initrd over TFTP and the
//! `demo-arm64` image, built from Debian's arm64 packages by `images/` with
//! `TABULA_LAB_ARCH=arm64` and published as arm64.
//!
//! This file holds what differs from the x86 kinds: the QEMU program and machine
//! arguments, the firmware files, the config change (TFTP root of links, GRUB for arm64
//! UEFI) and the demo image's arm64 name. Blocking file system calls only; no process,
//! no socket.

use std::path::Path;

use super::prereq::{self, Need};
use super::{FirmwareChoice, LabError, VmFirmware, VmSpec};
use crate::inventory::PinRef;

/// AAVMF's code and variable store template (Debian's `qemu-efi-aarch64`).
pub const AAVMF_CODE: &str = "/usr/share/AAVMF/AAVMF_CODE.fd";
pub const AAVMF_VARS: &str = "/usr/share/AAVMF/AAVMF_VARS.fd";
/// Debian's monolithic network GRUB for arm64 (`grub-efi-arm64-bin`, arm64 package).
pub const GRUB_ARM64: &str = "/usr/lib/grub/arm64-efi/monolithic/grubnetaa64.efi";
/// The QEMU program of arm64 VMs.
pub const QEMU: &str = "qemu-system-aarch64";

/// What the ARM64 kind needs beyond the lab's defaults.
pub const NEEDS: &[Need] = &[
    Need::Program(QEMU, "qemu-system-arm"),
    Need::File(AAVMF_CODE, "qemu-efi-aarch64"),
    Need::File(AAVMF_VARS, "qemu-efi-aarch64"),
    Need::File(GRUB_ARM64, "grub-efi-arm64-bin:arm64"),
];

/// The demo image built for arm64 (images/env.sh names it so).
pub const DEMO: &str = "demo-arm64";

/// Whether any VM of `choice` is an arm64 one.
pub fn chosen(choice: FirmwareChoice) -> bool {
    choice.kinds().contains(&VmFirmware::Arm64)
}

/// The image arm64 VMs are pinned to: the demo's arm64 build for `demo@V` (the lab's
/// default), anything else as given.
pub fn image(choice: FirmwareChoice, given: &PinRef) -> PinRef {
    match given {
        PinRef::Version { image, version } if chosen(choice) && image == "demo" => {
            PinRef::Version {
                image: DEMO.into(),
                version: version.clone(),
            }
        }
        other => other.clone(),
    }
}

/// QEMU's machine arguments for an arm64 VM (after the common ones of `qemu::args`).
/// `romfile=` keeps QEMU's iPXE ROM off the NIC (it has no arm64 code anyway), so
/// AAVMF's own PXE does the first stage.
pub fn machine_args(vm: &VmSpec, work: &Path) -> Vec<String> {
    vec![
        "-machine".into(),
        "virt".into(),
        "-cpu".into(),
        "cortex-a57".into(),
        "-device".into(),
        format!(
            "virtio-net-pci,netdev=n0,mac={},bootindex=1,romfile=",
            vm.mac
        ),
        "-drive".into(),
        format!("if=pflash,format=raw,unit=0,readonly=on,file={AAVMF_CODE}"),
        "-drive".into(),
        format!(
            "if=pflash,format=raw,unit=1,file={}",
            super::qemu::vars_path(vm, work).display()
        ),
    ]
}

/// `config` (the lab's config text) for `choice`: unchanged unless a VM is arm64; then
/// TFTP serves `<work>/tftp` (made here: links to the iPXE loaders and to
/// `grubnetaa64.efi`) and arm64 UEFI machines get GRUB.
pub fn config(config: String, choice: FirmwareChoice, work: &Path) -> Result<String, LabError> {
    if !chosen(choice) {
        return Ok(config);
    }
    prereq::check(NEEDS)?;
    let dir = work.join("tftp");
    std::fs::create_dir_all(&dir).map_err(LabError::io(&dir))?;
    for (name, target) in links() {
        let at = dir.join(name);
        let _ = std::fs::remove_file(&at);
        std::os::unix::fs::symlink(&target, &at).map_err(LabError::io(&at))?;
    }
    rewrite(&config, &dir)
}

/// The TFTP directory of an arm64 run: links named as the config names them.
fn links() -> Vec<(&'static str, String)> {
    let ipxe = |f: &str| format!("{}/{f}", prereq::IPXE_DIR);
    vec![
        ("undionly.kpxe", ipxe("undionly.kpxe")),
        ("snponly.efi", ipxe("snponly.efi")),
        ("grubnetaa64.efi", GRUB_ARM64.into()),
    ]
}

/// The text change alone (pure): the TFTP root, GRUB for arm64 UEFI in
/// `[dhcp.programs]`, and its loader.
pub fn rewrite(config: &str, tftp_root: &Path) -> Result<String, LabError> {
    super::grub::with_grub(
        config,
        tftp_root,
        "arm64 GRUB",
        "[dhcp.programs]\n\
         # arm64 UEFI machines boot Debian's grubnetaa64.efi (Debian has no arm64 iPXE).\n\
         efi_arm64 = \"grub\"\n\n\
         [dhcp.loaders]\n\
         grub_arm64 = \"grubnetaa64.efi\"\n",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::Firmware;
    use crate::lab::plan_vms;

    #[test]
    fn the_lab_config_gets_grub_for_arm64_uefi() {
        let text = rewrite(crate::lab::session::LAB_CONFIG, Path::new("/w/tftp")).unwrap();
        let c = crate::config::Config::parse(&text, "lab.toml", None).unwrap();
        assert_eq!(c.tftp.root, Path::new("/w/tftp"));
        let l = &c.dhcp.loaders;
        assert_eq!(l.for_firmware(Firmware::EfiArm64), "grubnetaa64.efi");
        assert_eq!(l.for_firmware(Firmware::EfiX64), "snponly.efi");
        let names: Vec<_> = links().into_iter().map(|(n, _)| n).collect();
        for (key, n) in l.named() {
            assert!(
                names.contains(&n) || matches!(key, "efi_ia32" | "efi_arm64"),
                "{key} = {n} not linked"
            );
        }
        assert!(rewrite("[dhcp]\n", Path::new("/w")).is_err());
    }

    #[test]
    fn arm64_command_line() {
        let vms = plan_vms(FirmwareChoice::Arm64, 1);
        assert_eq!(vms[0].name, "arm64-1");
        let a = crate::lab::qemu::args(&vms[0], Path::new("/w")).join(" ");
        assert!(a.contains("-machine virt -cpu cortex-a57"), "{a}");
        assert!(a.contains("-accel tcg"), "{a}");
        assert!(
            a.contains("virtio-net-pci,netdev=n0,mac=52:54:00:77:04:01,bootindex=1,romfile="),
            "{a}"
        );
        assert!(
            a.contains("unit=0,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd"),
            "{a}"
        );
        assert!(a.contains("unit=1,file=/w/arm64-1-vars.fd"), "{a}");
        assert_eq!(crate::lab::qemu::program(VmFirmware::Arm64), QEMU);
    }

    #[test]
    fn arm64_vms_get_the_arm64_demo() {
        let demo: PinRef = "demo@2".parse().unwrap();
        assert_eq!(
            image(FirmwareChoice::Arm64, &demo),
            "demo-arm64@2".parse().unwrap()
        );
        assert_eq!(image(FirmwareChoice::Uefi, &demo), demo);
        let other: PinRef = "mine@1".parse().unwrap();
        assert_eq!(image(FirmwareChoice::Arm64, &other), other);
    }
}
