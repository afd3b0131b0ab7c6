//! The vocabulary of one netboot: who asks ([`Mac`], [`Firmware`]), what they get
//! ([`BootPlan`], addressed only by [`Digest`]), and what happened ([`BootEvent`]).
//!
//! Pure data. This module imports nothing else from the crate, opens no socket and
//! touches no disk, so every other layer can depend on it.

mod digest;
mod event;
mod firmware;
mod mac;
mod plan;

pub use digest::{Digest, DigestError};
pub use event::{BootEvent, BootStage};
pub use firmware::{Arch, Firmware, FirmwareError};
pub use mac::{Mac, MacError};
pub use plan::{BlobRef, BootPlan};
