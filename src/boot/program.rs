//! The boot program a machine's firmware is handed: iPXE (a script over HTTP) or GRUB (a
//! `grub.cfg`). Both are rendered from the same boot plan; the choice is per firmware
//! kind in the configuration (`[dhcp.programs]`).

use std::fmt;
use std::str::FromStr;

/// Which boot program renders a machine's boot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BootProgram {
    /// iPXE, fetching `boot.ipxe` (the default everywhere).
    #[default]
    Ipxe,
    /// GRUB (Debian's `grubnet*.efi`, or signed behind shim for Secure Boot), reading a
    /// `grub.cfg`.
    Grub,
}

/// A boot program name that is not one of `ipxe`, `grub`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a boot program: expected ipxe or grub")]
pub struct ProgramError(pub String);

impl BootProgram {
    pub fn as_str(self) -> &'static str {
        match self {
            BootProgram::Ipxe => "ipxe",
            BootProgram::Grub => "grub",
        }
    }
}

impl FromStr for BootProgram {
    type Err = ProgramError;
    fn from_str(s: &str) -> Result<Self, ProgramError> {
        match s {
            "ipxe" => Ok(BootProgram::Ipxe),
            "grub" => Ok(BootProgram::Grub),
            _ => Err(ProgramError(s.to_string())),
        }
    }
}

impl fmt::Display for BootProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

serde_as_text!(BootProgram);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip() {
        for p in [BootProgram::Ipxe, BootProgram::Grub] {
            assert_eq!(p.as_str().parse(), Ok(p));
        }
        assert_eq!(
            "pxelinux".parse::<BootProgram>().unwrap_err().to_string(),
            "\"pxelinux\" is not a boot program: expected ipxe or grub"
        );
    }
}
