//! Boot events: what happened to a machine during a boot, kept as data (in the state
//! store) rather than only as log lines, so an operator can ask why 7 of 400 nodes did
//! not come back.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use super::{Digest, EventDetail, Mac, Via};

/// The stages of one netboot, in the order they normally happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BootStage {
    /// A DHCP offer went out.
    DhcpOffer,
    /// A DHCP lease was acknowledged.
    DhcpAck,
    /// A loader (iPXE) was sent over TFTP or HTTP.
    LoaderSent,
    /// The machine's iPXE script was sent.
    ScriptSent,
    /// The kernel was sent.
    KernelSent,
    /// An initrd was sent.
    InitrdSent,
    /// The root image was sent.
    RootfsSent,
    /// The initramfs reported progress (fetching, verifying, mounting the root image).
    Progress,
    /// The machine reported it is running the image.
    Booted,
    /// The machine (or tabula) reported a failure.
    Failed,
    /// tabula decided not to serve this machine.
    Ignored,
}

impl BootStage {
    /// Every stage, in boot order.
    pub const ALL: [BootStage; 11] = [
        BootStage::DhcpOffer,
        BootStage::DhcpAck,
        BootStage::LoaderSent,
        BootStage::ScriptSent,
        BootStage::KernelSent,
        BootStage::InitrdSent,
        BootStage::RootfsSent,
        BootStage::Progress,
        BootStage::Booted,
        BootStage::Failed,
        BootStage::Ignored,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            BootStage::DhcpOffer => "dhcp-offer",
            BootStage::DhcpAck => "dhcp-ack",
            BootStage::LoaderSent => "loader-sent",
            BootStage::ScriptSent => "script-sent",
            BootStage::KernelSent => "kernel-sent",
            BootStage::InitrdSent => "initrd-sent",
            BootStage::RootfsSent => "rootfs-sent",
            BootStage::Progress => "progress",
            BootStage::Booted => "booted",
            BootStage::Failed => "failed",
            BootStage::Ignored => "ignored",
        }
    }
}

impl FromStr for BootStage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BootStage::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown boot stage {s:?}"))
    }
}

impl fmt::Display for BootStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so `{:<12}` lines up the columns of `tabula events`.
        f.pad(self.as_str())
    }
}

/// What kind of boot file DHCP handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BootFileKind {
    /// A loader fetched over TFTP.
    TftpLoader,
    /// A loader fetched over HTTP (UEFI HTTP boot).
    HttpLoader,
    /// The iPXE script URL.
    Script,
}

impl BootFileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BootFileKind::TftpLoader => "tftp-loader",
            BootFileKind::HttpLoader => "http-loader",
            BootFileKind::Script => "script",
        }
    }
}

impl FromStr for BootFileKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            BootFileKind::TftpLoader,
            BootFileKind::HttpLoader,
            BootFileKind::Script,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("unknown boot file kind {s:?}"))
    }
}

impl fmt::Display for BootFileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

serde_as_text!(BootFileKind);

/// One thing that happened to one machine.
#[derive(Clone, Debug, PartialEq)]
pub struct BootEvent {
    /// Unix time in milliseconds.
    pub at_ms: i64,
    /// The machine's MAC.
    pub mac: Mac,
    /// The manifest digest of the plan involved, when one is known.
    pub manifest: Option<Digest>,
    /// The front end that saw it.
    pub via: Via,
    /// The client's IP address, when the front end knows it.
    pub peer: Option<IpAddr>,
    /// What happened; its variant is the stage.
    pub detail: EventDetail,
}

impl BootEvent {
    /// The stage reached.
    pub fn stage(&self) -> BootStage {
        self.detail.stage()
    }
}

/// A [`BootEvent`] with its detail already JSON text: what the store writes, and what a
/// hot path that records the same detail over and over (the boot-script route) renders
/// once and shares, instead of serialising a detail per event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventText {
    pub at_ms: i64,
    pub mac: Mac,
    pub stage: BootStage,
    pub manifest: Option<Digest>,
    pub via: Via,
    pub peer: Option<IpAddr>,
    /// The [`EventDetail`] as a JSON object, as text.
    pub detail: Arc<str>,
    /// The boot attempt it belongs to, when the front end knew it (`boots.id`: the boot
    /// id's hex digits).
    pub attempt: Option<crate::boot::BootId>,
}

impl From<&BootEvent> for EventText {
    fn from(e: &BootEvent) -> EventText {
        EventText {
            at_ms: e.at_ms,
            mac: e.mac,
            stage: e.stage(),
            manifest: e.manifest,
            via: e.via,
            peer: e.peer,
            detail: Arc::from(e.detail.to_json()),
            attempt: None,
        }
    }
}
