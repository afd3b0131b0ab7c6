//! The vocabulary of one netboot: who asks ([`Mac`], [`Firmware`]), what they get
//! ([`BootPlan`], addressed only by [`Digest`]), and what happened ([`BootEvent`]).
//!
//! Pure data. This module imports nothing else from the crate, opens no socket and
//! touches no disk, so every other layer can depend on it.

/// Serializes a type as its `Display` text and deserializes it with `FromStr`, so the
/// JSON, TOML and database forms are the same strings operators type.
macro_rules! serde_as_text {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

mod detail;
mod digest;
mod event;
mod firmware;
mod lease;
mod mac;
mod machine;
mod plan;
mod program;
mod reason;
mod token;
pub mod urls;

pub use detail::{BlobSent, Dhcp, EventDetail, Ignored, LoaderSent, Report, ScriptSent, Via};
pub use digest::{Digest, DigestError};
pub use event::{BootEvent, BootFileKind, BootStage, EventText};
pub use firmware::{Arch, Firmware, FirmwareError};
pub use lease::LeaseState;
pub use mac::{Mac, MacError};
pub use machine::Machine;
pub use plan::{BlobRef, BootPlan};
pub use program::{BootProgram, ProgramError};
pub use reason::IgnoreReason;
pub use token::{BootId, BootSeal, ReportKey, ReportToken, TokenError};
pub use urls::{BlobRole, Callback, ReportKind, UrlError, Urls};
