//! TFTP front end: a read-only (RRQ-only) server for first-stage boot loaders.
//!
//! Written in-house on tokio rather than on `async-tftp` 0.4, which failed our
//! requirements when checked (see the shared dependency notes, section 2): it ignores a
//! client's ERROR, so a PXE `tsize` probe (OACK, then ERROR 8) leaves a zombie session
//! that blocks a re-request from the same port for minutes; it serializes every file
//! open behind one global lock; it runs its own executor and reactor threads inside
//! tokio; it follows symlinks out of the served directory; and it is ~2.5× slower than
//! tftpd-hpa in lock-step, which is what PXE ROMs use.
//!
//! Layout, one responsibility per file:
//! - [`packet`]: the wire codec, pure;
//! - [`transfer`]: option negotiation and the per-transfer state machine, pure;
//! - [`root`]: which files may be served, and reading them (blocking, cached);
//! - [`source`]: the bytes of one transfer's blocks, off the async runtime;
//! - [`session`]: one transfer's socket loop;
//! - [`server`]: the listening socket, the transfer limit and shutdown;
//! - [`event`]: [`TransferEvent`], what the rest of tabula learns, as data.
//!
//! This module never calls the DHCP or HTTP front ends; it reports through events.

pub mod dynamic;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
mod gso;
pub mod packet;
pub mod root;
pub mod server;
mod session;
mod source;
pub mod transfer;

use std::path::PathBuf;

pub use event::{AbortReason, TransferEvent, TransferOutcome};
pub use packet::{ErrorCode, PacketError};
pub use root::client_prefix;
pub use server::{Refusals, TftpServerConfig, run};

/// Errors of the TFTP front end.
#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    /// The configured root cannot be used.
    #[error("TFTP root {}: {source}", path.display())]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The listening socket failed.
    #[error("TFTP socket: {0}")]
    Socket(#[source] std::io::Error),
    /// A datagram that is not a usable TFTP packet.
    #[error(transparent)]
    Packet(#[from] PacketError),
    /// The requested file does not exist under the root.
    #[error("{name:?}: file not found")]
    NotFound { name: String },
    /// The requested name may not be served.
    #[error("{name:?}: access violation: {reason}")]
    Forbidden { name: String, reason: &'static str },
    /// A local I/O error while serving.
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl TftpError {
    /// The TFTP error code a client is sent for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            TftpError::NotFound { .. } => ErrorCode::FileNotFound,
            TftpError::Forbidden { .. } => ErrorCode::AccessViolation,
            TftpError::Packet(_) => ErrorCode::IllegalOperation,
            TftpError::Root { .. } | TftpError::Socket(_) | TftpError::Io { .. } => {
                ErrorCode::NotDefined
            }
        }
    }

    /// The text a client is sent: the reason, never a local path or OS detail.
    pub fn client_message(&self) -> String {
        match self {
            TftpError::NotFound { .. } => "file not found".to_string(),
            TftpError::Forbidden { reason, .. } => format!("access violation: {reason}"),
            TftpError::Packet(e) => e.to_string(),
            TftpError::Root { .. } | TftpError::Socket(_) | TftpError::Io { .. } => {
                "server cannot read the file".to_string()
            }
        }
    }
}
