//! Hostile input: nothing may panic; every outcome is a typed error or a valid decode.

use tabula::dhcp::{DecodeError, MIN_PACKET_LEN, Packet, ReplyKind, ReplySpec, build, decode};

use crate::fixtures::{self, Rng};

/// Decoding, and building a reply to whatever decodes, must not panic.
fn exercise(bytes: &[u8]) -> Result<(), DecodeError> {
    let r = decode(bytes)?;
    let spec = ReplySpec {
        lease_time: Some(std::time::Duration::from_secs(60)),
        boot_file: Some("x.efi".into()),
        ..ReplySpec::new(ReplyKind::Offer, std::net::Ipv4Addr::new(10, 0, 0, 1))
    };
    let _ = build(&r, &spec);
    Ok(())
}

#[test]
fn truncation_at_every_length() {
    for (stem, bytes) in fixtures::all() {
        for len in 0..bytes.len() {
            let cut = &bytes[..len];
            let res = if stem.ends_with("discover") || stem.ends_with("request") {
                exercise(cut)
            } else {
                Packet::parse(cut).map(|_| ())
            };
            if len < MIN_PACKET_LEN {
                assert_eq!(res, Err(DecodeError::TooShort { len }), "{stem} at {len}");
            }
        }
    }
}

#[test]
fn wrong_option_lengths_are_typed_errors() {
    let base = fixtures::load("uefi-ovmf-pxebc-then-ipxe-efi-07-request");
    let cases: [(u8, &[u8]); 6] = [
        (53, &[53, 2, 1, 1]),
        (50, &[50, 3, 10, 77, 0]),
        (54, &[54, 5, 10, 77, 0, 1, 9]),
        (57, &[57, 1, 5]),
        (93, &[93, 3, 0, 7, 0]),
        (93, &[93, 0]),
    ];
    for (code, opt) in cases {
        let p = fixtures::replace_option(&base, code, opt);
        match decode(&p) {
            Err(DecodeError::BadOption { code: c, .. }) => assert_eq!(c, code),
            other => panic!("option {code} {opt:?}: {other:?}"),
        }
    }
    let p = fixtures::with_option(&base, &[82, 3, 5, 4, 1]);
    assert!(matches!(
        decode(&p),
        Err(DecodeError::BadOption { code: 82, .. })
    ));
    // Informational options degrade instead: odd 94, non-UUID 97.
    let p = fixtures::replace_option(&base, 94, &[94, 2, 1, 3]);
    assert_eq!(decode(&p).map(|r| r.network_interface), Ok(None));
    let p = fixtures::replace_option(&base, 97, &[97, 3, 1, 2, 3]);
    assert!(decode(&p).is_ok_and(|r| r.machine_id.and_then(|m| m.uuid()).is_none()));
}

#[test]
fn option_running_past_the_packet() {
    let base = fixtures::load("uefi-ovmf-pxebc-then-ipxe-efi-01-discover");
    let end = fixtures::end_offset(&base);
    let mut p = base[..end].to_vec();
    p.extend_from_slice(&[60, 255, b'x', b'y']);
    assert!(matches!(
        decode(&p),
        Err(DecodeError::OptionOverrun {
            code: 60,
            area: "options",
            ..
        })
    ));
    // A code byte with no length byte.
    let mut p = base[..end].to_vec();
    p.push(61);
    assert!(matches!(
        decode(&p),
        Err(DecodeError::OptionOverrun { code: 61, .. })
    ));
}

#[test]
fn oversized_and_split_options() {
    let base = fixtures::load("bios-qemu-ipxe-rom-then-undionly-01-discover");
    // A maximal 255-byte host name is fine.
    let mut big = vec![12, 255];
    big.extend(std::iter::repeat_n(b'h', 255));
    let r = decode(&fixtures::with_option(&base, &big)).expect("255-byte option");
    assert_eq!(r.hostname.map(|h| h.len()), Some(255));
    // RFC 3396: the same code twice is one option.
    let p = fixtures::with_option(&base, &[12, 3, b'a', b'b', b'c', 12, 2, b'd', b'e']);
    assert_eq!(
        decode(&p).expect("split").hostname.as_deref(),
        Some("abcde")
    );
    // A split 175 still parses.
    let p = fixtures::replace_option(&base, 175, &[175, 2, 0xeb, 3, 175, 3, 1, 0, 0]);
    assert_eq!(
        decode(&p).expect("split 175").ipxe.and_then(|i| i.version),
        Some((1, 0, 0))
    );
}

#[test]
fn option_overload() {
    let base = fixtures::load("uefi-ovmf-pxebc-then-ipxe-efi-09-discover");
    // Hostname carried in the file field (overload = 1).
    let mut p = fixtures::with_option(&base, &[52, 1, 1]);
    p[108..116].copy_from_slice(&[12, 5, b'n', b'o', b'd', b'e', b'1', 255]);
    let r = decode(&p).expect("overload");
    assert_eq!(r.hostname.as_deref(), Some("node1"));
    // Both fields, sname last.
    let mut p = fixtures::with_option(&base, &[52, 1, 3]);
    p[108..111].copy_from_slice(&[12, 1, b'a']);
    p[44..47].copy_from_slice(&[12, 1, b'b']);
    assert_eq!(
        decode(&p).expect("overload 3").hostname.as_deref(),
        Some("ab")
    );
    // Garbage in an overloaded field is an error, not a silent drop.
    let mut p = fixtures::with_option(&base, &[52, 1, 2]);
    p[44..47].copy_from_slice(&[60, 200, b'x']);
    assert!(matches!(
        decode(&p),
        Err(DecodeError::OptionOverrun { area: "sname", .. })
    ));
    // Bad overload values and a nested 52.
    assert_eq!(
        decode(&fixtures::with_option(&base, &[52, 1, 4])),
        Err(DecodeError::BadOverload(4))
    );
    assert!(matches!(
        decode(&fixtures::with_option(&base, &[52, 2, 1, 1])),
        Err(DecodeError::BadOption { code: 52, .. })
    ));
    let mut p = fixtures::with_option(&base, &[52, 1, 1]);
    p[108..111].copy_from_slice(&[52, 1, 1]);
    assert!(matches!(
        decode(&p),
        Err(DecodeError::BadOption { code: 52, .. })
    ));
}

#[test]
fn bootp_without_53_and_other_shapes() {
    let base = fixtures::load("uefi-ovmf-pxebc-then-ipxe-efi-09-discover");
    let bootp = fixtures::replace_option(&base, 53, &[]);
    assert_eq!(decode(&bootp), Err(DecodeError::NotDhcp));
    let mut bad = base.clone();
    bad[236] = 0x64;
    assert!(matches!(decode(&bad), Err(DecodeError::BadMagic(_))));
    let mut op = base.clone();
    op[0] = 3;
    assert_eq!(decode(&op), Err(DecodeError::UnknownOp(3)));
    let mut hw = base.clone();
    hw[1] = 6; // IEEE 802
    assert_eq!(
        decode(&hw),
        Err(DecodeError::UnsupportedHardware { htype: 6, hlen: 6 })
    );
    let mut hl = base.clone();
    hl[2] = 16;
    assert!(matches!(
        decode(&hl),
        Err(DecodeError::UnsupportedHardware { .. })
    ));
    let unknown = fixtures::replace_option(&base, 53, &[53, 1, 13]);
    assert_eq!(decode(&unknown), Err(DecodeError::UnknownMessageType(13)));
    // Header plus cookie and nothing else: BOOTP without options.
    assert_eq!(decode(&base[..MIN_PACKET_LEN]), Err(DecodeError::NotDhcp));
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x5eed_d4c9_0000_0001);
    for _ in 0..20_000 {
        let len = rng.below(700);
        let mut p: Vec<u8> = (0..len).map(|_| rng.next().to_le_bytes()[0]).collect();
        if len >= MIN_PACKET_LEN && rng.below(2) == 0 {
            // Make it past the cookie check half the time, so the option walk is reached.
            p[236..240].copy_from_slice(&tabula::dhcp::MAGIC_COOKIE);
            p[0] = 1;
            p[1] = 1;
            p[2] = 6;
        }
        let _ = exercise(&p);
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    let clients = fixtures::clients();
    let mut rng = Rng(0x0bad_cafe_f00d_u64);
    let mut decoded = 0;
    for _ in 0..20_000 {
        let (_, base) = &clients[rng.below(clients.len())];
        let mut p = base.clone();
        for _ in 0..=rng.below(4) {
            let at = MIN_PACKET_LEN + rng.below(p.len() - MIN_PACKET_LEN);
            p[at] = rng.next().to_le_bytes()[0];
        }
        if rng.below(4) == 0 {
            p.truncate(MIN_PACKET_LEN + rng.below(p.len() - MIN_PACKET_LEN));
        }
        if exercise(&p).is_ok() {
            decoded += 1;
        }
    }
    assert!(
        decoded > 1000,
        "mutations should often still decode ({decoded})"
    );
}
