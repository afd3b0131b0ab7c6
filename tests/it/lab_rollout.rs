//! Issue 14 on real firmware: `tabula lab --rollout` as an operator runs it. Three BIOS
//! VMs (SeaBIOS + iPXE, QEMU under TCG, booting in parallel) under one label on demo@1;
//! a rollout of demo@3, whose stored root image fails the initramfs's sha256 check, stops
//! at the canary, which is held on demo@1 and boots it by itself, while the other two
//! never boot demo@3; then a rollout of demo@2 reaches all three, each reboot asked for by
//! the rollout's webhook and carried out by the lab's receiver with QMP `system_reset`;
//! then boot-once: demo@2 once, `booted`, its webhook verified, and demo@1 on the next
//! reset. The lab checks each stage itself (exit 0 only if all came out right); this test
//! reads the lab's store again afterwards with the CLI, so the claims are checked twice.
//!
//! Root and the lab packages are required (fails, never skips). Bounded: each wait of the
//! lab by `--timeout`, the whole run by RUN_LIMIT.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::Env;
use crate::lab_direct::require_lab;

/// The whole run: image builds, ~10 boots under TCG on a shared 2-core machine.
const RUN_LIMIT: Duration = Duration::from_secs(1500);

/// `tabula --data-dir DATA lab --rollout …` to the end; (exit code, output).
fn lab_rollout(env: &Env) -> (i32, String) {
    let log = env.dir.path().join("lab-rollout.out");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = env
        .command()
        .arg("--data-dir")
        .arg(env.data())
        .args(["lab", "--rollout", "--timeout", "360"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > RUN_LIMIT {
            // SIGTERM: tabula lab stops its VMs and removes its namespace itself.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(10));
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "tabula lab --rollout still running after {RUN_LIMIT:?}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    eprintln!(
        "lab_rollout: tabula lab --rollout: {status} in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    (status.code().unwrap_or(-1), text)
}

/// The lab's own CLI lines (commands and verdicts), without the consoles.
fn operator_lines(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('['))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_broken_image_stops_at_the_canary_a_good_one_reaches_all_and_boot_once_goes_back() {
    require_lab();
    let env = Env::new();
    let (code, text) = lab_rollout(&env);
    let ops = operator_lines(&text);
    eprintln!("{ops}");
    assert_eq!(code, 0, "tabula lab --rollout failed:\n{text}");
    assert!(
        ops.contains("lab rollout: every stage came out as it must"),
        "{ops}"
    );

    // Read the lab's store again, as its operator would.
    let data = env.data().join("rollout");
    let cfg = data.join("run/lab.toml");
    let tabula = |args: &[&str]| -> String {
        let out = env
            .command()
            .arg("--config")
            .arg(&cfg)
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tabula {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let json = |args: &[&str]| -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&tabula(&a)).unwrap()
    };
    let boots = |vm: &str| -> Vec<(String, String, String)> {
        json(&["machine", "boots", vm])
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let s = |k: &str| b[k].as_str().unwrap().to_string();
                (s("version"), s("state"), s("source"))
            })
            .collect()
    };
    let canary = ops
        .lines()
        .find_map(|l| l.strip_prefix("lab: the canary of rollout bad is "))
        .expect("the lab names the canary")
        .trim()
        .to_string();
    let vms = ["bios-1", "bios-2", "bios-3"];

    // The bad rollout: aborted after it paused at the canary; the canary failed.
    let bad = json(&["rollout", "show", "bad"]);
    assert_eq!(bad["rollout"]["state"], "aborted", "{bad}");
    for m in bad["members"].as_array().unwrap() {
        let want = if m["machine"] == canary.as_str() {
            "failed"
        } else {
            "waiting"
        };
        assert_eq!(m["state"], want, "{m}");
    }
    // The canary: demo@1, two failed tries of demo@3, held on demo@1 (then the good
    // rollout, maybe boot-once).
    let c = boots(&canary);
    let from_oldest: Vec<_> = c.iter().rev().take(4).cloned().collect();
    assert_eq!(
        from_oldest,
        [
            ("1".into(), "booted".into(), "pin:label:lab=rollout".into()),
            ("3".into(), "failed".into(), "rollout:bad/0".into()),
            ("3".into(), "failed".into(), "rollout:bad/0".into()),
            ("1".into(), "booted".into(), format!("hold:{canary}")),
        ],
        "{canary}: {c:?}"
    );
    for vm in vms.iter().filter(|v| **v != canary) {
        let b = boots(vm);
        assert!(
            b.iter().all(|(v, _, _)| v != "3"),
            "{vm} booted demo@3: {b:?}"
        );
    }
    // The good rollout reached all three; its reboots were carried out by QMP.
    let good = json(&["rollout", "show", "good"]);
    assert_eq!(good["rollout"]["state"], "completed", "{good}");
    for vm in vms {
        assert!(
            boots(vm)
                .iter()
                .any(|(v, s, src)| v == "2" && s == "booted" && src.starts_with("rollout:good/")),
            "{vm} never booted demo@2 from rollout good: {:?}",
            boots(vm)
        );
        assert!(
            ops.lines().any(|l| l
                .contains("rollout.reboot_requested (signature verified): QMP system_reset of")
                && l.ends_with(&format!(" {vm}"))),
            "no QMP reset of {vm} by webhook:\n{ops}"
        );
    }
    // Boot-once on bios-1: demo@2 once, then demo@1 again.
    let b1 = boots("bios-1");
    assert_eq!(
        (
            b1[0].0.as_str(),
            b1[0].1.as_str(),
            b1[1].0.as_str(),
            b1[1].1.as_str()
        ),
        ("1", "booted", "2", "booted"),
        "{b1:?}"
    );
    assert!(b1[1].2.starts_with("boot-once:"), "{b1:?}");
    let once_id = b1[1].2.strip_prefix("boot-once:").unwrap();
    let once = json(&["pin", "once-status", once_id]);
    assert_eq!(once["state"], "booted", "{once}");
    assert!(
        ops.contains(&format!(
            "lab: webhook boot_once.booted for {once_id} arrived, signature verified"
        )),
        "{ops}"
    );
    // Every webhook the lab's receiver got was delivered (2xx after a verified signature).
    let hook = ops
        .lines()
        .find_map(|l| l.trim().strip_prefix("added webhook "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the webhook's id")
        .to_string();
    let deliveries = json(&["webhook", "deliveries", &hook]);
    let d = deliveries.as_array().unwrap();
    assert!(d.len() >= 8, "{deliveries}");
    assert!(d.iter().all(|d| d["state"] == "delivered"), "{deliveries}");
}
