//! A real distribution through the whole pipeline: `images/debian/build.sh` debootstraps
//! a minimal Debian 12 with its own kernel and systemd (once per machine, then cached),
//! `tabula image build` makes the image from that directory (the Debian kernel, an
//! initramfs of *its* modules), and QEMU boots it through `tabula serve` the way
//! `lab_direct.rs` does (-kernel/-initrd from the plan, user networking). Asserted: a
//! systemd unit in the image (`tabula-booted.service`) checks the manifest digest from
//! the kernel command line against tabula's copy and prints
//! `TABULA-DEBIAN-BOOTED … manifest=<the pinned manifest> manifest_check=ok`, and tabula
//! records a `booted` event for that manifest and root digest.
//!
//! Systemd rather than busybox init, because that is what a Debian image boots. Slow
//! parts: the debootstrap (~10 min the first time on a machine), the build (~20 s), the
//! boot under TCG (timed in the test log).

use std::time::{Duration, Instant};

use crate::common::Env;
use crate::lab_direct::{
    MAC, boot_with, explain, last_id, require_lab, serve_for_qemu, wait_events,
};

#[test]
fn debootstrapped_debian_builds_and_boots_with_its_own_kernel() {
    require_lab();
    let env = Env::new();
    let t0 = Instant::now();
    let out = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/images/debian/build.sh"
        ))
        .output()
        .expect("bash images/debian/build.sh");
    assert!(
        out.status.success(),
        "images/debian/build.sh failed (debootstrap needs the Debian mirror):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let t_tree = t0.elapsed();

    let t1 = Instant::now();
    let built = env
        .command()
        .args([
            "image",
            "build",
            "debian",
            "--version",
            "1",
            "--from",
            &tree,
        ])
        .args(["--cmdline", "panic=5 tabula.after=poweroff"])
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&built.stderr);
    assert!(built.status.success(), "image build: {log}");
    let summary = String::from_utf8_lossy(&built.stdout).into_owned();
    let t_build = t1.elapsed();
    assert!(summary.contains("kernel   6."), "{summary}");
    assert!(summary.contains("virtio_net"), "{summary}");

    let (cfg, server) = serve_for_qemu(&env, "debian.toml");
    env.ok(&["pin", "set", MAC, "debian@1"]);
    let plan = explain(&env, &cfg, server.http);
    let before = last_id(&env);
    let t2 = Instant::now();
    let console = boot_with(
        &plan,
        &env.dir.path().join("boot-debian.log"),
        1536,
        Duration::from_secs(420),
        |l| l.contains("TABULA-DEBIAN-BOOTED") || l.contains("giving up after"),
    );
    let t_boot = t2.elapsed();
    let at = |n: &str| console.at(n).map_or("-".into(), |t| format!("{t:.1}s"));
    eprintln!(
        "build_debian: tree {:.1}s, image build {:.1}s, boot {:.1}s (linux {}, switch_root {}, systemd {}, marker {}); {}",
        t_tree.as_secs_f64(),
        t_build.as_secs_f64(),
        t_boot.as_secs_f64(),
        at("Linux version"),
        at("] switch_root:"),
        at("systemd[1]: "),
        at("TABULA-DEBIAN-BOOTED"),
        summary.lines().next().unwrap_or("")
    );
    let want = format!(
        "TABULA-DEBIAN-BOOTED name=debian version=1 manifest={} manifest_check=ok",
        plan.manifest
    );
    assert!(
        console.at(&want).is_some(),
        "no `{want}` on the console:\n{}",
        console.text()
    );
    let new = wait_events(&env, before, |e| e["stage"] == "booted");
    let booted: Vec<&serde_json::Value> = new.iter().filter(|e| e["stage"] == "booted").collect();
    assert_eq!(booted.len(), 1, "{new:#?}");
    assert_eq!(booted[0]["manifest"], plan.manifest.as_str(), "{new:#?}");
    assert_eq!(booted[0]["detail"]["root_sha256"], plan.rootfs_hex.as_str());
    assert_eq!(booted[0]["detail"]["init"], "systemd", "{new:#?}");
}
