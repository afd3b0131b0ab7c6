//! Golden and robustness tests for the pure DHCP layer, driven by packets captured from
//! real firmware (OVMF PXE, QEMU's iPXE ROMs, undionly.kpxe, ipxe.efi, snponly.efi,
//! busybox udhcpc) and dnsmasq's replies to them. Fixtures live in
//! `tests/fixtures/dhcp/` (made by `extract.py` there), so no test reads `../shared`.
// A test crate is a binary: `pub` in it is for its sibling modules, never exported.
#![allow(unreachable_pub)]

mod decode;
mod fixtures;
mod fuzz;
mod malformed;
mod reply;
