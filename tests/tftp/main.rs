//! TFTP server integration tests: the server runs in-process on 127.0.0.1 with port 0;
//! [`clients`] drives it with the packaged clients PXE labs use (curl, atftp, tftp-hpa),
//! [`protocol`] with hand-made packets for what those clients cannot show (abort after
//! OACK, escapes, busy, shutdown, retransmission). A missing client binary fails the test
//! with the Debian package to install; nothing is skipped.
// A test crate is a binary: `pub` in it is for its sibling modules, never exported.
#![allow(unreachable_pub)]

mod clients;
mod protocol;
mod support;
