//! Gathers the doctor's [`Facts`] about this host: interfaces and their IPv4 addresses
//! (getifaddrs), the sockets already held (/proc/net tables, owners found through
//! /proc/PID/fd), the effective capabilities, what each configured loader resolves to
//! under `tftp.root`, the store's schema (read-only, see `store::schema::inspect`), free
//! space under the blob store and the data directory's owner and mode.
//!
//! Reads only: never binds, creates, writes or migrates anything. What cannot be read
//! becomes a fact the checks report, not an error.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use super::{DataDir, Disk, Facts, HostInterface, Proto, SocketUse, procfs};
use crate::config::Config;
use crate::loader_files::{LoaderCheck, LoaderFiles};
use crate::store::schema;

/// Everything the checks need, for `cfg`.
pub(crate) async fn probe(cfg: &Config) -> Facts {
    let schema = if cfg.store_url.starts_with("sqlite:") || !cfg.store_url.contains("://") {
        schema::inspect(schema::sqlite_path(&cfg.store_url))
            .await
            .map_err(|e| e.to_string())
    } else {
        Err(format!("{}: only SQLite stores are checked", cfg.store_url))
    };
    let db = schema::sqlite_path(&cfg.store_url);
    let store_writable = (schema.is_ok() && db.exists())
        .then(|| nix::unistd::access(db, nix::unistd::AccessFlags::W_OK).is_ok());
    Facts {
        interfaces: interfaces(),
        cap_eff: std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| procfs::cap_eff(&s)),
        unprivileged_port_start: std::fs::read_to_string(
            "/proc/sys/net/ipv4/ip_unprivileged_port_start",
        )
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024),
        sockets: sockets(),
        loaders: loaders(cfg),
        schema,
        store_writable,
        disk: disk(&cfg.blob_dir()),
        data_dir: data_dir(&cfg.data_dir),
        uid: nix::unistd::geteuid().as_raw(),
    }
}

fn interfaces() -> Vec<HostInterface> {
    let mut out: Vec<HostInterface> = Vec::new();
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return out;
    };
    for a in addrs {
        let up = a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP);
        let net = a
            .address
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|s| s.ip())
            .map(|ip| {
                let prefix = a
                    .netmask
                    .as_ref()
                    .and_then(|m| m.as_sockaddr_in())
                    .map(|m| u8::try_from(u32::from(m.ip()).count_ones()).unwrap_or(32))
                    .unwrap_or(32);
                Ipv4Net::new(ip, prefix).unwrap_or_else(|_| Ipv4Net::from(ip))
            });
        let i = match out.iter_mut().find(|i| i.name == a.interface_name) {
            Some(i) => i,
            None => {
                out.push(HostInterface {
                    name: a.interface_name.clone(),
                    up,
                    addrs: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        if let Some(n) = net
            && !i.addrs.contains(&n)
        {
            i.addrs.push(n);
        }
    }
    out
}

/// Held sockets of this network namespace, with owners where /proc lets us see them.
fn sockets() -> Vec<SocketUse> {
    let mut out = Vec::new();
    for (file, proto, v6) in [
        ("/proc/net/tcp", Proto::Tcp, false),
        ("/proc/net/tcp6", Proto::Tcp, true),
        ("/proc/net/udp", Proto::Udp, false),
        ("/proc/net/udp6", Proto::Udp, true),
    ] {
        if let Ok(text) = std::fs::read_to_string(file) {
            out.extend(procfs::sockets(&text, proto, v6));
        }
    }
    if out.is_empty() {
        return out;
    }
    // inode -> owner, by every /proc/PID/fd link "socket:[INODE]" this user may read.
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            for s in out
                .iter_mut()
                .filter(|s| s.inode == inode && s.owner.is_none())
            {
                let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
                s.owner = Some((pid, comm.trim().to_string()));
            }
        }
    }
    out
}

/// Each configured loader as `serve` resolves it ([`LoaderFiles::resolve`]).
fn loaders(cfg: &Config) -> Vec<LoaderCheck> {
    LoaderFiles::resolve(&cfg.tftp.root, &cfg.dhcp.loaders).1
}

fn disk(blobs: &Path) -> Result<Disk, String> {
    let mut at: PathBuf = blobs.to_path_buf();
    while !at.exists() {
        match at.parent() {
            Some(p) => at = p.to_path_buf(),
            None => break,
        }
    }
    let s =
        nix::sys::statvfs::statvfs(&at).map_err(|e| format!("statvfs {}: {e}", at.display()))?;
    let unit = s.fragment_size();
    Ok(Disk {
        path: at,
        free_bytes: s.blocks_available().saturating_mul(unit),
        total_bytes: s.blocks().saturating_mul(unit),
    })
}

fn data_dir(dir: &Path) -> DataDir {
    let Ok(m) = std::fs::metadata(dir) else {
        return DataDir::Missing;
    };
    let owner_name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(m.uid()))
        .ok()
        .flatten()
        .map(|u| u.name);
    DataDir::Present {
        mode: m.mode() & 0o7777,
        owner_uid: m.uid(),
        owner_name,
        writable: nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_ok(),
    }
}
