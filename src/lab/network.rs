//! The lab's private network: a namespace `tabula-lab-<pid>` with a bridge `tabr0` at
//! 10.77.0.1/24 (the address config/lab.toml serves on) and one tap per VM, enslaved to
//! the bridge. Nothing outside the namespace is touched. Dropping [`LabNetwork`] kills
//! whatever still runs inside the namespace (only processes the lab started can be
//! there) and deletes it, on success, error and Ctrl-C alike.

use std::process::Command;

use super::LabError;

/// The bridge, and the server's address on it.
pub const BRIDGE: &str = "tabr0";
pub const SERVER_CIDR: &str = "10.77.0.1/24";

/// A TCP listener bound to `addr` inside namespace `ns` (a socket stays in the namespace
/// it was made in): made on a thread of its own that enters the namespace, so no other
/// thread of the caller changes namespace. Non-blocking, for tokio.
pub fn bind_in(ns: &str, addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path)?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(std::io::Error::from)?;
        let l = std::net::TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        Ok(l)
    })
    .join()
    .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
}

/// A namespace owned by this lab run; removed on drop.
#[derive(Debug)]
pub struct LabNetwork {
    name: String,
}

impl LabNetwork {
    /// Creates the namespace, the bridge and a tap for each name in `taps`.
    pub fn create(taps: &[String]) -> Result<LabNetwork, LabError> {
        let name = format!("tabula-lab-{}", std::process::id());
        ip(&["netns", "add", &name])?;
        let net = LabNetwork { name };
        let n = net.name.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"])?;
        // The namespace itself neither autoconfigures from the lab's router
        // advertisements nor solicits them (netboot-lab.md §7.6): set before the bridge
        // exists (`default` is what a new interface starts with), and on the bridge, so
        // every solicitation on the wire is a VM's.
        for scope in ["all", "default"] {
            sysctl(n, scope)?;
        }
        ip(&["-n", n, "link", "add", BRIDGE, "type", "bridge"])?;
        sysctl(n, BRIDGE)?;
        // Let RS/RA and DHCP always flood.
        let _ = ip(&[
            "-n",
            n,
            "link",
            "set",
            BRIDGE,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", n, "addr", "add", SERVER_CIDR, "dev", BRIDGE])?;
        ip(&["-n", n, "link", "set", BRIDGE, "up"])?;
        for tap in taps {
            ip(&["-n", n, "tuntap", "add", "dev", tap, "mode", "tap"])?;
            ip(&["-n", n, "link", "set", tap, "master", BRIDGE])?;
            ip(&["-n", n, "link", "set", tap, "up"])?;
        }
        Ok(net)
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for LabNetwork {
    fn drop(&mut self) {
        // Stragglers in our own namespace: only processes this lab started live there.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// `accept_ra=0` and `router_solicitations=0` for `scope` (`all`, `default` or an
/// interface) in namespace `ns`.
fn sysctl(ns: &str, scope: &str) -> Result<(), LabError> {
    for key in ["accept_ra", "router_solicitations"] {
        let setting = format!("net.ipv6.conf.{scope}.{key}=0");
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "sysctl", "-q", "-w", &setting])
            .output()
            .map_err(|e| LabError::Command {
                command: format!("sysctl {setting}"),
                detail: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(LabError::Command {
                command: format!("sysctl {setting}"),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
    }
    Ok(())
}

fn ip(args: &[&str]) -> Result<(), LabError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| LabError::Command {
            command: format!("ip {}", args.join(" ")),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(LabError::Command {
        command: format!("ip {}", args.join(" ")),
        detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}
