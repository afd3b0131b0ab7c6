//! Round trips of every builder through its parser, and hostile targets.

use super::*;

const BASE: &str = "http://10.0.0.1:8080";
const MAC: Mac = Mac([0x52, 0x54, 0, 0xab, 0xcd, 0x01]);

/// The request target of an absolute URL under [`BASE`].
fn target(url: &str) -> &str {
    url.strip_prefix(BASE).expect("under the base")
}

fn blob(name: &str) -> BlobRef {
    BlobRef {
        digest: Digest::of(b"k"),
        size: 1,
        name: name.into(),
    }
}

#[test]
fn script_urls_round_trip() {
    let u = Urls::new(BASE);
    for fw in Firmware::ALL {
        let r = parse_script(target(&u.script(MAC, fw))).unwrap();
        assert_eq!(
            r,
            ScriptRequest {
                mac: MAC,
                firmware: fw,
                uuid: None
            }
        );
    }
    let r = parse_script(target(&u.script_path(MAC))).unwrap();
    assert_eq!((r.mac, r.firmware), (MAC, Firmware::Bios));
    assert_eq!(
        u.script_template(),
        "http://10.0.0.1:8080/boot.ipxe?mac=${mac:hexhyp}&platform=${platform}&buildarch=${buildarch}"
    );
    // What iPXE makes of the template.
    let expanded = u
        .script_template()
        .replace("${mac:hexhyp}", "52-54-00-ab-cd-01")
        .replace("${platform}", "efi")
        .replace("${buildarch}", "arm64");
    let r = parse_script(target(&expanded)).unwrap();
    assert_eq!((r.mac, r.firmware), (MAC, Firmware::EfiArm64));
    let r = parse_script("/boot.ipxe?mac=52:54:00:ab:cd:01&platform=efi&buildarch=i386&uuid=AB-CD")
        .unwrap();
    assert_eq!(r.firmware, Firmware::EfiIa32);
    assert_eq!(r.uuid.as_deref(), Some("ab-cd"));
    // The path's MAC wins, percent-encoded or not.
    let r =
        parse_script("/boot/52%3A54%3A00%3Aab%3Acd%3A01/boot.ipxe?mac=00-00-00-00-00-00").unwrap();
    assert_eq!(r.mac, MAC);
}

#[test]
fn script_errors_are_typed() {
    assert!(matches!(parse_script("/boot.ipxe"), Err(UrlError::Mac(_))));
    assert!(matches!(
        parse_script("/boot.ipxe?mac=52-54-00-ab-cd-zz"),
        Err(UrlError::Mac(_))
    ));
    assert_eq!(
        parse_script("/boot.ipxe?mac=52-54-00-ab-cd-01&platform=sparc"),
        Err(UrlError::Firmware("unsupported platform \"sparc\"".into()))
    );
    assert_eq!(
        parse_script("/boot.ipxe?mac=52-54-00-ab-cd-01&platform=efi&buildarch=riscv64"),
        Err(UrlError::Firmware(
            "unsupported buildarch \"riscv64\"".into()
        ))
    );
    assert!(matches!(
        parse_script("/boot.ipxe?mac=52-54-00-ab-cd-01&arch=vax"),
        Err(UrlError::Firmware(_))
    ));
    // Query values are decoded (lossily), then must still be a MAC.
    assert!(matches!(
        parse_script("/boot.ipxe?mac=%ff%fe"),
        Err(UrlError::Mac(_))
    ));
    for other in [
        "/boot.ipxe/",
        "/boot//boot.ipxe",
        "/boot/a/b/boot.ipxe",
        "/boot/x/y/booted",
        "/healthz",
        "/boot.ipxe.bak",
    ] {
        assert_eq!(parse_script(other), Err(UrlError::Unmatched), "{other}");
    }
    for hostile in [
        "/boot/..%2f..%2fetc/boot.ipxe",
        "/boot/%00/boot.ipxe",
        "/boot/%zz/boot.ipxe",
        "/boot/%4/boot.ipxe",
    ] {
        assert!(
            matches!(parse_script(hostile), Err(UrlError::Encoding(_))),
            "{hostile}"
        );
    }
    assert!(matches!(
        parse_script("/boot/../boot.ipxe"),
        Err(UrlError::Mac(_))
    ));
    let long = format!("/boot.ipxe?mac={}", "a".repeat(MAX_TARGET));
    assert_eq!(parse_script(&long), Err(UrlError::TooLong));
}

#[test]
fn blob_urls_round_trip_with_attribution() {
    let u = Urls::new(BASE);
    for role in [BlobRole::Kernel, BlobRole::Initrd, BlobRole::Rootfs] {
        for name in ["vmlinuz", "root.squashfs", "a b?c#d%e", "ünï"] {
            let url = u.blob(&blob(name), MAC, role);
            let t = parse_blob(target(&url)).unwrap();
            assert_eq!(t.digest, Digest::of(b"k"));
            assert_eq!(t.name, name);
            assert_eq!(
                t.attribution(),
                Ok(Some(Attribution { mac: MAC, role })),
                "{url}"
            );
            assert_eq!(role.stage().as_str(), format!("{role}-sent"));
        }
    }
    assert_eq!(
        u.blob(&blob("vmlinuz"), MAC, BlobRole::Kernel),
        format!(
            "{BASE}/blobs/sha256/{}/vmlinuz?mac=52-54-00-ab-cd-01&as=kernel",
            Digest::of(b"k").hex()
        )
    );
}

#[test]
fn blob_targets_hostile_and_plain() {
    let hex = Digest::of(b"k").hex();
    let s0 = format!("/blobs/sha256/{hex}");
    let t = parse_blob(&s0).unwrap();
    assert_eq!((t.name.as_ref(), t.has_query()), ("", false));
    assert_eq!(t.attribution(), Ok(None));
    let s1 = format!("/blobs/sha256/{hex}/x?as=kernel");
    let t = parse_blob(&s1).unwrap();
    assert_eq!(t.attribution(), Err(UrlError::Attribution));
    let s2 = format!("/blobs/sha256/{hex}/x?mac=52-54-00-ab-cd-01&as=bios");
    let t = parse_blob(&s2).unwrap();
    assert_eq!(t.attribution(), Err(UrlError::Role("bios".into())));
    let s3 = format!("/blobs/sha256/{hex}/x?mac=nope&as=kernel");
    let t = parse_blob(&s3).unwrap();
    assert!(matches!(t.attribution(), Err(UrlError::Mac(_))));
    // A dot name is only a name: the digest is what is served.
    assert_eq!(
        parse_blob(&format!("/blobs/sha256/{hex}/.."))
            .unwrap()
            .digest,
        Digest::of(b"k")
    );
    for unmatched in [
        format!("/blobs/sha256/{hex}/../../etc/passwd"),
        format!("/blobs/sha256/{hex}/a/b"),
        "/blobs/sha256/../../etc/passwd".to_string(),
        "/blobs/sha512/00".to_string(),
        "/blob/sha256/00".to_string(),
    ] {
        assert_eq!(
            parse_blob(&unmatched),
            Err(UrlError::Unmatched),
            "{unmatched}"
        );
    }
    for bad in [
        "/blobs/sha256/..".to_string(),
        "/blobs/sha256/%2e%2e/x".to_string(),
        format!("/blobs/sha256/{}", hex.to_uppercase()),
        format!("/blobs/sha256/{}", &hex[..63]),
        format!("/blobs/sha256/{hex}0"),
        "/blobs/sha256/".to_string(),
    ] {
        assert!(
            matches!(parse_blob(&bad), Err(UrlError::Digest(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        parse_blob(&format!("/blobs/sha256/{hex}/a%2fb")),
        Err(UrlError::Encoding(_))
    ));
    assert!(is_blob(&format!("/blobs/sha256/{hex}")));
    assert!(!is_blob("/boot.ipxe"));
}

#[test]
fn callbacks_and_reports_round_trip() {
    let u = Urls::new(BASE);
    let cb = Callback::new(MAC, Digest::of(b"m"));
    assert_eq!(
        u.callback(&cb),
        format!("{BASE}/boot/52-54-00-ab-cd-01/{}", Digest::of(b"m").hex())
    );
    for kind in [ReportKind::Booted, ReportKind::Failed, ReportKind::Progress] {
        let url = u.report(&cb, kind);
        let r = parse_report(target(&url)).unwrap();
        assert_eq!((r.callback, r.kind), (cb, kind));
        assert_eq!(kind.stage().as_str(), kind.as_str());
        assert!(r.query().unwrap().is_empty());
    }
    let with_query = format!(
        "{}?reason=disk%20full",
        target(&u.report(&cb, ReportKind::Failed))
    );
    let r = parse_report(&with_query).unwrap();
    assert_eq!(r.query().unwrap()["reason"], "disk full");

    // With a token: one more segment before the kind, round-tripped.
    let token: ReportToken = TOKEN.parse().unwrap();
    let signed = cb.with_token(token);
    assert_eq!(
        u.callback(&signed),
        format!(
            "{BASE}/boot/52-54-00-ab-cd-01/{}/{TOKEN}",
            Digest::of(b"m").hex()
        )
    );
    let url = u.report(&signed, ReportKind::Booted);
    let r = parse_report(target(&url)).unwrap();
    assert_eq!((r.callback, r.kind), (signed, ReportKind::Booted));
    assert_eq!(r.callback.token, Some(token));
    // Without one, the report still parses (to be refused), with no token.
    assert_eq!(
        parse_report(target(&u.report(&cb, ReportKind::Booted)))
            .unwrap()
            .callback
            .token,
        None
    );
    assert_eq!(
        parse_report(&format!(
            "/boot/52-54-00-ab-cd-01/{}/xyz/booted",
            Digest::of(b"m").hex()
        )),
        Err(UrlError::Token)
    );
}

const TOKEN: &str = "0102030405060708aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb";

#[test]
fn report_targets_are_checked_mac_then_digest_then_kind() {
    let hex = Digest::of(b"m").hex();
    assert!(matches!(
        parse_report(&format!("/boot/nope/{hex}/booted")),
        Err(UrlError::Mac(_))
    ));
    assert!(matches!(
        parse_report("/boot/52-54-00-ab-cd-01/abc/nope"),
        Err(UrlError::Digest(_))
    ));
    assert!(matches!(
        parse_report(&format!(
            "/boot/52-54-00-ab-cd-01/{}/booted",
            hex.to_uppercase()
        )),
        Err(UrlError::Digest(_))
    ));
    assert_eq!(
        parse_report(&format!("/boot/52-54-00-ab-cd-01/{hex}/rebooted")),
        Err(UrlError::Report("rebooted".into()))
    );
    // The script's path form and anything with more or fewer segments is not a report.
    for other in [
        "/boot/52-54-00-ab-cd-01/boot.ipxe".to_string(),
        format!("/boot/52-54-00-ab-cd-01/{hex}/{TOKEN}/booted/x"),
        format!("/boot/52-54-00-ab-cd-01/{hex}//booted"),
        format!("/boot/52-54-00-ab-cd-01/{hex}/"),
        format!("/boot//{hex}/booted"),
        "/boot.ipxe".to_string(),
    ] {
        assert_eq!(parse_report(&other), Err(UrlError::Unmatched), "{other}");
    }
    let s4 = format!("/boot/52%3a54%3a00%3aab%3acd%3a01/{hex}/booted");
    let r = parse_report(&s4).unwrap();
    assert_eq!(r.callback.mac, MAC);
    assert!(matches!(
        parse_report(&format!("/boot/52-54-00-ab-cd-01/{hex}/boo%2fted")),
        Err(UrlError::Encoding(_))
    ));
    // `..` is neither a MAC nor a digest.
    assert!(matches!(
        parse_report(&format!("/boot/../{hex}/booted")),
        Err(UrlError::Mac(_))
    ));
    assert!(matches!(
        parse_report("/boot/52-54-00-ab-cd-01/../booted"),
        Err(UrlError::Digest(_))
    ));
}

#[test]
fn loaders_round_trip_and_only_plain_names() {
    let u = Urls::new(BASE);
    for ok in ["snponly.efi", "ipxe-arm64.efi", "undionly.kpxe"] {
        assert_eq!(parse_loader(target(&u.loader(ok))).unwrap().as_str(), ok);
    }
    assert_eq!(
        parse_loader("/loaders/snp%6Fnly.efi?x=1").unwrap().as_str(),
        "snponly.efi"
    );
    for bad in [
        "/loaders/..",
        "/loaders/.hidden",
        "/loaders/%2e%2e",
        "/loaders/x%20y",
    ] {
        assert!(
            matches!(parse_loader(bad), Err(UrlError::LoaderName(_))),
            "{bad}"
        );
    }
    let long = format!("/loaders/{}", "a".repeat(129));
    assert!(matches!(parse_loader(&long), Err(UrlError::LoaderName(_))));
    for other in [
        "/loaders/",
        "/loaders/a/b",
        "/loaders/../etc/passwd",
        "/loader/x",
    ] {
        assert_eq!(parse_loader(other), Err(UrlError::Unmatched), "{other}");
    }
    assert!(matches!(
        parse_loader("/loaders/%2f"),
        Err(UrlError::Encoding(_))
    ));
    for plain in ["snponly.efi", "ipxe-arm64.efi", "undionly.kpxe"] {
        assert!(plain_loader_name(plain), "{plain}");
    }
    for bad in [
        "",
        "..",
        ".hidden",
        "a/b",
        "../etc/passwd",
        "x y",
        "a\\b",
        "%2e%2e",
    ] {
        assert!(!plain_loader_name(bad), "{bad}");
    }
}

#[test]
fn tftp_loader_paths_round_trip() {
    let p = tftp_loader(MAC, "undionly.kpxe");
    assert_eq!(p, "52-54-00-ab-cd-01/undionly.kpxe");
    assert_eq!(parse_tftp_loader(&p), (Some(MAC), "undionly.kpxe"));
    assert_eq!(parse_tftp_loader("/52-54-00-ab-cd-01/x"), (Some(MAC), "x"));
    for plain in [
        "undionly.kpxe",
        "52:54:00:ab:cd:01/x",
        "zz-54-00-ab-cd-01/x",
        "a/b",
    ] {
        assert_eq!(parse_tftp_loader(plain), (None, plain));
    }
}

#[test]
fn base_with_trailing_slash_builds_the_same() {
    assert_eq!(
        Urls::new("http://h:1/").loader("x.efi"),
        Urls::new("http://h:1").loader("x.efi")
    );
}
