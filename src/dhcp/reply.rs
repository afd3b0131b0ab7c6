//! Builds reply packets (OFFER, ACK, NAK and proxyDHCP replies) from a decoded request and
//! a plain [`ReplySpec`], encoding with dhcproto and then fixing what dhcproto leaves out.
//!
//! The spec says *what* to tell the client; this module adds the wire details firmware
//! needs and that no caller should have to remember: op 2 with the request's xid, flags,
//! giaddr and chaddr; the boot file both in option 67 (with a trailing NUL, as dnsmasq
//! sends it) and in the BOOTP `file` field with `siaddr`; T1/T2 at 50 % / 87.5 %;
//! `175 = b0 01 01` (no-pxedhcp) to iPXE; option 60 `PXEClient` and option 43 "skip
//! discovery" in proxy replies; `HTTPClient` to UEFI HTTP boot clients; option 82 echoed
//! verbatim; padding to 300 bytes. Pure: no sockets, no clock, no policy.

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{self, DhcpOption, OptionCode, UnknownOption};
use dhcproto::{Encodable, Encoder};

use super::pxe::{IPXE_NO_PXEDHCP, MachineId};
use super::request::ClientRequest;

/// BOOTP's minimum message size (RFC 951/1542); some PXE ROMs and relays drop shorter.
pub const MIN_REPLY_LEN: usize = 300;
/// IPv4 + UDP header bytes counted by option 57.
const IP_UDP_HEADERS: usize = 28;
/// The size every client must accept when it does not send option 57 (RFC 2131).
const DEFAULT_MAX_MESSAGE: usize = 576;
/// Longest boot file name that still leaves a NUL in the 128-byte `file` field.
const FILE_FIELD_MAX: usize = 127;

/// Which reply to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    /// DHCPOFFER with an address.
    Offer,
    /// DHCPACK (with a lease, or without one for INFORM).
    Ack,
    /// DHCPNAK: only the server id and an optional message.
    Nak,
    /// proxyDHCP OFFER on port 67: boot information only, `yiaddr` 0.
    ProxyOffer,
    /// proxyDHCP ACK on port 4011: boot information only, `yiaddr` 0.
    ProxyAck,
}

impl ReplyKind {
    fn message_type(self) -> v4::MessageType {
        match self {
            ReplyKind::Offer | ReplyKind::ProxyOffer => v4::MessageType::Offer,
            ReplyKind::Ack | ReplyKind::ProxyAck => v4::MessageType::Ack,
            ReplyKind::Nak => v4::MessageType::Nak,
        }
    }

    /// proxyDHCP replies carry no address and no lease.
    pub fn is_proxy(self) -> bool {
        matches!(self, ReplyKind::ProxyOffer | ReplyKind::ProxyAck)
    }
}

/// Everything policy decides about one reply. Fields a reply kind cannot carry are
/// ignored (a NAK has no lease, a proxy reply no address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplySpec {
    pub kind: ReplyKind,
    /// The address given to the client (ignored for NAK and proxy replies).
    pub yiaddr: Ipv4Addr,
    /// `siaddr`: the TFTP server ("next server").
    pub next_server: Ipv4Addr,
    /// Option 54.
    pub server_id: Ipv4Addr,
    /// Option 51; T1 (58) and T2 (59) are derived.
    pub lease_time: Option<Duration>,
    /// Option 1.
    pub subnet_mask: Option<Ipv4Addr>,
    /// Option 3.
    pub router: Option<Ipv4Addr>,
    /// Option 6.
    pub dns: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain: Option<String>,
    /// Option 28.
    pub broadcast_addr: Option<Ipv4Addr>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Option 67 and the `file` field: a TFTP path or, for iPXE/HTTP boot, a URL.
    pub boot_file: Option<String>,
    /// Option 66, for clients that ignore `siaddr`.
    pub tftp_server_name: Option<String>,
    /// Option 56, mostly for NAK.
    pub message: Option<String>,
    /// Why a NAK is sent (`NakReason::code`), for its counter; not on the wire.
    pub nak_reason: Option<&'static str>,
}

impl ReplySpec {
    /// A spec with only the kind and server id set.
    pub fn new(kind: ReplyKind, server_id: Ipv4Addr) -> ReplySpec {
        ReplySpec {
            kind,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            next_server: Ipv4Addr::UNSPECIFIED,
            server_id,
            lease_time: None,
            subnet_mask: None,
            router: None,
            dns: Vec::new(),
            domain: None,
            broadcast_addr: None,
            hostname: None,
            boot_file: None,
            tftp_server_name: None,
            message: None,
            nak_reason: None,
        }
    }
}

/// Why a reply cannot be built. Each is a configuration or policy bug, not a client fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// An OFFER needs a lease time.
    #[error("an OFFER needs a lease time")]
    MissingLeaseTime,
    /// A string option that is empty or longer than one option can carry (255 bytes, 254
    /// for the boot file with its NUL): firmware does not reassemble split options.
    #[error("option {code} would be {len} bytes; it must be 1 to {max}")]
    BadOptionLength { code: u8, len: usize, max: usize },
    /// The encoded reply exceeds what the client accepts (option 57).
    #[error("reply of {len} bytes exceeds the client's maximum of {max}")]
    TooLarge { len: usize, max: usize },
    /// dhcproto refused to encode.
    #[error("encoding failed: {0}")]
    Encode(String),
}

/// Options the size limit may drop, least important first, when the client did not ask
/// for them in option 55.
const DROPPABLE: [u8; 6] = [66, 12, 15, 28, 6, 3];

/// Builds the encoded reply to `req`, at least [`MIN_REPLY_LEN`] bytes.
pub fn build(req: &ClientRequest, spec: &ReplySpec) -> Result<Vec<u8>, ReplyError> {
    let mut msg = header(req, spec)?;
    let max = req
        .max_message_size
        .map(usize::from)
        .filter(|&m| m >= DEFAULT_MAX_MESSAGE)
        .unwrap_or(DEFAULT_MAX_MESSAGE)
        - IP_UDP_HEADERS;
    let relay = req.relay.as_ref().map(|r| r.raw.as_slice());
    let mut out = encode(&msg, relay)?;
    for code in DROPPABLE {
        if out.len() <= max {
            break;
        }
        if !req.requested(code) && msg.opts_mut().remove(OptionCode::from(code)).is_some() {
            out = encode(&msg, relay)?;
        }
    }
    if out.len() > max {
        return Err(ReplyError::TooLarge {
            len: out.len(),
            max,
        });
    }
    if out.len() < MIN_REPLY_LEN {
        // Zero bytes after End are Pad: the End option stays the last option.
        out.resize(MIN_REPLY_LEN, 0);
    }
    Ok(out)
}

fn header(req: &ClientRequest, spec: &ReplySpec) -> Result<v4::Message, ReplyError> {
    let nak = spec.kind == ReplyKind::Nak;
    let yiaddr = if nak || spec.kind.is_proxy() {
        Ipv4Addr::UNSPECIFIED
    } else {
        spec.yiaddr
    };
    let ciaddr = match spec.kind {
        ReplyKind::Ack | ReplyKind::ProxyAck => req.ciaddr,
        _ => Ipv4Addr::UNSPECIFIED,
    };
    let siaddr = if nak {
        Ipv4Addr::UNSPECIFIED
    } else {
        spec.next_server
    };
    let mut msg = v4::Message::new_with_id(
        req.xid,
        ciaddr,
        yiaddr,
        siaddr,
        req.giaddr,
        &req.mac.octets(),
    );
    let mut flags = req.flags;
    if nak && !req.giaddr.is_unspecified() {
        // RFC 2131 4.3.2: a relayed NAK is broadcast by the relay.
        flags |= 0x8000;
    }
    msg.set_opcode(v4::Opcode::BootReply)
        .set_flags(v4::Flags::new(flags));

    let o = msg.opts_mut();
    o.insert(DhcpOption::MessageType(spec.kind.message_type()));
    o.insert(DhcpOption::ServerIdentifier(spec.server_id));
    if let Some(m) = &spec.message {
        o.insert(DhcpOption::Message(checked_str(56, m, 255)?.to_string()));
    }
    if nak {
        return Ok(msg);
    }

    if !spec.kind.is_proxy() {
        lease_options(o, spec)?;
    }
    if let Some(file) = &spec.boot_file {
        let mut bytes = checked_str(67, file, 254)?.as_bytes().to_vec();
        bytes.push(0);
        o.insert(DhcpOption::BootfileName(bytes));
        if file.len() <= FILE_FIELD_MAX {
            msg.set_fname(file.as_bytes());
        }
    }
    let o = msg.opts_mut();
    if let Some(name) = &spec.tftp_server_name {
        o.insert(DhcpOption::TFTPServerName(
            checked_str(66, name, 255)?.as_bytes().to_vec(),
        ));
    }
    if req.kind.http_boot {
        o.insert(DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()));
    } else if spec.kind.is_proxy() {
        o.insert(DhcpOption::ClassIdentifier(b"PXEClient".to_vec()));
        if spec.boot_file.is_some() && !req.kind.ipxe {
            // PXE vendor option 6 (discovery control) = 8: boot the file named here,
            // no boot-server discovery or menu. Then End, as the PXE spec encodes it.
            o.insert(DhcpOption::VendorExtensions(vec![6, 1, 8, 255]));
        }
        if let Some(MachineId::Uuid(u)) = &req.machine_id {
            let mut id = vec![0];
            id.extend_from_slice(&u.to_wire());
            o.insert(DhcpOption::ClientMachineIdentifier(id));
        }
    }
    if req.kind.ipxe {
        o.insert(raw(175, vec![IPXE_NO_PXEDHCP, 1, 1]));
    }
    Ok(msg)
}

fn lease_options(o: &mut v4::DhcpOptions, spec: &ReplySpec) -> Result<(), ReplyError> {
    match spec.lease_time {
        Some(t) => {
            let secs = u32::try_from(t.as_secs()).unwrap_or(u32::MAX);
            o.insert(DhcpOption::AddressLeaseTime(secs));
            o.insert(DhcpOption::Renewal(secs / 2));
            o.insert(DhcpOption::Rebinding(
                u32::try_from(u64::from(secs) * 7 / 8).unwrap_or(u32::MAX),
            ));
        }
        None if spec.kind == ReplyKind::Offer => return Err(ReplyError::MissingLeaseTime),
        None => {}
    }
    if let Some(m) = spec.subnet_mask {
        o.insert(DhcpOption::SubnetMask(m));
    }
    if let Some(r) = spec.router {
        o.insert(DhcpOption::Router(vec![r]));
    }
    if !spec.dns.is_empty() {
        if spec.dns.len() > 63 {
            return Err(ReplyError::BadOptionLength {
                code: 6,
                len: spec.dns.len() * 4,
                max: 252,
            });
        }
        o.insert(DhcpOption::DomainNameServer(spec.dns.clone()));
    }
    if let Some(d) = &spec.domain {
        o.insert(DhcpOption::DomainName(checked_str(15, d, 255)?.to_string()));
    }
    if let Some(b) = spec.broadcast_addr {
        o.insert(DhcpOption::BroadcastAddr(b));
    }
    if let Some(h) = &spec.hostname {
        o.insert(DhcpOption::Hostname(checked_str(12, h, 255)?.to_string()));
    }
    Ok(())
}

fn raw(code: u8, data: Vec<u8>) -> DhcpOption {
    DhcpOption::Unknown(UnknownOption::new(OptionCode::from(code), data))
}

fn checked_str(code: u8, s: &str, max: usize) -> Result<&str, ReplyError> {
    if s.len() > max || s.is_empty() {
        return Err(ReplyError::BadOptionLength {
            code,
            len: s.len(),
            max,
        });
    }
    Ok(s)
}

/// Encodes, then appends option 82 (if any) verbatim as the last option before End
/// (RFC 3046), split into 255-byte instances (RFC 3396) if long. Done by hand: dhcproto
/// writes an `Unknown(82)` option twice (once in order, once forced last).
fn encode(msg: &v4::Message, relay: Option<&[u8]>) -> Result<Vec<u8>, ReplyError> {
    let mut buf = Vec::with_capacity(MIN_REPLY_LEN + 64);
    msg.encode(&mut Encoder::new(&mut buf))
        .map_err(|e| ReplyError::Encode(e.to_string()))?;
    if let Some(raw) = relay.filter(|r| !r.is_empty())
        && buf.last() == Some(&255)
    {
        buf.pop();
        for part in raw.chunks(255) {
            buf.push(82);
            buf.push(u8::try_from(part.len()).unwrap_or(255));
            buf.extend_from_slice(part);
        }
        buf.push(255);
    }
    Ok(buf)
}
