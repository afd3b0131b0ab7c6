//! `tabula lab` for real, as an operator runs it: the binary builds and publishes the
//! demo images into its data dir, makes its own namespace, serves, PXE-boots a BIOS and
//! a UEFI VM under QEMU and ends with one summary line per machine (exit 0 only if every
//! machine booted its pinned image). Then the failure path through the same PXE boot: a version
//! whose stored root image is corrupted is pinned; the netboot initramfs's sha256 check
//! fails, it reports `failed` with the reason, and `tabula lab` exits 1 with that reason
//! in the summary. The second run also reuses the published images. Then SIGTERM in
//! the middle of a boot: QEMU, tabula and the namespace are gone when it exits. And an
//! image that is neither published nor buildable is a one-line error.
//!
//! Root and the lab packages are required (fails, never skips). Every run is bounded.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Env;
use crate::lab_direct::require_lab;

/// One `tabula lab` run: the whole boot plus image builds; generous for a loaded box.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// Runs `tabula --data-dir DATA lab ARGS…` to the end (killed after RUN_LIMIT);
/// returns (exit code, stdout+stderr, the child's PID).
pub(crate) fn lab(env: &Env, args: &[&str]) -> (i32, String, u32) {
    let log = env.dir.path().join("lab.out");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = env
        .command()
        .arg("--data-dir")
        .arg(env.data())
        .arg("lab")
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let pid = child.id();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > RUN_LIMIT {
            // SIGTERM: tabula lab cleans up its VMs and namespace itself.
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(10));
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "tabula lab {args:?} still running after {RUN_LIMIT:?}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    eprintln!(
        "lab_cli: tabula lab {args:?}: {status} in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    for l in text
        .lines()
        .filter(|l| l.starts_with("summary ") || l.starts_with("error: "))
    {
        eprintln!("lab_cli:   {l}");
    }
    (status.code().unwrap_or(-1), text, pid)
}

/// The summary lines, split into words.
pub(crate) fn summaries(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with("summary "))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Checks `dhcp=…s loader=…s script=…s kernel+initrd=…s root=…s booted=…s total=…s`
/// (each a number of seconds or `-`) in words 6..13; returns the seconds.
pub(crate) fn stage_seconds(words: &[String]) -> Vec<Option<f64>> {
    let names = [
        "dhcp",
        "loader",
        "script",
        "kernel+initrd",
        "root",
        "booted",
        "total",
    ];
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let w = &words[6 + i];
            let v = w
                .strip_prefix(&format!("{name}="))
                .unwrap_or_else(|| panic!("word {} is {w:?}, not {name}=: {words:?}", 6 + i));
            if v == "-" {
                None
            } else {
                let secs: f64 = v
                    .strip_suffix('s')
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{w:?} is not {name}=<seconds>s"));
                assert!((0.0..600.0).contains(&secs), "{w}");
                Some(secs)
            }
        })
        .collect()
}

/// Whether a process runs (a zombie does not count).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

pub(crate) fn namespace_gone(pid: u32) {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        !list.contains(&format!("tabula-lab-{pid} "))
            && !list
                .lines()
                .any(|l| l.trim() == format!("tabula-lab-{pid}")),
        "tabula lab left its namespace behind:\n{list}"
    );
}

#[test]
fn tabula_lab_boots_bios_and_uefi_vms_then_reports_a_corrupt_root() {
    require_lab();
    let env = Env::new();
    const MAC: &str = "52:54:00:77:01:01";

    // 1. The one command: build, publish, serve, boot a BIOS and a UEFI VM, summarise.
    let (code, text, pid) = lab(
        &env,
        &["--firmware", "both", "--vms", "1", "--timeout", "300"],
    );
    assert_eq!(code, 0, "tabula lab failed:\n{text}");
    namespace_gone(pid);
    let s = summaries(&text);
    assert_eq!(s.len(), 2, "one summary line per machine:\n{text}");
    for (w, (name, mac, fw)) in s.iter().zip([
        ("bios-1", MAC, "bios"),
        ("uefi-1", "52:54:00:77:02:01", "uefi"),
    ]) {
        assert_eq!(w[1..6], [name, mac, fw, "demo@1", "booted"], "{w:?}");
        let secs = stage_seconds(w);
        assert_eq!(w.len(), 13, "{w:?}");
        assert!(secs.iter().all(Option::is_some), "every stage seen: {w:?}");
        assert!(
            text.contains(&format!("[{name}] TABULA-DEMO-BOOTED name=demo version=1 ")),
            "console is streamed with the VM's name"
        );
        assert!(
            text.contains(&format!("[{name}] event ")),
            "boot events are followed"
        );
    }
    // The store agrees: a booted event carrying demo@1's manifest (the lab pinned the MAC).
    let explained: serde_json::Value =
        serde_json::from_str(&env.ok(&["explain", MAC, "--json"])).unwrap();
    let manifest = explained["decision"]["plan"]["manifest"]
        .as_str()
        .unwrap_or_else(|| panic!("{explained}"))
        .to_string();
    assert!(
        env.events(MAC)
            .iter()
            .any(|e| e["stage"] == "booted" && e["manifest"] == manifest.as_str()),
        "no booted event with {manifest}"
    );

    // 2. The failure path: a version whose stored root image no longer matches its digest:
    // tabula never sends it (quarantined), so the guest's download fails.
    let out = env.data().join("lab-run/images");
    let hex = crate::lab_direct::publish_corrupt_root(&env, &out, "panic=5 tabula.tries=2");

    let (code, text, pid) = lab(&env, &["--image", "broken@1", "--timeout", "300"]);
    assert_eq!(code, 1, "a corrupt root must fail the lab:\n{text}");
    namespace_gone(pid);
    assert!(
        text.contains("broken@1 is published"),
        "published versions are reused:\n{text}"
    );
    assert!(!text.contains("TABULA-DEMO-BOOTED"), "{text}");
    let s = summaries(&text);
    assert_eq!(s.len(), 1, "{text}");
    let w = &s[0];
    assert_eq!(
        w[1..6],
        ["bios-1", MAC, "bios", "broken@1", "failed"],
        "{w:?}"
    );
    let secs = stage_seconds(w);
    assert!(secs[5].is_none(), "never booted: {w:?}");
    let line = text.lines().find(|l| l.starts_with("summary ")).unwrap();
    assert!(
        line.contains("— fetch: download of ") && line.contains(&hex) && line.contains("404"),
        "{line}"
    );
    assert!(
        text.lines()
            .last()
            .unwrap_or("")
            .starts_with("error: 1 of 1 machine(s) did not boot"),
        "{text}"
    );
    // As stored: the initramfs's failed reports, the last one final, each with the reason.
    let failed: Vec<serde_json::Value> = env
        .events(MAC)
        .into_iter()
        .filter(|e| e["stage"] == "failed")
        .collect();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    for (i, f) in failed.iter().enumerate() {
        assert_eq!(f["detail"]["stage"], "fetch", "{f}");
        assert_eq!(f["detail"]["final"], i == 1, "{f}");
        let reason = f["detail"]["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("download of ") && reason.contains(&hex) && reason.contains("404"),
            "{reason}"
        );
    }
}

#[test]
fn tabula_lab_cleans_up_on_sigterm_and_names_what_it_cannot_build() {
    require_lab();
    let env = Env::new();
    // Nothing published, not the demo: a one-line error before any namespace or VM.
    let r = env.run(&[
        "--data-dir",
        env.data().to_str().unwrap(),
        "lab",
        "--image",
        "nosuch@1",
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stderr.trim(),
        format!(
            "error: nosuch@1 is not published in {d} and only the demo image can be built here; \
             publish it with `tabula --data-dir {d} image add …`",
            d = env.data().display()
        )
    );

    // SIGTERM once the VM runs (the images are built first, so allow for that).
    let log = env.dir.path().join("lab.out");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = env
        .command()
        .arg("--data-dir")
        .arg(env.data())
        .args(["lab", "--firmware", "uefi"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let t = Instant::now();
    let qemu_pid = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.starts_with("lab: started uefi-1 ")) {
            let pid = l
                .split("QEMU pid ")
                .nth(1)
                .and_then(|r| r.split(',').next());
            break pid.unwrap().parse::<u32>().unwrap();
        }
        if t.elapsed() > RUN_LIMIT || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the VM never started:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        Path::new(&format!("/proc/{qemu_pid}")).exists(),
        "QEMU runs"
    );
    std::thread::sleep(Duration::from_secs(3));
    let pid = child.id();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "tabula lab did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.trim_end().ends_with("error: interrupted"), "{text}");
    assert!(!alive(qemu_pid), "QEMU {qemu_pid} survived tabula lab");
    namespace_gone(pid);
}
