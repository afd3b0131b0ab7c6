//! The real thing: a BIOS VM (SeaBIOS + QEMU's iPXE ROM) PXE-boots through tabula's own
//! DHCP, TFTP and HTTP inside a private network namespace (bridge + tap), with the
//! shipped `config/lab.toml`: ROM → DHCP → TFTP `<mac>/undionly.kpxe` → DHCP again (the
//! loader ledger now says "delivered") → HTTP script → kernel + initrd by digest →
//! netboot initramfs → root image verified and mounted read-only → the demo's marker and
//! a `booted` event carrying the pinned manifest. Then the immutable upgrade: re-pin to
//! demo@2, reboot, v2 marker. Root and the lab packages are required (fails, never skips).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Env;
use crate::lab_direct::{recipe, require_lab};
use crate::netns::{Lab, sh, start_tabula};

const MAC: &str = "52:54:00:77:00:10";
const BOOT_LIMIT: Duration = Duration::from_secs(180);

struct Vm(Child);

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Boots the BIOS VM in `ns` until `marker` shows on its console; returns the console.
fn pxe_boot(env: &Env, ns: &str, marker: &str, run: usize) -> String {
    let sercon = env.dir.path().join("sercon-port.bin");
    std::fs::write(&sercon, [0xf8u8, 0x03]).unwrap();
    let log = env.dir.path().join(format!("console-{run}.log"));
    let vm = Vm(Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "qemu-system-x86_64",
            "-name",
            "tabula-pxe-bios",
        ])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-monitor",
            "none",
        ])
        .args([
            "-no-reboot",
            "-m",
            "512",
            "-smp",
            "1",
            "-accel",
            "tcg",
            "-machine",
            "pc",
        ])
        .arg("-chardev")
        .arg(format!("file,id=ser0,path={}", log.display()))
        .args(["-serial", "chardev:ser0"])
        .args(["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"])
        .arg("-device")
        .arg(format!("virtio-net-pci,netdev=n0,mac={MAC},bootindex=1"))
        .args(["-boot", "n", "-fw_cfg"])
        .arg(format!("name=etc/sercon-port,file={}", sercon.display()))
        .stdout(Stdio::null())
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
        assert!(
            t.elapsed() < BOOT_LIMIT,
            "no {marker:?} after {BOOT_LIMIT:?}; console:\n{}",
            text.lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn manifest_of(env: &Env) -> String {
    let j: serde_json::Value =
        serde_json::from_str(&env.ok(&["explain", MAC, "--arch", "bios", "--json"])).unwrap();
    j["decision"]["plan"]["manifest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits for a `booted` event with `manifest`; returns the stages seen for the MAC.
fn booted_with(env: &Env, manifest: &str) -> Vec<String> {
    let t = Instant::now();
    loop {
        let events: Vec<serde_json::Value> = env
            .ok(&["events", MAC, "--json", "--last", "1000"])
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

#[test]
fn bios_pxe_boot_through_tabula_with_upgrade() {
    require_lab();
    let env = Env::new();
    let out = env.dir.path().join("lab-out");
    recipe(&env, "publish.sh", &out);
    env.ok(&["pin", "set", "default", "demo@1"]);

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
    let config =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/lab.toml"))
            .unwrap();
    let _tabula = start_tabula(&env, &ns, &config);

    let m1 = manifest_of(&env);
    let console = pxe_boot(&env, &ns, "TABULA-DEMO-BOOTED name=demo version=1 ", 1);
    for step in [
        "52-54-00-77-00-10/undionly.kpxe",
        "boot.ipxe",
        "tabula-init:",
    ] {
        assert!(console.contains(step), "console lacks {step:?}:\n{console}");
    }
    assert!(console.contains(&format!("manifest={m1}")), "{console}");
    let stages = booted_with(&env, &m1);
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
    let m2 = manifest_of(&env);
    assert_ne!(m1, m2);
    let console = pxe_boot(&env, &ns, "TABULA-DEMO-BOOTED name=demo version=2 ", 2);
    assert!(console.contains(&format!("manifest={m2}")), "{console}");
    booted_with(&env, &m2);
}
