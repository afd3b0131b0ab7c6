//! IPv6 router advertisements with router lifetime 0 on the DHCP interfaces
//! (`dhcp.router_advertisement`, on by default).
//!
//! Every iPXE stage runs IPv6 autoconfiguration beside DHCPv4 and, with no router on the
//! link, keeps "Configuring (net0 …)" open until its router solicitations time out
//! (~15 s: RS at 0, 0.25, 0.75, 1.75, 3.75, 7.75 s). One RA saying "no default router
//! here, no managed/other config" (lifetime 0, M=O=0) ends that wait at once. This task
//! sends one to ff02::1 on every served interface at start, every [`PERIOD`], and in
//! answer to every router solicitation ([`Answer`]).
//!
//! Solicitations go to ff02::2 (all-routers). A host that does not forward IPv6 is not a
//! member of that group, and the kernel drops multicast for groups nobody joined before
//! a raw socket sees it: the socket joins ff02::2 on the interface itself, or only the
//! periodic RA would ever end iPXE's wait (up to [`PERIOD`] after each DHCP ACK).
//!
//! Answers are bounded: at most [`BURST`] in any [`WINDOW`] per interface; a solicitation
//! past that is dropped and counted (one RA to all nodes answers every solicitation of
//! that moment anyway).
//!
//! Needs a raw ICMPv6 socket: root or CAP_NET_RAW. Without it, a warning is logged and
//! DHCP runs without RAs (never an error). Must not do anything but send RAs.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::socket::Interface;

/// Unsolicited RA interval.
pub const PERIOD: Duration = Duration::from_secs(10);
/// Solicited answers per interface per [`WINDOW`], at most.
pub const BURST: u32 = 50;
/// The window [`BURST`] counts in.
pub const WINDOW: Duration = Duration::from_secs(1);

const ROUTER_SOLICITATION: u8 = 133;
const ROUTER_ADVERTISEMENT: u8 = 134;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// The RA body: type, code, checksum (filled by the kernel), hop limit 0 (unspecified),
/// flags 0 (no M/O), router lifetime 0, reachable time 0, retransmit timer 0.
pub fn advertisement() -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = ROUTER_ADVERTISEMENT;
    m
}

/// What one received ICMPv6 message calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard {
    /// A well-formed router solicitation (type 133, code 0, at least 8 bytes).
    Solicitation,
    /// A solicitation that is malformed (short, or a non-zero code): dropped, counted.
    Malformed,
    /// Any other ICMPv6 message (our own RA looped back, neighbour discovery, MLD).
    Other,
}

/// Classifies one ICMPv6 message (as a raw ICMPv6 socket delivers it: no IPv6 header).
pub fn heard(msg: &[u8]) -> Heard {
    match msg.first() {
        Some(&ROUTER_SOLICITATION) if msg.len() >= 8 && msg[1] == 0 => Heard::Solicitation,
        Some(&ROUTER_SOLICITATION) => Heard::Malformed,
        _ => Heard::Other,
    }
}

/// The answer budget: at most [`BURST`] RAs per [`WINDOW`]. Pure: the caller passes the
/// clock.
#[derive(Debug)]
pub struct Answer {
    window_start: Option<Instant>,
    sent: u32,
    /// Solicitations not answered because the budget was spent.
    pub dropped: u64,
}

impl Answer {
    pub fn new() -> Answer {
        Answer {
            window_start: None,
            sent: 0,
            dropped: 0,
        }
    }

    /// Whether a solicitation heard at `now` gets an RA.
    pub fn allow(&mut self, now: Instant) -> bool {
        let fresh = self
            .window_start
            .is_none_or(|s| now.saturating_duration_since(s) >= WINDOW);
        if fresh {
            self.window_start = Some(now);
            self.sent = 0;
        }
        if self.sent < BURST {
            self.sent += 1;
            true
        } else {
            self.dropped += 1;
            false
        }
    }
}

impl Default for Answer {
    fn default() -> Self {
        Answer::new()
    }
}

/// A raw ICMPv6 socket on `iface`, member of ff02::2 there, registered with tokio through
/// `UdpSocket::from_std`: the datagram calls tokio makes (`sendto`, `recvfrom`) are the
/// same on a raw socket, and this avoids the `unsafe` registration of a bare descriptor.
fn open(iface: &Interface) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    s.bind_device(Some(iface.name.as_bytes()))?;
    s.set_multicast_if_v6(iface.index)?;
    s.set_multicast_hops_v6(255)?;
    s.set_unicast_hops_v6(255)?;
    s.set_multicast_loop_v6(false)?;
    s.join_multicast_v6(&ALL_ROUTERS, iface.index)?;
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
    let mut budget = Answer::new();
    let mut malformed = 0u64;
    let mut buf = [0u8; 1500];
    loop {
        let send = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => true,
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => match heard(&buf[..n]) {
                    Heard::Solicitation => {
                        let ok = budget.allow(Instant::now());
                        if ok {
                            tracing::debug!(iface = %iface.name, %from, "router solicitation answered");
                        } else if budget.dropped.is_power_of_two() {
                            tracing::warn!(iface = %iface.name, dropped = budget.dropped, "router solicitations past the answer budget dropped");
                        }
                        ok
                    }
                    Heard::Malformed => {
                        malformed += 1;
                        tracing::debug!(iface = %iface.name, %from, malformed, "malformed router solicitation dropped");
                        false
                    }
                    Heard::Other => false,
                },
                Err(_) => false,
            },
        };
        if send && let Err(e) = sock.send_to(&ra, to).await {
            tracing::debug!(iface = %iface.name, error = %e, "router advertisement not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertisement_says_no_router_and_no_config() {
        let ra = advertisement();
        assert_eq!(ra[0], 134);
        assert!(ra[1..].iter().all(|&b| b == 0), "{ra:?}");
    }

    #[test]
    fn solicitations_are_told_from_other_messages() {
        let rs = [
            133u8, 0, 0x12, 0x34, 0, 0, 0, 0, 1, 1, 0x52, 0x54, 0, 0x77, 1, 1,
        ];
        assert_eq!(heard(&rs), Heard::Solicitation);
        assert_eq!(heard(&rs[..8]), Heard::Solicitation);
        assert_eq!(heard(&rs[..7]), Heard::Malformed);
        assert_eq!(heard(&[133, 1, 0, 0, 0, 0, 0, 0]), Heard::Malformed);
        assert_eq!(heard(&advertisement()), Heard::Other);
        assert_eq!(heard(&[135, 0, 0, 0]), Heard::Other);
        assert_eq!(heard(&[]), Heard::Other);
    }

    #[test]
    fn answers_are_bounded_per_window_and_drops_counted() {
        let mut a = Answer::new();
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert!(a.allow(t0));
        }
        assert!(!a.allow(t0 + Duration::from_millis(500)));
        assert!(!a.allow(t0 + Duration::from_millis(999)));
        assert_eq!(a.dropped, 2);
        assert!(a.allow(t0 + WINDOW), "a new window answers again");
    }
}
