//! What happened to a transfer, as data for the rest of tabula (not log lines): a
//! [`TransferEvent`] per finished, refused or abandoned read request, and the boot event
//! it means ([`TransferEvent::boot_event`]). The machine is named by the `<mac>/` first
//! component of the file it asked for (DHCP hands loaders out under that path,
//! [`crate::boot::urls::tftp_loader`]), or for a blob GRUB read over TFTP, by its
//! attribution (`blobs/sha256/<hex>/<name>?mac=…&as=…`, the URL form); a transfer with
//! neither belongs to no machine.
//!
//! Plain values only: no clock (the caller passes the time), no socket, no store.
//! Sending them is the server's job, keeping them the store's.

use std::net::SocketAddr;
use std::time::Duration;

use crate::boot::urls::{Attribution, parse_blob, parse_tftp_loader};
use crate::boot::{BlobSent, BootEvent, EventDetail, LoaderSent, Mac, Report, Via};

/// One finished, refused or abandoned read request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferEvent {
    /// The client's address and port (recorded as the event's peer).
    pub peer: SocketAddr,
    /// The file name as the client asked for it (`<mac>/<loader>` when DHCP named it).
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
    /// A completed blob transfer with an attribution: its `kernel-sent`, `initrd-sent` or
    /// `rootfs-sent`, marked `unverified` until the caller checks that the MAC's boot
    /// names the blob (the HTTP side's attribution window).
    fn blob_event(&self, at_ms: i64) -> Option<BootEvent> {
        let TransferOutcome::Completed { bytes, elapsed } = &self.outcome else {
            return None;
        };
        let target = format!("/{}", self.file.trim_start_matches('/'));
        let blob = parse_blob(&target).ok()?;
        let Ok(Some(Attribution { mac, role })) = blob.attribution() else {
            return None;
        };
        Some(BootEvent {
            at_ms,
            mac,
            manifest: None,
            via: Via::Tftp,
            peer: Some(self.peer.ip()),
            detail: EventDetail::blob(
                role,
                BlobSent {
                    digest: blob.digest,
                    bytes: *bytes,
                    expected: *bytes,
                    seconds: elapsed.as_secs_f64(),
                    complete: true,
                    unverified: true,
                },
            ),
        })
    }
}

/// What shim looks for beside itself before it loads `grubx64.efi`, all optional
/// (captured in the lab: Debian's shim 15.8 over OVMF's PXE).
pub const SHIM_PROBES: [&str; 3] = [
    "revocations_sku.efi",
    "revocations_sbat.efi",
    "shim_certificate_0.efi",
];

impl TransferEvent {
    /// The outcome as a metric label (`tabula_tftp_transfers_total{outcome}`) and the
    /// bytes of a completed transfer.
    pub fn metric(&self) -> (&'static str, u64) {
        match &self.outcome {
            TransferOutcome::Completed { bytes, .. } => ("completed", *bytes),
            TransferOutcome::Aborted { reason } => (
                match reason {
                    AbortReason::ClientError { .. } => "client_error",
                    AbortReason::Timeout => "timeout",
                    AbortReason::Shutdown => "shutdown",
                    AbortReason::Refused { .. } => "refused",
                    AbortReason::Io(_) => "io_error",
                },
                0,
            ),
        }
    }

    /// True for a completed transfer.
    pub fn is_completed(&self) -> bool {
        matches!(self.outcome, TransferOutcome::Completed { .. })
    }

    /// The machine whose loader was fully delivered (to mark in the loader ledger).
    pub fn delivered_to(&self) -> Option<Mac> {
        let (mac, _) = parse_tftp_loader(&self.file);
        mac.filter(|_| self.is_completed())
    }

    /// The boot event this transfer means for the machine named in its path, at `at_ms`:
    /// `loader-sent` when it completed, `failed` on a timeout, refusal or I/O error, and
    /// none for a client's ERROR (how PXE firmware ends its `tsize` probe, not a failure)
    /// or a shutdown. A file shim only looks for ([`SHIM_PROBES`]) being absent is none
    /// either: shim asks for them on every boot and goes on without them.
    pub fn boot_event(&self, at_ms: i64) -> Option<BootEvent> {
        let (Some(mac), served) = parse_tftp_loader(&self.file) else {
            return self.blob_event(at_ms);
        };
        if SHIM_PROBES.contains(&served)
            && matches!(
                self.outcome,
                TransferOutcome::Aborted {
                    reason: AbortReason::Refused { .. }
                }
            )
        {
            return None;
        }
        let detail = match &self.outcome {
            TransferOutcome::Completed { bytes, elapsed } => EventDetail::LoaderSent(LoaderSent {
                file: served.to_string(),
                bytes: *bytes,
                seconds: elapsed.as_secs_f64(),
                unverified: false,
            }),
            TransferOutcome::Aborted {
                reason: AbortReason::ClientError { .. } | AbortReason::Shutdown,
            } => return None,
            TransferOutcome::Aborted { reason } => EventDetail::Failed(Report {
                file: Some(served.to_string()),
                ..Report::reason(format!("TFTP transfer failed: {reason:?}"))
            }),
        };
        Some(BootEvent {
            at_ms,
            mac,
            manifest: None,
            via: Via::Tftp,
            peer: Some(self.peer.ip()),
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::BootStage;

    fn ev(file: &str, outcome: TransferOutcome) -> TransferEvent {
        TransferEvent {
            peer: "10.0.0.7:2000".parse().unwrap(),
            file: file.into(),
            outcome,
        }
    }

    const MAC: Mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    #[test]
    fn a_completed_loader_is_loader_sent_for_the_mac_in_its_path() {
        let done = TransferOutcome::Completed {
            bytes: 70_000,
            elapsed: Duration::from_millis(250),
        };
        let e = ev("52-54-00-12-34-56/undionly.kpxe", done.clone());
        assert_eq!(e.delivered_to(), Some(MAC));
        let b = e.boot_event(7).unwrap();
        assert_eq!((b.at_ms, b.mac, b.via), (7, MAC, Via::Tftp));
        assert_eq!(b.peer, Some("10.0.0.7".parse().unwrap()));
        assert_eq!(
            b.detail,
            EventDetail::LoaderSent(LoaderSent {
                file: "undionly.kpxe".into(),
                bytes: 70_000,
                seconds: 0.25,
                unverified: false,
            })
        );
        // No machine in the path: no event, nothing to mark.
        let plain = ev("undionly.kpxe", done);
        assert_eq!((plain.delivered_to(), plain.boot_event(7)), (None, None));
    }

    #[test]
    fn a_blob_grub_read_is_its_roles_event() {
        let hex = "ab".repeat(32);
        let done = TransferOutcome::Completed {
            bytes: 9_000_000,
            elapsed: Duration::from_secs(7),
        };
        let e = ev(
            &format!("/blobs/sha256/{hex}/vmlinuz?mac=52-54-00-12-34-56&as=kernel"),
            done.clone(),
        );
        let b = e.boot_event(3).unwrap();
        assert_eq!((b.mac, b.via), (MAC, Via::Tftp));
        let EventDetail::KernelSent(s) = b.detail else {
            panic!("{:?}", b.detail)
        };
        assert_eq!((s.bytes, s.complete, s.unverified), (9_000_000, true, true));
        // No attribution, or not completed: no event.
        assert_eq!(
            ev(&format!("/blobs/sha256/{hex}/vmlinuz"), done).boot_event(3),
            None
        );
    }

    #[test]
    fn shims_optional_files_missing_are_no_failure() {
        let missing = || TransferOutcome::Aborted {
            reason: AbortReason::Refused {
                code: 1,
                message: "file not found".into(),
            },
        };
        for f in SHIM_PROBES {
            let e = ev(&format!("52-54-00-12-34-56/{f}"), missing());
            assert_eq!(e.boot_event(1), None, "{f}");
        }
        // Its second stage missing is one.
        let e = ev("52-54-00-12-34-56/grubx64.efi", missing());
        assert_eq!(e.boot_event(1).unwrap().detail.stage(), BootStage::Failed);
    }

    #[test]
    fn failures_are_events_probes_and_shutdowns_are_not() {
        let abort = |reason| TransferOutcome::Aborted { reason };
        let f = ev("52-54-00-12-34-56/snponly.efi", abort(AbortReason::Timeout));
        assert_eq!(f.delivered_to(), None);
        let b = f.boot_event(1).unwrap();
        assert_eq!(b.stage(), BootStage::Failed);
        let r = b.detail.as_report().unwrap();
        assert_eq!(r.file.as_deref(), Some("snponly.efi"));
        assert_eq!(r.reason.as_deref(), Some("TFTP transfer failed: Timeout"));
        for quiet in [
            AbortReason::ClientError {
                code: 8,
                message: "tsize".into(),
            },
            AbortReason::Shutdown,
        ] {
            assert_eq!(ev("52-54-00-12-34-56/x", abort(quiet)).boot_event(1), None);
        }
    }
}
