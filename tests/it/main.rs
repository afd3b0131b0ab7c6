//! Integration tests: one test binary (ripgrep style), each module a layer or a story.
//! They drive the real `tabula` binary against a temporary data directory.

mod cli_errors;
mod common;
mod crash;
mod pinning;
mod serve;
