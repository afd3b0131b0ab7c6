//! The fleet facade: the one write path for machines, pins and image versions, and the
//! read models every consumer (CLI today, the API and dashboard next) shows.
//!
//! Every mutation goes through [`Fleet`]: it parses nothing from a terminal (callers
//! hand it typed values), validates, and writes with its checks in the same store
//! transaction as the write. Errors are [`FleetError`]: *not found*, *conflict* or
//! *invalid*, each naming the kind of thing and the name involved, so a CLI prints the
//! message and an API chooses a status code from the variant without parsing text.
//!
//! Must not: print, read configuration, or decide boots ([`crate::inventory::select`]
//! does that; the read models only call it).

mod boot_once;
pub(crate) mod control;
mod edit;
mod images;
mod machines;
mod pins;
mod rollouts;
mod view;
mod webhooks;

use std::sync::Arc;

use crate::catalog::CatalogError;
use crate::images::{BlobStore, ImageError};
use crate::inventory::{Inventory, InventoryError};
use crate::store::{Requirement, Store, StoreError};

pub(crate) use boot_once::Then;
pub(crate) use machines::LabelChange;
pub(crate) use rollouts::{RolloutSpec, RolloutView};
pub(crate) use view::Boots;

/// What a [`FleetError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Machine,
    Pin,
    Image,
    Version,
    Channel,
    Blob,
    Rollout,
    Hold,
    BootOnce,
    Webhook,
}

impl Kind {
    /// The noun, as an API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Machine => "machine",
            Kind::Pin => "pin",
            Kind::Image => "image",
            Kind::Version => "version",
            Kind::Channel => "channel",
            Kind::Blob => "blob",
            Kind::Rollout => "rollout",
            Kind::Hold => "hold",
            Kind::BootOnce => "boot_once",
            Kind::Webhook => "webhook",
        }
    }
}

/// Why a fleet operation did not happen. Nothing was written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Something the operation names, or needs, does not exist.
    #[error("{message}")]
    NotFound {
        kind: Kind,
        name: String,
        message: String,
    },
    /// The operation clashes with the current state (a duplicate, something in use).
    #[error("{message}")]
    Conflict {
        kind: Kind,
        name: String,
        message: String,
    },
    /// An input is not acceptable.
    #[error("{message}")]
    Invalid {
        field: &'static str,
        value: String,
        message: String,
    },
    /// The state store failed.
    #[error(transparent)]
    Store(StoreError),
    /// The blob store failed.
    #[error(transparent)]
    Image(ImageError),
    /// Loading the inventory failed.
    #[error(transparent)]
    Inventory(InventoryError),
    /// Cleaning up after builds failed.
    #[error(transparent)]
    Build(Box<crate::build::BuildError>),
}

impl FleetError {
    pub(crate) fn invalid(field: &'static str, value: &str, message: impl ToString) -> Self {
        FleetError::Invalid {
            field,
            value: value.to_string(),
            message: message.to_string(),
        }
    }
}

impl From<StoreError> for FleetError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Missing(r) => missing(&r),
            e => FleetError::Store(e),
        }
    }
}

impl From<InventoryError> for FleetError {
    fn from(e: InventoryError) -> Self {
        match e {
            InventoryError::Store(s) => s.into(),
            InventoryError::Image(i) => FleetError::Image(i),
            e => FleetError::Inventory(e),
        }
    }
}

impl From<CatalogError> for FleetError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Store(s) => s.into(),
            CatalogError::Image(ImageError::BadName(m)) => FleetError::Invalid {
                field: "name",
                value: String::new(),
                message: m,
            },
            CatalogError::Image(ImageError::BadCmdline(m)) => FleetError::Invalid {
                field: "cmdline",
                value: String::new(),
                message: format!("kernel command line: {m}"),
            },
            CatalogError::Image(i) => FleetError::Image(i),
            e @ CatalogError::Immutable { .. } => {
                let name = match &e {
                    CatalogError::Immutable { name, version, .. } => format!("{name}@{version}"),
                    _ => String::new(),
                };
                FleetError::Conflict {
                    kind: Kind::Version,
                    name,
                    message: e.to_string(),
                }
            }
            CatalogError::NotFound(message) => FleetError::NotFound {
                kind: Kind::Version,
                name: String::new(),
                message,
            },
        }
    }
}

/// The not-found error for a requirement that failed, with the message operators know.
pub(crate) fn missing(r: &Requirement) -> FleetError {
    let (kind, name, message) = match r {
        Requirement::Machine(n) => (
            Kind::Machine,
            n.clone(),
            format!("no machine named {n:?} (add it with `tabula machine add`, or pin its MAC)"),
        ),
        Requirement::Version { image, version } => (
            Kind::Version,
            format!("{image}@{version}"),
            format!("{image}@{version} is not published (see `tabula image list`)"),
        ),
        Requirement::Manifest { image, manifest } => (
            Kind::Version,
            format!("{image}@{manifest}"),
            format!("no version of {image} has manifest {manifest}"),
        ),
        Requirement::Channel { image, channel } => (
            Kind::Channel,
            format!("{image}:{channel}"),
            format!(
                "channel {image}:{channel} does not exist (create it with `tabula image tag {image}@VERSION {channel}`)"
            ),
        ),
    };
    FleetError::NotFound {
        kind,
        name,
        message,
    }
}

/// The facade. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Fleet {
    inventory: Arc<Inventory>,
}

impl Fleet {
    /// Writes through, and reads from, `inventory`'s stores.
    pub(crate) fn new(inventory: Arc<Inventory>) -> Fleet {
        Fleet { inventory }
    }

    /// The inventory (for decisions and snapshots).
    pub(crate) fn inventory(&self) -> &Arc<Inventory> {
        &self.inventory
    }

    /// The state store, for reads the facade has no read model of yet.
    pub(crate) fn store(&self) -> &Store {
        self.inventory.store()
    }

    /// The blob store.
    pub(crate) fn blobs(&self) -> &BlobStore {
        self.inventory.blobs()
    }
}

#[cfg(test)]
mod tests;
