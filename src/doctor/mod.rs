//! `tabula doctor`: the checks an operator runs before (or instead of) `tabula serve`
//! failing. [`probe`] gathers [`Facts`] about this host (interfaces, sockets in use,
//! capabilities, loader files, the store's schema, disk space, the data directory) and
//! touches nothing; [`checks`] turns the config and those facts into one [`Check`] per
//! line, each ok / warn / fail with the fix. The checks are pure: every rule is tested on
//! made-up facts, with no host needed.
//!
//! Must not bind a port, create a file, open the store for writing or migrate it.

pub(crate) mod checks;
pub(crate) mod probe;
pub(crate) mod procfs;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use ipnet::Ipv4Net;

use crate::store::schema::SchemaState;

pub(crate) use checks::checks;
pub(crate) use probe::probe;

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    /// The word printed at the start of the line.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Check {
    /// What was checked: `interfaces`, `ports`, `capabilities`, `loaders`, `store`,
    /// `disk`, `data dir`.
    pub name: &'static str,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about it (warn and fail only).
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// The printed line: `fail  ports: udp 0.0.0.0:67 held by dnsmasq (pid 9); fix: …`.
    pub(crate) fn line(&self) -> String {
        let mut s = format!("{:<5} {}: {}", self.status.word(), self.name, self.detail);
        if let Some(fix) = &self.fix {
            s.push_str("; fix: ");
            s.push_str(fix);
        }
        s
    }
}

/// An interface of this host, with every IPv4 address it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HostInterface {
    pub name: String,
    pub up: bool,
    pub addrs: Vec<Ipv4Net>,
}

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A socket some process holds on this host (listening TCP, bound UDP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SocketUse {
    pub proto: Proto,
    pub local: SocketAddr,
    pub inode: u64,
    /// The process holding it, when this user may see it: (pid, command name).
    pub owner: Option<(u32, String)>,
}

/// The filesystem holding the blob store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Disk {
    /// The directory measured (the blob directory, or its nearest existing parent).
    pub path: PathBuf,
    pub free_bytes: u64,
    pub total_bytes: u64,
}

/// The state directory as this user sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DataDir {
    Missing,
    Present {
        mode: u32,
        owner_uid: u32,
        owner_name: Option<String>,
        writable: bool,
    },
}

/// Everything the checks look at, gathered once by [`probe`].
#[derive(Clone, Debug)]
pub(crate) struct Facts {
    pub interfaces: Vec<HostInterface>,
    /// The effective capability set (`CapEff` of /proc/self/status); `None`: unreadable.
    pub cap_eff: Option<u64>,
    /// `net.ipv4.ip_unprivileged_port_start`: ports from here up need no capability.
    pub unprivileged_port_start: u16,
    pub sockets: Vec<SocketUse>,
    /// Per firmware (`bios`, `efi_x64`, …): the configured name and what it resolves to,
    /// as `serve` resolves it.
    pub loaders: Vec<crate::loader_files::LoaderCheck>,
    pub schema: Result<SchemaState, String>,
    /// Whether this user may write the database file (`None`: no file, or not SQLite).
    pub store_writable: Option<bool>,
    pub disk: Result<Disk, String>,
    pub data_dir: DataDir,
    /// This process's effective uid.
    pub uid: u32,
}

/// Whether an interface carries `ip`.
pub(crate) fn has_address(interfaces: &[HostInterface], ip: Ipv4Addr) -> Option<&HostInterface> {
    interfaces
        .iter()
        .find(|i| i.addrs.iter().any(|a| a.addr() == ip))
}

#[cfg(test)]
mod tests;
