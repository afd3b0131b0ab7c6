//! The raw DHCPv4 packet: header fields at fixed offsets and a validated walk over the
//! options, including the `file`/`sname` fields when option 52 says they hold options,
//! and RFC 3396 concatenation of split options.
//!
//! This is the first gate for untrusted bytes, so it checks everything dhcproto does not:
//! minimum BOOTP length, the magic cookie, every option length against the bytes that are
//! really there, and a well-formed option overload. It never panics and never allocates
//! per option beyond one small index. It must not interpret PXE/iPXE options (that is
//! [`super::pxe`]) nor decide anything about a reply.

use std::borrow::Cow;
use std::net::Ipv4Addr;

/// Length of the fixed BOOTP header (RFC 951), without the magic cookie.
pub const BOOTP_HEADER_LEN: usize = 236;
/// The DHCP magic cookie (RFC 2131 section 3), right after the BOOTP header.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// The smallest packet this module accepts: header plus cookie.
pub const MIN_PACKET_LEN: usize = BOOTP_HEADER_LEN + MAGIC_COOKIE.len();

const OPT_PAD: u8 = 0;
const OPT_END: u8 = 255;
const OPT_OVERLOAD: u8 = 52;
const OPT_MESSAGE_TYPE: u8 = 53;

const SNAME: std::ops::Range<usize> = 44..108;
const FILE: std::ops::Range<usize> = 108..236;

/// Why bytes are not a DHCPv4 packet tabula can read. Every variant is a normal outcome
/// for junk on the wire: the caller logs and drops the packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the BOOTP header plus magic cookie.
    #[error(
        "packet of {len} bytes is shorter than the {MIN_PACKET_LEN}-byte BOOTP header and cookie"
    )]
    TooShort { len: usize },
    /// The four bytes after the BOOTP header are not the DHCP magic cookie.
    #[error("bad magic cookie {0:02x?}: not a DHCP packet")]
    BadMagic([u8; 4]),
    /// `op` is neither BOOTREQUEST (1) nor BOOTREPLY (2).
    #[error("unknown BOOTP op {0}")]
    UnknownOp(u8),
    /// A server packet reached the request decoder.
    #[error("BOOTREPLY where a client request was expected")]
    NotARequest,
    /// Only Ethernet (htype 1, hlen 6) clients are served.
    #[error("unsupported hardware type {htype} / length {hlen}: only Ethernet (1/6) is served")]
    UnsupportedHardware { htype: u8, hlen: u8 },
    /// An option's length byte runs past the end of its area.
    #[error("option {code} at offset {offset} in {area} runs past the end of the area")]
    OptionOverrun {
        code: u8,
        offset: usize,
        area: &'static str,
    },
    /// An option's payload does not have the shape its code requires.
    #[error("option {code} has {len} bytes: {expected}")]
    BadOption {
        code: u8,
        len: usize,
        expected: &'static str,
    },
    /// Option 52 holds a value other than 1, 2 or 3.
    #[error("option overload (52) value {0} is not 1, 2 or 3")]
    BadOverload(u8),
    /// Plain BOOTP: no DHCP message type (option 53).
    #[error("BOOTP packet without a DHCP message type (option 53)")]
    NotDhcp,
    /// Option 53 holds a type this server does not know.
    #[error("unknown DHCP message type {0}")]
    UnknownMessageType(u8),
}

/// BOOTP `op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// From a client (1).
    BootRequest,
    /// From a server (2).
    BootReply,
}

/// DHCP message type (option 53), RFC 2131 and RFC 2132.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
}

impl MessageType {
    /// The option 53 value.
    pub fn code(self) -> u8 {
        match self {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
        }
    }

    /// Parses an option 53 value.
    pub fn from_code(code: u8) -> Option<MessageType> {
        Some(match code {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            _ => return None,
        })
    }
}

/// One option occurrence as found on the wire (a split option occurs several times).
#[derive(Clone, Copy, Debug)]
struct Fragment<'a> {
    code: u8,
    data: &'a [u8],
}

/// A validated, borrowed view of a DHCPv4 packet (request or reply).
#[derive(Clone, Debug)]
pub struct Packet<'a> {
    bytes: &'a [u8],
    fragments: Vec<Fragment<'a>>,
    overload: u8,
}

impl<'a> Packet<'a> {
    /// Validates the header, cookie and every option length; requires option 53.
    pub fn parse(bytes: &'a [u8]) -> Result<Packet<'a>, DecodeError> {
        if bytes.len() < MIN_PACKET_LEN {
            return Err(DecodeError::TooShort { len: bytes.len() });
        }
        let magic = [bytes[236], bytes[237], bytes[238], bytes[239]];
        if magic != MAGIC_COOKIE {
            return Err(DecodeError::BadMagic(magic));
        }
        match bytes[0] {
            1 | 2 => {}
            other => return Err(DecodeError::UnknownOp(other)),
        }
        let mut fragments = Vec::with_capacity(16);
        walk(&bytes[MIN_PACKET_LEN..], "options", &mut fragments)?;
        let overload = match concat(&fragments, OPT_OVERLOAD) {
            None => 0,
            Some(v) if v.len() == 1 => match v[0] {
                1..=3 => v[0],
                o => return Err(DecodeError::BadOverload(o)),
            },
            Some(v) => {
                return Err(DecodeError::BadOption {
                    code: OPT_OVERLOAD,
                    len: v.len(),
                    expected: "exactly 1 byte",
                });
            }
        };
        // RFC 2131 section 4.1: options field first, then `file`, then `sname`.
        if overload & 1 != 0 {
            walk(&bytes[FILE], "file", &mut fragments)?;
        }
        if overload & 2 != 0 {
            walk(&bytes[SNAME], "sname", &mut fragments)?;
        }
        let packet = Packet {
            bytes,
            fragments,
            overload,
        };
        packet.message_type()?;
        Ok(packet)
    }

    /// BOOTP `op`.
    pub fn op(&self) -> Op {
        if self.bytes[0] == 2 {
            Op::BootReply
        } else {
            Op::BootRequest
        }
    }

    /// Hardware type (1 = Ethernet).
    pub fn htype(&self) -> u8 {
        self.bytes[1]
    }

    /// Hardware address length.
    pub fn hlen(&self) -> u8 {
        self.bytes[2]
    }

    /// Relay hop count.
    pub fn hops(&self) -> u8 {
        self.bytes[3]
    }

    /// Transaction id.
    pub fn xid(&self) -> u32 {
        self.u32_at(4)
    }

    /// Seconds since the client began.
    pub fn secs(&self) -> u16 {
        u16::from_be_bytes([self.bytes[8], self.bytes[9]])
    }

    /// The raw flags field; bit 15 is the broadcast flag.
    pub fn flags(&self) -> u16 {
        u16::from_be_bytes([self.bytes[10], self.bytes[11]])
    }

    /// Whether the client asked for a broadcast reply.
    pub fn broadcast(&self) -> bool {
        self.flags() & 0x8000 != 0
    }

    pub fn ciaddr(&self) -> Ipv4Addr {
        self.ip_at(12)
    }

    pub fn yiaddr(&self) -> Ipv4Addr {
        self.ip_at(16)
    }

    pub fn siaddr(&self) -> Ipv4Addr {
        self.ip_at(20)
    }

    pub fn giaddr(&self) -> Ipv4Addr {
        self.ip_at(24)
    }

    /// The 16-byte `chaddr` field.
    pub fn chaddr(&self) -> &'a [u8] {
        &self.bytes[28..44]
    }

    /// The `sname` header field up to its first NUL, unless it carries options.
    pub fn sname(&self) -> Option<&'a [u8]> {
        (self.overload & 2 == 0).then(|| until_nul(&self.bytes[SNAME]))
    }

    /// The `file` header field up to its first NUL, unless it carries options.
    pub fn file(&self) -> Option<&'a [u8]> {
        (self.overload & 1 == 0).then(|| until_nul(&self.bytes[FILE]))
    }

    /// The DHCP message type (option 53).
    pub fn message_type(&self) -> Result<MessageType, DecodeError> {
        let v = self.option(OPT_MESSAGE_TYPE).ok_or(DecodeError::NotDhcp)?;
        if v.len() != 1 {
            return Err(DecodeError::BadOption {
                code: OPT_MESSAGE_TYPE,
                len: v.len(),
                expected: "exactly 1 byte",
            });
        }
        MessageType::from_code(v[0]).ok_or(DecodeError::UnknownMessageType(v[0]))
    }

    /// An option's payload, its fragments joined (RFC 3396); `None` if absent.
    pub fn option(&self, code: u8) -> Option<Cow<'a, [u8]>> {
        concat(&self.fragments, code)
    }

    /// Whether an option is present at all.
    pub fn has_option(&self, code: u8) -> bool {
        self.fragments.iter().any(|f| f.code == code)
    }

    /// Option codes in the order they first appear on the wire.
    pub fn option_codes(&self) -> Vec<u8> {
        let mut codes: Vec<u8> = Vec::with_capacity(self.fragments.len());
        for f in &self.fragments {
            if !codes.contains(&f.code) {
                codes.push(f.code);
            }
        }
        codes
    }

    /// The whole packet as received.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_be_bytes([
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        ])
    }

    fn ip_at(&self, at: usize) -> Ipv4Addr {
        Ipv4Addr::from(self.u32_at(at))
    }
}

/// Walks one option area. A missing End is tolerated when the area ends exactly on an
/// option boundary (a truncated packet then simply has fewer options); an option whose
/// length runs past the area is an error, never a silent drop of what follows.
fn walk<'a>(
    area: &'a [u8],
    name: &'static str,
    out: &mut Vec<Fragment<'a>>,
) -> Result<(), DecodeError> {
    let mut i = 0;
    while i < area.len() {
        let code = area[i];
        match code {
            OPT_PAD => i += 1,
            OPT_END => return Ok(()),
            _ => {
                let overrun = DecodeError::OptionOverrun {
                    code,
                    offset: i,
                    area: name,
                };
                let len = usize::from(*area.get(i + 1).ok_or(overrun.clone())?);
                let data = area.get(i + 2..i + 2 + len).ok_or(overrun)?;
                if code == OPT_OVERLOAD && name != "options" {
                    // RFC 2131: option 52 may only appear in the options field.
                    return Err(DecodeError::BadOption {
                        code,
                        len,
                        expected: "only in the options field",
                    });
                }
                out.push(Fragment { code, data });
                i += 2 + len;
            }
        }
    }
    Ok(())
}

fn concat<'a>(fragments: &[Fragment<'a>], code: u8) -> Option<Cow<'a, [u8]>> {
    let mut found = fragments.iter().filter(|f| f.code == code);
    let first = found.next()?;
    match found.next() {
        None => Some(Cow::Borrowed(first.data)),
        Some(second) => {
            let mut v = first.data.to_vec();
            v.extend_from_slice(second.data);
            for f in found {
                v.extend_from_slice(f.data);
            }
            Some(Cow::Owned(v))
        }
    }
}

fn until_nul(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(options: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; BOOTP_HEADER_LEN];
        p[0] = 1;
        p[1] = 1;
        p[2] = 6;
        p.extend_from_slice(&MAGIC_COOKIE);
        p.extend_from_slice(options);
        p
    }

    #[test]
    fn parses_message_type_and_split_options() {
        let p = minimal(&[53, 1, 1, 60, 2, b'a', b'b', 0, 60, 1, b'c', 255]);
        let pkt = Packet::parse(&p).expect("valid");
        assert_eq!(pkt.message_type(), Ok(MessageType::Discover));
        assert_eq!(pkt.option(60).as_deref(), Some(&b"abc"[..]));
        assert_eq!(pkt.option_codes(), vec![53, 60]);
    }

    #[test]
    fn overload_reads_file_then_sname() {
        let mut p = minimal(&[53, 1, 3, 52, 1, 3, 255]);
        p[FILE.start..FILE.start + 5].copy_from_slice(&[67, 2, b'x', b'y', 255]);
        p[SNAME.start..SNAME.start + 4].copy_from_slice(&[66, 1, b's', 255]);
        let pkt = Packet::parse(&p).expect("valid");
        assert_eq!(pkt.option(67).as_deref(), Some(&b"xy"[..]));
        assert_eq!(pkt.option(66).as_deref(), Some(&b"s"[..]));
        assert_eq!(pkt.file(), None);
        assert_eq!(pkt.sname(), None);
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(
            Packet::parse(&[0; 10]).err(),
            Some(DecodeError::TooShort { len: 10 })
        );
        assert_eq!(
            Packet::parse(&minimal(&[255])).err(),
            Some(DecodeError::NotDhcp)
        );
        assert!(matches!(
            Packet::parse(&minimal(&[53, 1, 1, 60, 9, b'a'])).err(),
            Some(DecodeError::OptionOverrun { code: 60, .. })
        ));
        assert_eq!(
            Packet::parse(&minimal(&[53, 1, 1, 52, 1, 7, 255])).err(),
            Some(DecodeError::BadOverload(7))
        );
        assert_eq!(
            Packet::parse(&minimal(&[53, 1, 42, 255])).err(),
            Some(DecodeError::UnknownMessageType(42))
        );
        let mut bad = minimal(&[53, 1, 1, 255]);
        bad[236] = 0;
        assert!(matches!(
            Packet::parse(&bad).err(),
            Some(DecodeError::BadMagic(_))
        ));
    }
}
