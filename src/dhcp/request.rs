//! [`decode`]: untrusted bytes to a [`ClientRequest`], the owned view of one client
//! message that the DHCP policy works from. The single entry point a fuzz target calls.
//!
//! Options are read with tabula's own validated walk ([`super::wire::Packet`]) rather than
//! dhcproto's decoder, which drops every option after a malformed one, ignores option
//! overload, skips the magic cookie check and keeps only the first option 93 code.
//! This module must not decide anything (no leases, no boot files) and must never panic.

use std::net::Ipv4Addr;

use crate::boot::Mac;

use super::pxe::{self, ClientKind, IpxeInfo, MachineId, RelayInfo, VendorClass};
use super::wire::{DecodeError, MessageType, Op, Packet};

/// Option codes read here.
pub mod code {
    pub const HOSTNAME: u8 = 12;
    pub const REQUESTED_IP: u8 = 50;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const VENDOR_CLASS: u8 = 60;
    pub const CLIENT_ID: u8 = 61;
    pub const USER_CLASS: u8 = 77;
    pub const RELAY_AGENT_INFO: u8 = 82;
    pub const CLIENT_ARCH: u8 = 93;
    pub const CLIENT_NDI: u8 = 94;
    pub const CLIENT_MACHINE_ID: u8 = 97;
    pub const SUBNET_SELECTION: u8 = 118;
    pub const IPXE_ENCAP: u8 = 175;
}

/// One decoded client message (DISCOVER, REQUEST, DECLINE, RELEASE, INFORM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRequest {
    pub message_type: MessageType,
    pub xid: u32,
    pub secs: u16,
    /// The raw BOOTP flags, echoed in replies.
    pub flags: u16,
    pub hops: u8,
    /// `chaddr`: the key of every lease.
    pub mac: Mac,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 61, raw (`01` + MAC from iPXE and udhcpc; absent from UEFI PXE).
    pub client_id: Option<Vec<u8>>,
    /// Option 12, lossily UTF-8, trailing NULs removed.
    pub hostname: Option<String>,
    /// Option 55, in the client's order.
    pub parameter_request_list: Vec<u8>,
    /// Option 57.
    pub max_message_size: Option<u16>,
    /// Option 93, every code in order (RFC 4578 allows a list).
    pub arch_codes: Vec<u16>,
    /// Option 94: (type, UNDI major, UNDI minor).
    pub network_interface: Option<(u8, u8, u8)>,
    /// Option 60.
    pub vendor_class: Option<VendorClass>,
    /// Option 77, split into classes.
    pub user_classes: Vec<Vec<u8>>,
    /// Option 175.
    pub ipxe: Option<IpxeInfo>,
    /// Option 97.
    pub machine_id: Option<MachineId>,
    /// Option 82.
    pub relay: Option<RelayInfo>,
    /// Option 118 (RFC 3011).
    pub subnet_selection: Option<Ipv4Addr>,
    /// Derived from 93, 60, 77 and 175.
    pub kind: ClientKind,
}

impl ClientRequest {
    /// Whether the client asked for a broadcast reply.
    pub fn broadcast(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// Whether the client listed `code` in its parameter request list.
    pub fn requested(&self, code: u8) -> bool {
        self.parameter_request_list.contains(&code)
    }
}

/// Decodes a client message. Server messages, non-Ethernet clients, plain BOOTP and every
/// malformed shape are typed errors.
pub fn decode(bytes: &[u8]) -> Result<ClientRequest, DecodeError> {
    let p = Packet::parse(bytes)?;
    if p.op() != Op::BootRequest {
        return Err(DecodeError::NotARequest);
    }
    if p.htype() != 1 || p.hlen() != 6 {
        return Err(DecodeError::UnsupportedHardware {
            htype: p.htype(),
            hlen: p.hlen(),
        });
    }
    let c = p.chaddr();
    let mac = Mac([c[0], c[1], c[2], c[3], c[4], c[5]]);
    let message_type = p.message_type()?;

    let arch_codes = match p.option(code::CLIENT_ARCH) {
        None => Vec::new(),
        Some(v) if !v.is_empty() && v.len() % 2 == 0 => v
            .chunks_exact(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .collect(),
        Some(v) => return Err(bad(code::CLIENT_ARCH, v.len(), "a non-empty list of u16")),
    };
    let vendor_class = p.option(code::VENDOR_CLASS).map(|v| VendorClass::parse(&v));
    let user_classes = p
        .option(code::USER_CLASS)
        .map(|v| pxe::user_classes(&v))
        .unwrap_or_default();
    let ipxe = p.option(code::IPXE_ENCAP).map(|v| IpxeInfo::parse(&v));
    let relay = match p.option(code::RELAY_AGENT_INFO) {
        None => None,
        Some(v) => {
            Some(RelayInfo::parse(&v).map_err(|e| bad(code::RELAY_AGENT_INFO, v.len(), e.0))?)
        }
    };
    let kind = ClientKind::classify(
        &arch_codes,
        vendor_class.as_ref(),
        &user_classes,
        ipxe.as_ref(),
    );

    Ok(ClientRequest {
        message_type,
        xid: p.xid(),
        secs: p.secs(),
        flags: p.flags(),
        hops: p.hops(),
        mac,
        ciaddr: p.ciaddr(),
        giaddr: p.giaddr(),
        requested_ip: ipv4(&p, code::REQUESTED_IP)?,
        server_id: ipv4(&p, code::SERVER_ID)?,
        client_id: p.option(code::CLIENT_ID).map(|v| v.into_owned()),
        hostname: p.option(code::HOSTNAME).map(|v| {
            String::from_utf8_lossy(&v)
                .trim_end_matches('\0')
                .to_string()
        }),
        parameter_request_list: p
            .option(code::PARAMETER_REQUEST_LIST)
            .map(|v| v.into_owned())
            .unwrap_or_default(),
        max_message_size: match p.option(code::MAX_MESSAGE_SIZE) {
            None => None,
            Some(v) => match *v {
                [a, b] => Some(u16::from_be_bytes([a, b])),
                _ => return Err(bad(code::MAX_MESSAGE_SIZE, v.len(), "exactly 2 bytes")),
            },
        },
        arch_codes,
        network_interface: p.option(code::CLIENT_NDI).and_then(|v| match *v {
            [t, major, minor] => Some((t, major, minor)),
            _ => None,
        }),
        vendor_class,
        user_classes,
        ipxe,
        machine_id: p
            .option(code::CLIENT_MACHINE_ID)
            .map(|v| MachineId::parse(&v)),
        relay,
        subnet_selection: ipv4(&p, code::SUBNET_SELECTION)?,
        kind,
    })
}

fn ipv4(p: &Packet<'_>, code: u8) -> Result<Option<Ipv4Addr>, DecodeError> {
    match p.option(code) {
        None => Ok(None),
        Some(v) => <[u8; 4]>::try_from(&*v)
            .map(|a| Some(Ipv4Addr::from(a)))
            .map_err(|_| bad(code, v.len(), "exactly 4 bytes")),
    }
}

fn bad(code: u8, len: usize, expected: &'static str) -> DecodeError {
    DecodeError::BadOption {
        code,
        len,
        expected,
    }
}
