//! Pure tests of the policy seam on hand-built snapshots.

use std::collections::BTreeMap;

use super::*;
use crate::boot::Machine;
use crate::boot::{Arch, BlobRef, Digest, Firmware, Mac};
use crate::config::UnknownMachines;
use crate::images::{MANIFEST_SCHEMA, Manifest};

fn blob(s: &str, name: &str) -> BlobRef {
    BlobRef {
        digest: Digest::of(s.as_bytes()),
        size: s.len() as u64,
        name: name.into(),
    }
}

fn manifest(name: &str, version: &str, arch: Arch) -> Manifest {
    Manifest {
        schema: MANIFEST_SCHEMA.into(),
        name: name.into(),
        version: version.into(),
        architectures: vec![arch],
        kernel: blob(&format!("k{version}"), "vmlinuz"),
        initrds: vec![blob(&format!("i{version}"), "initrd.img")],
        rootfs: Some(blob(&format!("r{version}"), "root.squashfs")),
        cmdline: "quiet host={hostname}".into(),
        created: "2026-11-22T00:00:00Z".into(),
        annotations: BTreeMap::new(),
    }
}

fn mac(s: &str) -> Mac {
    s.parse().unwrap()
}

fn machine(name: &str, m: &str, labels: &[(&str, &str)]) -> Machine {
    Machine {
        name: name.into(),
        macs: vec![mac(m)],
        uuid: None,
        hostname: None,
        address: None,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn snap(pins: &[(&str, &str)], machines: Vec<Machine>, unknown: UnknownMachines) -> Snapshot {
    let mut versions = BTreeMap::new();
    for (v, arch) in [
        ("1", Arch::X86_64),
        ("2", Arch::X86_64),
        ("arm", Arch::Arm64),
    ] {
        let m = manifest("demo", v, arch);
        versions.insert(
            ("demo".to_string(), v.to_string()),
            Version {
                manifest_digest: m.digest(),
                manifest: Ok(m),
            },
        );
    }
    let channels = [(("demo".to_string(), "stable".to_string()), "2".to_string())].into();
    let pins = pins
        .iter()
        .map(|(t, r)| Pin {
            target: PinTarget::parse_cli(t).unwrap(),
            reference: r.parse().unwrap(),
        })
        .collect();
    Snapshot::new(
        7,
        Settings {
            unknown_machines: unknown,
            console: Some("ttyS0,115200".into()),
            base_url: "http://10.0.0.1:8080".into(),
        },
        machines,
        pins,
        versions,
        channels,
    )
}

fn facts(m: &str, fw: Firmware) -> Facts {
    Facts {
        mac: mac(m),
        uuid: None,
        firmware: fw,
    }
}

fn booted_version(sel: &Selection) -> String {
    match &sel.decision {
        Decision::Boot { plan } => plan.version.clone(),
        other => panic!("expected a boot, got {other:?}"),
    }
}

const A: &str = "52:54:00:00:00:0a";
const B: &str = "52:54:00:00:00:0b";
const C: &str = "52:54:00:00:00:0c";

fn three_machines() -> Vec<Machine> {
    vec![
        machine("a", A, &[("role", "web"), ("rack", "r1")]),
        machine("b", B, &[("role", "web"), ("rack", "r2")]),
        machine("c", C, &[("role", "db")]),
    ]
}

#[test]
fn precedence_machine_then_selector_then_default() {
    let s = snap(
        &[
            ("a", "demo@1"),
            ("label:role=web", "demo:stable"),
            ("default", "demo@1"),
        ],
        three_machines(),
        UnknownMachines::Default,
    );
    let a = select(&s, &facts(A, Firmware::Bios));
    assert_eq!(booted_version(&a), "1");
    assert_eq!(a.candidates[0].target, "machine:a");
    assert_eq!(a.candidates.len(), 3);
    assert!(
        a.candidates[1]
            .outcome
            .to_string()
            .contains("less specific than machine:a")
    );

    let b = select(&s, &facts(B, Firmware::Bios));
    assert_eq!(booted_version(&b), "2");
    assert_eq!(b.candidates[0].target, "label:role=web");
    assert_eq!(
        b.resolved.as_ref().unwrap().channel.as_deref(),
        Some("stable")
    );

    let c = select(&s, &facts(C, Firmware::Bios));
    assert_eq!(c.candidates[0].target, "default");
    assert_eq!(booted_version(&c), "1");
}

#[test]
fn mac_pin_beats_machine_pin() {
    let s = snap(
        &[("a", "demo@1"), (A, "demo@2")],
        three_machines(),
        UnknownMachines::Default,
    );
    let sel = select(&s, &facts(A, Firmware::Bios));
    assert_eq!(booted_version(&sel), "2");
    assert_eq!(sel.candidates[0].target, format!("mac:{A}"));
}

#[test]
fn most_specific_selector_wins_and_ties_are_reported() {
    let s = snap(
        &[
            ("label:role=web", "demo@1"),
            ("label:role=web,rack=r1", "demo@2"),
            ("label:rack=r1|r2", "demo@1"),
        ],
        three_machines(),
        UnknownMachines::Default,
    );
    let a = select(&s, &facts(A, Firmware::Bios));
    assert_eq!(a.candidates[0].target, "label:rack=r1,role=web");
    assert_eq!(booted_version(&a), "2");

    let tie = snap(
        &[("label:rack=r1", "demo@2"), ("label:role=web", "demo@1")],
        three_machines(),
        UnknownMachines::Default,
    );
    let a = select(&tie, &facts(A, Firmware::Bios));
    assert_eq!(
        a.candidates[0].target, "label:rack=r1",
        "lexical order breaks ties"
    );
    assert!(
        a.candidates[1]
            .outcome
            .to_string()
            .starts_with("tie with label:rack=r1"),
        "{:?}",
        a.candidates
    );
    // And it is deterministic regardless of pin order.
    let tie2 = snap(
        &[("label:role=web", "demo@1"), ("label:rack=r1", "demo@2")],
        three_machines(),
        UnknownMachines::Default,
    );
    assert_eq!(
        select(&tie2, &facts(A, Firmware::Bios)).candidates,
        a.candidates
    );
}

#[test]
fn unknown_machines_follow_config() {
    let stranger = "52:54:00:99:99:99";
    let s = snap(
        &[("default", "demo@1")],
        three_machines(),
        UnknownMachines::Ignore,
    );
    let sel = select(&s, &facts(stranger, Firmware::Bios));
    assert!(
        matches!(&sel.decision, Decision::Ignore { reason } if reason.to_string().contains("unknown_machines"))
    );
    let s = snap(
        &[("default", "demo@1")],
        three_machines(),
        UnknownMachines::Default,
    );
    assert_eq!(
        booted_version(&select(&s, &facts(stranger, Firmware::Bios))),
        "1"
    );
    // An explicit MAC pin serves even an unknown machine.
    let s = snap(&[(stranger, "demo@2")], vec![], UnknownMachines::Ignore);
    assert_eq!(
        booted_version(&select(&s, &facts(stranger, Firmware::Bios))),
        "2"
    );
}

#[test]
fn local_none_missing_and_arch() {
    let s = snap(
        &[
            ("a", "local"),
            ("b", "none"),
            ("c", "demo@arm"),
            ("default", "demo:beta"),
        ],
        three_machines(),
        UnknownMachines::Default,
    );
    assert_eq!(
        select(&s, &facts(A, Firmware::Bios)).decision,
        Decision::Local
    );
    assert!(matches!(
        select(&s, &facts(B, Firmware::Bios)).decision,
        Decision::Ignore { reason } if reason.to_string().contains("pinned to none")
    ));
    assert!(matches!(
        select(&s, &facts(C, Firmware::EfiX64)).decision,
        Decision::Ignore { reason } if reason.to_string().contains("built for arm64")
    ));
    assert_eq!(
        booted_version(&select(&s, &facts(C, Firmware::EfiArm64))),
        "arm"
    );
    assert!(matches!(
        select(&s, &facts("52:54:00:99:99:99", Firmware::Bios)).decision,
        Decision::Ignore { reason } if reason.to_string().contains("demo:beta")
    ));
    let empty = snap(&[], vec![], UnknownMachines::Default);
    assert!(matches!(
        select(&empty, &facts(A, Firmware::Bios)).decision,
        Decision::Ignore { reason } if reason.to_string().contains("no default pin")
    ));
}

#[test]
fn a_client_naming_no_arch_gets_its_images_arch() {
    let s = snap(
        &[("c", "demo@arm"), ("a", "demo@1")],
        three_machines(),
        UnknownMachines::Default,
    );
    // No option 93: the BIOS guess would refuse the arm64 image; the image's arch decides.
    let sel = select_unnamed_arch(&s, &facts(C, Firmware::Bios));
    assert_eq!(booted_version(&sel), "arm");
    assert_eq!(sel.firmware, Firmware::EfiArm64);
    assert_eq!(
        booted_version(&select_unnamed_arch(&s, &facts(A, Firmware::Bios))),
        "1"
    );
    // Anything but an architecture refusal is select's own.
    let none = snap(&[("c", "none")], three_machines(), UnknownMachines::Default);
    assert_eq!(
        select_unnamed_arch(&none, &facts(C, Firmware::Bios)),
        select(&none, &facts(C, Firmware::Bios))
    );
}

#[test]
fn plan_carries_digests_and_exact_cmdline() {
    let mut ms = three_machines();
    ms[0].hostname = Some("node-a".into());
    let s = snap(&[("default", "demo@1")], ms, UnknownMachines::Default);
    let m1 = manifest("demo", "1", Arch::X86_64);
    let Decision::Boot { plan } = select(&s, &facts(A, Firmware::EfiX64)).decision else {
        panic!()
    };
    assert_eq!(plan.manifest, m1.digest());
    assert_eq!(plan.kernel.digest, Digest::of(b"k1"));
    let root = Digest::of(b"r1").hex();
    assert_eq!(
        plan.cmdline,
        format!(
            "quiet host=node-a console=ttyS0,115200 tabula.image=demo@1 tabula.manifest={} \
             tabula.root=http://10.0.0.1:8080/blobs/sha256/{root}/root.squashfs?mac=52-54-00-00-00-0a&as=rootfs tabula.root_sha256={root} \
             tabula.callback=http://10.0.0.1:8080/boot/52-54-00-00-00-0a/{} initrd=initrd.img",
            m1.digest(),
            m1.digest().hex()
        )
    );
    let Decision::Boot { plan } = select(&s, &facts(A, Firmware::Bios)).decision else {
        panic!()
    };
    assert!(
        !plan.cmdline.contains("initrd="),
        "BIOS loads initrds without the name"
    );
}

#[test]
fn a_served_plan_carries_its_boots_token_in_the_callback() {
    use crate::boot::{BootId, BootSeal, ReportKey, ReportToken};
    let s = snap(
        &[("default", "demo@1")],
        three_machines(),
        UnknownMachines::Default,
    );
    let m1 = manifest("demo", "1", Arch::X86_64).digest();
    let key = ReportKey::from_bytes([6; 32]);
    let seal = BootSeal {
        key: &key,
        boot: BootId([1, 2, 3, 4, 5, 6, 7, 8]),
    };
    let sel = select_for_boot(&s, &facts(A, Firmware::Bios), &seal);
    let Decision::Boot { plan } = sel.decision else {
        panic!()
    };
    let cb = plan
        .cmdline
        .split(' ')
        .find_map(|a| a.strip_prefix("tabula.callback="))
        .expect("a callback");
    let prefix = format!("http://10.0.0.1:8080/boot/52-54-00-00-00-0a/{}/", m1.hex());
    let token: ReportToken = cb.strip_prefix(&prefix).expect(cb).parse().expect(cb);
    assert_eq!(token.boot, seal.boot);
    assert!(key.verify(mac(A), m1, &token));
    // Pure: the same inputs give the same plan; another boot id another token.
    let again = select_for_boot(&s, &facts(A, Firmware::Bios), &seal);
    assert_eq!(again.decision, Decision::Boot { plan: plan.clone() });
    let other = BootSeal {
        boot: BootId([9; 8]),
        ..seal
    };
    let Decision::Boot { plan: p2 } =
        select_for_boot(&s, &facts(A, Firmware::Bios), &other).decision
    else {
        panic!()
    };
    assert_ne!(p2.cmdline, plan.cmdline);
}

#[test]
fn hostile_hostname_cannot_inject_arguments() {
    let mut ms = three_machines();
    ms[0].hostname = Some("x init=/bin/sh".into());
    let s = snap(&[("default", "demo@1")], ms, UnknownMachines::Default);
    assert!(matches!(
        select(&s, &facts(A, Firmware::Bios)).decision,
        Decision::Ignore { reason } if reason.to_string().contains("hostname")
    ));
}

#[test]
fn digest_pins_must_match_image() {
    let m2 = manifest("demo", "2", Arch::X86_64);
    let s = snap(
        &[("default", &format!("demo@{}", m2.digest()))],
        vec![],
        UnknownMachines::Default,
    );
    assert_eq!(booted_version(&select(&s, &facts(A, Firmware::Bios))), "2");
    let s = snap(
        &[("default", &format!("other@{}", m2.digest()))],
        vec![],
        UnknownMachines::Default,
    );
    assert!(matches!(
        select(&s, &facts(A, Firmware::Bios)).decision,
        Decision::Ignore { .. }
    ));
}
