//! The fleet test (issue 14): the real `tabula serve` on loopback and 20 simulated
//! machines (`tabula::storm::netboot`: HTTP clients that fetch their script, follow its
//! URLs, check the root image's sha256 and report with their per-boot token), all under
//! one label, pinned to demo@1.
//!
//! A rollout 1 → 25% → 100% of demo@2, whose root image fails verification: the canary
//! fails, the rollout pauses on its budget, the canary is held on demo@1 after its tries,
//! and no other machine ever boots demo@2; a forged report moves nothing. Then a rollout
//! of demo@3 (good): `tabula serve` is SIGKILLed mid-rollout and restarted, and the
//! rollout resumes at the same step with nothing lost or doubled, and completes.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde_json::Value;
use tabula::boot::Mac;
use tabula::storm::netboot;

use crate::common::{Env, sha256_of};
use crate::serve::{Server, curl, start_with, status};

const N: usize = 20;
const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn mac(i: usize) -> Mac {
    Mac([0x02, 0x7a, 0, 0, 0, u8::try_from(i).unwrap()])
}

fn name(i: usize) -> String {
    format!("m{i:02}")
}

/// A free loopback port (the public URL must name the port before the server starts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Fleet {
    env: Env,
    cfg: std::path::PathBuf,
    port: u16,
    rt: tokio::runtime::Runtime,
}

impl Fleet {
    fn serve(&self) -> Server {
        start_with(&self.env, &self.cfg, false)
    }

    /// Every machine in `which` boots once, at the same time; their results by index.
    fn boot(&self, which: &[usize]) -> BTreeMap<usize, netboot::HttpBoot> {
        let port = self.port;
        self.rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for &i in which {
                set.spawn(async move {
                    let url = format!("http://127.0.0.1:{port}/boot/{}/boot.ipxe", mac(i));
                    (i, netboot::boot(LOCAL, &url, mac(i)).await)
                });
            }
            let mut out = BTreeMap::new();
            while let Some(r) = set.join_next().await {
                let (i, b) = r.unwrap();
                out.insert(i, b.unwrap_or_else(|e| panic!("{}: {e}", name(i))));
            }
            out
        })
    }

    fn rollout(&self, name: &str) -> Value {
        serde_json::from_str(&self.env.ok(&["rollout", "show", name, "--json"])).unwrap()
    }

    /// Boots every machine, round after round, until `done` says so (at most `rounds`).
    fn rounds(&self, rounds: usize, mut done: impl FnMut(&Value) -> bool, rollout: &str) -> Value {
        for _ in 0..rounds {
            self.boot(&(0..N).collect::<Vec<_>>());
            // The controller ticks every 500 ms: watch it for a few ticks.
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(3) {
                std::thread::sleep(Duration::from_millis(250));
                let v = self.rollout(rollout);
                if done(&v) {
                    return v;
                }
            }
        }
        panic!(
            "rollout {rollout} not done after {rounds} rounds: {}",
            self.rollout(rollout)
        );
    }

    fn boots(&self, i: usize) -> Vec<Value> {
        serde_json::from_str(&self.env.ok(&["machine", "boots", &name(i), "--json"])).unwrap()
    }
}

fn publish(env: &Env, version: &str, seed: u64) -> (String, std::path::PathBuf) {
    let kernel = env.file(&format!("vmlinuz-{version}"), seed, 64 << 10);
    let initrd = env.file(&format!("initrd-{version}"), seed + 1, 32 << 10);
    let root = env.file(&format!("root-{version}"), seed + 2, 256 << 10);
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    let out = env.ok(&[
        "image",
        "add",
        "demo",
        "--version",
        version,
        "--kernel",
        &p(&kernel),
        "--initrd",
        &p(&initrd),
        "--rootfs",
        &p(&root),
    ]);
    (out.split_whitespace().last().unwrap().to_string(), root)
}

fn state(v: &Value) -> (String, i64) {
    (
        v["rollout"]["state"].as_str().unwrap().to_string(),
        v["rollout"]["step"].as_i64().unwrap(),
    )
}

fn count(v: &Value, s: &str) -> u64 {
    v["counts"][s].as_u64().unwrap_or(0)
}

#[test]
fn a_bad_image_stops_at_the_canary_and_a_good_one_survives_sigkill() {
    let env = Env::new();
    publish(&env, "1", 10);
    let (_, bad_root) = publish(&env, "2", 20);
    publish(&env, "3", 30);
    // demo@2's root image no longer matches its digest: every machine that boots it
    // fails verification, as a broken image would.
    let digest = sha256_of(&bad_root);
    let blob = env
        .data()
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap());
    let mut perms = std::fs::metadata(&blob).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&blob, perms).unwrap();
    std::fs::write(&blob, crate::common::bytes(99, 256 << 10)).unwrap();

    for i in 0..N {
        env.ok(&[
            "machine",
            "add",
            &name(i),
            "--mac",
            &mac(i).to_string(),
            "--label",
            "role=web",
        ]);
    }
    env.ok(&["pin", "set", "label:role=web", "demo@1"]);
    let port = free_port();
    let cfg = env.dir.path().join("fleet.toml");
    std::fs::write(
        &cfg,
        format!(
            "[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n[http]\nlisten = \"127.0.0.1:{port}\"\n\
             public_url = \"http://127.0.0.1:{port}\"\n[api]\nlisten = \"127.0.0.1:0\"\n\
             [health]\nmax_tries = 2\n[events]\nper_mac_per_minute = 100000\nper_peer_per_minute = 100000\n"
        ),
    )
    .unwrap();
    env.use_config(cfg.clone());
    let fleet = Fleet {
        env,
        cfg,
        port,
        rt: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap(),
    };
    let mut srv = fleet.serve();

    // Every machine boots demo@1 once: its known good.
    let first = fleet.boot(&(0..N).collect::<Vec<_>>());
    assert!(
        first
            .values()
            .all(|b| b.result.is_ok() && b.image.as_deref() == Some("demo@1"))
    );

    // The bad rollout.
    let env = &fleet.env;
    let created = env.ok(&[
        "rollout",
        "create",
        "bad",
        "--target",
        "role=web",
        "--to",
        "demo@2",
        "--steps",
        "1,25%,100%",
        "--max-in-flight",
        "5",
    ]);
    assert!(created.contains("members per step: 1, 4, 15"), "{created}");
    env.ok(&["rollout", "start", "bad"]);
    std::thread::sleep(Duration::from_millis(1200));
    let v = fleet.rollout("bad");
    assert_eq!(count(&v, "admitted"), 1, "{v}");
    let canary_name = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["state"] == "admitted")
        .unwrap()["machine"]
        .as_str()
        .unwrap()
        .to_string();
    let canary: usize = canary_name[1..].parse().unwrap();
    let explain = env.ok(&["explain", &mac(canary).to_string()]);
    assert!(
        explain.contains("source     from rollout bad (step 1)"),
        "{explain}"
    );

    // A forged report (another machine's valid token, this machine's MAC) moves nothing.
    let b = fleet.boot(&[canary]).remove(&canary).unwrap();
    assert!(
        b.result.is_err() && b.image.as_deref() == Some("demo@2"),
        "{b:?}"
    );
    let other = fleet
        .boot(&[(canary + 1) % N])
        .remove(&((canary + 1) % N))
        .unwrap();
    let other_token = other.callback.rsplit('/').next().unwrap().to_string();
    let mine = b.callback.rsplit_once('/').unwrap().0.to_string();
    let (h, _) = curl(&["-X", "POST", &format!("{mine}/{other_token}/booted")]);
    assert_eq!(status(&h), 403);
    let (h, _) = curl(&["-X", "POST", &format!("{mine}/{}/booted", "0".repeat(48))]);
    assert_eq!(status(&h), 403);
    std::thread::sleep(Duration::from_millis(1200));
    let v = fleet.rollout("bad");
    assert_eq!(
        state(&v),
        ("paused".into(), 0),
        "the canary's failure pauses: {v}"
    );
    assert_eq!((count(&v, "failed"), count(&v, "succeeded")), (1, 0), "{v}");
    assert!(
        v["budget_used"]
            .as_str()
            .unwrap()
            .starts_with("1 failed of 1 admitted"),
        "{v}"
    );

    // The canary tries again (still admitted) and is held on demo@1 after its 2nd try.
    let b = fleet.boot(&[canary]).remove(&canary).unwrap();
    assert!(b.result.is_err(), "{b:?}");
    std::thread::sleep(Duration::from_millis(300));
    let explain = env.ok(&["explain", &mac(canary).to_string()]);
    assert!(
        explain.contains("held on demo@1 after 2 failed tries of demo@2 (rollout bad)"),
        "{explain}"
    );
    let b = fleet.boot(&[canary]).remove(&canary).unwrap();
    assert_eq!(
        (b.result.clone(), b.image.as_deref()),
        (Ok(()), Some("demo@1")),
        "{b:?}"
    );
    let boots = fleet.boots(canary);
    let states: Vec<(&str, &str, &str)> = boots
        .iter()
        .map(|b| {
            (
                b["version"].as_str().unwrap(),
                b["state"].as_str().unwrap(),
                b["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("1", "booted", format!("hold:{canary_name}").as_str()),
            ("2", "failed", "rollout:bad/0"),
            ("2", "failed", "rollout:bad/0"),
            ("1", "booted", "pin:label:role=web"),
        ],
        "newest first"
    );
    assert_eq!(boots[1]["attempt"], 2);
    // Paused: more rounds admit nobody else, and no other machine ever booted demo@2.
    fleet.boot(&(0..N).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(count(&fleet.rollout("bad"), "waiting"), 19);
    for i in (0..N).filter(|&i| i != canary) {
        assert!(
            fleet.boots(i).iter().all(|b| b["version"] == "1"),
            "{} booted demo@2",
            name(i)
        );
    }
    env.ok(&["rollout", "abort", "bad"]);
    assert!(
        env.fails(&["rollout", "resume", "bad"])
            .contains("cannot resume a rollout that is")
    );
    env.ok(&["machine", "release", &canary_name]);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(state(&fleet.rollout("bad")).0, "aborted");

    // The good rollout, killed mid-way.
    env.ok(&[
        "rollout",
        "create",
        "good",
        "--target",
        "role=web",
        "--to",
        "demo@3",
        "--steps",
        "1,25%,100%",
        "--max-in-flight",
        "5",
    ]);
    env.ok(&["rollout", "start", "good"]);
    // Kill it when step 2 (25%) has admitted its members and they have not booted yet:
    // nothing can move then but a boot, so the state before and after is comparable.
    let before = fleet.rounds(10, |v| state(v).1 == 1 && count(v, "admitted") == 4, "good");
    assert_eq!(count(&before, "succeeded"), 1, "{before}");
    srv.child.kill().unwrap(); // SIGKILL
    srv.child.wait().unwrap();
    let killed = fleet.rollout("good");
    assert_eq!(state(&killed), ("running".into(), 1), "{killed}");
    assert_eq!(
        killed["counts"], before["counts"],
        "nothing lost at the kill"
    );
    srv = fleet.serve();
    std::thread::sleep(Duration::from_millis(1200));
    let resumed = fleet.rollout("good");
    assert_eq!(state(&resumed).1, 1, "resumed at the same step: {resumed}");
    let t = Instant::now();
    let done = fleet.rounds(15, |v| state(v).0 == "completed", "good");
    assert_eq!(count(&done, "succeeded"), N as u64, "{done}");
    assert_eq!(
        done["members"].as_array().unwrap().len(),
        N,
        "no member doubled"
    );
    let history = env.ok(&["pin", "history", "label:role=web"]);
    assert_eq!(
        history.matches("demo@3").count(),
        1,
        "one completion: {history}"
    );
    // After completion every machine boots demo@3 through its label pin.
    let last = fleet.boot(&(0..N).collect::<Vec<_>>());
    assert!(
        last.values()
            .all(|b| b.result.is_ok() && b.image.as_deref() == Some("demo@3"))
    );
    assert!(t.elapsed() < Duration::from_secs(120));
    drop(srv);
}
