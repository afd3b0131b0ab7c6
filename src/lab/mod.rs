//! `tabula lab`: QEMU machines PXE-booting through tabula in a private network
//! namespace, start to finish, with one summary line per machine.
//!
//! The pieces, one responsibility each: [`prereq`] (root, the packages the lab needs,
//! named), [`images`] (the demo images built and published, or reused), [`network`] (the
//! namespace, bridge `tabr0` at 10.77.0.1/24 and one tap per VM; removed on drop),
//! [`serve`] (`tabula serve` as a child inside the namespace), [`qemu`] (the VM command
//! lines of shared/netboot-lab.md §3 and the running VMs, their consoles streamed),
//! [`summary`] (the verdict and summary line; the stage arithmetic is
//! [`crate::events::timeline`]), and [`session`]
//! (the run that ties them together and always cleans up, also on Ctrl-C).
//!
//! Must not: touch any interface outside the namespace it creates, or kill a process it
//! did not start (everything is killed by PID).

pub mod arm64;
pub mod capture;
pub mod grub;
pub mod http_boot;
pub mod images;
pub mod local_disk;
pub mod network;
pub mod operator;
pub mod prereq;
pub mod qemu;
pub mod qmp;
pub mod receiver;
pub mod rollout;
pub mod serve;
pub mod session;
mod stages;
pub mod summary;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::boot::Mac;

pub use crate::events::timeline::{Outcome, Timeline};
pub use session::{Options, Report, run};

/// What can stop the lab before or while it runs. Each message is the one line the
/// operator sees.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Not root: namespaces, taps and port 67 need it.
    #[error(
        "tabula lab must run as root (network namespace, bridge, taps, DHCP port 67); try `sudo`"
    )]
    NotRoot,
    /// Something the lab needs is not installed.
    #[error(
        "{what} is missing (Debian package {package}); install the lab packages with: sudo bash images/setup-packages.sh"
    )]
    Missing { what: String, package: &'static str },
    /// A command the lab runs failed.
    #[error("{command}: {detail}")]
    Command { command: String, detail: String },
    /// Files of the lab (work directory, logs, firmware copies).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Options that cannot work (no VMs at all).
    #[error("{0}")]
    Options(String),
    /// The image to boot is not published and cannot be built here.
    #[error("{0}")]
    Image(String),
    /// `tabula serve` did not come up.
    #[error("tabula serve in the lab namespace: {0}")]
    Serve(String),
    /// A stage of `tabula lab --rollout` did not come out as it must.
    #[error("{vm} ({stage}): {detail}")]
    Stage {
        vm: String,
        stage: &'static str,
        detail: String,
    },
    /// Ctrl-C or SIGTERM.
    #[error("interrupted")]
    Interrupted,
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    #[error(transparent)]
    Blobs(#[from] crate::images::ImageError),
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
}

impl LabError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LabError {
        let path = path.into();
        move |source| LabError::Io { path, source }
    }
}

/// The firmware a lab VM boots with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VmFirmware {
    /// SeaBIOS with QEMU's iPXE NIC ROM (chainloads `undionly.kpxe`).
    Bios,
    /// OVMF with its own PXE (no NIC ROM), chainloading `snponly.efi`.
    Uefi,
    /// OVMF's Secure Boot build with Microsoft's keys enrolled, its own PXE loading
    /// Debian's signed shim → GRUB → the Debian-signed kernel (see [`grub`]).
    SecureBoot,
    /// QEMU's arm64 `virt` machine with AAVMF's own PXE loading Debian's
    /// `grubnetaa64.efi` → the arm64 kernel (see [`arm64`]).
    Arm64,
    /// OVMF with its PXE off: UEFI HTTP boot of the loader, then iPXE (see [`http_boot`]).
    UefiHttp,
}

impl VmFirmware {
    pub fn as_str(self) -> &'static str {
        match self {
            VmFirmware::Bios => "bios",
            VmFirmware::Uefi => "uefi",
            VmFirmware::SecureBoot => "secureboot",
            VmFirmware::Arm64 => "arm64",
            VmFirmware::UefiHttp => "uefi-http",
        }
    }
}

impl fmt::Display for VmFirmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `--nic`: the VM's network card.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Nic {
    /// virtio-net-pci (iPXE's and OVMF's own drivers; the fastest under TCG).
    #[default]
    Virtio,
    /// Intel e1000 (QEMU's `pxe-e1000`/`efi-e1000` iPXE ROM; OVMF has no driver of its own).
    E1000,
}

impl Nic {
    pub fn as_str(self) -> &'static str {
        match self {
            Nic::Virtio => "virtio",
            Nic::E1000 => "e1000",
        }
    }

    /// QEMU's `-device` model.
    pub fn device(self) -> &'static str {
        match self {
            Nic::Virtio => "virtio-net-pci",
            Nic::E1000 => "e1000",
        }
    }
}

impl FromStr for Nic {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "virtio" => Ok(Nic::Virtio),
            "e1000" => Ok(Nic::E1000),
            _ => Err(format!("{s:?} is not one of virtio, e1000")),
        }
    }
}

/// `--uefi-rom`: what does the first network stage of a UEFI VM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UefiRom {
    /// No NIC ROM (`romfile=`): OVMF's own PXE (PxeBcDxe) → TFTP loader → iPXE.
    #[default]
    Firmware,
    /// QEMU's iPXE EFI ROM for the NIC: iPXE from the start, straight to the script.
    Ipxe,
}

impl UefiRom {
    pub fn as_str(self) -> &'static str {
        match self {
            UefiRom::Firmware => "firmware",
            UefiRom::Ipxe => "ipxe",
        }
    }
}

impl FromStr for UefiRom {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "firmware" | "none" => Ok(UefiRom::Firmware),
            "ipxe" => Ok(UefiRom::Ipxe),
            _ => Err(format!("{s:?} is not one of firmware, ipxe")),
        }
    }
}

/// The VM hardware beyond its firmware: the same for every VM of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hardware {
    pub nic: Nic,
    pub uefi_rom: UefiRom,
}

impl Hardware {
    /// Refuses what cannot boot: OVMF has no e1000 driver, so UEFI + e1000 needs the
    /// iPXE ROM (shared/netboot-lab.md §3).
    pub fn check(self, firmware: FirmwareChoice) -> Result<(), String> {
        let kinds = firmware.kinds();
        if kinds.contains(&VmFirmware::Arm64) && self.nic == Nic::E1000 {
            return Err("AAVMF has no e1000 driver: --firmware arm64 needs --nic virtio".into());
        }
        if kinds.contains(&VmFirmware::UefiHttp) {
            http_boot::check(self)?;
        }
        if kinds.contains(&VmFirmware::SecureBoot) && self.nic == Nic::E1000 {
            return Err(
                "OVMF has no e1000 driver: --firmware secureboot needs --nic virtio".into(),
            );
        }
        let uefi = kinds.contains(&VmFirmware::Uefi);
        if uefi && self.nic == Nic::E1000 && self.uefi_rom == UefiRom::Firmware {
            return Err(
                "OVMF has no e1000 driver: a UEFI VM with --nic e1000 needs --uefi-rom ipxe".into(),
            );
        }
        Ok(())
    }
}

/// `--firmware`: one kind, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirmwareChoice {
    Bios,
    Uefi,
    Both,
    SecureBoot,
    Arm64,
    UefiHttp,
}

impl FromStr for FirmwareChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bios" => Ok(FirmwareChoice::Bios),
            "uefi" => Ok(FirmwareChoice::Uefi),
            "both" => Ok(FirmwareChoice::Both),
            "secureboot" => Ok(FirmwareChoice::SecureBoot),
            "arm64" => Ok(FirmwareChoice::Arm64),
            "uefi-http" => Ok(FirmwareChoice::UefiHttp),
            _ => Err(format!(
                "{s:?} is not one of bios, uefi, both, secureboot, arm64, uefi-http"
            )),
        }
    }
}

impl FirmwareChoice {
    /// The firmware kinds chosen, BIOS first.
    pub fn kinds(self) -> Vec<VmFirmware> {
        match self {
            FirmwareChoice::Bios => vec![VmFirmware::Bios],
            FirmwareChoice::Uefi => vec![VmFirmware::Uefi],
            FirmwareChoice::Both => vec![VmFirmware::Bios, VmFirmware::Uefi],
            FirmwareChoice::SecureBoot => vec![VmFirmware::SecureBoot],
            FirmwareChoice::Arm64 => vec![VmFirmware::Arm64],
            FirmwareChoice::UefiHttp => vec![VmFirmware::UefiHttp],
        }
    }
}

/// One lab VM: its name (console prefix), firmware, MAC, tap and SMBIOS UUID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmSpec {
    pub name: String,
    pub firmware: VmFirmware,
    pub mac: Mac,
    pub tap: String,
    pub uuid: String,
    pub hardware: Hardware,
}

/// `per_firmware` VMs of each chosen firmware (at most 99 each): `bios-1`,
/// 52:54:00:77:01:01, `tap-b1`; `uefi-1`, 52:54:00:77:02:01, `tap-u1`; and so on.
pub fn plan_vms(choice: FirmwareChoice, per_firmware: u8) -> Vec<VmSpec> {
    let mut out = Vec::new();
    for fw in choice.kinds() {
        let (kind, letter) = match fw {
            VmFirmware::Bios => (1u8, 'b'),
            VmFirmware::Uefi => (2u8, 'u'),
            VmFirmware::SecureBoot => (3u8, 's'),
            VmFirmware::Arm64 => (4u8, 'a'),
            VmFirmware::UefiHttp => (5u8, 'h'),
        };
        for i in 1..=per_firmware.min(99) {
            out.push(VmSpec {
                name: format!("{fw}-{i}"),
                firmware: fw,
                mac: Mac([0x52, 0x54, 0x00, 0x77, kind, i]),
                tap: format!("tap-{letter}{i}"),
                uuid: format!("00000000-7777-4000-8000-52540077{kind:02x}{i:02x}"),
                hardware: Hardware::default(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vms_are_named_and_addressed_per_firmware() {
        let vms = plan_vms(FirmwareChoice::Both, 2);
        let names: Vec<&str> = vms.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["bios-1", "bios-2", "uefi-1", "uefi-2"]);
        assert_eq!(vms[0].mac.to_string(), "52:54:00:77:01:01");
        assert_eq!(vms[3].mac.to_string(), "52:54:00:77:02:02");
        assert_eq!(vms[3].tap, "tap-u2");
        assert_eq!(vms[3].uuid, "00000000-7777-4000-8000-525400770202");
        assert_eq!(
            plan_vms(FirmwareChoice::Uefi, 1)[0].firmware,
            VmFirmware::Uefi
        );
        assert!(plan_vms(FirmwareChoice::Bios, 0).is_empty());
    }

    #[test]
    fn uefi_with_e1000_needs_the_ipxe_rom() {
        let e1000 = Hardware {
            nic: Nic::E1000,
            uefi_rom: UefiRom::Firmware,
        };
        assert!(e1000.check(FirmwareChoice::Bios).is_ok());
        let err = e1000.check(FirmwareChoice::Both).unwrap_err();
        assert!(err.contains("--uefi-rom ipxe"), "{err}");
        let rom = Hardware {
            uefi_rom: UefiRom::Ipxe,
            ..e1000
        };
        assert!(rom.check(FirmwareChoice::Uefi).is_ok());
        assert_eq!("e1000".parse(), Ok(Nic::E1000));
        assert_eq!("ipxe".parse(), Ok(UefiRom::Ipxe));
        assert!("rtl8139".parse::<Nic>().is_err());
    }

    #[test]
    fn firmware_choice_parses() {
        assert_eq!("both".parse(), Ok(FirmwareChoice::Both));
        assert!("efi".parse::<FirmwareChoice>().is_err());
    }
}
