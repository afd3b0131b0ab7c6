//! Codec tests: round trips, option quirks seen from real clients, and hostile input.

use super::*;

fn rrq(name: &str, mode: &str, opts: &[(&str, &str)]) -> Vec<u8> {
    let mut v = vec![0, 1];
    v.extend_from_slice(name.as_bytes());
    v.push(0);
    v.extend_from_slice(mode.as_bytes());
    v.push(0);
    for (k, val) in opts {
        v.extend_from_slice(k.as_bytes());
        v.push(0);
        v.extend_from_slice(val.as_bytes());
        v.push(0);
    }
    v
}

#[test]
fn ovmf_probe_rrq_parses_with_all_options() {
    let buf = rrq(
        "ipxe.efi",
        "octet",
        &[("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")],
    );
    let Ok(Packet::Rrq(req)) = Packet::parse(&buf) else {
        panic!("not an RRQ: {:?}", Packet::parse(&buf));
    };
    assert_eq!(req.filename, "ipxe.efi");
    assert_eq!(req.mode, Mode::Octet);
    assert_eq!(
        req.options,
        RequestOptions {
            blksize: Some(1468),
            tsize: Some(0),
            timeout: None,
            windowsize: Some(4),
        }
    );
}

#[test]
fn option_names_and_mode_are_case_insensitive() {
    let buf = rrq("f", "OcTeT", &[("BLKSIZE", "1024"), ("TimeOut", "3")]);
    let Ok(Packet::Rrq(req)) = Packet::parse(&buf) else {
        panic!("not an RRQ");
    };
    assert_eq!(req.mode, Mode::Octet);
    assert_eq!(req.options.blksize, Some(1024));
    assert_eq!(req.options.timeout, Some(3));
}

#[test]
fn unknown_options_and_bad_values_are_ignored() {
    let buf = rrq(
        "f",
        "netascii",
        &[
            ("multicast", ""),
            ("blksize", "12a"),
            ("windowsize", "-1"),
            ("tsize", "99999999999999999999999"),
        ],
    );
    let Ok(Packet::Rrq(req)) = Packet::parse(&buf) else {
        panic!("not an RRQ");
    };
    assert_eq!(req.mode, Mode::Netascii);
    assert_eq!(req.options, RequestOptions::default());
}

#[test]
fn first_of_repeated_options_wins() {
    let buf = rrq("f", "octet", &[("blksize", "1024"), ("blksize", "8")]);
    let Ok(Packet::Rrq(req)) = Packet::parse(&buf) else {
        panic!("not an RRQ");
    };
    assert_eq!(req.options.blksize, Some(1024));
}

#[test]
fn trailing_nul_padding_after_options_is_accepted() {
    let mut buf = rrq("f", "octet", &[("tsize", "0")]);
    buf.extend_from_slice(&[0, 0, 0]);
    assert!(matches!(Packet::parse(&buf), Ok(Packet::Rrq(_))));
}

#[test]
fn wrq_is_recognised() {
    let buf = {
        let mut v = rrq("upload", "octet", &[]);
        v[1] = 2;
        v
    };
    assert!(matches!(Packet::parse(&buf), Ok(Packet::Wrq(r)) if r.filename == "upload"));
}

#[test]
fn malformed_requests_are_typed_errors() {
    let cases: Vec<(Vec<u8>, PacketError)> = vec![
        (vec![], PacketError::Truncated(0)),
        (vec![0], PacketError::Truncated(1)),
        (vec![0, 9, 1, 2], PacketError::UnknownOpcode(9)),
        (vec![0, 1], PacketError::Unterminated("file name")),
        (
            b"\x00\x01name".to_vec(),
            PacketError::Unterminated("file name"),
        ),
        (
            b"\x00\x01name\x00octet".to_vec(),
            PacketError::Unterminated("mode"),
        ),
        (b"\x00\x01\x00octet\x00".to_vec(), PacketError::BadFilename),
        (
            b"\x00\x01\xff\xfe\x00octet\x00".to_vec(),
            PacketError::BadFilename,
        ),
        (
            b"\x00\x01f\x00binary\x00".to_vec(),
            PacketError::UnknownMode("binary".into()),
        ),
        (
            b"\x00\x01f\x00octet\x00blksize\x00".to_vec(),
            PacketError::BadOptions,
        ),
        (
            b"\x00\x01f\x00octet\x00blksize".to_vec(),
            PacketError::Unterminated("option name"),
        ),
        (
            b"\x00\x01f\x00octet\x00\x00junk\x00".to_vec(),
            PacketError::BadOptions,
        ),
        (vec![0, 3, 0], PacketError::Truncated(1)),
        (vec![0, 4], PacketError::Truncated(0)),
        (vec![0, 5, 0], PacketError::Truncated(1)),
    ];
    for (buf, want) in cases {
        assert_eq!(Packet::parse(&buf), Err(want), "input {buf:?}");
    }
}

#[test]
fn garbage_never_panics() {
    // A deterministic pseudo-random walk over short inputs, weighted towards NULs and
    // valid opcodes so the string and option paths are exercised too.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = usize::try_from(x % 40).unwrap_or(0);
        let mut buf = Vec::with_capacity(len);
        let mut y = x;
        for i in 0..len {
            y = y
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let b = (y >> 56).to_be_bytes()[7];
            buf.push(match (i, b % 4) {
                (0, _) => 0,
                (1, _) => b % 8,
                (_, 0) => 0,
                _ => b,
            });
        }
        let _ = Packet::parse(&buf);
    }
}

#[test]
fn data_ack_error_round_trip() {
    let mut buf = Vec::new();
    encode_data_header(&mut buf, 65535);
    buf.extend_from_slice(b"payload");
    assert_eq!(
        Packet::parse(&buf),
        Ok(Packet::Data {
            block: 65535,
            data: b"payload"
        })
    );

    buf.clear();
    encode_data_header(&mut buf, 7);
    assert_eq!(
        Packet::parse(&buf),
        Ok(Packet::Data {
            block: 7,
            data: b""
        })
    );

    buf.clear();
    encode_ack(&mut buf, 0);
    assert_eq!(Packet::parse(&buf), Ok(Packet::Ack(0)));

    buf.clear();
    encode_error(&mut buf, ErrorCode::OptionRefused, "no\0thanks");
    assert_eq!(buf.last(), Some(&0));
    assert_eq!(
        Packet::parse(&buf),
        Ok(Packet::Error {
            code: ErrorCode::OptionRefused,
            message: "nothanks".into()
        })
    );
}

#[test]
fn error_without_terminator_keeps_its_text() {
    assert_eq!(
        Packet::parse(b"\x00\x05\x00\x08abort"),
        Ok(Packet::Error {
            code: ErrorCode::OptionRefused,
            message: "abort".into()
        })
    );
}

#[test]
fn error_codes_map_both_ways() {
    for n in 0..12u16 {
        assert_eq!(ErrorCode::from(n).as_u16(), n);
    }
}

#[test]
fn oack_round_trip_and_empty() {
    let oack = Oack {
        blksize: Some(1468),
        tsize: Some(1 << 40),
        timeout: Some(3),
        windowsize: Some(16),
    };
    let mut buf = Vec::new();
    encode_oack(&mut buf, &oack);
    assert!(buf.starts_with(b"\x00\x06blksize\x001468\x00tsize\x00"));
    assert_eq!(Packet::parse(&buf), Ok(Packet::Oack(oack)));
    assert!(Oack::default().is_empty());
    assert!(!oack.is_empty());
    assert_eq!(
        Packet::parse(b"\x00\x06blksize\x0099999\x00"),
        Err(PacketError::BadOptions)
    );
}

#[test]
fn encoded_request_parses_back() {
    let mut buf = Vec::new();
    encode_request(
        &mut buf,
        Opcode::Rrq,
        "dir/file",
        &[("tsize", 0), ("windowsize", 16)],
    );
    let Ok(Packet::Rrq(req)) = Packet::parse(&buf) else {
        panic!("not an RRQ");
    };
    assert_eq!(req.filename, "dir/file");
    assert_eq!(req.options.tsize, Some(0));
    assert_eq!(req.options.windowsize, Some(16));
}
