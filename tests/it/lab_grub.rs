//! GRUB as the boot program (issue 18), through `tabula lab` as an operator runs it:
//! `--firmware secureboot` boots OVMF's Secure Boot firmware with Microsoft's keys
//! enrolled, whose PXE loads Debian's Microsoft-signed shim over TFTP, shim loads
//! Debian's signed `grubnetx64.efi` (served as `grubx64.efi`), GRUB reads tabula's
//! bootstrap `grub/grub.cfg`, then its own `boot/<mac>/grub.cfg` and the Debian-signed
//! kernel and the initrd, all over TFTP, to the demo's marker and a `booted` event.
//!
//! Secure Boot is checked as enforced, not just configured: the kernel says so on the
//! console (the EFI stub's `UEFI Secure Boot is enabled.` and `secureboot: Secure boot
//! enabled`, read from the firmware's SecureBoot variable) and locks itself down. shim's
//! optional probes (`revocations_*.efi`, `shim_certificate_0.efi`) are not failures.
//!
//! GRUB's TFTP reads of the kernel and initrd are `kernel-sent`/`initrd-sent` events,
//! verified against the boot that named them, so the summary times every stage.
//!
//! Root and the lab packages (with shim-signed, grub-efi-amd64-signed) are required
//! (fails, never skips). Bounded by `crate::lab_cli::lab`.

use crate::common::Env;
use crate::lab_cli::{lab, namespace_gone, stage_seconds, summaries};
use crate::lab_direct::require_lab;

const SB_MAC: &str = "52:54:00:77:03:01";

#[test]
fn secure_boot_through_shim_and_grub() {
    require_lab();
    let env = Env::new();
    let args = ["--vms", "1", "--timeout", "300", "--firmware", "secureboot"];
    let (code, text, pid) = lab(&env, &args);
    assert_eq!(code, 0, "tabula lab {args:?} failed:\n{text}");
    namespace_gone(pid);
    let s = summaries(&text);
    assert_eq!(s.len(), 1, "{text}");
    assert_eq!(
        s[0][1..6],
        ["secureboot-1", SB_MAC, "secureboot", "demo@1", "booted"],
        "{:?}",
        s[0]
    );
    stage_seconds(&s[0]);
    let console: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("[secureboot-1] "))
        .collect();
    let has = |what: &str| console.iter().any(|l| l.contains(what));
    let at = |what: &str| {
        console
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no console line with {what:?}:\n{}", console.join("\n")))
    };
    // The chain, in order: OVMF PXE → shim → GRUB → tabula's configs → kernel → marker.
    let order = [
        "NBP filename is 52-54-00-77-03-01/shimx64.efi",
        "Fetching Netboot Image 52-54-00-77-03-01/grubx64.efi",
        "tabula: GRUB on 52:54:00:77:03:01 asks for its config",
        "tabula: 52:54:00:77:03:01 boots demo@1",
        "Secure boot enabled",
        "TABULA-DEMO-BOOTED name=demo version=1 ",
    ];
    let pos: Vec<usize> = order.iter().map(|w| at(w)).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{order:?} at {pos:?}");
    // Enforced: the kernel saw Secure Boot on and locked itself down.
    assert!(!has("Secure boot disabled"), "{}", console.join("\n"));
    for enforced in [
        "EFI stub: UEFI Secure Boot is enabled.",
        "Kernel is locked down from EFI Secure Boot",
    ] {
        assert!(has(enforced), "no {enforced:?}:\n{}", console.join("\n"));
    }
    let explained: serde_json::Value =
        serde_json::from_str(&env.ok(&["explain", SB_MAC, "--arch", "efi-x64", "--json"])).unwrap();
    let manifest = explained["decision"]["plan"]["manifest"]
        .as_str()
        .unwrap_or_else(|| panic!("{explained}"))
        .to_string();
    let events = env.events(SB_MAC);
    assert!(
        events
            .iter()
            .any(|e| e["stage"] == "booted" && e["manifest"] == manifest.as_str()),
        "no booted event with {manifest}: {events:?}"
    );
    assert!(
        !events.iter().any(|e| e["stage"] == "failed"),
        "shim's optional probes must not be failures: {events:?}"
    );
    // GRUB's TFTP reads of kernel and initrd are the boot's own downloads (verified
    // against what its config named), so the summary times them.
    for stage in ["kernel-sent", "initrd-sent"] {
        assert!(
            events
                .iter()
                .any(|e| e["stage"] == stage && e["detail"]["unverified"] != true),
            "no verified {stage}: {events:?}"
        );
    }
    assert!(!s[0].iter().any(|w| w == "kernel+initrd=-"), "{:?}", s[0]);
    // The GRUB config was an answer of the boot decision (its script-sent event).
    assert!(
        events
            .iter()
            .any(|e| e["stage"] == "script-sent" && e["manifest"] == manifest.as_str()),
        "no script-sent event: {events:?}"
    );
}
