//! The real thing: VMs PXE-boot through tabula's own DHCP, TFTP and HTTP inside a private
//! network namespace (bridge + tap), with the shipped `config/lab.toml`.
//!
//! BIOS: SeaBIOS + QEMU's iPXE ROM → DHCP → TFTP `<mac>/undionly.kpxe` → DHCP again (the
//! loader ledger now says "delivered") → HTTP script → kernel + initrd by digest → netboot
//! initramfs → root image verified and mounted read-only → the demo's marker and a
//! `booted` event carrying the pinned manifest; then the immutable upgrade (re-pin to
//! demo@2, reboot). UEFI: OVMF's own PXE (no NIC ROM) → TFTP `<mac>/snponly.efi` → iPXE
//! → EFI-stub kernel; then the rollback (pin back to demo@1, reboot). Root and the lab
//! packages are required (fails, never skips).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tabula::lab::{VmFirmware, VmSpec, qemu};

use crate::common::Env;
use crate::lab_direct::{recipe, require_lab};
use crate::netns::{Lab, Tabula, sh, start_tabula};

pub(crate) const BIOS_MAC: &str = "52:54:00:77:00:10";
pub(crate) const UEFI_MAC: &str = "52:54:00:77:00:11";
const BOOT_LIMIT: Duration = Duration::from_secs(180);

#[derive(Clone, Copy)]
pub(crate) enum Fw {
    Bios,
    Uefi,
}

struct Vm(Child);

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Boots a VM with firmware `fw` in `ns` until `marker` shows on its console; returns
/// the console. The QEMU command line is `tabula lab`'s (`tabula::lab::qemu::args`, the
/// lines of shared/netboot-lab.md §3), on tap0, the console going to a file.
pub(crate) fn pxe_boot(env: &Env, ns: &str, fw: Fw, marker: &str, run: usize) -> String {
    boot_vm(env, ns, fw, &[], marker, run)
}

/// [`pxe_boot`] with `extra` arguments after `tabula lab`'s QEMU command line (firmware
/// settings by `-fw_cfg`, say).
pub(crate) fn boot_vm(
    env: &Env,
    ns: &str,
    fw: Fw,
    extra: &[&str],
    marker: &str,
    run: usize,
) -> String {
    boot_vm_within(env, ns, fw, extra, marker, run, BOOT_LIMIT)
}

/// [`boot_vm`] with its own time limit.
pub(crate) fn boot_vm_within(
    env: &Env,
    ns: &str,
    fw: Fw,
    extra: &[&str],
    marker: &str,
    run: usize,
    limit: Duration,
) -> String {
    boot_vm_on(env, ns, "tap0", fw, extra, marker, run, limit)
}

/// [`boot_vm_within`] on the tap `tap` of `ns` (several VMs at once, each on its own).
#[allow(clippy::too_many_arguments)]
pub(crate) fn boot_vm_on(
    env: &Env,
    ns: &str,
    tap: &str,
    fw: Fw,
    extra: &[&str],
    marker: &str,
    run: usize,
    limit: Duration,
) -> String {
    let log = env.dir.path().join(format!("console-{run}.log"));
    let (firmware, mac) = match fw {
        Fw::Bios => (VmFirmware::Bios, BIOS_MAC),
        Fw::Uefi => (VmFirmware::Uefi, UEFI_MAC),
    };
    let spec = VmSpec {
        name: format!("pxe-{run}"),
        firmware,
        mac: mac.parse().unwrap(),
        tap: tap.into(),
        uuid: format!("00000000-7777-4000-8000-{}", mac.replace(':', "")),
        hardware: Default::default(),
    };
    let work = env.dir.path();
    qemu::prepare(&spec, work).expect("VM files");
    let vm = Vm(Command::new("ip")
        .args(["netns", "exec", ns, "qemu-system-x86_64"])
        .args(qemu::args(&spec, work))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64 (run images/setup-packages.sh)"));
    let t = Instant::now();
    loop {
        let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
        if text.contains(marker) {
            drop(vm);
            return text;
        }
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        assert!(
            t.elapsed() < limit,
            "no {marker:?} after {limit:?}; console tail:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub(crate) fn manifest_of(env: &Env, mac: &str) -> String {
    let j: serde_json::Value = serde_json::from_str(&env.ok(&["explain", mac, "--json"])).unwrap();
    j["decision"]["plan"]["manifest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits for a `booted` event with `manifest`; returns the stages seen for the MAC.
pub(crate) fn booted_with(env: &Env, mac: &str, manifest: &str) -> Vec<String> {
    let t = Instant::now();
    loop {
        let events: Vec<serde_json::Value> = env
            .ok(&["events", mac, "--json", "--last", "1000"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if events
            .iter()
            .any(|e| e["stage"] == "booted" && e["manifest"] == manifest)
        {
            return events
                .iter()
                .map(|e| e["stage"].as_str().unwrap().to_string())
                .collect();
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no booted event for {manifest}: {events:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Publishes the demo images, pins `pin`, and makes a namespace with a bridge at
/// 10.77.0.1 and a tap for the VM (the lab's network).
pub(crate) fn lab_network(env: &Env, pin: &str) -> (Lab, String) {
    require_lab();
    let out = env.dir.path().join("lab-out");
    recipe(env, "publish.sh", &out);
    env.ok(&["pin", "set", "default", pin]);
    let mut lab = Lab::new();
    let ns = lab.ns("pxe");
    sh(&["ip", "-n", &ns, "link", "add", "tabr0", "type", "bridge"]);
    sh(&[
        "ip",
        "-n",
        &ns,
        "addr",
        "add",
        "10.77.0.1/24",
        "dev",
        "tabr0",
    ]);
    sh(&["ip", "-n", &ns, "link", "set", "tabr0", "up"]);
    sh(&[
        "ip", "-n", &ns, "tuntap", "add", "dev", "tap0", "mode", "tap",
    ]);
    sh(&["ip", "-n", &ns, "link", "set", "tap0", "master", "tabr0"]);
    sh(&["ip", "-n", &ns, "link", "set", "tap0", "up"]);
    (lab, ns)
}

/// A shipped config file's text.
pub(crate) fn shipped_config(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(name),
    )
    .unwrap()
}

/// [`lab_network`], then tabula (config/lab.toml) serving in it.
fn lab_with_tabula(env: &Env, pin: &str) -> (Lab, String, Tabula) {
    let (lab, ns) = lab_network(env, pin);
    let tabula = start_tabula(env, &ns, &shipped_config("lab.toml"));
    (lab, ns, tabula)
}

#[test]
fn bios_pxe_boot_through_tabula_with_upgrade() {
    let env = Env::new();
    let (_lab, ns, _tabula) = lab_with_tabula(&env, "demo@1");
    let m1 = manifest_of(&env, BIOS_MAC);
    let console = pxe_boot(
        &env,
        &ns,
        Fw::Bios,
        "TABULA-DEMO-BOOTED name=demo version=1 ",
        1,
    );
    for step in [
        "52-54-00-77-00-10/undionly.kpxe",
        "boot.ipxe",
        "tabula-init:",
    ] {
        assert!(console.contains(step), "console lacks {step:?}:\n{console}");
    }
    assert!(console.contains(&format!("manifest={m1}")), "{console}");
    let stages = booted_with(&env, BIOS_MAC, &m1);
    for stage in [
        "dhcp-ack",
        "loader-sent",
        "script-sent",
        "kernel-sent",
        "initrd-sent",
        "rootfs-sent",
        "booted",
    ] {
        assert!(
            stages.iter().any(|s| s == stage),
            "no {stage} event: {stages:?}"
        );
    }

    // The immutable upgrade: a new pin and a reboot, nothing patched in place.
    env.ok(&["pin", "set", "default", "demo@2"]);
    let m2 = manifest_of(&env, BIOS_MAC);
    assert_ne!(m1, m2);
    let console = pxe_boot(
        &env,
        &ns,
        Fw::Bios,
        "TABULA-DEMO-BOOTED name=demo version=2 ",
        2,
    );
    assert!(console.contains(&format!("manifest={m2}")), "{console}");
    booted_with(&env, BIOS_MAC, &m2);
}

#[test]
fn uefi_pxe_boot_through_tabula_with_rollback() {
    let env = Env::new();
    let (_lab, ns, _tabula) = lab_with_tabula(&env, "demo@2");
    let m2 = manifest_of(&env, UEFI_MAC);
    let console = pxe_boot(
        &env,
        &ns,
        Fw::Uefi,
        "TABULA-DEMO-BOOTED name=demo version=2 ",
        1,
    );
    for step in [
        "52-54-00-77-00-11/snponly.efi",
        "platform=efi",
        "tabula-init:",
    ] {
        assert!(console.contains(step), "console lacks {step:?}:\n{console}");
    }
    let stages = booted_with(&env, UEFI_MAC, &m2);
    assert!(stages.iter().any(|s| s == "loader-sent"), "{stages:?}");

    // Rollback: the pin moves back, the machine reboots into the old version.
    env.ok(&["pin", "set", "default", "demo@1"]);
    let m1 = manifest_of(&env, UEFI_MAC);
    let console = pxe_boot(
        &env,
        &ns,
        Fw::Uefi,
        "TABULA-DEMO-BOOTED name=demo version=1 ",
        2,
    );
    assert!(console.contains(&format!("manifest={m1}")), "{console}");
    booted_with(&env, UEFI_MAC, &m1);
}
