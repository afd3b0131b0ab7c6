//! Integration tests: one test binary (ripgrep style), each module a layer or a story.
//! They drive the real `tabula` binary against a temporary data directory.
// A test crate is a binary: `pub` in it is for its sibling modules, never exported.
#![allow(unreachable_pub)]
// Test helpers outside #[test] functions unwrap freely too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod build;
mod build_debian;
mod cli_errors;
mod common;
mod crash;
mod descriptors;
mod dhcp;
mod doctor;
mod fleet;
mod heads;
mod hostile;
mod lab_cli;
mod lab_direct;
mod lab_direct_postgres;
mod lab_http_boot;
mod lab_proxy;
mod lab_pxe;
mod lease_match;
mod loaders;
mod netns;
mod package;
mod pinning;
mod postgres;
mod security;
mod serve;
mod storm;
mod tftp_hostile;
mod upgrade;
