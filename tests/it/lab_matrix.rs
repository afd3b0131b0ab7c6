//! The firmware matrix beyond the two default boots (issue 18), each through `tabula lab`
//! as an operator runs it, to the demo's marker and a `booted` event with the pinned
//! manifest (tests/FIRMWARE.md names the exact path of each):
//!
//! - BIOS with the bridge captured on the wire (`--capture`): every IPv6 router
//!   solicitation on the lab bridge (iPXE's, then the kernel's) gets tabula's router
//!   advertisement within half a second, so no iPXE stage waits for IPv6;
//! - UEFI PXE with `ipxe.efi` as Debian installs it (`/usr/lib/ipxe/ipxe.efi ->
//!   /boot/ipxe.efi`, `--uefi-loader ipxe.efi`);
//! - UEFI with QEMU's iPXE EFI ROM (`--uefi-rom ipxe`);
//! - e1000 NICs on BIOS (`--nic e1000`) and on UEFI (`--nic e1000 --uefi-rom ipxe`).
//!
//! Root and the lab packages are required (fails, never skips). One VM per test; each
//! run bounded by `crate::lab_cli::lab`.

use std::process::Command;

use crate::common::Env;
use crate::lab_cli::{lab, namespace_gone, stage_seconds, summaries};
use crate::lab_direct::require_lab;

const BIOS_MAC: &str = "52:54:00:77:01:01";
const UEFI_MAC: &str = "52:54:00:77:02:01";

/// Runs `tabula lab ARGS` for one VM and checks it booted demo@1 to its marker and a
/// `booted` event with the pinned manifest; returns the output (consoles included).
fn boots(env: &Env, args: &[&str], name: &str, mac: &str, fw: &str) -> String {
    let mut all = vec!["--vms", "1", "--timeout", "300"];
    all.extend_from_slice(args);
    let (code, text, pid) = lab(env, &all);
    assert_eq!(code, 0, "tabula lab {all:?} failed:\n{text}");
    namespace_gone(pid);
    let s = summaries(&text);
    assert_eq!(s.len(), 1, "{text}");
    assert_eq!(
        s[0][1..6],
        [name, mac, fw, "demo@1", "booted"],
        "{:?}",
        s[0]
    );
    stage_seconds(&s[0]);
    assert!(
        text.contains(&format!("[{name}] TABULA-DEMO-BOOTED name=demo version=1 ")),
        "no marker on the console:\n{text}"
    );
    let explained: serde_json::Value =
        serde_json::from_str(&env.ok(&["explain", mac, "--json"])).unwrap();
    let manifest = explained["decision"]["plan"]["manifest"]
        .as_str()
        .unwrap_or_else(|| panic!("{explained}"))
        .to_string();
    assert!(
        env.events(mac)
            .iter()
            .any(|e| e["stage"] == "booted" && e["manifest"] == manifest.as_str()),
        "no booted event with {manifest}"
    );
    text
}

/// The console lines of VM `name`, in order.
fn console<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("[{name}] ");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter(|l| !l.starts_with("event "))
        .collect()
}

/// The `file=` of the MAC's DHCP ACKs, in order.
fn acked_files(env: &Env, mac: &str) -> Vec<String> {
    env.events(mac)
        .iter()
        .filter(|e| e["stage"] == "dhcp-ack")
        .filter_map(|e| e["detail"]["file"].as_str().map(str::to_string))
        .collect()
}

fn position(lines: &[&str], what: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no console line with {what:?}:\n{}", lines.join("\n")))
}

/// One ICMPv6 message read back from the capture by tcpdump: (seconds, source, kind).
fn icmp6(pcap: &std::path::Path) -> Vec<(f64, String, &'static str)> {
    let out = Command::new("tcpdump")
        .args(["-r"])
        .arg(pcap)
        .args(["-n", "-tt", "icmp6"])
        .output()
        .expect("tcpdump -r");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // `1764650000.123456 IP6 fe80::1 > ff02::2: ICMP6, router solicitation, length 16`
            let w: Vec<&str> = l.split_whitespace().collect();
            let kind = if l.contains("router solicitation") {
                "rs"
            } else if l.contains("router advertisement") {
                "ra"
            } else {
                return None;
            };
            Some((w.first()?.parse().ok()?, w.get(2)?.to_string(), kind))
        })
        .collect()
}

#[test]
fn bios_every_router_solicitation_on_the_bridge_is_answered() {
    require_lab();
    let env = Env::new();
    let pcap = env.dir.path().join("bridge.pcap");
    let text = boots(
        &env,
        &["--firmware", "bios", "--capture", pcap.to_str().unwrap()],
        "bios-1",
        BIOS_MAC,
        "bios",
    );
    let msgs = icmp6(&pcap);
    let ra_from: Vec<&String> = msgs.iter().filter(|m| m.2 == "ra").map(|m| &m.1).collect();
    assert!(
        !ra_from.is_empty(),
        "no router advertisement at all: {msgs:?}"
    );
    assert!(
        ra_from.iter().all(|s| s.starts_with("fe80:")),
        "RAs come from a link-local address: {ra_from:?}"
    );
    let rs: Vec<&(f64, String, &str)> = msgs.iter().filter(|m| m.2 == "rs").collect();
    // iPXE's link-local address is from the VM's MAC (52:54:00:77:01:01).
    let vm = "fe80::5054:ff:fe77:101";
    assert!(
        rs.iter().filter(|m| m.1 == vm).count() >= 2,
        "both iPXE stages (ROM, undionly.kpxe) solicit: {msgs:?}"
    );
    assert!(
        rs.iter().all(|m| m.1 == vm),
        "only the VM solicits on the lab bridge (the namespace is quiet): {msgs:?}"
    );
    for (t, from, _) in &rs {
        assert!(
            msgs.iter()
                .any(|(u, _, k)| *k == "ra" && *u >= *t && *u - *t < 0.5),
            "router solicitation from {from} at {t} not answered within 0.5 s: {msgs:?}"
        );
    }
    // iPXE's "Configuring" ends at once: no more than one progress dot a stage
    // waiting on IPv6 would have printed ~15 of them before.
    let lines = console(&text, "bios-1");
    let configuring: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("Configuring (net0"))
        .collect();
    assert_eq!(configuring.len(), 2, "two iPXE stages: {lines:?}");
}

#[test]
fn uefi_pxe_chainloads_debians_ipxe_efi_through_its_link() {
    require_lab();
    let env = Env::new();
    assert!(
        std::fs::symlink_metadata("/usr/lib/ipxe/ipxe.efi")
            .is_ok_and(|m| m.file_type().is_symlink()),
        "/usr/lib/ipxe/ipxe.efi is a link (Debian's ipxe package: -> /boot/ipxe.efi)"
    );
    let text = boots(
        &env,
        &["--firmware", "uefi", "--uefi-loader", "ipxe.efi"],
        "uefi-1",
        UEFI_MAC,
        "uefi",
    );
    let lines = console(&text, "uefi-1");
    let pxe = position(&lines, "Start PXE over IPv4");
    let script = position(&lines, "boot.ipxe");
    assert!(pxe < script, "OVMF PXE, then iPXE's script");
    let files = acked_files(&env, UEFI_MAC);
    assert!(
        files
            .first()
            .is_some_and(|f| f == "52-54-00-77-02-01/ipxe.efi")
            && files.iter().any(|f| f.contains("/boot.ipxe")),
        "OVMF is handed ipxe.efi, then iPXE its script: {files:?}"
    );
    let nbp = position(&lines, "52-54-00-77-02-01/ipxe.efi");
    let script = position(&lines, "boot.ipxe");
    assert!(
        pxe < script && nbp < script,
        "OVMF PXE, then ipxe.efi, then the script"
    );
    let sent: Vec<serde_json::Value> = env
        .events(UEFI_MAC)
        .into_iter()
        .filter(|e| e["stage"] == "loader-sent")
        .collect();
    let size = std::fs::metadata("/usr/lib/ipxe/ipxe.efi").unwrap().len();
    assert!(
        sent.iter().any(|e| e["detail"]["bytes"] == size),
        "ipxe.efi ({size} bytes, the link's target) delivered by TFTP: {sent:?}"
    );
}

#[test]
fn uefi_with_qemus_ipxe_efi_rom() {
    require_lab();
    let env = Env::new();
    let text = boots(
        &env,
        &["--firmware", "uefi", "--uefi-rom", "ipxe"],
        "uefi-1",
        UEFI_MAC,
        "uefi",
    );
    let lines = console(&text, "uefi-1");
    assert!(
        !lines.iter().any(|l| l.contains("Start PXE over IPv4")),
        "the ROM's iPXE, not OVMF's PXE, does the first DHCP:\n{}",
        lines.join("\n")
    );
    // The ROM's iPXE is told apart from a chainloaded one only by the loader ledger, so
    // with config/lab.toml's `chainload = "loader-first"` it chainloads snponly.efi (on
    // the ROM's SNP) first, then gets its script.
    let rom = position(&lines, "iPXE");
    let nbp = position(&lines, "52-54-00-77-02-01/snponly.efi");
    let script = position(&lines, "boot.ipxe");
    assert!(rom < nbp && nbp < script, "iPXE ROM → snponly.efi → script");
}

#[test]
fn e1000_on_bios() {
    require_lab();
    let env = Env::new();
    let text = boots(
        &env,
        &["--firmware", "bios", "--nic", "e1000"],
        "bios-1",
        BIOS_MAC,
        "bios",
    );
    let lines = console(&text, "bios-1");
    let rom = position(&lines, "using 82540em");
    assert!(
        !lines.iter().any(|l| l.contains("using virtio-net")),
        "no virtio NIC: {lines:?}"
    );
    let nbp = position(&lines, "52-54-00-77-01-01/undionly.kpxe");
    let nic = position(&lines, "driver e1000");
    assert!(
        rom < nbp && nbp < nic,
        "iPXE e1000 ROM → undionly.kpxe → Linux e1000"
    );
}

#[test]
fn e1000_on_uefi_with_the_ipxe_rom() {
    require_lab();
    let env = Env::new();
    let text = boots(
        &env,
        &["--firmware", "uefi", "--nic", "e1000", "--uefi-rom", "ipxe"],
        "uefi-1",
        UEFI_MAC,
        "uefi",
    );
    let lines = console(&text, "uefi-1");
    let nbp = position(&lines, "52-54-00-77-02-01/snponly.efi");
    let script = position(&lines, "boot.ipxe");
    let nic = position(&lines, "driver e1000");
    assert!(
        nbp < script && script < nic,
        "iPXE e1000 ROM → snponly.efi → script → Linux e1000"
    );
    assert!(!lines.iter().any(|l| l.contains("Start PXE over IPv4")));
}
