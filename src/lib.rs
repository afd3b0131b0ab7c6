//! tabula: bare-metal netboot provisioning where every boot is a clean slate.
//!
//! Layers, from the bottom: [`boot`] (pure vocabulary), [`images`] (content-addressed
//! blobs and manifests), [`store`] (the state database: queries only), [`inventory`] (the
//! one policy seam: which machine boots what), [`catalog`] (publishing and retiring image
//! versions), [`build`] (image builds from root trees, tarballs and OCI images), [`config`],
//! [`doctor`] (host checks before serving) and [`cli`]. Front ends (DHCP, TFTP, HTTP for
//! machines, [`api`] for operators) only ask [`inventory`]; they never decide for
//! themselves and never call each other.

pub(crate) mod api;
pub mod attempt;
pub(crate) mod auth;
pub mod boot;
pub mod boot_files;
pub(crate) mod build;
pub(crate) mod catalog;
pub mod cli;
pub(crate) mod client;
pub mod config;
pub(crate) mod daemon;
pub mod dhcp;
pub(crate) mod doctor;
pub(crate) mod events;
pub(crate) mod fleet;
pub mod ha;
pub(crate) mod health;
pub mod http;
pub mod images;
pub mod inventory;
pub mod lab;
pub(crate) mod lease_view;
pub mod loader_files;
pub mod metrics;
#[cfg(test)]
mod mutate;
pub mod notify;
pub(crate) mod privilege;
pub mod replica;
pub mod rollout;
pub mod store;
#[doc(hidden)]
pub mod storm;
pub mod tftp;
pub(crate) mod throttle;
pub(crate) mod ui;

/// The version `tabula --version` prints: the package version and the commit it was built
/// from (`build.rs`; "unknown" without git).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TABULA_COMMIT"),
    ")"
);
