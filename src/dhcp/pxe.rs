//! Parsers for the options that say what kind of netboot client is asking: vendor class
//! (60), user class (77), client machine id (97), client network interface (94), iPXE's
//! encapsulated options (175) and relay agent information (82), plus the classification
//! into a [`ClientKind`].
//!
//! Pure functions over byte slices that never panic: a malformed informational option
//! degrades to "unknown" rather than failing the packet, except option 82, whose
//! sub-options a relay must get right. Nothing here decides what to boot.

use std::fmt;
use std::net::Ipv4Addr;

use crate::boot::Firmware;

/// Option 60 as sent by netboot clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VendorClass {
    /// `PXEClient[:Arch:xxxxx[:UNDI:yyyzzz]]`: a PXE ROM (or iPXE pretending to be one).
    Pxe(PxeClass),
    /// `HTTPClient[:Arch:xxxxx[:UNDI:yyyzzz]]`: UEFI HTTP boot.
    Http(PxeClass),
    /// Anything else (udhcpc's `udhcp 1.35.0`, Windows' `MSFT 5.0`, …), kept verbatim.
    Other(String),
}

/// The fields after `PXEClient` / `HTTPClient`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PxeClass {
    /// The five-digit architecture (same codes as option 93).
    pub arch: Option<u16>,
    /// UNDI major and minor version (`UNDI:003016` is 3.16).
    pub undi: Option<(u16, u16)>,
}

impl VendorClass {
    /// Parses option 60 bytes. Non-UTF-8 bytes are replaced, never rejected.
    pub fn parse(raw: &[u8]) -> VendorClass {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end_matches('\0');
        let mut parts = text.split(':');
        let head = parts.next().unwrap_or_default();
        let wrap: fn(PxeClass) -> VendorClass = match head {
            "PXEClient" => VendorClass::Pxe,
            "HTTPClient" => VendorClass::Http,
            _ => return VendorClass::Other(text.to_string()),
        };
        let mut class = PxeClass::default();
        while let Some(key) = parts.next() {
            let Some(value) = parts.next() else { break };
            match key {
                "Arch" if value.len() == 5 => class.arch = value.parse().ok(),
                // By bytes, not chars: a lossily decoded byte is 3 bytes long, so
                // `value[..3]` could split it (found by `fuzz/run.sh`).
                "UNDI" if value.len() == 6 && value.is_ascii() => {
                    class.undi = value[..3].parse().ok().zip(value[3..].parse().ok());
                }
                _ => {}
            }
        }
        wrap(class)
    }

    /// The PXE/HTTP fields, if this is a netboot vendor class.
    pub fn pxe_class(&self) -> Option<&PxeClass> {
        match self {
            VendorClass::Pxe(c) | VendorClass::Http(c) => Some(c),
            VendorClass::Other(_) => None,
        }
    }
}

/// Splits option 77. RFC 3004 says `len data len data…`, but iPXE and many ROMs send one
/// bare string (`iPXE`): if the bytes do not parse exactly as RFC 3004 instances, the
/// whole option is taken as a single class.
pub fn user_classes(raw: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let len = usize::from(raw[i]);
        match raw.get(i + 1..i + 1 + len) {
            Some(class) if len > 0 => out.push(class.to_vec()),
            _ => return vec![raw.to_vec()],
        }
        i += 1 + len;
    }
    if out.is_empty() && !raw.is_empty() {
        return vec![raw.to_vec()];
    }
    out
}

/// A client's SMBIOS system UUID from option 97 (type 0 + 16 bytes, RFC 4578).
///
/// Stored and printed in the standard RFC 4122 text order, the one `dmidecode`, QEMU's
/// `-uuid` and operators use. On the wire PXE firmware sends the SMBIOS byte order, whose
/// first three fields are little-endian: `-uuid 00000000-7777-4000-8000-525400770010`
/// arrives as `00000000 7777 0040 8000 525400770010`. [`MachineUuid::from_wire`] and
/// [`MachineUuid::to_wire`] do that swap.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MachineUuid(pub [u8; 16]);

impl MachineUuid {
    /// From the 16 bytes after the type byte of option 97.
    pub fn from_wire(w: [u8; 16]) -> MachineUuid {
        MachineUuid(swap_smbios(w))
    }

    /// The 16 bytes as they go into option 97 (after the type byte).
    pub fn to_wire(self) -> [u8; 16] {
        swap_smbios(self.0)
    }

    /// The all-zero UUID QEMU sends without `-uuid`, and some boards send when unset.
    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }
}

fn swap_smbios(b: [u8; 16]) -> [u8; 16] {
    let mut o = b;
    o[0..4].reverse();
    o[4..6].reverse();
    o[6..8].reverse();
    o
}

impl fmt::Display for MachineUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for MachineUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MachineUuid({self})")
    }
}

/// Option 97 as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MachineId {
    /// Type 0 with 16 bytes: a UUID.
    Uuid(MachineUuid),
    /// Any other shape, kept raw (some broken ROMs send 16 bytes without the type).
    Other(Vec<u8>),
}

impl MachineId {
    /// Parses option 97.
    pub fn parse(raw: &[u8]) -> MachineId {
        match raw {
            [0, rest @ ..] => match <[u8; 16]>::try_from(rest) {
                Ok(w) => MachineId::Uuid(MachineUuid::from_wire(w)),
                Err(_) => MachineId::Other(raw.to_vec()),
            },
            _ => MachineId::Other(raw.to_vec()),
        }
    }

    /// The UUID, if option 97 carried one.
    pub fn uuid(&self) -> Option<MachineUuid> {
        match self {
            MachineId::Uuid(u) => Some(*u),
            MachineId::Other(_) => None,
        }
    }
}

/// iPXE feature indicator codes inside option 175 (from iPXE's documented option list).
pub mod ipxe_feature {
    pub const PXE_EXT: u8 = 0x10;
    pub const ISCSI: u8 = 0x11;
    pub const AOE: u8 = 0x12;
    pub const HTTP: u8 = 0x13;
    pub const HTTPS: u8 = 0x14;
    pub const TFTP: u8 = 0x15;
    pub const FTP: u8 = 0x16;
    pub const DNS: u8 = 0x17;
    pub const BZIMAGE: u8 = 0x18;
    pub const MULTIBOOT: u8 = 0x19;
    pub const SLAM: u8 = 0x1a;
    pub const SRP: u8 = 0x1b;
    pub const NBI: u8 = 0x20;
    pub const PXE: u8 = 0x21;
    pub const ELF: u8 = 0x22;
    pub const COMBOOT: u8 = 0x23;
    pub const EFI: u8 = 0x24;
    pub const FCOE: u8 = 0x25;
    pub const VLAN: u8 = 0x26;
    pub const MENU: u8 = 0x27;
    pub const SDI: u8 = 0x28;
    pub const NFS: u8 = 0x29;
}

/// Sub-option 176 ("no-pxedhcp"): set to 1 in a reply so iPXE skips waiting for proxyDHCP.
pub const IPXE_NO_PXEDHCP: u8 = 176;
const IPXE_BUS_ID: u8 = 177;
const IPXE_VERSION: u8 = 235;

/// The NIC iPXE is driving (sub-option 177).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusId {
    /// Bus type 1: PCI vendor and device id (virtio-net is 1af4:1000, e1000 8086:100e).
    Pci { vendor: u16, device: u16 },
    /// Any other bus type, raw.
    Other { bus_type: u8, data: Vec<u8> },
}

/// What iPXE says about itself in option 175.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpxeInfo {
    /// Sub-option 177.
    pub bus_id: Option<BusId>,
    /// Sub-option 235: major, minor, patch.
    pub version: Option<(u8, u8, u8)>,
    /// Every sub-option in order as (code, payload), features included.
    pub sub_options: Vec<(u8, Vec<u8>)>,
}

impl IpxeInfo {
    /// Parses option 175. Pad (0) is skipped, End (255) stops (dnsmasq puts one inside
    /// its 175); a sub-option running past the end stops the walk, keeping what came before.
    pub fn parse(raw: &[u8]) -> IpxeInfo {
        let mut info = IpxeInfo::default();
        let mut i = 0;
        while i < raw.len() {
            let code = raw[i];
            if code == 0 {
                i += 1;
                continue;
            }
            if code == 255 {
                break;
            }
            let Some(&len) = raw.get(i + 1) else { break };
            let Some(data) = raw.get(i + 2..i + 2 + usize::from(len)) else {
                break;
            };
            match (code, data) {
                (IPXE_BUS_ID, [1, v0, v1, d0, d1]) => {
                    info.bus_id = Some(BusId::Pci {
                        vendor: u16::from_be_bytes([*v0, *v1]),
                        device: u16::from_be_bytes([*d0, *d1]),
                    });
                }
                (IPXE_BUS_ID, [t, rest @ ..]) => {
                    info.bus_id = Some(BusId::Other {
                        bus_type: *t,
                        data: rest.to_vec(),
                    });
                }
                (IPXE_VERSION, [a, b, c]) => info.version = Some((*a, *b, *c)),
                _ => {}
            }
            info.sub_options.push((code, data.to_vec()));
            i += 2 + usize::from(len);
        }
        info
    }

    /// A sub-option's payload.
    pub fn get(&self, code: u8) -> Option<&[u8]> {
        self.sub_options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, d)| d.as_slice())
    }

    /// Whether a feature (see [`ipxe_feature`]) is advertised with a non-zero value.
    pub fn has_feature(&self, code: u8) -> bool {
        self.get(code).is_some_and(|d| d.iter().any(|&b| b != 0))
    }
}

/// Option 82 (RFC 3046), with the sub-options tabula uses decoded and the raw bytes kept
/// so the reply can echo them verbatim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayInfo {
    /// The option payload exactly as received.
    pub raw: Vec<u8>,
    /// Sub-option 1.
    pub circuit_id: Option<Vec<u8>>,
    /// Sub-option 2.
    pub remote_id: Option<Vec<u8>>,
    /// Sub-option 5 (RFC 3527): the subnet the client is on, when it differs from giaddr.
    pub link_selection: Option<Ipv4Addr>,
}

/// Why option 82 is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("relay agent information (82): {0}")]
pub struct RelayInfoError(pub &'static str);

impl RelayInfo {
    /// Parses option 82 sub-options (each `code len data`, no pad/end).
    pub fn parse(raw: &[u8]) -> Result<RelayInfo, RelayInfoError> {
        let mut info = RelayInfo {
            raw: raw.to_vec(),
            circuit_id: None,
            remote_id: None,
            link_selection: None,
        };
        let mut i = 0;
        while i < raw.len() {
            let code = raw[i];
            let len = usize::from(
                *raw.get(i + 1)
                    .ok_or(RelayInfoError("sub-option without length"))?,
            );
            let data = raw
                .get(i + 2..i + 2 + len)
                .ok_or(RelayInfoError("sub-option runs past the option"))?;
            match code {
                1 => info.circuit_id = Some(data.to_vec()),
                2 => info.remote_id = Some(data.to_vec()),
                5 => {
                    let a = <[u8; 4]>::try_from(data)
                        .map_err(|_| RelayInfoError("link selection is not 4 bytes"))?;
                    info.link_selection = Some(Ipv4Addr::from(a));
                }
                _ => {}
            }
            i += 2 + len;
        }
        Ok(info)
    }
}

/// What kind of netboot client this is, as far as the reply is concerned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientKind {
    /// From the first usable option 93 code, else from `Arch:` in option 60.
    pub firmware: Option<Firmware>,
    /// Vendor class starts with `PXEClient`.
    pub pxe: bool,
    /// Vendor class starts with `HTTPClient`, or the architecture is an HTTP-boot one.
    pub http_boot: bool,
    /// User class `iPXE` or option 175 present.
    pub ipxe: bool,
}

impl ClientKind {
    /// Classifies from the parsed options.
    pub fn classify(
        arch_codes: &[u16],
        vendor_class: Option<&VendorClass>,
        user_classes: &[Vec<u8>],
        ipxe: Option<&IpxeInfo>,
    ) -> ClientKind {
        let firmware = arch_codes
            .iter()
            .find_map(|&c| Firmware::from_iana_arch(c))
            .or_else(|| {
                vendor_class
                    .and_then(VendorClass::pxe_class)
                    .and_then(|c| c.arch)
                    .and_then(Firmware::from_iana_arch)
            });
        ClientKind {
            firmware,
            pxe: matches!(vendor_class, Some(VendorClass::Pxe(_))),
            http_boot: matches!(vendor_class, Some(VendorClass::Http(_)))
                || firmware.is_some_and(Firmware::is_http_boot),
            ipxe: ipxe.is_some() || user_classes.iter().any(|c| c == b"iPXE"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_class_forms() {
        assert_eq!(
            VendorClass::parse(b"PXEClient:Arch:00007:UNDI:003016"),
            VendorClass::Pxe(PxeClass {
                arch: Some(7),
                undi: Some((3, 16))
            })
        );
        assert_eq!(
            VendorClass::parse(b"HTTPClient:Arch:00016:UNDI:003001"),
            VendorClass::Http(PxeClass {
                arch: Some(16),
                undi: Some((3, 1))
            })
        );
        assert_eq!(
            VendorClass::parse(b"PXEClient"),
            VendorClass::Pxe(PxeClass::default())
        );
        assert_eq!(
            VendorClass::parse(b"PXEClient:Arch:xx"),
            VendorClass::Pxe(PxeClass::default())
        );
        // A non-UTF-8 byte becomes U+FFFD (3 bytes): "0\u{FFFD}30" is 6 bytes long
        // but not splittable at byte 3 (libFuzzer found the panic).
        assert_eq!(
            VendorClass::parse(b"PXEClient:Arch:00000:UNDI:0\x8c30"),
            VendorClass::Pxe(PxeClass {
                arch: Some(0),
                undi: None
            })
        );
        assert_eq!(
            VendorClass::parse(b"udhcp 1.35.0"),
            VendorClass::Other("udhcp 1.35.0".into())
        );
    }

    #[test]
    fn user_class_raw_and_rfc3004() {
        assert_eq!(user_classes(b"iPXE"), vec![b"iPXE".to_vec()]);
        assert_eq!(
            user_classes(b"\x04iPXE\x03abc"),
            vec![b"iPXE".to_vec(), b"abc".to_vec()]
        );
        assert_eq!(user_classes(b"\x00"), vec![b"\x00".to_vec()]);
        assert!(user_classes(b"").is_empty());
    }

    #[test]
    fn uuid_is_smbios_mixed_endian_on_the_wire() {
        let wire = hex::decode("0000000000777700408000525400770010").expect("hex");
        let id = MachineId::parse(&wire);
        let uuid = id.uuid().expect("uuid");
        assert_eq!(uuid.to_string(), "00000000-7777-4000-8000-525400770010");
        // A UUID whose first fields are not palindromes shows the swap.
        let w = [
            0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        let u = MachineUuid::from_wire(w);
        assert_eq!(u.to_string(), "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(u.to_wire(), w);
        assert!(matches!(MachineId::parse(&[1, 2, 3]), MachineId::Other(_)));
    }

    #[test]
    fn ipxe_175_with_dnsmasq_end_byte() {
        let i = IpxeInfo::parse(&[0xb0, 1, 1, 0xff]);
        assert_eq!(i.get(IPXE_NO_PXEDHCP), Some(&[1u8][..]));
        let t = IpxeInfo::parse(&[
            0xb1, 5, 1, 0x1a, 0xf4, 0x10, 0x00, 0xeb, 3, 1, 0, 0, 0x13, 9,
        ]);
        assert_eq!(
            t.bus_id,
            Some(BusId::Pci {
                vendor: 0x1af4,
                device: 0x1000
            })
        );
        assert_eq!(t.version, Some((1, 0, 0)));
        assert!(!t.has_feature(ipxe_feature::HTTP), "truncated feature");
    }

    #[test]
    fn relay_info() {
        let r = RelayInfo::parse(&[1, 2, b'e', b'0', 2, 1, 9, 5, 4, 10, 0, 0, 0]).expect("ok");
        assert_eq!(r.circuit_id.as_deref(), Some(&b"e0"[..]));
        assert_eq!(r.remote_id.as_deref(), Some(&[9u8][..]));
        assert_eq!(r.link_selection, Some(Ipv4Addr::new(10, 0, 0, 0)));
        assert!(RelayInfo::parse(&[5, 3, 1, 2, 3]).is_err());
        assert!(RelayInfo::parse(&[1]).is_err());
    }

    #[test]
    fn classification_prefers_93_then_60() {
        let k = ClientKind::classify(&[2, 9], None, &[], None);
        assert_eq!(
            k.firmware,
            Some(Firmware::EfiX64),
            "first usable code decides"
        );
        let vc = VendorClass::parse(b"HTTPClient:Arch:00016");
        let k = ClientKind::classify(&[], Some(&vc), &[], None);
        assert_eq!(k.firmware, Some(Firmware::EfiX64Http));
        assert!(k.http_boot && !k.pxe && !k.ipxe);
    }
}
