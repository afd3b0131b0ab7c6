//! The server-gone test (issue 18): a BIOS VM PXE-boots through tabula; the moment its
//! netboot initramfs has its address and is about to fetch the root image, `tabula serve`
//! is stopped (SIGTERM) for two minutes. The initramfs must not strand the machine: every
//! refused fetch is an `UNREACHABLE` console line and a spooled, non-final `failed`
//! report, retried with backoff without using up its attempts; when tabula is back (same
//! data dir, so the same lease and pins), the download succeeds, the machine boots demo@1
//! to its marker and a `booted` event, and every report the initramfs made reaches the
//! store exactly once, in order: the `seq` numbers of the stored reports are 1..=n with no
//! gap and no repeat, and the unreachable ones match the console's count.
//!
//! Root and the lab packages are required (fails, never skips).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::Env;

use crate::lab_pxe::{BIOS_MAC, Fw, boot_vm_within, lab_network, manifest_of, shipped_config};
use crate::netns::start_tabula;

const OUTAGE: Duration = Duration::from_secs(120);

#[test]
fn server_gone_two_minutes_during_the_root_fetch_then_every_report_arrives_once() {
    let env = Env::new();
    let (_lab, ns) = lab_network(&env, "demo@1");
    let cfg = shipped_config("lab.toml");
    let m1 = manifest_of(&env, BIOS_MAC);
    let mut tabula = Some(start_tabula(&env, &ns, &cfg));
    let console_log = env.dir.path().join("console-1.log");
    let marker = "TABULA-DEMO-BOOTED name=demo version=1 ";
    let mut stopped_for = Duration::ZERO;
    let console = std::thread::scope(|s| {
        let vm = s.spawn(|| {
            boot_vm_within(
                &env,
                &ns,
                Fw::Bios,
                &[],
                marker,
                1,
                Duration::from_secs(600),
            )
        });
        // The initramfs has its lease ("dhcp: eth0 is 10.77.0.1xx/…"): stop tabula.
        let t = Instant::now();
        loop {
            let text = std::fs::read_to_string(&console_log).unwrap_or_default();
            if text.lines().any(|l| {
                l.starts_with("tabula-init:") && l.contains("] dhcp: ") && l.contains(" is ")
            }) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(300) && !vm.is_finished(),
                "the initramfs never got its lease:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let t = tabula.take().unwrap();
        let pid = t.child.id();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        drop(t); // waits for it (and kills it if SIGTERM was not enough)
        let down = Instant::now();
        std::thread::sleep(OUTAGE);
        tabula = Some(start_tabula(&env, &ns, &cfg));
        stopped_for = down.elapsed();
        vm.join().unwrap()
    });
    assert!(stopped_for >= OUTAGE);
    let unreachable = console
        .lines()
        .filter(|l| l.contains("UNREACHABLE stage=fetch"))
        .count();
    assert!(
        unreachable >= 2,
        "the fetch was retried while tabula was gone:\n{console}"
    );
    assert!(!console.contains("giving up"), "{console}");
    assert!(console.contains(&format!("manifest={m1}")), "{console}");

    // The store: booted with the pinned manifest, and every report of the initramfs once.
    let t = Instant::now();
    let evs = loop {
        let evs = env.events(BIOS_MAC);
        if evs
            .iter()
            .any(|e| e["stage"] == "booted" && e["manifest"] == m1.as_str())
        {
            break evs;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no booted event: {evs:#?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let mut seqs: Vec<u64> = evs
        .iter()
        .filter_map(|e| e["detail"]["seq"].as_u64())
        .collect();
    let n = seqs.len() as u64;
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<u64>>(),
        "every spooled report once, none lost: {evs:#?}"
    );
    let stored_unreachable = evs
        .iter()
        .filter(|e| e["stage"] == "failed" && e["detail"]["unreachable"] == true)
        .count();
    assert_eq!(stored_unreachable, unreachable, "{evs:#?}");
    for stage in ["fetch", "verify", "mount"] {
        assert!(
            evs.iter()
                .any(|e| e["stage"] == "progress" && e["detail"]["stage"] == stage),
            "no {stage} progress: {evs:#?}"
        );
    }
    assert!(
        !evs.iter().any(|e| e["detail"]["final"] == true),
        "nothing final: the machine recovered"
    );
    drop(tabula);
}
