//! The stored form of every variant, round trips, and lenient reading of old details.

use serde_json::json;

use super::*;

fn round_trip(d: &EventDetail) -> serde_json::Value {
    let text = d.to_json();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        &EventDetail::from_value(d.stage(), value.clone()),
        d,
        "{text}"
    );
    value
}

#[test]
fn every_stage_round_trips_as_its_fields() {
    let dhcp = Dhcp {
        address: Some(Ipv4Addr::new(10, 0, 0, 7)),
        file: Some("52-54-00-00-00-01/undionly.kpxe".into()),
        boot: Some(BootFileKind::TftpLoader),
        firmware: Some(Firmware::Bios),
        ipxe: false,
        proxy: false,
        xid: "0000abcd".into(),
    };
    assert_eq!(
        round_trip(&EventDetail::DhcpAck(dhcp.clone())),
        json!({"address": "10.0.0.7", "file": "52-54-00-00-00-01/undionly.kpxe",
               "boot": "tftp-loader", "firmware": "bios", "ipxe": false, "proxy": false,
               "xid": "0000abcd"})
    );
    round_trip(&EventDetail::DhcpOffer(Dhcp::default()));
    assert_eq!(
        round_trip(&EventDetail::LoaderSent(LoaderSent {
            file: "undionly.kpxe".into(),
            bytes: 70_000,
            seconds: 0.25,
            unverified: false,
        })),
        json!({"file": "undionly.kpxe", "bytes": 70_000, "seconds": 0.25})
    );
    assert_eq!(
        round_trip(&EventDetail::LoaderSent(LoaderSent {
            file: "undionly.kpxe".into(),
            bytes: 1,
            seconds: 0.5,
            unverified: true,
        })),
        json!({"file": "undionly.kpxe", "bytes": 1, "seconds": 0.5, "unverified": true})
    );
    assert_eq!(
        round_trip(&EventDetail::ScriptSent(ScriptSent {
            image: Some("demo".into()),
            version: Some("1".into()),
            rule: Some("default".into()),
            firmware: Some(Firmware::EfiX64),
            local: false,
        })),
        json!({"image": "demo", "version": "1", "rule": "default", "firmware": "efi-x64"})
    );
    assert_eq!(
        round_trip(&EventDetail::ScriptSent(ScriptSent {
            rule: None,
            local: true,
            ..ScriptSent::default()
        })),
        json!({"rule": null, "local": true})
    );
    let blob = BlobSent {
        digest: Digest::of(b"k"),
        bytes: 10,
        expected: 10,
        seconds: 0.5,
        complete: true,
        unverified: false,
    };
    for d in [
        EventDetail::KernelSent(blob.clone()),
        EventDetail::InitrdSent(blob.clone()),
        EventDetail::RootfsSent(blob.clone()),
    ] {
        let v = round_trip(&d);
        assert_eq!(v["digest"], Digest::of(b"k").to_string());
        assert_eq!(v["complete"], true);
    }
    assert_eq!(
        round_trip(&EventDetail::Ignored(Ignored {
            reason: "no pin applies and there is no default pin".into(),
            code: Some("no-pin".into()),
        })),
        json!({"reason": "no pin applies and there is no default pin", "code": "no-pin"})
    );
}

#[test]
fn reports_keep_what_the_machine_sent_and_type_final() {
    let sent = json!({"stage": "verify", "reason": "sha256 mismatch", "attempt": 2,
                      "final": true, "iface": "eth0", "nested": {"a": [1]}});
    let d = EventDetail::from_value(BootStage::Failed, sent.clone());
    let EventDetail::Failed(r) = &d else {
        panic!("{d:?}")
    };
    assert!(r.is_final());
    assert_eq!(r.attempt, Some(2));
    assert_eq!(r.stage.as_deref(), Some("verify"));
    assert_eq!(r.extra["iface"], "eth0");
    assert_eq!(round_trip(&d), sent);
    assert_eq!(d.reason(), Some("sha256 mismatch"));
    let not_final = EventDetail::from_value(BootStage::Failed, json!({"final": false}));
    assert!(!not_final.as_report().unwrap().is_final());
    assert_eq!(round_trip(&not_final), json!({"final": false}));
    assert!(!Report::default().is_final());
    let booted = EventDetail::report(ReportKind::Booted, Report::default());
    assert_eq!(
        (booted.stage(), booted.to_json().as_str()),
        (BootStage::Booted, "{}")
    );
}

#[test]
fn old_details_still_read() {
    // Written before peer and via became columns (the migration strips them; a row it
    // could not rewrite still reads).
    let old_blob = json!({"digest": Digest::of(b"k").to_string(), "bytes": 1, "expected": 1,
                          "seconds": 0.1, "complete": true, "peer": "10.0.0.9"});
    assert!(matches!(
        EventDetail::from_value(BootStage::KernelSent, old_blob),
        EventDetail::KernelSent(BlobSent { bytes: 1, .. })
    ));
    let old_ignored = json!({"by": "dhcp", "reason": "pinned to none by default"});
    let d = EventDetail::from_value(BootStage::Ignored, old_ignored);
    assert_eq!(d.reason(), Some("pinned to none by default"));
    let old_dhcp = json!({"address": null, "file": "x", "firmware": "bios", "ipxe": true,
                          "proxy": true, "script": true, "loader": false, "xid": "00000007"});
    let EventDetail::DhcpAck(dh) = EventDetail::from_value(BootStage::DhcpAck, old_dhcp) else {
        panic!("dhcp")
    };
    assert_eq!(
        (dh.file.as_deref(), dh.proxy, dh.boot),
        (Some("x"), true, None)
    );
    // A detail that does not fit its stage is kept whole.
    for (stage, v) in [
        (BootStage::LoaderSent, json!({"file": 3})),
        (BootStage::KernelSent, json!({"n": 1})),
        (
            BootStage::Failed,
            json!({"attempt": "three", "reason": "x"}),
        ),
        (BootStage::Ignored, json!(["not", "an", "object"])),
    ] {
        let d = EventDetail::from_value(stage, v.clone());
        assert_eq!(
            d,
            EventDetail::Unparsed {
                stage,
                value: v.clone()
            }
        );
        assert_eq!(d.stage(), stage);
        assert_eq!(serde_json::to_value(&d).unwrap(), v);
    }
    assert_eq!(
        EventDetail::from_value(
            BootStage::Failed,
            json!({"attempt": "three", "reason": "x"})
        )
        .reason(),
        Some("x")
    );
}

#[test]
fn via_names() {
    for v in [Via::Dhcp, Via::Tftp, Via::Http] {
        assert_eq!(v.as_str().parse::<Via>(), Ok(v));
        assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
    }
    assert!("by".parse::<Via>().is_err());
    assert_eq!(format!("[{:<4}]", Via::Dhcp), "[dhcp]");
    assert_eq!(format!("[{:<6}]", Via::Tftp), "[tftp  ]");
    assert_eq!(format!("[{:<12}]", BootStage::Booted), "[booted      ]");
}
