//! Integration tests: one test binary (ripgrep style), each module a layer or a story.
//! They drive the real `tabula` binary against a temporary data directory.
// A test crate is a binary: `pub` in it is for its sibling modules, never exported.
#![allow(unreachable_pub)]
// Test helpers outside #[test] functions unwrap freely too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod api_auth;
mod api_events;
mod api_fleet;
mod api_history;
mod api_images;
mod api_machines;
mod api_session;
mod api_tls;
mod build;
mod build_debian;
mod cli_errors;
mod common;
mod crash;
mod descriptors;
mod dhcp;
mod doctor;
mod fleet;
mod fleet_events;
mod ha;
mod ha_balance;
mod ha_fabric;
mod ha_lab;
mod ha_ledger;
mod ha_replica;
mod ha_rollout;
mod heads;
mod hostile;
mod lab_api;
mod lab_arm64;
mod lab_cli;
mod lab_direct;
mod lab_direct_postgres;
mod lab_grub;
mod lab_http_boot;
mod lab_local_uefi;
mod lab_matrix;
mod lab_metrics;
mod lab_proxy;
mod lab_pxe;
mod lab_rollout;
mod lab_server_gone;
mod lease_match;
mod loaders;
mod metrics;
mod netns;
mod package;
mod pinning;
mod postgres;
mod remote_cli;
mod security;
mod serve;
mod storm;
mod tftp_hostile;
mod ui;
mod ui_rollout;
mod upgrade;
