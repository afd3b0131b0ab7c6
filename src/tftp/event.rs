//! What happened to a transfer, as data for the rest of tabula (not log lines): the DHCP
//! side learns "loader delivered to 10.0.0.7" from a [`TransferOutcome::Completed`].
//!
//! Plain values only; sending them is the server's job, keeping them the store's.

use std::net::SocketAddr;
use std::time::Duration;

/// One finished, refused or abandoned read request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferEvent {
    /// The client's address and port (its IP identifies the machine to the DHCP side).
    pub peer: SocketAddr,
    /// The file name as the client asked for it.
    pub file: String,
    pub outcome: TransferOutcome,
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferOutcome {
    /// Every block was acknowledged.
    Completed { bytes: u64, elapsed: Duration },
    /// The transfer did not complete.
    Aborted { reason: AbortReason },
}

/// Why a transfer did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AbortReason {
    /// The client sent an ERROR; code 8 after an OACK is a normal PXE `tsize` probe.
    ClientError { code: u16, message: String },
    /// No acknowledgement after every retransmission.
    Timeout,
    /// The server shut down before the transfer finished.
    Shutdown,
    /// The request was refused with this TFTP error (missing file, outside the root,
    /// write request, too many transfers, ...).
    Refused { code: u16, message: String },
    /// A local I/O error (socket or file) ended the transfer.
    Io(String),
}

impl TransferEvent {
    /// True for a completed transfer.
    pub fn is_completed(&self) -> bool {
        matches!(self.outcome, TransferOutcome::Completed { .. })
    }
}
