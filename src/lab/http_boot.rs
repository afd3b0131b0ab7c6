//! The lab's UEFI HTTP boot kind (`--firmware uefi-http`): OVMF with its PXE turned off
//! for IPv4 and IPv6 by fw_cfg (shared/netboot-lab.md's addendum), so the firmware's boot
//! option for the NIC is HTTP boot: DHCP as an HTTP-boot client (option 93 = 16, option
//! 60 `HTTPClient`), tabula's answer names `{public_url}/loaders/<efi_x64 loader>`, the
//! firmware sizes it by a `HEAD` and GETs it, and iPXE (snponly.efi on the firmware's
//! network driver) goes on to its script. The lab config is unchanged.
//!
//! Pure: command-line words and the hardware rule; no process, no file.

use super::{Hardware, Nic, UefiRom};

/// The fw_cfg switches that turn OVMF's PXE off (HTTP boot stays on).
pub const PXE_OFF: [&str; 2] = [
    "name=opt/org.tianocore/IPv4PXESupport,string=n",
    "name=opt/org.tianocore/IPv6PXESupport,string=n",
];

/// QEMU's words added to a UEFI VM's command line for HTTP boot.
pub fn args() -> Vec<String> {
    PXE_OFF
        .iter()
        .flat_map(|v| ["-fw_cfg".to_string(), v.to_string()])
        .collect()
}

/// Refuses hardware an HTTP-boot VM cannot use: OVMF has no e1000 driver (and its HTTP
/// boot runs on OVMF's own driver), and an iPXE ROM would boot iPXE, not HTTP boot.
pub fn check(hardware: Hardware) -> Result<(), String> {
    if hardware.nic == Nic::E1000 {
        return Err("OVMF has no e1000 driver: --firmware uefi-http needs --nic virtio".into());
    }
    if hardware.uefi_rom == UefiRom::Ipxe {
        return Err(
            "--uefi-rom ipxe boots iPXE from the NIC ROM, not UEFI HTTP boot: --firmware uefi-http needs --uefi-rom firmware"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pxe_off_for_both_ip_versions() {
        assert_eq!(
            args().join(" "),
            "-fw_cfg name=opt/org.tianocore/IPv4PXESupport,string=n \
             -fw_cfg name=opt/org.tianocore/IPv6PXESupport,string=n"
        );
    }

    #[test]
    fn the_kind_is_named_planned_and_started_without_pxe() {
        use crate::lab::{FirmwareChoice, VmFirmware, plan_vms, qemu};
        let choice: FirmwareChoice = "uefi-http".parse().unwrap();
        let vms = plan_vms(choice, 1);
        assert_eq!(vms[0].name, "uefi-http-1");
        assert_eq!(vms[0].firmware, VmFirmware::UefiHttp);
        assert_eq!(vms[0].mac.to_string(), "52:54:00:77:05:01");
        assert_eq!(vms[0].tap, "tap-h1");
        let a = qemu::args(&vms[0], std::path::Path::new("/w")).join(" ");
        assert!(a.contains("-machine q35 "), "{a}");
        assert!(
            a.contains("mac=52:54:00:77:05:01,bootindex=1,romfile="),
            "{a}"
        );
        assert!(
            a.contains("readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"),
            "{a}"
        );
        assert!(a.contains("unit=1,file=/w/uefi-http-1-vars.fd"), "{a}");
        assert!(a.contains(&args().join(" ")), "{a}");
        // An iPXE ROM never comes back on an HTTP-boot VM, even if asked for.
        let mut rom = vms[0].clone();
        rom.hardware.uefi_rom = UefiRom::Ipxe;
        assert!(
            qemu::args(&rom, std::path::Path::new("/w"))
                .join(" ")
                .contains("romfile=")
        );
        assert!(Hardware::default().check(choice).is_ok());
        assert!(rom.hardware.check(choice).is_err());
    }

    #[test]
    fn only_virtio_without_a_rom() {
        assert!(check(Hardware::default()).is_ok());
        let e1000 = Hardware {
            nic: Nic::E1000,
            uefi_rom: UefiRom::Ipxe,
        };
        assert!(check(e1000).unwrap_err().contains("--nic virtio"));
        let rom = Hardware {
            uefi_rom: UefiRom::Ipxe,
            ..Hardware::default()
        };
        assert!(check(rom).unwrap_err().contains("--uefi-rom firmware"));
    }
}
