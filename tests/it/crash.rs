//! Crash safety: `tabula image add` killed with SIGKILL at random moments, many times.
//! Afterwards every version is either absent or complete and verifiable, no blob holds
//! wrong bytes, and `gc` clears the debris. Then a blob corrupted on disk is reported.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{Env, bytes};

const ROUNDS: usize = 30;

#[test]
fn sigkill_during_publish_never_leaves_a_broken_version() {
    let env = Env::new();
    let big = env.file("root.squashfs", 99, 24 << 20);
    let initrd = env.file("initrd.img", 98, 1 << 20);
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    let add = |i: usize| {
        let k = env.file(&format!("vmlinuz-{i}"), i as u64, 64 << 10);
        let mut c = env.command();
        c.args([
            "image",
            "add",
            "demo",
            "--version",
            &format!("v{i}"),
            "--kernel",
            &p(&k),
            "--initrd",
            &p(&initrd),
            "--rootfs",
            &p(&big),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        c
    };

    // Calibrate: how long one uninterrupted publish takes here.
    let t = Instant::now();
    assert!(add(1000).status().unwrap().success());
    let mut full = t.elapsed().max(Duration::from_millis(20));

    // Kill at uniformly random moments across 1.3x that duration. Every third round
    // runs to the end instead and re-calibrates, so the mix of killed and finished
    // publishes holds whatever else loads the machine.
    let noise = bytes(7, ROUNDS * 8);
    let mut completed = vec![1000usize];
    let mut killed = 0;
    for i in 0..ROUNDS {
        if i % 3 == 2 {
            let t = Instant::now();
            assert!(
                add(i).status().unwrap().success(),
                "round {i} failed on its own"
            );
            full = t.elapsed().max(Duration::from_millis(20));
            completed.push(i);
            continue;
        }
        let r = u64::from_le_bytes(noise[i * 8..i * 8 + 8].try_into().unwrap());
        let delay = full.mul_f64(1.3 * (r % 1000) as f64 / 1000.0);
        let mut child = add(i).spawn().unwrap();
        std::thread::sleep(delay);
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success(), "round {i} failed on its own");
                completed.push(i);
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                killed += 1;
            }
        }
    }
    assert!(
        killed >= ROUNDS / 4,
        "only {killed} of {ROUNDS} runs were killed mid-way"
    );

    // Every listed version is complete; every completed run is listed.
    let list = env.ok(&["image", "list"]);
    let listed: Vec<String> = list
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    for i in &completed {
        assert!(
            listed.contains(&format!("v{i}")),
            "completed v{i} missing:\n{list}"
        );
    }
    for v in &listed {
        let json = env.ok(&["image", "show", &format!("demo@{v}"), "--json"]);
        let m: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(m["rootfs"]["size"], 24 << 20);
        env.ok(&["pin", "set", "default", &format!("demo@{v}")]);
        assert!(
            env.ok(&["explain", "52:54:00:00:00:01"])
                .contains("decision   boot")
        );
    }
    let verify = env.ok(&["image", "verify"]);
    assert!(verify.starts_with("ok: "), "{verify}");

    // Debris is collectable, and collecting it keeps every listed version whole.
    let gc = env.ok(&["image", "gc"]);
    assert!(gc.starts_with("removed "), "{gc}");
    let tmp_left = std::fs::read_dir(env.data().join("blobs/tmp"))
        .unwrap()
        .count();
    assert_eq!(tmp_left, 0, "temporary files left after gc");
    assert!(env.ok(&["image", "verify"]).starts_with("ok: "));
    eprintln!(
        "crash test: {killed} killed, {} completed, {} listed, gc: {gc}",
        completed.len(),
        listed.len()
    );

    // A blob corrupted on disk is reported, with the versions that use it.
    let shown: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "show", "demo@v1000", "--json"])).unwrap();
    let kdigest = shown["kernel"]["digest"].as_str().unwrap().to_string();
    let path = env.data().join("blobs/sha256").join(&kdigest[7..]);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut content = std::fs::read(&path).unwrap();
    content[100] ^= 0xff;
    std::fs::write(&path, content).unwrap();
    let r = env.run(&["image", "verify"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains(&format!("{kdigest}: corrupt: content hashes to sha256:")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("used by demo@v1000"), "{}", r.stdout);
    assert!(r.stderr.contains("1 problem(s)"), "{}", r.stderr);
}
