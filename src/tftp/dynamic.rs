//! Files TFTP serves from outside its root, answered by someone else: GRUB's per-machine
//! configs and the blobs they name (Debian's signed GRUB reads everything over TFTP, it
//! has no HTTP). The TFTP front end only asks a [`Dynamic`] it was given; what answers
//! (the boot decision, the blob store) is wired by the daemon, so TFTP never imports it.

use std::fmt::Debug;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use super::TftpError;
use super::root::Content;

/// What a [`Dynamic`] answers for a name: `None` when the name is not its own (the root
/// then serves it by its rules).
pub type Opened<'a> = Pin<Box<dyn Future<Output = Option<Result<Content, TftpError>>> + Send + 'a>>;

/// Serves some names from tabula's own state.
pub trait Dynamic: Send + Sync + Debug {
    /// The content of `name` (as the client sent it) for the client at `peer`.
    fn open<'a>(&'a self, name: &'a str, peer: IpAddr) -> Opened<'a>;
}
