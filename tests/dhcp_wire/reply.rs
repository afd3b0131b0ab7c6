//! Replies built for the captured clients, checked field by field after decoding them
//! again with both dhcproto and tabula's own decoder.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use dhcproto::{Decodable, Decoder, v4};
use tabula::boot::Firmware;
use tabula::dhcp::{
    ClientRequest, Destination, MessageType, Packet, ReplyError, ReplyKind, ReplySpec, build,
    decode, reply_destination,
};

use crate::fixtures;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 146);
const SCRIPT: &str = "http://10.77.0.1:8080/boot.ipxe";

fn spec(kind: ReplyKind, boot_file: Option<&str>) -> ReplySpec {
    ReplySpec {
        yiaddr: CLIENT,
        next_server: SERVER,
        lease_time: Some(Duration::from_secs(600)),
        subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        router: Some(SERVER),
        dns: vec![SERVER],
        broadcast_addr: Some(Ipv4Addr::new(10, 77, 0, 255)),
        boot_file: boot_file.map(str::to_string),
        ..ReplySpec::new(kind, SERVER)
    }
}

/// The boot file the lab's policy gives each kind of client.
fn boot_file_for(r: &ClientRequest) -> Option<&'static str> {
    match (r.kind.ipxe, r.kind.firmware) {
        (true, _) => Some(SCRIPT),
        (false, Some(Firmware::Bios)) => Some("undionly.kpxe"),
        (false, Some(_)) => Some("snponly.efi"),
        (false, None) => None,
    }
}

fn opt(m: &v4::Message, code: u8) -> Option<v4::DhcpOption> {
    m.opts().get(v4::OptionCode::from(code)).cloned()
}

#[test]
fn golden_replies_for_every_captured_client() {
    let mut count = 0;
    for (stem, bytes) in fixtures::clients() {
        let req = decode(&bytes).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let kind = match req.message_type {
            MessageType::Discover => ReplyKind::Offer,
            _ => ReplyKind::Ack,
        };
        let file = boot_file_for(&req);
        let out = build(&req, &spec(kind, file)).unwrap_or_else(|e| panic!("{stem}: {e}"));
        count += 1;

        assert!(out.len() >= 300, "{stem}: {} bytes", out.len());
        let m = v4::Message::decode(&mut Decoder::new(&out)).expect("dhcproto decodes");
        assert_eq!(m.opcode(), v4::Opcode::BootReply, "{stem}");
        assert_eq!(m.xid(), req.xid, "{stem}");
        assert_eq!(u16::from(m.flags()), req.flags, "{stem}");
        assert_eq!(m.yiaddr(), CLIENT, "{stem}");
        assert_eq!(m.siaddr(), SERVER, "{stem}");
        assert_eq!(m.giaddr(), req.giaddr, "{stem}");
        assert_eq!(m.ciaddr(), Ipv4Addr::UNSPECIFIED, "{stem}");
        assert_eq!(m.htype(), v4::HType::Eth, "{stem}");
        assert_eq!(&m.chaddr()[..6], &req.mac.octets(), "{stem}");

        let want_type = if kind == ReplyKind::Offer {
            v4::MessageType::Offer
        } else {
            v4::MessageType::Ack
        };
        assert_eq!(m.opts().msg_type(), Some(want_type), "{stem}");
        assert_eq!(
            opt(&m, 54),
            Some(v4::DhcpOption::ServerIdentifier(SERVER)),
            "{stem}"
        );
        assert_eq!(
            opt(&m, 51),
            Some(v4::DhcpOption::AddressLeaseTime(600)),
            "{stem}"
        );
        assert_eq!(opt(&m, 58), Some(v4::DhcpOption::Renewal(300)), "{stem}");
        assert_eq!(opt(&m, 59), Some(v4::DhcpOption::Rebinding(525)), "{stem}");
        assert_eq!(
            opt(&m, 1),
            Some(v4::DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0))),
            "{stem}"
        );
        assert_eq!(
            opt(&m, 3),
            Some(v4::DhcpOption::Router(vec![SERVER])),
            "{stem}"
        );
        assert_eq!(
            opt(&m, 6),
            Some(v4::DhcpOption::DomainNameServer(vec![SERVER])),
            "{stem}"
        );
        assert_eq!(
            opt(&m, 60),
            None,
            "{stem}: no vendor class in full-mode PXE replies"
        );
        assert_eq!(opt(&m, 43), None, "{stem}");

        match file {
            Some(f) => {
                let mut with_nul = f.as_bytes().to_vec();
                with_nul.push(0);
                assert_eq!(
                    opt(&m, 67),
                    Some(v4::DhcpOption::BootfileName(with_nul)),
                    "{stem}"
                );
                // dhcproto returns the header field with its NUL.
                let header = m.fname().expect("file field");
                assert_eq!(
                    header.strip_suffix(&[0]).unwrap_or(header),
                    f.as_bytes(),
                    "{stem}"
                );
            }
            None => {
                assert_eq!(opt(&m, 67), None, "{stem}");
                assert_eq!(m.fname(), None, "{stem}");
            }
        }
        let ipxe = opt(&m, 175);
        if req.kind.ipxe {
            let want = v4::DhcpOption::Unknown(v4::UnknownOption::new(
                v4::OptionCode::from(175),
                vec![0xb0, 1, 1],
            ));
            assert_eq!(ipxe, Some(want), "{stem}");
        } else {
            assert_eq!(ipxe, None, "{stem}");
        }

        // tabula's own decoder reads it too, End is intact, the padding is after End.
        let p = Packet::parse(&out).expect("own decoder");
        assert_eq!(p.option(175).is_some(), req.kind.ipxe, "{stem}");
        let end = fixtures::end_offset(&out);
        assert!(
            out[end + 1..].iter().all(|&b| b == 0),
            "{stem}: only padding after End"
        );
        assert_eq!(
            p.file().map(<[u8]>::len),
            Some(file.map_or(0, str::len)),
            "{stem}"
        );
    }
    assert_eq!(count, 40);
}

#[test]
fn padding_reaches_exactly_300_and_end_is_kept() {
    let req = decode(&fixtures::load("uefi-ovmf-pxebc-then-ipxe-efi-09-discover")).unwrap();
    let out = build(&req, &ReplySpec::new(ReplyKind::Ack, SERVER)).unwrap();
    assert_eq!(out.len(), 300);
    let end = fixtures::end_offset(&out);
    assert!(end < 260, "small ACK, End early");
}

#[test]
fn proxy_offer_to_uefi_pxe() {
    let req = decode(&fixtures::load("uefi-ovmf-pxebc-then-ipxe-efi-01-discover")).unwrap();
    let mut s = spec(ReplyKind::ProxyOffer, Some("snponly.efi"));
    s.yiaddr = CLIENT; // ignored for proxy
    let out = build(&req, &s).unwrap();
    let m = v4::Message::decode(&mut Decoder::new(&out)).unwrap();
    assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(m.siaddr(), SERVER);
    assert_eq!(m.opts().msg_type(), Some(v4::MessageType::Offer));
    assert_eq!(
        opt(&m, 60),
        Some(v4::DhcpOption::ClassIdentifier(b"PXEClient".to_vec()))
    );
    assert_eq!(
        opt(&m, 43),
        Some(v4::DhcpOption::VendorExtensions(vec![6, 1, 8, 255]))
    );
    let guid = Packet::parse(&fixtures::load("uefi-ovmf-pxebc-then-ipxe-efi-01-discover"))
        .unwrap()
        .option(97)
        .unwrap()
        .into_owned();
    assert_eq!(
        opt(&m, 97),
        Some(v4::DhcpOption::ClientMachineIdentifier(guid))
    );
    for code in [51, 58, 59, 1, 3, 6, 28, 175] {
        assert_eq!(
            opt(&m, code),
            None,
            "option {code} has no place in a proxy reply"
        );
    }
    assert!(out.len() >= 300);
    let dest = reply_destination(&req, ReplyKind::ProxyOffer, m.yiaddr(), any_source());
    assert_eq!(dest, Destination::Broadcast);
}

#[test]
fn proxy_ack_to_ipxe_on_4011_goes_back_to_the_source() {
    let mut bytes = fixtures::load("uefi-ovmf-pxebc-then-ipxe-efi-07-request");
    bytes[12..16].copy_from_slice(&CLIENT.octets());
    let req = decode(&bytes).unwrap();
    let out = build(&req, &spec(ReplyKind::ProxyAck, Some(SCRIPT))).unwrap();
    let m = v4::Message::decode(&mut Decoder::new(&out)).unwrap();
    assert_eq!(m.opts().msg_type(), Some(v4::MessageType::Ack));
    assert_eq!(m.ciaddr(), CLIENT);
    assert_eq!(opt(&m, 43), None, "iPXE needs no discovery control");
    assert!(opt(&m, 175).is_some());
    let src = SocketAddrV4::new(CLIENT, 4011);
    assert_eq!(
        reply_destination(&req, ReplyKind::ProxyAck, Ipv4Addr::UNSPECIFIED, src),
        Destination::Unicast(src)
    );
}

#[test]
fn http_boot_clients_get_httpclient_back() {
    let base = fixtures::load("uefi-ovmf-pxebc-then-ipxe-efi-01-discover");
    let p = fixtures::replace_option(&base, 60, b"\x3c\x21HTTPClient:Arch:00016:UNDI:003001");
    let p = fixtures::replace_option(&p, 93, &[93, 2, 0, 16]);
    let req = decode(&p).unwrap();
    let out = build(
        &req,
        &spec(ReplyKind::Offer, Some("http://10.77.0.1:8080/ipxe.efi")),
    )
    .unwrap();
    let m = v4::Message::decode(&mut Decoder::new(&out)).unwrap();
    assert_eq!(
        opt(&m, 60),
        Some(v4::DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()))
    );
}

#[test]
fn nak_carries_only_what_it_may() {
    let mut bytes = fixtures::load("uefi-ovmf-pxebc-then-ipxe-efi-11-request");
    bytes[24..28].copy_from_slice(&[10, 1, 0, 1]);
    let bytes = fixtures::with_option(&bytes, &[82, 4, 1, 2, b'e', b'7']);
    let req = decode(&bytes).unwrap();
    let mut s = spec(ReplyKind::Nak, Some("ignored.efi"));
    s.message = Some("address not available".into());
    let out = build(&req, &s).unwrap();
    let m = v4::Message::decode(&mut Decoder::new(&out)).unwrap();
    assert_eq!(m.opts().msg_type(), Some(v4::MessageType::Nak));
    assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(m.siaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(
        m.flags().broadcast(),
        "relayed NAK asks the relay to broadcast"
    );
    assert_eq!(m.fname(), None);
    for code in [51, 1, 3, 6, 67] {
        assert_eq!(opt(&m, code), None, "option {code} in a NAK");
    }
    // Option 82 echoed verbatim, and last before End.
    let end = fixtures::end_offset(&out);
    assert_eq!(&out[end - 6..end], &[82, 4, 1, 2, b'e', b'7']);
    assert_eq!(
        reply_destination(&req, ReplyKind::Nak, Ipv4Addr::UNSPECIFIED, any_source()),
        Destination::Relay(SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 1), 67))
    );
}

#[test]
fn destinations_follow_rfc2131() {
    let ovmf = decode(&fixtures::load("uefi-ovmf-pxebc-then-ipxe-efi-01-discover")).unwrap();
    assert_eq!(
        reply_destination(&ovmf, ReplyKind::Offer, CLIENT, any_source()),
        Destination::Broadcast,
        "OVMF sets the broadcast flag"
    );
    let rom = decode(&fixtures::load(
        "bios-qemu-ipxe-rom-then-undionly-01-discover",
    ))
    .unwrap();
    assert_eq!(
        reply_destination(&rom, ReplyKind::Offer, CLIENT, any_source()),
        Destination::UnicastToHardware {
            ip: CLIENT,
            mac: rom.mac,
            port: 68
        }
    );
    let undionly = decode(&fixtures::load(
        "bios-qemu-ipxe-rom-then-undionly-05-discover",
    ))
    .unwrap();
    assert_eq!(
        reply_destination(&undionly, ReplyKind::Offer, CLIENT, any_source()),
        Destination::Broadcast
    );
    let mut renew = fixtures::load("uefi-ovmf-pxebc-then-ipxe-efi-11-request");
    renew[12..16].copy_from_slice(&CLIENT.octets());
    let renew = decode(&renew).unwrap();
    assert_eq!(
        reply_destination(&renew, ReplyKind::Ack, CLIENT, any_source()),
        Destination::Unicast(SocketAddrV4::new(CLIENT, 68))
    );
    assert_eq!(
        reply_destination(&rom, ReplyKind::Nak, Ipv4Addr::UNSPECIFIED, any_source()),
        Destination::Broadcast
    );
    assert_eq!(
        Destination::Broadcast.addr(),
        SocketAddrV4::new(Ipv4Addr::BROADCAST, 68)
    );
}

#[test]
fn oversize_and_limits() {
    let req = decode(&fixtures::load("uefi-ovmf-pxebc-then-ipxe-efi-05-discover")).unwrap();
    let long = format!("http://10.77.0.1:8080/{}", "a".repeat(240));
    let err = build(&req, &spec(ReplyKind::Offer, Some(&long))).unwrap_err();
    assert!(
        matches!(err, ReplyError::BadOptionLength { code: 67, .. }),
        "{err}"
    );
    // A URL longer than the file field still goes in option 67 only.
    let url = format!("http://10.77.0.1:8080/{}", "b".repeat(150));
    let out = build(&req, &spec(ReplyKind::Offer, Some(&url))).unwrap();
    let p = Packet::parse(&out).unwrap();
    assert_eq!(p.file(), Some(&b""[..]));
    assert_eq!(p.option(67).map(|v| v.len()), Some(url.len() + 1));
    let mut no_lease = spec(ReplyKind::Offer, None);
    no_lease.lease_time = None;
    assert_eq!(build(&req, &no_lease), Err(ReplyError::MissingLeaseTime));
    // udhcpc's 576-byte limit: unrequested options go first, then it is an error.
    let linux = decode(&fixtures::load("uefi-ovmf-pxebc-then-ipxe-efi-09-discover")).unwrap();
    let mut big = spec(ReplyKind::Offer, None);
    big.tftp_server_name = Some("t".repeat(200));
    big.dns = vec![SERVER; 50];
    let out = build(&linux, &big).unwrap();
    assert!(out.len() <= 548);
    assert!(
        Packet::parse(&out).unwrap().option(66).is_none(),
        "66 was not requested"
    );
    big.hostname = Some("h".repeat(250));
    assert!(matches!(
        build(&linux, &big),
        Err(ReplyError::TooLarge { .. })
    ));
}

fn any_source() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68)
}
