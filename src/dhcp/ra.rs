//! IPv6 router advertisements with router lifetime 0 on the DHCP interfaces
//! (`dhcp.router_advertisement`, on by default).
//!
//! Every iPXE stage runs IPv6 autoconfiguration beside DHCPv4 and, with no router on the
//! link, waits ~15 s for router solicitations to time out. One RA saying "no default
//! router here, no managed/other config" (lifetime 0, M=O=0) ends that wait at once.
//! This task sends one to ff02::1 on every served interface at start, every
//! [`PERIOD`], and whenever a router solicitation arrives.
//!
//! Needs a raw ICMPv6 socket: root or CAP_NET_RAW. Without it, a warning is logged and
//! DHCP runs without RAs (never an error). Must not do anything but send RAs.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::socket::Interface;

/// Unsolicited RA interval.
pub const PERIOD: Duration = Duration::from_secs(10);

const ROUTER_SOLICITATION: u8 = 133;
const ROUTER_ADVERTISEMENT: u8 = 134;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The RA body: type, code, checksum (filled by the kernel), hop limit 0 (unspecified),
/// flags 0 (no M/O), router lifetime 0, reachable time 0, retransmit timer 0.
pub fn advertisement() -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = ROUTER_ADVERTISEMENT;
    m
}

/// A raw ICMPv6 socket on `iface`, registered with tokio through `UdpSocket::from_std`:
/// the datagram calls tokio makes (`sendto`, `recvfrom`) are the same on a raw socket,
/// and this avoids the `unsafe` registration of a bare file descriptor.
fn open(iface: &Interface) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    s.bind_device(Some(iface.name.as_bytes()))?;
    s.set_multicast_if_v6(iface.index)?;
    s.set_multicast_hops_v6(255)?;
    s.set_unicast_hops_v6(255)?;
    s.set_multicast_loop_v6(false)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

/// Runs the RA sender for `iface` until `stop`.
pub async fn run(iface: Interface, stop: CancellationToken) {
    let sock = match open(&iface) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(
                iface = %iface.name, error = %e,
                "cannot send IPv6 router advertisements (raw ICMPv6 socket needs root or CAP_NET_RAW); iPXE will wait for IPv6 autoconfiguration"
            );
            return;
        }
    };
    let to = SocketAddrV6::new(ALL_NODES, 0, 0, iface.index);
    let ra = advertisement();
    let mut tick = tokio::time::interval(PERIOD);
    let mut buf = [0u8; 1500];
    loop {
        let send = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => true,
            r = sock.recv(&mut buf) => matches!(r, Ok(n) if n > 0 && buf[0] == ROUTER_SOLICITATION),
        };
        if send && let Err(e) = sock.send_to(&ra, to).await {
            tracing::debug!(iface = %iface.name, error = %e, "router advertisement not sent");
        }
    }
}
