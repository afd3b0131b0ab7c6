//! What kind of firmware is asking, and which CPU architecture it runs.
//!
//! The DHCP layer derives a [`Firmware`] from options 93/60/77; operators name one on
//! the command line (`tabula explain MAC --arch efi-x64`). Images declare [`Arch`]es;
//! a machine only boots an image built for its CPU.

use std::fmt;
use std::str::FromStr;

/// A CPU architecture an image can be built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    /// 64-bit x86 (`x86_64`, `amd64`).
    X86_64,
    /// 32-bit x86 (`i386`, `i686`).
    I386,
    /// 64-bit ARM (`arm64`, `aarch64`).
    Arm64,
}

/// The boot environment of a client, as far as netbooting is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Firmware {
    /// Legacy PC BIOS with a PXE option ROM (option 93 = 0).
    Bios,
    /// 32-bit x86 UEFI (option 93 = 6).
    EfiIa32,
    /// 64-bit x86 UEFI PXE (option 93 = 7 or 9).
    EfiX64,
    /// 64-bit ARM UEFI PXE (option 93 = 11).
    EfiArm64,
    /// 64-bit x86 UEFI HTTP boot (option 93 = 16).
    EfiX64Http,
    /// 64-bit ARM UEFI HTTP boot (option 93 = 19).
    EfiArm64Http,
}

/// Why a string names no firmware or architecture.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FirmwareError {
    /// Not one of the firmware names.
    #[error(
        "unknown firmware {0:?}: expected one of bios, efi-ia32, efi-x64, efi-arm64 (arm64), efi-x64-http, efi-arm64-http"
    )]
    UnknownFirmware(String),
    /// Not one of the architecture names.
    #[error("unknown architecture {0:?}: expected x86_64 (amd64), i386, or arm64 (aarch64)")]
    UnknownArch(String),
}

impl Firmware {
    /// The firmware a client of `arch` that did not name its firmware is taken to have
    /// (x86_64: BIOS, the DHCP default; the others have UEFI only).
    pub fn assumed_for(arch: Arch) -> Firmware {
        match arch {
            Arch::X86_64 => Firmware::Bios,
            Arch::I386 => Firmware::EfiIa32,
            Arch::Arm64 => Firmware::EfiArm64,
        }
    }

    /// Every firmware, in a stable order.
    pub const ALL: [Firmware; 6] = [
        Firmware::Bios,
        Firmware::EfiIa32,
        Firmware::EfiX64,
        Firmware::EfiArm64,
        Firmware::EfiX64Http,
        Firmware::EfiArm64Http,
    ];

    /// Maps an RFC 4578 / IANA "Processor Architecture Type" (DHCP option 93) code.
    /// Codes tabula cannot boot (Itanium, EFI BC on 32-bit ARM, RISC-V…) give `None`.
    pub fn from_iana_arch(code: u16) -> Option<Firmware> {
        Some(match code {
            0 => Firmware::Bios,
            6 => Firmware::EfiIa32,
            7 | 9 => Firmware::EfiX64,
            11 => Firmware::EfiArm64,
            16 => Firmware::EfiX64Http,
            19 => Firmware::EfiArm64Http,
            _ => return None,
        })
    }

    /// The CPU the loaded kernel will run on.
    pub fn arch(self) -> Arch {
        match self {
            Firmware::Bios | Firmware::EfiX64 | Firmware::EfiX64Http => Arch::X86_64,
            Firmware::EfiIa32 => Arch::I386,
            Firmware::EfiArm64 | Firmware::EfiArm64Http => Arch::Arm64,
        }
    }

    /// Whether this is UEFI (kernel command line needs `initrd=NAME`).
    pub fn is_efi(self) -> bool {
        !matches!(self, Firmware::Bios)
    }

    /// Whether the firmware fetches its loader over HTTP instead of TFTP.
    pub fn is_http_boot(self) -> bool {
        matches!(self, Firmware::EfiX64Http | Firmware::EfiArm64Http)
    }

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::EfiIa32 => "efi-ia32",
            Firmware::EfiX64 => "efi-x64",
            Firmware::EfiArm64 => "efi-arm64",
            Firmware::EfiX64Http => "efi-x64-http",
            Firmware::EfiArm64Http => "efi-arm64-http",
        }
    }
}

impl FromStr for Firmware {
    type Err = FirmwareError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let l = s.trim().to_ascii_lowercase();
        Ok(match l.as_str() {
            "bios" | "pcbios" => Firmware::Bios,
            "efi-ia32" | "efi32" => Firmware::EfiIa32,
            "efi-x64" | "efi" | "uefi" | "efi64" => Firmware::EfiX64,
            "efi-arm64" | "arm64" | "aarch64" => Firmware::EfiArm64,
            "efi-x64-http" => Firmware::EfiX64Http,
            "efi-arm64-http" => Firmware::EfiArm64Http,
            _ => return Err(FirmwareError::UnknownFirmware(s.to_string())),
        })
    }
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Arch {
    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::I386 => "i386",
            Arch::Arm64 => "arm64",
        }
    }
}

impl FromStr for Arch {
    type Err = FirmwareError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "x86_64" | "amd64" | "x64" => Arch::X86_64,
            "i386" | "i686" | "ia32" => Arch::I386,
            "arm64" | "aarch64" => Arch::Arm64,
            _ => return Err(FirmwareError::UnknownArch(s.to_string())),
        })
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

serde_as_text!(Arch);
serde_as_text!(Firmware);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iana_codes() {
        assert_eq!(Firmware::from_iana_arch(0), Some(Firmware::Bios));
        assert_eq!(Firmware::from_iana_arch(7), Some(Firmware::EfiX64));
        assert_eq!(Firmware::from_iana_arch(9), Some(Firmware::EfiX64));
        assert_eq!(Firmware::from_iana_arch(11), Some(Firmware::EfiArm64));
        assert_eq!(Firmware::from_iana_arch(16), Some(Firmware::EfiX64Http));
        assert_eq!(Firmware::from_iana_arch(2), None, "Itanium");
    }

    #[test]
    fn names_roundtrip() {
        for f in Firmware::ALL {
            assert_eq!(f.as_str().parse::<Firmware>().unwrap(), f);
        }
        assert_eq!("aarch64".parse::<Arch>().unwrap(), Arch::Arm64);
        assert!("sparc".parse::<Arch>().is_err());
        assert!("efi-sparc".parse::<Firmware>().is_err());
    }
}
