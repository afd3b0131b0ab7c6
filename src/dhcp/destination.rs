//! Where a reply goes (RFC 2131 section 4.1, and PXE's port 4011): a pure decision over
//! the request's `giaddr`, `ciaddr` and broadcast flag. The socket layer carries it out;
//! this module sends nothing and installs no ARP entry.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::boot::Mac;

use super::reply::ReplyKind;
use super::request::ClientRequest;

/// UDP port servers and relays listen on.
pub const SERVER_PORT: u16 = 67;
/// UDP port clients listen on.
pub const CLIENT_PORT: u16 = 68;

/// The destination of one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Relayed request: unicast to the relay agent (`giaddr`:67).
    Relay(SocketAddrV4),
    /// The client has an address (`ciaddr`, renewing, INFORM, PXE port 4011): plain unicast.
    Unicast(SocketAddrV4),
    /// Limited broadcast 255.255.255.255:68 (broadcast flag, NAK, or nothing to unicast to).
    Broadcast,
    /// Unicast to an address the client does not have yet: the sender must first put
    /// `ip -> mac` in the ARP cache (or fall back to [`Destination::Broadcast`]).
    UnicastToHardware { ip: Ipv4Addr, mac: Mac, port: u16 },
}

impl Destination {
    /// The socket address to send to (for `UnicastToHardware`, after the ARP entry).
    pub fn addr(&self) -> SocketAddrV4 {
        match *self {
            Destination::Relay(a) | Destination::Unicast(a) => a,
            Destination::Broadcast => SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
            Destination::UnicastToHardware { ip, port, .. } => SocketAddrV4::new(ip, port),
        }
    }
}

/// Decides where the reply of `kind` to `req` goes. `yiaddr` is the address being given
/// (unspecified for proxy replies and NAK); `source` is where the request came from, used
/// only for proxyDHCP on port 4011, which answers the client's own source port.
pub fn reply_destination(
    req: &ClientRequest,
    kind: ReplyKind,
    yiaddr: Ipv4Addr,
    source: SocketAddrV4,
) -> Destination {
    if !req.giaddr.is_unspecified() {
        return Destination::Relay(SocketAddrV4::new(req.giaddr, SERVER_PORT));
    }
    if kind == ReplyKind::Nak {
        return Destination::Broadcast;
    }
    if kind == ReplyKind::ProxyAck && !source.ip().is_unspecified() && source.port() != 0 {
        // PXE boot-server replies (port 4011) go back where the request came from.
        return Destination::Unicast(source);
    }
    if !req.ciaddr.is_unspecified() {
        return Destination::Unicast(SocketAddrV4::new(req.ciaddr, CLIENT_PORT));
    }
    if req.broadcast() || yiaddr.is_unspecified() || yiaddr.is_broadcast() {
        return Destination::Broadcast;
    }
    Destination::UnicastToHardware {
        ip: yiaddr,
        mac: req.mac,
        port: CLIENT_PORT,
    }
}
