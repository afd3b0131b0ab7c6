//! The inventory: machines, pins and the one policy seam every front end asks,
//! [`select`]: facts about a client in, `Boot(plan) | Local | Ignore(reason)` out.
//!
//! [`pin`], [`snapshot`] and [`select`] are pure; [`live`] loads snapshots from the state
//! and blob stores and reloads them when the store's revision moves, so a running daemon
//! sees `pin set` or `image tag` from the CLI without a restart.

pub mod explanation;
mod fleet_load;
pub mod live;
pub mod pin;
pub mod select;
pub mod snapshot;

pub use explanation::Explanation;
pub use live::Inventory;
pub use pin::{PinRef, PinTarget, Selector};
pub use select::{
    Candidate, CandidateOutcome, Decision, Facts, Resolved, Selection, Source, select,
    select_for_boot, select_unnamed_arch,
};
pub use snapshot::{Admission, BootOnce, FleetState, Hold, Pin, Settings, Snapshot, Version};

/// Inventory errors.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// Input that does not parse or does not make sense.
    #[error("{0}")]
    Invalid(String),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The blob store failed.
    #[error(transparent)]
    Image(#[from] crate::images::ImageError),
}

impl From<crate::boot::MacError> for InventoryError {
    fn from(e: crate::boot::MacError) -> Self {
        InventoryError::Invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests;
