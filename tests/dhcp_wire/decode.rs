//! Decoding the captured packets: classification per firmware, and dnsmasq's replies.

use std::net::Ipv4Addr;

use dhcproto::{Decodable, Decoder, v4};
use tabula::boot::{Firmware, Mac};
use tabula::dhcp::{
    BusId, ClientRequest, DecodeError, MessageType, Op, Packet, PxeClass, VendorClass, decode,
    ipxe_feature,
};

use crate::fixtures;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

/// What each captured client must decode to.
struct Expect {
    stem: &'static str,
    firmware: Option<Firmware>,
    ipxe: bool,
    pxe: bool,
    broadcast: bool,
    vendor: &'static str,
    undi: Option<(u16, u16)>,
    uuid: Option<&'static str>,
    client_id: bool,
    max_size: u16,
    bus: Option<(u16, u16)>,
}

const BIOS_UUID: Option<&str> = Some("00000000-7777-4000-8000-525400770010");
const UEFI_UUID: Option<&str> = Some("00000000-7777-4000-8000-525400770011");

fn expectations() -> Vec<Expect> {
    let ovmf = |stem| Expect {
        stem,
        firmware: Some(Firmware::EfiX64),
        ipxe: false,
        pxe: true,
        broadcast: true,
        vendor: "PXEClient:Arch:00007:UNDI:003000",
        undi: Some((3, 0)),
        uuid: UEFI_UUID,
        client_id: false,
        max_size: 1472,
        bus: None,
    };
    let ipxe_efi = |stem| Expect {
        stem,
        firmware: Some(Firmware::EfiX64),
        ipxe: true,
        pxe: true,
        broadcast: false,
        vendor: "PXEClient:Arch:00007:UNDI:003010",
        undi: Some((3, 10)),
        uuid: UEFI_UUID,
        client_id: true,
        max_size: 1472,
        bus: Some((0x1af4, 0x1000)),
    };
    let ipxe_bios = |stem, broadcast, bus| Expect {
        stem,
        firmware: Some(Firmware::Bios),
        ipxe: true,
        pxe: true,
        broadcast,
        vendor: "PXEClient:Arch:00000:UNDI:002001",
        undi: Some((2, 1)),
        uuid: BIOS_UUID,
        client_id: true,
        max_size: 1472,
        bus: Some(bus),
    };
    let linux = |stem| Expect {
        stem,
        firmware: None,
        ipxe: false,
        pxe: false,
        broadcast: false,
        vendor: "pxelab-initramfs",
        undi: None,
        uuid: None,
        client_id: true,
        max_size: 576,
        bus: None,
    };
    let virtio = (0x1af4, 0x1000);
    let e1000 = (0x8086, 0x100e);
    vec![
        ovmf("uefi-ovmf-pxebc-then-ipxe-efi-01-discover"),
        Expect {
            max_size: 65280,
            ..ovmf("uefi-ovmf-pxebc-then-ipxe-efi-03-request")
        },
        ipxe_efi("uefi-ovmf-pxebc-then-ipxe-efi-05-discover"),
        ipxe_efi("uefi-ovmf-pxebc-then-ipxe-efi-07-request"),
        linux("uefi-ovmf-pxebc-then-ipxe-efi-09-discover"),
        linux("uefi-ovmf-pxebc-then-ipxe-efi-11-request"),
        ovmf("uefi-ovmf-pxebc-then-snponly-efi-01-discover"),
        ipxe_efi("uefi-ovmf-pxebc-then-snponly-efi-05-discover"),
        ipxe_efi("uefi-qemu-ipxe-efi-rom-01-discover"),
        ipxe_bios(
            "bios-qemu-ipxe-rom-then-undionly-01-discover",
            false,
            virtio,
        ),
        ipxe_bios("bios-qemu-ipxe-rom-then-undionly-03-request", false, virtio),
        ipxe_bios("bios-qemu-ipxe-rom-then-undionly-05-discover", true, virtio),
        ipxe_bios("bios-qemu-ipxe-rom-then-undionly-07-request", true, virtio),
        linux("bios-qemu-ipxe-rom-then-undionly-09-discover"),
        ipxe_bios(
            "bios-qemu-ipxe-rom-e1000-then-undionly-01-discover",
            false,
            e1000,
        ),
        ipxe_bios(
            "bios-qemu-ipxe-rom-e1000-then-undionly-05-discover",
            true,
            e1000,
        ),
        ipxe_bios("bios-qemu-ipxe-rom-direct-01-discover", false, virtio),
    ]
}

fn req(stem: &str) -> ClientRequest {
    decode(&fixtures::load(stem)).unwrap_or_else(|e| panic!("{stem}: {e}"))
}

#[test]
fn every_captured_client_is_classified() {
    for e in expectations() {
        let r = req(e.stem);
        let s = e.stem;
        let want_type = if s.ends_with("discover") {
            MessageType::Discover
        } else {
            MessageType::Request
        };
        assert_eq!(r.message_type, want_type, "{s}");
        assert_eq!(r.kind.firmware, e.firmware, "{s}");
        assert_eq!(r.kind.ipxe, e.ipxe, "{s}");
        assert_eq!(r.kind.pxe, e.pxe, "{s}");
        assert!(!r.kind.http_boot, "{s}");
        assert_eq!(r.broadcast(), e.broadcast, "{s}");
        assert_eq!(r.max_message_size, Some(e.max_size), "{s}");
        let mac = if s.starts_with("bios") {
            "52:54:00:77:00:10"
        } else {
            "52:54:00:77:00:11"
        };
        assert_eq!(r.mac, mac.parse::<Mac>().expect("mac"), "{s}");
        assert_eq!(r.hops, 0, "{s}");
        assert_eq!(r.giaddr, Ipv4Addr::UNSPECIFIED, "{s}");
        match &r.vendor_class {
            Some(VendorClass::Pxe(PxeClass { arch, undi })) => {
                assert_eq!(arch.and_then(Firmware::from_iana_arch), e.firmware, "{s}");
                assert_eq!(*undi, e.undi, "{s}");
            }
            Some(VendorClass::Other(v)) => assert_eq!(v, e.vendor, "{s}"),
            other => panic!("{s}: vendor class {other:?}"),
        }
        assert_eq!(
            r.machine_id
                .as_ref()
                .and_then(|m| m.uuid())
                .map(|u| u.to_string())
                .as_deref(),
            e.uuid,
            "{s}"
        );
        assert_eq!(r.client_id.is_some(), e.client_id, "{s}");
        if let Some(id) = &r.client_id {
            assert_eq!(id[0], 1, "{s}: htype prefix");
            assert_eq!(&id[1..], &r.mac.octets(), "{s}: client id is 01 + chaddr");
        }
        let bus = r.ipxe.as_ref().and_then(|i| i.bus_id.clone());
        assert_eq!(
            bus,
            e.bus.map(|(vendor, device)| BusId::Pci { vendor, device }),
            "{s}"
        );
        if e.ipxe {
            assert_eq!(
                r.user_classes,
                vec![b"iPXE".to_vec()],
                "{s}: raw, not RFC 3004"
            );
            let info = r.ipxe.as_ref().expect("175");
            assert_eq!(info.version, Some((1, 0, 0)), "{s}");
            assert!(info.has_feature(ipxe_feature::HTTP), "{s}");
            assert!(
                !info.has_feature(ipxe_feature::HTTPS),
                "{s}: Debian iPXE has no HTTPS"
            );
            assert_eq!(r.arch_codes.len(), 1, "{s}");
            assert!(r.requested(175), "{s}");
        }
        if want_type == MessageType::Request {
            assert_eq!(r.server_id, Some(SERVER), "{s}");
            assert!(r.requested_ip.is_some(), "{s}");
        } else {
            assert_eq!(r.server_id, None, "{s}");
        }
        assert!(r.requested(1) && r.requested(3) && r.requested(6), "{s}");
        if r.kind.pxe {
            assert!(
                r.requested(67),
                "{s}: every PXE client asks for the boot file"
            );
        }
    }
}

#[test]
fn vendor_class_text_matches_capture() {
    for e in expectations() {
        let bytes = fixtures::load(e.stem);
        let p = Packet::parse(&bytes).expect("parse");
        assert_eq!(
            p.option(60).as_deref(),
            Some(e.vendor.as_bytes()),
            "{}",
            e.stem
        );
    }
}

#[test]
fn efi_builds_differ_in_ipxe_features() {
    let ipxe_efi = req("uefi-ovmf-pxebc-then-ipxe-efi-05-discover");
    let snponly = req("uefi-ovmf-pxebc-then-snponly-efi-05-discover");
    let rom = req("uefi-qemu-ipxe-efi-rom-01-discover");
    let feat = |r: &ClientRequest, f| r.ipxe.as_ref().is_some_and(|i| i.has_feature(f));
    assert!(feat(&ipxe_efi, ipxe_feature::EFI) && feat(&ipxe_efi, ipxe_feature::SRP));
    assert!(feat(&snponly, ipxe_feature::EFI) && !feat(&snponly, ipxe_feature::SRP));
    assert!(!feat(&rom, ipxe_feature::SRP));
    let bios = req("bios-qemu-ipxe-rom-then-undionly-01-discover");
    assert!(feat(&bios, ipxe_feature::BZIMAGE) && !feat(&bios, ipxe_feature::EFI));
    let pxext = bios
        .ipxe
        .as_ref()
        .and_then(|i| i.get(ipxe_feature::PXE_EXT));
    assert_eq!(pxext, Some(&[2u8][..]));
}

#[test]
fn ipxe_rom_and_undionly_differ_only_in_the_broadcast_flag() {
    let rom = fixtures::load("bios-qemu-ipxe-rom-then-undionly-01-discover");
    let undi = fixtures::load("bios-qemu-ipxe-rom-then-undionly-05-discover");
    assert_eq!(rom[240..], undi[240..], "options byte-identical");
    let (a, b) = (
        req("bios-qemu-ipxe-rom-then-undionly-01-discover"),
        req("bios-qemu-ipxe-rom-then-undionly-05-discover"),
    );
    assert!(!a.broadcast() && b.broadcast());
    assert_eq!(
        ClientRequest {
            xid: 0,
            flags: 0,
            ..a
        },
        ClientRequest {
            xid: 0,
            flags: 0,
            ..b
        }
    );
}

#[test]
fn ovmf_option_order_is_kept_on_the_raw_view() {
    let bytes = fixtures::load("uefi-ovmf-pxebc-then-ipxe-efi-01-discover");
    let p = Packet::parse(&bytes).expect("parse");
    assert_eq!(p.option_codes(), vec![53, 57, 55, 97, 94, 93, 60]);
    let bytes = fixtures::load("bios-qemu-ipxe-rom-then-undionly-01-discover");
    let p = Packet::parse(&bytes).expect("parse");
    assert_eq!(
        p.option_codes(),
        vec![53, 57, 93, 94, 60, 77, 55, 175, 61, 97]
    );
}

/// dnsmasq's OFFER/ACK: the decoder reads server packets too, and they show what the
/// lab's clients booted with.
#[test]
fn dnsmasq_replies_decode() {
    let mut seen = 0;
    for (stem, bytes) in fixtures::all() {
        if !(stem.ends_with("-offer") || stem.ends_with("-ack")) {
            continue;
        }
        seen += 1;
        assert_eq!(decode(&bytes), Err(DecodeError::NotARequest), "{stem}");
        let p = Packet::parse(&bytes).unwrap_or_else(|e| panic!("{stem}: {e}"));
        assert_eq!(p.op(), Op::BootReply, "{stem}");
        assert!(bytes.len() >= 300, "{stem}: dnsmasq pads to 300");
        assert_eq!(p.siaddr(), SERVER, "{stem}");
        assert_eq!(
            p.option(54).as_deref(),
            Some(&SERVER.octets()[..]),
            "{stem}"
        );
        assert_eq!(
            p.option(51).as_deref(),
            Some(&600u32.to_be_bytes()[..]),
            "{stem}"
        );
        assert_eq!(
            p.option(58).as_deref(),
            Some(&300u32.to_be_bytes()[..]),
            "{stem}"
        );
        assert_eq!(
            p.option(59).as_deref(),
            Some(&525u32.to_be_bytes()[..]),
            "{stem}"
        );
        assert_eq!(p.file(), Some(&b""[..]), "{stem}: file field empty");
        assert!(!p.yiaddr().is_unspecified(), "{stem}");
        if let Some(f) = p.option(67) {
            assert_eq!(f.last(), Some(&0), "{stem}: option 67 ends with NUL");
        }
        if let Some(x) = p.option(175) {
            assert_eq!(&*x, &[0xb0, 1, 1, 0xff], "{stem}: 176=1 then an End byte");
        }
        // dhcproto agrees on the basics.
        let m = v4::Message::decode(&mut Decoder::new(&bytes)).expect("dhcproto");
        assert_eq!(m.xid(), p.xid(), "{stem}");
        assert_eq!(m.yiaddr(), p.yiaddr(), "{stem}");
    }
    assert_eq!(seen, 40);
}

#[test]
fn dnsmasq_gave_ipxe_the_script_and_firmware_the_loader() {
    let boot = |stem: &str| {
        let b = fixtures::load(stem);
        let p = Packet::parse(&b).expect("parse");
        p.option(67).map(|v| v.into_owned())
    };
    assert_eq!(
        boot("uefi-ovmf-pxebc-then-ipxe-efi-02-offer").as_deref(),
        Some(&b"ipxe.efi\0"[..])
    );
    assert_eq!(
        boot("uefi-ovmf-pxebc-then-ipxe-efi-06-offer").as_deref(),
        Some(&b"http://10.77.0.1:8080/boot.ipxe\0"[..])
    );
    assert_eq!(
        boot("uefi-ovmf-pxebc-then-ipxe-efi-10-offer"),
        None,
        "udhcpc"
    );
    assert_eq!(
        boot("bios-qemu-ipxe-rom-then-undionly-02-offer").as_deref(),
        Some(&b"undionly.kpxe\0"[..])
    );
}

#[test]
fn every_client_fixture_agrees_with_dhcproto() {
    for (stem, bytes) in fixtures::clients() {
        let r = decode(&bytes).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let m = v4::Message::decode(&mut Decoder::new(&bytes)).expect("dhcproto");
        assert_eq!(m.xid(), r.xid, "{stem}");
        assert_eq!(m.flags().broadcast(), r.broadcast(), "{stem}");
        assert_eq!(&m.chaddr()[..6], &r.mac.octets(), "{stem}");
        assert_eq!(
            m.opts().msg_type().map(u8::from),
            Some(r.message_type.code()),
            "{stem}"
        );
        if let Some(v4::DhcpOption::ClientSystemArchitecture(a)) =
            m.opts().get(v4::OptionCode::ClientSystemArchitecture)
        {
            assert_eq!(Some(u16::from(*a)), r.arch_codes.first().copied(), "{stem}");
        }
    }
}

#[test]
fn relay_agent_info_and_subnet_selection() {
    let base = fixtures::load("uefi-ovmf-pxebc-then-ipxe-efi-01-discover");
    let mut p = fixtures::with_option(
        &base,
        &[
            82, 15, 1, 3, b'p', b'1', b'7', 2, 2, 0xab, 0xcd, 5, 4, 10, 99, 0, 0,
        ],
    );
    p = fixtures::with_option(&p, &[118, 4, 10, 98, 0, 0]);
    p[24..28].copy_from_slice(&[10, 1, 0, 1]);
    p[3] = 1;
    let r = decode(&p).expect("decode");
    let relay = r.relay.as_ref().expect("82");
    assert_eq!(relay.circuit_id.as_deref(), Some(&b"p17"[..]));
    assert_eq!(relay.remote_id.as_deref(), Some(&[0xab, 0xcd][..]));
    assert_eq!(relay.link_selection, Some(Ipv4Addr::new(10, 99, 0, 0)));
    assert_eq!(relay.raw.len(), 15);
    assert_eq!(r.subnet_selection, Some(Ipv4Addr::new(10, 98, 0, 0)));
    assert_eq!(r.giaddr, Ipv4Addr::new(10, 1, 0, 1));
    assert_eq!(r.hops, 1);
    // Classification is unaffected.
    assert_eq!(r.kind.firmware, Some(Firmware::EfiX64));
}

#[test]
fn arch_list_first_usable_code_decides() {
    let base = fixtures::load("uefi-ovmf-pxebc-then-ipxe-efi-01-discover");
    let p = fixtures::replace_option(&base, 93, &[93, 6, 0, 2, 0, 9, 0, 7]);
    let r = decode(&p).expect("decode");
    assert_eq!(r.arch_codes, vec![2, 9, 7]);
    assert_eq!(r.kind.firmware, Some(Firmware::EfiX64));
    let http = fixtures::replace_option(&base, 60, b"\x3c\x21HTTPClient:Arch:00016:UNDI:003001");
    let http = fixtures::replace_option(&http, 93, &[93, 2, 0, 16]);
    let r = decode(&http).expect("decode");
    assert!(r.kind.http_boot && !r.kind.pxe);
    assert_eq!(r.kind.firmware, Some(Firmware::EfiX64Http));
}

#[test]
fn user_class_rfc3004_form_is_ipxe_too() {
    let base = fixtures::load("bios-qemu-ipxe-rom-then-undionly-01-discover");
    let p = fixtures::replace_option(&base, 77, &[77, 5, 4, b'i', b'P', b'X', b'E']);
    let p = fixtures::replace_option(&p, 175, &[]);
    let r = decode(&p).expect("decode");
    assert!(r.ipxe.is_none());
    assert!(r.kind.ipxe, "RFC 3004 user class alone marks iPXE");
}
