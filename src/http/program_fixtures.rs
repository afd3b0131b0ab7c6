//! Fixtures shared by the golden tests of the boot programs ([`super::script`],
//! [`super::grub`]): one selection and plan, rendered by each.

use crate::boot::{Arch, BlobRef, BootPlan, Digest, Firmware};
use crate::inventory::{Candidate, CandidateOutcome, Decision, Selection};

pub(crate) fn blob(s: &str, name: &str) -> BlobRef {
    BlobRef {
        digest: Digest::of(s.as_bytes()),
        size: 1,
        name: name.into(),
    }
}

pub(crate) fn selection(decision: Decision) -> Selection {
    Selection {
        mac: "52:54:00:00:00:01".parse().unwrap(),
        firmware: Firmware::EfiX64,
        machine: Some("n1".into()),
        candidates: vec![Candidate {
            target: "machine:n1".into(),
            reference: "demo@1".into(),
            outcome: CandidateOutcome::Won,
        }],
        resolved: None,
        decision,
        revision: 1,
        source: crate::inventory::Source::None,
    }
}

pub(crate) fn plan(cmdline: &str) -> BootPlan {
    BootPlan {
        image: "demo".into(),
        version: "1".into(),
        manifest: Digest::of(b"m"),
        arch: Arch::X86_64,
        kernel: blob("k", "vmlinuz"),
        initrds: vec![blob("i", "initrd.img")],
        rootfs: None,
        cmdline: cmdline.into(),
    }
}
