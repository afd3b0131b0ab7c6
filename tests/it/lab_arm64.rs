//! ARM64 UEFI through tabula (issue 18), with `tabula lab` as an operator runs it:
//! `--firmware arm64` boots QEMU's arm64 `virt` machine (Cortex-A57, TCG) with AAVMF,
//! whose own PXE (virtio-net, no option ROM) gets DHCP arch 11 → Debian's monolithic
//! `grubnetaa64.efi` over TFTP; GRUB reads tabula's bootstrap `grub/grub.cfg`, then its
//! own `boot/<mac>/grub.cfg`, then the arm64 kernel and initrd, all over TFTP; the
//! initramfs gets its lease (it names no architecture: it is decided as its image's),
//! fetches and verifies the `demo-arm64` root over HTTP, and the image prints its marker
//! and reports `booted`. The lab builds `demo-arm64` from Debian's arm64 packages
//! (images/, `TABULA_LAB_ARCH=arm64`) and publishes it as arm64.
//!
//! Checked: the chain in console order, an arm64 kernel (an ARM64 `Image` by its header
//! magic, and the kernel's own arm64 boot lines), verified `kernel-sent`/`initrd-sent`,
//! `booted` with the pinned manifest, no `failed` event, every stage timed, and that an
//! x86 firmware is refused this image. Measured here: ~33 s of boot under TCG, ~40 s
//! for the whole `tabula lab` once the images are published, ~90 s with their first
//! build (downloads included). Bounded by `crate::lab_cli::lab` (600 s) and `--timeout`.
//!
//! Root and the lab packages (with qemu-system-arm, qemu-efi-aarch64 and
//! grub-efi-arm64-bin:arm64) are required (fails, never skips).

use crate::common::Env;
use crate::lab_cli::{lab, namespace_gone, stage_seconds, summaries};
use crate::lab_direct::require_lab;

const MAC: &str = "52:54:00:77:04:01";

#[test]
fn arm64_uefi_boots_through_grub() {
    require_lab();
    let env = Env::new();
    let t = std::time::Instant::now();
    let args = ["--vms", "1", "--timeout", "480", "--firmware", "arm64"];
    let (code, text, pid) = lab(&env, &args);
    eprintln!(
        "lab_arm64: tabula lab --firmware arm64 took {:.1}s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(code, 0, "tabula lab {args:?} failed:\n{text}");
    namespace_gone(pid);
    let s = summaries(&text);
    assert_eq!(s.len(), 1, "{text}");
    assert_eq!(
        s[0][1..6],
        ["arm64-1", MAC, "arm64", "demo-arm64@1", "booted"],
        "{:?}",
        s[0]
    );
    let secs = stage_seconds(&s[0]);
    assert!(
        secs.iter().all(Option::is_some),
        "untimed stage: {:?}",
        s[0]
    );
    let console: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("[arm64-1] "))
        .collect();
    let at = |what: &str| {
        console
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no console line with {what:?}:\n{}", console.join("\n")))
    };
    // The chain, in order: AAVMF PXE → GRUB → tabula's configs → arm64 kernel → marker.
    let order = [
        "Start PXE over IPv4",
        "Welcome to GRUB!",
        "tabula: GRUB on 52:54:00:77:04:01 asks for its config",
        "tabula: 52:54:00:77:04:01 boots demo-arm64@1",
        "EFI stub: Booting Linux Kernel",
        "Booting Linux on physical CPU",
        "Linux version 6.",
        "tabula-init:",
        "TABULA-DEMO-BOOTED name=demo-arm64 version=1 ",
    ];
    let pos: Vec<usize> = order.iter().map(|w| at(w)).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{order:?} at {pos:?}");
    // An arm64 kernel: Debian's arm64 release, the PL011 console, AArch64 CPU lines.
    let linux = console[at("Linux version 6.")];
    assert!(linux.contains("-arm64 "), "{linux}");
    at("printk: console [ttyAMA0] enabled");
    let init = console[at("started: kernel 6.")];
    assert!(init.contains("-arm64,"), "{init}");
    // The kernel the lab built and published is an ARM64 Image (header magic "ARM\x64"
    // at offset 0x38), not the x86 one.
    let vmlinuz = std::fs::read(env.data().join("lab-run/images/arm64/vmlinuz")).unwrap();
    assert_eq!(&vmlinuz[0x38..0x3c], b"ARM\x64", "not an ARM64 Image");

    let explained: serde_json::Value =
        serde_json::from_str(&env.ok(&["explain", MAC, "--arch", "efi-arm64", "--json"])).unwrap();
    let manifest = explained["decision"]["plan"]["manifest"]
        .as_str()
        .unwrap_or_else(|| panic!("{explained}"))
        .to_string();
    assert_eq!(
        explained["decision"]["plan"]["arch"], "arm64",
        "{explained}"
    );
    // The same pin on an x86 firmware is refused: the version records its architecture.
    let x86 = env.ok(&["explain", MAC, "--arch", "efi-x64"]);
    assert!(x86.contains("built for arm64"), "{x86}");

    let events = env.events(MAC);
    assert!(
        events
            .iter()
            .any(|e| e["stage"] == "booted" && e["manifest"] == manifest.as_str()),
        "no booted event with {manifest}: {events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e["stage"] == "failed" || e["stage"] == "ignored"),
        "a failed or ignored event: {events:?}"
    );
    for stage in ["loader-sent", "script-sent", "kernel-sent", "initrd-sent"] {
        assert!(
            events
                .iter()
                .any(|e| e["stage"] == stage && e["detail"]["unverified"] != true),
            "no verified {stage}: {events:?}"
        );
    }
}
