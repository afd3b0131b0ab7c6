//! The doctor's rules: configuration and [`Facts`] in, one [`Check`] per line out, in a
//! fixed order (interfaces, ports, capabilities, loaders, store, disk, data dir). Pure:
//! no file, socket or clock, so each rule is tested on made-up facts.
//!
//! Thresholds: the blob store's filesystem fails below [`DISK_FAIL_BYTES`] free and warns
//! below [`DISK_WARN_BYTES`] or [`DISK_WARN_PERCENT`] %; these only grade a report and
//! limit nothing.

use std::net::{IpAddr, SocketAddr};

use super::procfs::{CAP_NET_ADMIN, CAP_NET_BIND_SERVICE, CAP_NET_RAW, has_cap};
use super::{Check, DataDir, Facts, Proto, SocketUse, has_address};
use crate::config::{Config, DhcpMode};
use crate::loader_files::Resolution;
use crate::store::schema::SchemaState;

/// Free space below which publishing an image will likely fail.
pub(crate) const DISK_FAIL_BYTES: u64 = 512 << 20;
/// Free space below which the next few image versions may not fit.
pub(crate) const DISK_WARN_BYTES: u64 = 5 << 30;
/// Free share of the filesystem below which it warns.
pub(crate) const DISK_WARN_PERCENT: u64 = 5;

/// Every check, in report order.
pub(crate) fn checks(cfg: &Config, facts: &Facts) -> Vec<Check> {
    let mut out = interfaces(cfg, facts);
    out.extend(ports(cfg, facts));
    out.push(capabilities(cfg, facts));
    out.extend(loaders(cfg, facts));
    out.push(store(cfg, facts));
    out.push(disk(facts));
    out.push(data_dir(cfg, facts));
    out
}

/// The sockets `tabula serve` would bind for `cfg`, with what each is for.
pub(crate) fn wanted_sockets(cfg: &Config) -> Vec<(Proto, SocketAddr, &'static str)> {
    let mut out = Vec::new();
    if cfg.http.enabled {
        out.push((Proto::Tcp, cfg.http.listen, "http.listen"));
    }
    if cfg.api.enabled {
        out.push((Proto::Tcp, cfg.api.listen, "api.listen"));
    }
    if cfg.tftp.enabled {
        out.push((Proto::Udp, cfg.tftp.listen, "tftp.listen"));
    }
    let any = std::net::Ipv4Addr::UNSPECIFIED;
    if cfg.dhcp.mode != DhcpMode::Off {
        let port = cfg.dhcp.listen_port;
        out.push((
            Proto::Udp,
            SocketAddr::from((any, port)),
            "dhcp.listen_port",
        ));
    }
    if cfg.dhcp.mode == DhcpMode::Proxy {
        let port = cfg.dhcp.proxy_port;
        out.push((Proto::Udp, SocketAddr::from((any, port)), "dhcp.proxy_port"));
    }
    out
}

fn interfaces(cfg: &Config, facts: &Facts) -> Vec<Check> {
    const NAME: &str = "interfaces";
    let mut out = Vec::new();
    let dhcp_on = cfg.dhcp.mode != DhcpMode::Off;
    for name in &cfg.dhcp.interfaces {
        let Some(i) = facts.interfaces.iter().find(|i| &i.name == name) else {
            out.push(Check::fail(
                NAME,
                format!("{name} (dhcp.interfaces) does not exist"),
                "create it or correct dhcp.interfaces (`ip -br addr` lists them)",
            ));
            continue;
        };
        let addrs: Vec<String> = i.addrs.iter().map(|a| a.to_string()).collect();
        if i.addrs.is_empty() {
            out.push(Check::fail(
                NAME,
                format!("{name} has no IPv4 address"),
                format!("add one: ip addr add ADDRESS/PREFIX dev {name}"),
            ));
        } else if !i.up {
            out.push(Check::fail(
                NAME,
                format!("{name} is down"),
                format!("ip link set {name} up"),
            ));
        } else if cfg.dhcp.mode == DhcpMode::Full
            && !cfg.dhcp.subnets.is_empty()
            && !i.addrs.iter().any(|a| {
                cfg.dhcp
                    .subnets
                    .iter()
                    .any(|s| s.network.contains(&a.addr()))
            })
        {
            out.push(Check::warn(
                NAME,
                format!(
                    "{name} ({}) is in no [[dhcp.subnets]] network: direct requests on it get no address",
                    addrs.join(", ")
                ),
                "add its subnet, or leave it to relayed requests only",
            ));
        } else {
            out.push(Check::ok(NAME, format!("{name} {}", addrs.join(", "))));
        }
    }
    if dhcp_on
        && cfg.dhcp.interfaces.is_empty()
        && !facts
            .interfaces
            .iter()
            .any(|i| i.up && !i.addrs.is_empty() && !i.addrs[0].addr().is_loopback())
    {
        out.push(Check::fail(
            NAME,
            "no up interface with an IPv4 address to serve DHCP on",
            "bring one up, or name them in dhcp.interfaces",
        ));
    }
    // Addresses the config names must be this host's.
    let mut named: Vec<(std::net::Ipv4Addr, &'static str)> = Vec::new();
    if let Some(a) = cfg.advertise {
        named.push((a, "server.advertise"));
    }
    for (_, addr, key) in wanted_sockets(cfg) {
        if let IpAddr::V4(ip) = addr.ip()
            && !ip.is_unspecified()
        {
            named.push((ip, key));
        }
    }
    for (ip, key) in named {
        match has_address(&facts.interfaces, ip) {
            Some(i) => out.push(Check::ok(NAME, format!("{ip} ({key}) is on {}", i.name))),
            None => out.push(Check::fail(
                NAME,
                format!("no interface has {ip} ({key})"),
                format!("add {ip} to an interface, or correct {key}"),
            )),
        }
    }
    if out.is_empty() {
        out.push(Check::ok(
            NAME,
            "none configured (DHCP off, wildcard listeners)",
        ));
    }
    out
}

/// Whether a socket already held conflicts with one tabula wants.
fn conflicts(held: &SocketUse, proto: Proto, want: SocketAddr) -> bool {
    if held.proto != proto || held.local.port() != want.port() {
        return false;
    }
    let (h, w) = (held.local.ip(), want.ip());
    // A v6 wildcard usually also takes the v4 port (dual stack); be conservative.
    h.is_unspecified() || w.is_unspecified() || h == w
}

fn ports(cfg: &Config, facts: &Facts) -> Vec<Check> {
    const NAME: &str = "ports";
    let mut out = Vec::new();
    for (proto, addr, key) in wanted_sockets(cfg) {
        let what = format!("{} {addr} ({key})", proto.word());
        if addr.port() == 0 {
            out.push(Check::ok(NAME, format!("{what}: any free port")));
            continue;
        }
        let held: Vec<&SocketUse> = facts
            .sockets
            .iter()
            .filter(|s| conflicts(s, proto, addr))
            .collect();
        let others: Vec<&&SocketUse> = held
            .iter()
            .filter(|s| s.owner.as_ref().is_none_or(|(_, c)| c != "tabula"))
            .collect();
        if held.is_empty() {
            out.push(Check::ok(NAME, format!("{what} free")));
        } else if others.is_empty() {
            let (pid, _) = held[0].owner.clone().unwrap_or_default();
            out.push(Check::ok(
                NAME,
                format!("{what} held by tabula (pid {pid})"),
            ));
        } else {
            let s = others[0];
            let by = match &s.owner {
                Some((pid, comm)) => format!("{comm} (pid {pid})"),
                None => "a process this user cannot see (run doctor as root to name it)".into(),
            };
            out.push(Check::fail(
                NAME,
                format!("{what} is in use on {} by {by}", s.local),
                format!("stop that service or move it, or change {key}"),
            ));
        }
    }
    if out.is_empty() {
        out.push(Check::ok(NAME, "nothing to bind (every service disabled)"));
    }
    out
}

fn capabilities(cfg: &Config, facts: &Facts) -> Check {
    const NAME: &str = "capabilities";
    let mut need: Vec<(u32, &str, String)> = Vec::new();
    let low: Vec<String> = wanted_sockets(cfg)
        .into_iter()
        .filter(|(_, a, _)| a.port() != 0 && a.port() < facts.unprivileged_port_start)
        .map(|(p, a, _)| format!("{} {}", p.word(), a.port()))
        .collect();
    if !low.is_empty() {
        need.push((
            CAP_NET_BIND_SERVICE,
            "CAP_NET_BIND_SERVICE",
            format!("ports {}", low.join(", ")),
        ));
    }
    if cfg.dhcp.mode != DhcpMode::Off {
        need.push((CAP_NET_RAW, "CAP_NET_RAW", "DHCP SO_BINDTODEVICE".into()));
        need.push((
            CAP_NET_ADMIN,
            "CAP_NET_ADMIN",
            "DHCP unicast replies".into(),
        ));
    }
    let Some(eff) = facts.cap_eff else {
        return Check::warn(
            NAME,
            "cannot read CapEff from /proc/self/status",
            "run doctor on Linux with /proc mounted",
        );
    };
    let names: Vec<&str> = need.iter().map(|(_, n, _)| *n).collect();
    let missing: Vec<String> = need
        .iter()
        .filter(|(c, _, _)| !has_cap(eff, *c))
        .map(|(_, n, why)| format!("{n} ({why})"))
        .collect();
    if need.is_empty() {
        Check::ok(
            NAME,
            "none needed (no port below the unprivileged start, DHCP off)",
        )
    } else if missing.is_empty() {
        Check::ok(NAME, format!("{} present", names.join(", ")))
    } else {
        Check::fail(
            NAME,
            format!("missing {}", missing.join(", ")),
            "run as the tabula.service unit (AmbientCapabilities=) or as root; \
             `setpriv --ambient-caps` for a manual run",
        )
    }
}

/// One `ok` line for the loaders that can be served (a link shown with its file), then
/// one line per configured loader that cannot, with its fix
/// ([`crate::loader_files::LoaderCheck::problem`]): a warning while another loader can
/// be served, a failure when none can.
fn loaders(cfg: &Config, facts: &Facts) -> Vec<Check> {
    const NAME: &str = "loaders";
    let root = cfg.tftp.root.display();
    let mut good: Vec<String> = Vec::new();
    let mut bad: Vec<(String, String)> = Vec::new();
    let mut quiet = 0usize;
    for c in &facts.loaders {
        match (&c.resolution, c.diagnosis()) {
            (_, Some(problem)) if c.handed_out(cfg.dhcp.mode) => bad.push(problem),
            (_, Some(_)) => quiet += 1,
            (Resolution::File { path, linked: true }, None) => {
                good.push(format!("{} -> {}", c.name, path.display()));
            }
            _ => good.push(c.name.clone()),
        }
    }
    good.dedup();
    let mut out = Vec::new();
    if !good.is_empty() {
        out.push(Check::ok(NAME, format!("{} in {root}", good.join(", "))));
    } else if bad.is_empty() {
        out.push(Check::ok(
            NAME,
            format!(
                "none in {root}; dhcp.mode = off hands out none of the {quiet} default name(s)"
            ),
        ));
    }
    for (detail, fix) in bad {
        out.push(if good.is_empty() {
            Check::fail(NAME, detail, fix)
        } else {
            Check::warn(NAME, detail, fix)
        });
    }
    out
}

fn store(cfg: &Config, facts: &Facts) -> Check {
    const NAME: &str = "store";
    if facts.store_writable == Some(false) {
        return Check::fail(
            NAME,
            format!("{} is not writable by this user", cfg.store_url),
            format!(
                "run as its owner, or hand the state to the service: chown -R tabula: {}",
                cfg.data_dir.display()
            ),
        );
    }
    match &facts.schema {
        Err(e) => Check::fail(
            NAME,
            e.clone(),
            "check the path and permissions of store.url",
        ),
        Ok(SchemaState::Missing(p)) => Check::warn(
            NAME,
            format!("{} does not exist yet", p.display()),
            "nothing to do: the first `tabula serve` or command creates it",
        ),
        Ok(SchemaState::Unmigrated) => Check::warn(
            NAME,
            "the database has no tabula schema",
            "check store.url points at tabula's database; a start migrates it",
        ),
        Ok(SchemaState::Current(v)) => Check::ok(NAME, format!("opens, schema {v} (current)")),
        Ok(SchemaState::Behind { db, known }) => Check::warn(
            NAME,
            format!("schema {db}, this tabula migrates it to {known} at the next start"),
            "back it up first: migrations only go forward",
        ),
        Ok(SchemaState::Newer { db, known }) => Check::fail(
            NAME,
            format!("schema {db} is newer than this tabula knows ({known})"),
            "run the newer tabula that made it, or restore a backup",
        ),
        Ok(SchemaState::Dirty(v)) => Check::fail(
            NAME,
            format!("migration {v} was interrupted"),
            "restore a backup made before the upgrade",
        ),
    }
}

fn disk(facts: &Facts) -> Check {
    const NAME: &str = "disk";
    let d = match &facts.disk {
        Err(e) => return Check::warn(NAME, e.clone(), "check server.data_dir"),
        Ok(d) => d,
    };
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    let detail = format!(
        "{:.1} GiB free of {:.1} GiB at {}",
        gib(d.free_bytes),
        gib(d.total_bytes),
        d.path.display()
    );
    let low_share =
        d.free_bytes.saturating_mul(100) < d.total_bytes.saturating_mul(DISK_WARN_PERCENT);
    if d.free_bytes < DISK_FAIL_BYTES {
        Check::fail(
            NAME,
            detail,
            "free space (tabula image gc), or move server.data_dir",
        )
    } else if d.free_bytes < DISK_WARN_BYTES || low_share {
        Check::warn(NAME, detail, "tabula image gc removes unreferenced blobs")
    } else {
        Check::ok(NAME, detail)
    }
}

fn data_dir(cfg: &Config, facts: &Facts) -> Check {
    const NAME: &str = "data dir";
    let dir = cfg.data_dir.display();
    match &facts.data_dir {
        DataDir::Missing => Check::warn(
            NAME,
            format!("{dir} does not exist"),
            "the package creates /var/lib/tabula; otherwise: install -d -m 0700 -o tabula DIR",
        ),
        DataDir::Present {
            writable: false, ..
        } => Check::fail(
            NAME,
            format!("{dir} is not writable by this user"),
            "run as its owner (sudo -u tabula tabula …)",
        ),
        DataDir::Present {
            owner_uid,
            owner_name,
            mode,
            ..
        } => {
            let owner = owner_name.clone().unwrap_or_else(|| owner_uid.to_string());
            if *owner_uid != facts.uid {
                Check::warn(
                    NAME,
                    format!("{dir} belongs to {owner}, not to this user"),
                    format!(
                        "run commands as {owner} (sudo -u {owner} tabula …) so new files stay theirs"
                    ),
                )
            } else if mode & 0o077 != 0 {
                Check::warn(
                    NAME,
                    format!("{dir} is mode {mode:04o}: other users can read the state"),
                    format!("chmod 0700 {dir}"),
                )
            } else {
                Check::ok(NAME, format!("{dir} owned by {owner}, mode {mode:04o}"))
            }
        }
    }
}
