//! The TFTP wire format: parse and encode RRQ, WRQ, DATA, ACK, ERROR and OACK packets
//! (RFC 1350) with the options tabula understands: `blksize` (RFC 2348), `tsize` and
//! `timeout` (RFC 2349) and `windowsize` (RFC 7440).
//!
//! Pure bytes in, values out: no sockets, no files, no clock, no policy. Option *values*
//! are reported as the client sent them; clamping them to what the server grants is the
//! job of [`super::transfer`]. Malformed input is a [`PacketError`], never a panic.

use std::fmt;

/// Why a datagram is not a TFTP packet we can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer bytes than the packet's fixed header needs.
    #[error("packet truncated: {0} bytes")]
    Truncated(usize),
    /// The first two bytes are not a known opcode.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    /// A string field is not terminated by a NUL byte.
    #[error("{0} is not NUL-terminated")]
    Unterminated(&'static str),
    /// The file name is empty or not UTF-8.
    #[error("bad file name")]
    BadFilename,
    /// The transfer mode is not netascii, octet or mail.
    #[error("unknown transfer mode {0:?}")]
    UnknownMode(String),
    /// An option name without a value, or a name or value that is not text.
    #[error("malformed option list")]
    BadOptions,
}

/// TFTP opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Opcode {
    Rrq = 1,
    Wrq = 2,
    Data = 3,
    Ack = 4,
    Error = 5,
    Oack = 6,
}

/// The transfer mode of a request. tabula serves bytes as they are in every mode it
/// accepts: `netascii` is not translated (boot loaders ask for `octet` anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Netascii,
    Octet,
    /// Obsolete (RFC 1350 already discouraged it); refused by the server.
    Mail,
}

/// TFTP error codes (RFC 1350, 2347).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 0: see the message.
    NotDefined,
    /// 1
    FileNotFound,
    /// 2
    AccessViolation,
    /// 3
    DiskFull,
    /// 4
    IllegalOperation,
    /// 5
    UnknownTid,
    /// 6
    FileExists,
    /// 7
    NoSuchUser,
    /// 8: the client refuses the negotiated options (also how PXE ROMs end a `tsize` probe).
    OptionRefused,
    /// Anything else a peer may send.
    Other(u16),
}

impl ErrorCode {
    /// The number on the wire.
    pub fn as_u16(self) -> u16 {
        match self {
            ErrorCode::NotDefined => 0,
            ErrorCode::FileNotFound => 1,
            ErrorCode::AccessViolation => 2,
            ErrorCode::DiskFull => 3,
            ErrorCode::IllegalOperation => 4,
            ErrorCode::UnknownTid => 5,
            ErrorCode::FileExists => 6,
            ErrorCode::NoSuchUser => 7,
            ErrorCode::OptionRefused => 8,
            ErrorCode::Other(n) => n,
        }
    }
}

impl From<u16> for ErrorCode {
    fn from(n: u16) -> Self {
        match n {
            0 => ErrorCode::NotDefined,
            1 => ErrorCode::FileNotFound,
            2 => ErrorCode::AccessViolation,
            3 => ErrorCode::DiskFull,
            4 => ErrorCode::IllegalOperation,
            5 => ErrorCode::UnknownTid,
            6 => ErrorCode::FileExists,
            7 => ErrorCode::NoSuchUser,
            8 => ErrorCode::OptionRefused,
            n => ErrorCode::Other(n),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u16())
    }
}

/// The options of a request, as sent. Unknown options are dropped (RFC 2347: the
/// server ignores what it does not understand); a value that is not a decimal number
/// leaves its option unset, so the transfer falls back to the RFC 1350 default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestOptions {
    pub blksize: Option<u64>,
    pub tsize: Option<u64>,
    pub timeout: Option<u64>,
    pub windowsize: Option<u64>,
}

/// A read or write request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub filename: String,
    pub mode: Mode,
    pub options: RequestOptions,
}

/// The options a server acknowledges in an OACK (RFC 2347). Only set fields are sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Oack {
    pub blksize: Option<u16>,
    pub tsize: Option<u64>,
    pub timeout: Option<u8>,
    pub windowsize: Option<u16>,
}

impl Oack {
    /// True when no option is acknowledged (then no OACK is sent at all).
    pub fn is_empty(&self) -> bool {
        *self == Oack::default()
    }
}

/// One decoded packet; DATA borrows its payload from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Rrq(Request),
    Wrq(Request),
    Data { block: u16, data: &'a [u8] },
    Ack(u16),
    Error { code: ErrorCode, message: String },
    Oack(Oack),
}

impl<'a> Packet<'a> {
    /// Decodes one datagram.
    pub fn parse(buf: &'a [u8]) -> Result<Packet<'a>, PacketError> {
        let (opcode, rest) = split_u16(buf)?;
        match opcode {
            1 => parse_request(rest).map(Packet::Rrq),
            2 => parse_request(rest).map(Packet::Wrq),
            3 => {
                let (block, data) = split_u16(rest)?;
                Ok(Packet::Data { block, data })
            }
            4 => {
                // Some clients pad short packets; bytes after the block number are ignored.
                let (block, _padding) = split_u16(rest)?;
                Ok(Packet::Ack(block))
            }
            5 => {
                let (code, tail) = split_u16(rest)?;
                // A missing terminator is common from embedded clients; take the text.
                let text = match tail.iter().position(|&b| b == 0) {
                    Some(end) => &tail[..end],
                    None => tail,
                };
                Ok(Packet::Error {
                    code: ErrorCode::from(code),
                    message: String::from_utf8_lossy(text).into_owned(),
                })
            }
            6 => parse_oack(rest).map(Packet::Oack),
            n => Err(PacketError::UnknownOpcode(n)),
        }
    }
}

fn split_u16(buf: &[u8]) -> Result<(u16, &[u8]), PacketError> {
    match buf {
        [a, b, rest @ ..] => Ok((u16::from_be_bytes([*a, *b]), rest)),
        _ => Err(PacketError::Truncated(buf.len())),
    }
}

/// Splits off one NUL-terminated string.
fn split_str<'b>(buf: &'b [u8], what: &'static str) -> Result<(&'b [u8], &'b [u8]), PacketError> {
    let end = buf
        .iter()
        .position(|&b| b == 0)
        .ok_or(PacketError::Unterminated(what))?;
    Ok((&buf[..end], &buf[end + 1..]))
}

fn parse_request(buf: &[u8]) -> Result<Request, PacketError> {
    let (name, rest) = split_str(buf, "file name")?;
    let filename = std::str::from_utf8(name).map_err(|_| PacketError::BadFilename)?;
    if filename.is_empty() {
        return Err(PacketError::BadFilename);
    }
    let (mode, mut rest) = split_str(rest, "mode")?;
    let mode = match std::str::from_utf8(mode)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Ok("octet") => Mode::Octet,
        Ok("netascii") => Mode::Netascii,
        Ok("mail") => Mode::Mail,
        _ => {
            return Err(PacketError::UnknownMode(
                String::from_utf8_lossy(mode).into_owned(),
            ));
        }
    };
    let mut options = RequestOptions::default();
    while !rest.is_empty() {
        let (name, after) = split_str(rest, "option name")?;
        if name.is_empty() {
            // Trailing NUL padding (seen from some ROMs): nothing more to read.
            if after.iter().all(|&b| b == 0) {
                break;
            }
            return Err(PacketError::BadOptions);
        }
        let (value, after) =
            split_str(after, "option value").map_err(|_| PacketError::BadOptions)?;
        rest = after;
        let name = std::str::from_utf8(name).map_err(|_| PacketError::BadOptions)?;
        let value = std::str::from_utf8(value).ok().and_then(parse_number);
        let slot = match name.to_ascii_lowercase().as_str() {
            "blksize" => &mut options.blksize,
            "tsize" => &mut options.tsize,
            "timeout" => &mut options.timeout,
            "windowsize" => &mut options.windowsize,
            _ => continue,
        };
        // The first occurrence wins; a repeated option is ignored.
        if slot.is_none() {
            *slot = value;
        }
    }
    Ok(Request {
        filename: filename.to_string(),
        mode,
        options,
    })
}

/// A decimal option value; at most 20 digits so it fits a u64 check without overflow games.
fn parse_number(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_oack(mut buf: &[u8]) -> Result<Oack, PacketError> {
    let mut oack = Oack::default();
    while !buf.is_empty() {
        let (name, after) = split_str(buf, "option name")?;
        let (value, after) =
            split_str(after, "option value").map_err(|_| PacketError::BadOptions)?;
        buf = after;
        let name = std::str::from_utf8(name).map_err(|_| PacketError::BadOptions)?;
        let value = std::str::from_utf8(value)
            .ok()
            .and_then(parse_number)
            .ok_or(PacketError::BadOptions)?;
        let narrow = |v: u64| u16::try_from(v).map_err(|_| PacketError::BadOptions);
        match name.to_ascii_lowercase().as_str() {
            "blksize" => oack.blksize = Some(narrow(value)?),
            "tsize" => oack.tsize = Some(value),
            "timeout" => {
                oack.timeout = Some(u8::try_from(value).map_err(|_| PacketError::BadOptions)?)
            }
            "windowsize" => oack.windowsize = Some(narrow(value)?),
            _ => return Err(PacketError::BadOptions),
        }
    }
    Ok(oack)
}

/// Appends a request (RRQ or WRQ) to `out`. Used by clients and tests.
pub fn encode_request(out: &mut Vec<u8>, opcode: Opcode, filename: &str, options: &[(&str, u64)]) {
    out.extend_from_slice(&(opcode as u16).to_be_bytes());
    out.extend_from_slice(filename.as_bytes());
    out.push(0);
    out.extend_from_slice(b"octet\0");
    for (name, value) in options {
        push_option(out, name, *value);
    }
}

/// Appends the 4-byte DATA header; the caller appends the payload.
pub fn encode_data_header(out: &mut Vec<u8>, block: u16) {
    out.extend_from_slice(&(Opcode::Data as u16).to_be_bytes());
    out.extend_from_slice(&block.to_be_bytes());
}

/// Appends an ACK.
pub fn encode_ack(out: &mut Vec<u8>, block: u16) {
    out.extend_from_slice(&(Opcode::Ack as u16).to_be_bytes());
    out.extend_from_slice(&block.to_be_bytes());
}

/// Appends an ERROR. NUL bytes in `message` are dropped so the field stays one string.
pub fn encode_error(out: &mut Vec<u8>, code: ErrorCode, message: &str) {
    out.extend_from_slice(&(Opcode::Error as u16).to_be_bytes());
    out.extend_from_slice(&code.as_u16().to_be_bytes());
    out.extend(message.bytes().filter(|&b| b != 0));
    out.push(0);
}

/// Appends an OACK carrying the set fields of `oack`, in a fixed order.
pub fn encode_oack(out: &mut Vec<u8>, oack: &Oack) {
    out.extend_from_slice(&(Opcode::Oack as u16).to_be_bytes());
    if let Some(v) = oack.blksize {
        push_option(out, "blksize", u64::from(v));
    }
    if let Some(v) = oack.tsize {
        push_option(out, "tsize", v);
    }
    if let Some(v) = oack.timeout {
        push_option(out, "timeout", u64::from(v));
    }
    if let Some(v) = oack.windowsize {
        push_option(out, "windowsize", u64::from(v));
    }
}

fn push_option(out: &mut Vec<u8>, name: &str, value: u64) {
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(value.to_string().as_bytes());
    out.push(0);
}

#[cfg(test)]
mod tests;
