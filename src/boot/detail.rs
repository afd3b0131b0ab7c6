//! What each boot event says, as one typed schema: [`EventDetail`] has one variant per
//! [`BootStage`], so an event's stage is its detail's and the two cannot disagree. The
//! stored form is the variant's fields as a JSON object (the stage is its own column);
//! who saw it ([`Via`]) and from where (`peer`) are columns too, never inside the JSON.
//!
//! Reading is lenient: a stored detail that does not fit its stage's schema (written by
//! an older tabula and not migrated, or edited by hand) comes back as
//! [`EventDetail::Unparsed`] with its JSON, never as an error. Reports are what booting
//! machines send, so [`Report`] keeps every field it does not name in `extra`.
//!
//! Pure data, no I/O.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{BlobRole, BootFileKind, BootStage, Digest, Firmware, ReportKind};

/// The front end that saw the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Via {
    Dhcp,
    Tftp,
    Http,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Dhcp => "dhcp",
            Via::Tftp => "tftp",
            Via::Http => "http",
        }
    }
}

impl FromStr for Via {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "dhcp" => Via::Dhcp,
            "tftp" => Via::Tftp,
            "http" => Via::Http,
            _ => return Err(format!("unknown front end {s:?}")),
        })
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

serde_as_text!(Via);

/// A DHCP offer or ACK to a netboot client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dhcp {
    /// The address offered or leased (`None` in proxy mode and for INFORM).
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
    /// The boot file named in the reply.
    #[serde(default)]
    pub file: Option<String>,
    /// What kind of boot file that is.
    #[serde(default)]
    pub boot: Option<BootFileKind>,
    #[serde(default)]
    pub firmware: Option<Firmware>,
    /// The client is iPXE.
    #[serde(default)]
    pub ipxe: bool,
    /// A proxy-mode reply.
    #[serde(default)]
    pub proxy: bool,
    /// The transaction id, 8 hex digits.
    #[serde(default)]
    pub xid: String,
}

/// A loader delivered over TFTP.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoaderSent {
    /// The file served (without the MAC prefix).
    pub file: String,
    pub bytes: u64,
    pub seconds: f64,
    /// No DHCP reply named this MAC a loader within the ledger window: the transfer
    /// names a MAC but is not known to be its boot (see `dhcp::LoaderLedger`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unverified: bool,
}

/// The iPXE script handed out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptSent {
    /// The image booted (absent when the script exits to the local disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The winning pin's target.
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<Firmware>,
    /// The script exits to the local disk.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local: bool,
}

/// A whole, attributed blob download (kernel, initrd or root image).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlobSent {
    pub digest: Digest,
    /// Bytes sent.
    pub bytes: u64,
    /// The blob's size.
    pub expected: u64,
    pub seconds: f64,
    /// Every byte went out.
    pub complete: bool,
    /// The MAC was not served a script for a plan with this blob within
    /// `http.attribution_window`: the download names a MAC but is not known to be its
    /// boot (see `http::attribution`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unverified: bool,
}

/// What a booting machine reported (`progress`, `booted`, `failed`), or a failure tabula
/// saw itself (a TFTP transfer, a script it could not render). Fields tabula reads are
/// named; everything else the machine sent is kept in `extra`, as sent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The initramfs's stage (`dhcp`, `fetch`, `verify`, `mount`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Which attempt of the initramfs this is (from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u64>,
    /// On a failure: the initramfs gave up (no attempt follows).
    #[serde(default, rename = "final", skip_serializing_if = "Option::is_none")]
    pub final_: Option<bool>,
    /// The root image digest the initramfs verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_sha256: Option<String>,
    /// The file a failed TFTP transfer was for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Everything else, as sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    /// A failure with only a reason.
    pub fn reason(reason: impl Into<String>) -> Report {
        Report {
            reason: Some(reason.into()),
            ..Report::default()
        }
    }

    /// Whether this failure is the last one (the machine gave up).
    pub fn is_final(&self) -> bool {
        self.final_ == Some(true)
    }
}

/// Why tabula did not serve a machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ignored {
    /// The sentence an operator reads.
    pub reason: String,
    /// A stable name for the kind of reason (`IgnoreReason::code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// What an event says: one variant per [`BootStage`].
#[derive(Clone, Debug, PartialEq)]
pub enum EventDetail {
    DhcpOffer(Dhcp),
    DhcpAck(Dhcp),
    LoaderSent(LoaderSent),
    ScriptSent(ScriptSent),
    KernelSent(BlobSent),
    InitrdSent(BlobSent),
    RootfsSent(BlobSent),
    Progress(Report),
    Booted(Report),
    Failed(Report),
    Ignored(Ignored),
    /// A stored detail that does not fit its stage's schema, as the JSON it is.
    Unparsed {
        stage: BootStage,
        value: serde_json::Value,
    },
}

impl EventDetail {
    /// The stage this detail belongs to.
    pub fn stage(&self) -> BootStage {
        match self {
            EventDetail::DhcpOffer(_) => BootStage::DhcpOffer,
            EventDetail::DhcpAck(_) => BootStage::DhcpAck,
            EventDetail::LoaderSent(_) => BootStage::LoaderSent,
            EventDetail::ScriptSent(_) => BootStage::ScriptSent,
            EventDetail::KernelSent(_) => BootStage::KernelSent,
            EventDetail::InitrdSent(_) => BootStage::InitrdSent,
            EventDetail::RootfsSent(_) => BootStage::RootfsSent,
            EventDetail::Progress(_) => BootStage::Progress,
            EventDetail::Booted(_) => BootStage::Booted,
            EventDetail::Failed(_) => BootStage::Failed,
            EventDetail::Ignored(_) => BootStage::Ignored,
            EventDetail::Unparsed { stage, .. } => *stage,
        }
    }

    /// The detail of a report of `kind`.
    pub fn report(kind: ReportKind, report: Report) -> EventDetail {
        match kind {
            ReportKind::Booted => EventDetail::Booted(report),
            ReportKind::Failed => EventDetail::Failed(report),
            ReportKind::Progress => EventDetail::Progress(report),
        }
    }

    /// The detail of a whole download of a blob of `role`.
    pub fn blob(role: BlobRole, sent: BlobSent) -> EventDetail {
        match role {
            BlobRole::Kernel => EventDetail::KernelSent(sent),
            BlobRole::Initrd => EventDetail::InitrdSent(sent),
            BlobRole::Rootfs => EventDetail::RootfsSent(sent),
        }
    }

    /// The stored JSON text.
    pub fn to_json(&self) -> String {
        // Maps with string keys, numbers and strings: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }

    /// Reads a stored detail of `stage`; what does not fit the schema is
    /// [`EventDetail::Unparsed`].
    pub fn from_value(stage: BootStage, value: serde_json::Value) -> EventDetail {
        fn typed<T: serde::de::DeserializeOwned>(
            v: &serde_json::Value,
            f: impl FnOnce(T) -> EventDetail,
        ) -> Option<EventDetail> {
            T::deserialize(v).ok().map(f)
        }
        let parsed = match stage {
            BootStage::DhcpOffer => typed(&value, EventDetail::DhcpOffer),
            BootStage::DhcpAck => typed(&value, EventDetail::DhcpAck),
            BootStage::LoaderSent => typed(&value, EventDetail::LoaderSent),
            BootStage::ScriptSent => typed(&value, EventDetail::ScriptSent),
            BootStage::KernelSent => typed(&value, EventDetail::KernelSent),
            BootStage::InitrdSent => typed(&value, EventDetail::InitrdSent),
            BootStage::RootfsSent => typed(&value, EventDetail::RootfsSent),
            BootStage::Progress => typed(&value, EventDetail::Progress),
            BootStage::Booted => typed(&value, EventDetail::Booted),
            BootStage::Failed => typed(&value, EventDetail::Failed),
            BootStage::Ignored => typed(&value, EventDetail::Ignored),
        };
        parsed.unwrap_or(EventDetail::Unparsed { stage, value })
    }

    /// A failure's or a report's fields, when this is a report stage.
    pub fn as_report(&self) -> Option<&Report> {
        match self {
            EventDetail::Progress(r) | EventDetail::Booted(r) | EventDetail::Failed(r) => Some(r),
            _ => None,
        }
    }

    /// The reason, for the stages that have one (failures and ignores).
    pub fn reason(&self) -> Option<&str> {
        match self {
            EventDetail::Failed(r) => r.reason.as_deref(),
            EventDetail::Ignored(i) => Some(&i.reason),
            EventDetail::Unparsed { value, .. } => value.get("reason")?.as_str(),
            _ => None,
        }
    }
}

/// As the variant's own fields: the stage is stored beside it.
impl Serialize for EventDetail {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EventDetail::DhcpOffer(d) | EventDetail::DhcpAck(d) => d.serialize(s),
            EventDetail::LoaderSent(d) => d.serialize(s),
            EventDetail::ScriptSent(d) => d.serialize(s),
            EventDetail::KernelSent(d)
            | EventDetail::InitrdSent(d)
            | EventDetail::RootfsSent(d) => d.serialize(s),
            EventDetail::Progress(d) | EventDetail::Booted(d) | EventDetail::Failed(d) => {
                d.serialize(s)
            }
            EventDetail::Ignored(d) => d.serialize(s),
            EventDetail::Unparsed { value, .. } => value.serialize(s),
        }
    }
}

/// Short text for a terminal: the variant's fields as JSON.
impl fmt::Display for EventDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

#[cfg(test)]
#[path = "detail/tests.rs"]
mod tests;
