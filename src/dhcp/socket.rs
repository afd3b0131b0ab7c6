//! The only module of the DHCP front end that touches sockets.
//!
//! * [`interfaces`]: the IPv4 interfaces to serve (configured names, or every up,
//!   non-loopback interface with an IPv4 address).
//! * [`DhcpSocket`]: per interface and port, a UDP socket on `0.0.0.0:port` with
//!   SO_REUSEADDR, SO_BROADCAST, SO_BINDTODEVICE and IP_PKTINFO, so a request's ingress
//!   interface and local address are known and the reply leaves by the same interface
//!   with that address as source (recvmsg/sendmsg through nix, inside tokio's `async_io`).
//! * [`Neighbours`]: unicast to a client that has no address yet needs its MAC in the ARP
//!   cache first. Instead of the `SIOCSARP` ioctl (which would need `unsafe` here; the
//!   crate forbids it) this sends the same neighbour entry over rtnetlink (RTM_NEWNEIGH),
//!   safely through nix. Needs CAP_NET_ADMIN; without it (or when the neighbour table is
//!   full) the caller falls back to broadcast.
//!
//! Privileges: ports below 1024 need CAP_NET_BIND_SERVICE, SO_BINDTODEVICE CAP_NET_RAW,
//! neighbour entries CAP_NET_ADMIN; errors say which. Must not decide anything.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::socket::{
    self, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, NetlinkAddr, SockFlag,
    SockProtocol, SockType, SockaddrIn, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::boot::Mac;

/// Socket-level errors, each naming what is missing.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// A configured interface does not exist or has no IPv4 address.
    #[error("interface {0:?} does not exist or has no IPv4 address")]
    NoInterface(String),
    /// No interface qualifies (empty `dhcp.interfaces` and no up IPv4 interface).
    #[error("no up IPv4 interface to serve DHCP on (set dhcp.interfaces)")]
    NoInterfaces,
    /// A socket operation failed; `hint` names the capability when it is a permission error.
    #[error("DHCP socket on {iface} port {port}: cannot {what}: {source}{hint}")]
    Setup {
        iface: String,
        port: u16,
        what: &'static str,
        source: io::Error,
        hint: &'static str,
    },
}

/// An interface DHCP is served on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
}

/// Finds the interfaces to serve: `names`, or every up non-loopback IPv4 interface.
pub fn interfaces(names: &[String]) -> Result<Vec<Interface>, SocketError> {
    let mut found: Vec<Interface> = Vec::new();
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| SocketError::Setup {
        iface: "*".into(),
        port: 0,
        what: "list interfaces",
        source: e.into(),
        hint: "",
    })?;
    for a in addrs {
        let Some(ip) = a
            .address
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|s| s.ip())
        else {
            continue;
        };
        if found.iter().any(|f| f.name == a.interface_name) {
            continue; // first address of the interface only
        }
        let wanted = if names.is_empty() {
            a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP)
                && !a
                    .flags
                    .contains(nix::net::if_::InterfaceFlags::IFF_LOOPBACK)
        } else {
            names.contains(&a.interface_name)
        };
        if !wanted {
            continue;
        }
        let prefix_len = a
            .netmask
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|m| u8::try_from(u32::from(m.ip()).count_ones()).unwrap_or(32))
            .unwrap_or(32);
        let Ok(index) = nix::net::if_::if_nametoindex(a.interface_name.as_str()) else {
            continue;
        };
        found.push(Interface {
            name: a.interface_name.clone(),
            index,
            address: ip,
            prefix_len,
        });
    }
    for n in names {
        if !found.iter().any(|f| &f.name == n) {
            return Err(SocketError::NoInterface(n.clone()));
        }
    }
    if found.is_empty() {
        return Err(SocketError::NoInterfaces);
    }
    Ok(found)
}

/// One received datagram.
#[derive(Clone, Copy, Debug)]
pub struct Received {
    pub len: usize,
    pub source: SocketAddrV4,
    /// Ingress interface (IP_PKTINFO `ipi_ifindex`).
    pub ifindex: u32,
    /// The local address the kernel would answer from (`ipi_spec_dst`).
    pub local: Ipv4Addr,
}

/// A DHCP socket bound to one interface and port.
#[derive(Debug)]
pub struct DhcpSocket {
    sock: UdpSocket,
    pub iface: Interface,
    pub port: u16,
}

/// A bound DHCP socket not registered with any runtime ([`DhcpSocket::detach`]).
#[derive(Debug)]
pub struct Detached {
    sock: std::net::UdpSocket,
    iface: Interface,
    port: u16,
}

impl Detached {
    /// Registers the socket with the current tokio runtime again.
    pub fn attach(self) -> io::Result<DhcpSocket> {
        Ok(DhcpSocket {
            sock: UdpSocket::from_std(self.sock)?,
            iface: self.iface,
            port: self.port,
        })
    }
}

fn hint(e: &io::Error, what: &str, port: u16) -> &'static str {
    if e.kind() != io::ErrorKind::PermissionDenied {
        return match e.kind() {
            io::ErrorKind::AddrInUse => " (another DHCP server listens on this interface and port)",
            _ => "",
        };
    }
    match what {
        "bind" if port < 1024 => " (port below 1024: needs root or CAP_NET_BIND_SERVICE)",
        "bind to device" => " (SO_BINDTODEVICE needs root or CAP_NET_RAW)",
        _ => " (needs root or CAP_NET_RAW/CAP_NET_ADMIN)",
    }
}

impl DhcpSocket {
    /// Binds `0.0.0.0:port` on `iface`. Must be called inside a tokio runtime.
    pub fn bind(iface: &Interface, port: u16) -> Result<DhcpSocket, SocketError> {
        let err = |what: &'static str| {
            move |source: io::Error| SocketError::Setup {
                iface: iface.name.clone(),
                port,
                what,
                hint: hint(&source, what, port),
                source,
            }
        };
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
            .map_err(err("create a UDP socket"))?;
        s.set_reuse_address(true).map_err(err("set SO_REUSEADDR"))?;
        s.set_broadcast(true).map_err(err("set SO_BROADCAST"))?;
        s.bind_device(Some(iface.name.as_bytes()))
            .map_err(err("bind to device"))?;
        // Bursts (a rack powering on) must queue, not drop: ask for 4 MiB.
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        socket::setsockopt(&s, sockopt::Ipv4PacketInfo, &true)
            .map_err(|e| err("set IP_PKTINFO")(e.into()))?;
        s.set_nonblocking(true).map_err(err("set non-blocking"))?;
        s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())
            .map_err(err("bind"))?;
        let std_sock: std::net::UdpSocket = s.into();
        let sock = UdpSocket::from_std(std_sock).map_err(err("register with tokio"))?;
        Ok(DhcpSocket {
            sock,
            iface: iface.clone(),
            port,
        })
    }

    /// The socket without its tokio registration, to carry it to another runtime (the
    /// privilege drop binds on one runtime and serves on another).
    pub fn detach(self) -> io::Result<Detached> {
        Ok(Detached {
            sock: self.sock.into_std()?,
            iface: self.iface,
            port: self.port,
        })
    }

    /// The bound local port (useful when bound to port 0 in tests).
    pub fn local_port(&self) -> u16 {
        self.sock
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(self.port)
    }

    /// Receives one datagram into `buf` with its ingress interface and local address.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        let fd = self.sock.as_raw_fd();
        let fallback = self.iface.clone();
        self.sock
            .async_io(Interest::READABLE, || {
                let mut cmsg = nix::cmsg_space!(libc::in_pktinfo);
                let mut iov = [io::IoSliceMut::new(buf)];
                let msg =
                    socket::recvmsg::<SockaddrIn>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
                        .map_err(io::Error::from)?;
                let source = msg
                    .address
                    .map(|a| SocketAddrV4::new(a.ip(), a.port()))
                    .unwrap_or_else(|| SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
                let mut r = Received {
                    len: msg.bytes,
                    source,
                    ifindex: fallback.index,
                    local: fallback.address,
                };
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        if let ControlMessageOwned::Ipv4PacketInfo(p) = c {
                            r.ifindex = u32::try_from(p.ipi_ifindex).unwrap_or(fallback.index);
                            let local = Ipv4Addr::from(u32::from_be(p.ipi_spec_dst.s_addr));
                            if !local.is_unspecified() {
                                r.local = local;
                            }
                        }
                    }
                }
                Ok(r)
            })
            .await
    }

    /// Sends `bytes` to `to`, out of interface `ifindex` with source address `src`.
    pub async fn send(
        &self,
        bytes: &[u8],
        to: SocketAddrV4,
        ifindex: u32,
        src: Ipv4Addr,
    ) -> io::Result<()> {
        let fd = self.sock.as_raw_fd();
        let info = libc::in_pktinfo {
            ipi_ifindex: i32::try_from(ifindex).unwrap_or(0),
            ipi_spec_dst: libc::in_addr {
                s_addr: u32::from(src).to_be(),
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        };
        let addr = SockaddrIn::from(to);
        self.sock
            .async_io(Interest::WRITABLE, || {
                let iov = [io::IoSlice::new(bytes)];
                socket::sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv4PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&addr),
                )
                .map(|_| ())
                .map_err(io::Error::from)
            })
            .await
    }
}

/// Installs ARP (neighbour) entries over rtnetlink so a reply can be unicast to a
/// client that has no address yet.
#[derive(Debug)]
pub struct Neighbours {
    fd: Option<Mutex<OwnedFd>>,
    disabled: AtomicBool,
}

const RTM_NEWNEIGH: u16 = 28;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NUD_REACHABLE: u16 = 0x2;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;

impl Neighbours {
    /// Opens the rtnetlink socket (never fails: without it, every add reports `false`).
    pub fn open() -> Neighbours {
        let fd = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .ok();
        Neighbours {
            fd: fd.map(Mutex::new),
            disabled: AtomicBool::new(false),
        }
    }

    /// Maps `ip` to `mac` on interface `ifindex`. `false` means "broadcast instead"
    /// (no CAP_NET_ADMIN, neighbour table full, …); a permission error disables further
    /// attempts with one warning.
    pub fn add(&self, ifindex: u32, ip: Ipv4Addr, mac: Mac) -> bool {
        if self.disabled.load(Ordering::Relaxed) {
            return false;
        }
        let Some(fd) = &self.fd else { return false };
        let fd = fd.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let msg = newneigh(ifindex, ip, mac);
        if let Err(e) = socket::sendto(
            fd.as_raw_fd(),
            &msg,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        ) {
            return self.failed(e);
        }
        // rtnetlink handles the request inside sendto: the ack is already queued.
        let mut ack = [0u8; 64];
        let n = match socket::recv(fd.as_raw_fd(), &mut ack, MsgFlags::MSG_DONTWAIT) {
            Ok(n) => n,
            Err(nix::errno::Errno::EAGAIN) => return true,
            Err(e) => return self.failed(e),
        };
        if n >= 20 && u16::from_ne_bytes([ack[4], ack[5]]) == NLMSG_ERROR {
            let code = i32::from_ne_bytes([ack[16], ack[17], ack[18], ack[19]]);
            if code != 0 {
                return self.failed(nix::errno::Errno::from_raw(-code));
            }
        }
        true
    }

    fn failed(&self, e: nix::errno::Errno) -> bool {
        if e == nix::errno::Errno::EPERM || e == nix::errno::Errno::EACCES {
            self.disabled.store(true, Ordering::Relaxed);
            tracing::warn!(
                "cannot add ARP entries ({e}; needs CAP_NET_ADMIN): replies to clients without an address are broadcast"
            );
        } else {
            tracing::debug!(error = %e, "ARP entry not added: broadcasting");
        }
        false
    }
}

/// An RTM_NEWNEIGH request: nlmsghdr, ndmsg, NDA_DST, NDA_LLADDR (padded to 4 bytes).
fn newneigh(ifindex: u32, ip: Ipv4Addr, mac: Mac) -> Vec<u8> {
    let mut m = Vec::with_capacity(48);
    m.extend_from_slice(&48u32.to_ne_bytes());
    m.extend_from_slice(&RTM_NEWNEIGH.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel assigns
    // ndmsg: family, 3 pad bytes, ifindex, state, flags, type
    m.push(2); // AF_INET
    m.extend_from_slice(&[0, 0, 0]);
    m.extend_from_slice(&i32::try_from(ifindex).unwrap_or(0).to_ne_bytes());
    m.extend_from_slice(&NUD_REACHABLE.to_ne_bytes());
    m.push(0);
    m.push(0);
    m.extend_from_slice(&8u16.to_ne_bytes());
    m.extend_from_slice(&NDA_DST.to_ne_bytes());
    m.extend_from_slice(&ip.octets());
    m.extend_from_slice(&10u16.to_ne_bytes());
    m.extend_from_slice(&NDA_LLADDR.to_ne_bytes());
    m.extend_from_slice(&mac.octets());
    m.extend_from_slice(&[0, 0]);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newneigh_layout() {
        let m = newneigh(3, Ipv4Addr::new(10, 0, 0, 5), Mac([1, 2, 3, 4, 5, 6]));
        assert_eq!(m.len(), 48);
        assert_eq!(&m[32..36], &[10, 0, 0, 5]);
        assert_eq!(&m[40..46], &[1, 2, 3, 4, 5, 6]);
    }
}
