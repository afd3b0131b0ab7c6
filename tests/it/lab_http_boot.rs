//! UEFI HTTP boot through tabula, for real (issue 18), through `tabula lab --firmware
//! uefi-http` as an operator runs it: OVMF with its PXE turned off
//! (`opt/org.tianocore/IPv4PXESupport=n` and IPv6 likewise, as shared/netboot-lab.md's
//! addendum says) does DHCP as an HTTP-boot client (option 93 = 16, option 60
//! `HTTPClient`); tabula answers with option 60 `HTTPClient` and the URL
//! `{public_url}/loaders/snponly.efi`; the firmware sizes the loader by a `HEAD` and then
//! GETs it; iPXE (snponly.efi, on the firmware's network driver) asks DHCP again, gets
//! its script, and boots the demo to its marker and a `booted` event, every stage of the
//! summary timed but `loader` (no `loader-sent` event for an HTTP loader yet).
//!
//! Loaders linked the way Debian installs them are tests/it/loaders.rs. Root and the lab
//! packages are required (fails, never skips). Bounded by `crate::lab_cli::lab`.

use crate::common::Env;
use crate::lab_cli::{lab, namespace_gone, stage_seconds, summaries};
use crate::lab_direct::require_lab;

const HTTP_MAC: &str = "52:54:00:77:05:01";

#[test]
fn uefi_http_boot_through_tabula_to_booted() {
    require_lab();
    let env = Env::new();
    let args = ["--vms", "1", "--timeout", "300", "--firmware", "uefi-http"];
    let (code, text, pid) = lab(&env, &args);
    assert_eq!(code, 0, "tabula lab {args:?} failed:\n{text}");
    namespace_gone(pid);
    let s = summaries(&text);
    assert_eq!(s.len(), 1, "{text}");
    assert_eq!(
        s[0][1..6],
        ["uefi-http-1", HTTP_MAC, "uefi-http", "demo@1", "booted"],
        "{:?}",
        s[0]
    );
    // Every stage but `loader` (a completed TFTP transfer; the HTTP `/loaders/` route
    // writes no `loader-sent` event yet) is timed.
    let secs = stage_seconds(&s[0]);
    assert!(
        secs.iter().enumerate().all(|(i, v)| i == 1 || v.is_some()),
        "every stage but loader timed: {:?}",
        s[0]
    );
    let console: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("[uefi-http-1] "))
        .collect::<Vec<_>>()
        .join("\n");
    for step in [
        "Start HTTP Boot over IPv4",
        "http://10.77.0.1:8080/loaders/snponly.efi",
        "platform=efi",
        "tabula-init:",
        "TABULA-DEMO-BOOTED name=demo version=1 ",
    ] {
        assert!(console.contains(step), "console lacks {step:?}:\n{console}");
    }
    // EDK2 takes the size from the HEAD before it GETs: the loader's real length.
    let len = std::fs::metadata("/usr/lib/ipxe/snponly.efi")
        .unwrap()
        .len();
    assert!(
        console.contains(&format!("File Size: {len}")),
        "the firmware did not size the loader by its HEAD:\n{console}"
    );
    assert!(
        !console.contains("Start PXE over IPv4"),
        "PXE ran, not HTTP boot:\n{console}"
    );
    let explained: serde_json::Value =
        serde_json::from_str(&env.ok(&["explain", HTTP_MAC, "--arch", "efi-x64-http", "--json"]))
            .unwrap();
    let manifest = explained["decision"]["plan"]["manifest"]
        .as_str()
        .unwrap_or_else(|| panic!("{explained}"))
        .to_string();
    assert!(
        console.contains(&format!("manifest={manifest}")),
        "{console}"
    );
    let events = env.events(HTTP_MAC);
    assert!(
        events
            .iter()
            .any(|e| e["stage"] == "booted" && e["manifest"] == manifest.as_str()),
        "no booted event with {manifest}: {events:?}"
    );
    for stage in ["dhcp-ack", "script-sent", "kernel-sent", "rootfs-sent"] {
        assert!(
            events.iter().any(|e| e["stage"] == stage),
            "no {stage} event: {events:?}"
        );
    }
}
