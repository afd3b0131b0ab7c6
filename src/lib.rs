//! tabula: bare-metal netboot provisioning where every boot is a clean slate.
//!
//! Layers, from the bottom: [`boot`] (pure vocabulary), [`images`] (content-addressed
//! blobs and manifests), [`store`] (the state database: queries only), [`inventory`] (the
//! one policy seam: which machine boots what), [`catalog`] (publishing and retiring image
//! versions), [`build`] (image builds from root trees, tarballs and OCI images), [`config`],
//! and [`cli`]. Front ends (DHCP, TFTP, HTTP for machines, [`api`] for operators) only
//! ask [`inventory`]; they never decide for themselves and never call each other.

pub mod api;
pub mod boot;
pub mod build;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dhcp;
pub mod events;
pub mod fleet;
pub mod http;
pub mod images;
pub mod inventory;
pub mod lab;
pub mod store;
#[doc(hidden)]
pub mod storm;
pub mod tftp;
pub mod throttle;
