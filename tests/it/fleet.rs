//! The fleet test (issue 14): the real `tabula serve` on loopback and 20 simulated
//! machines (`tabula::storm::netboot`: HTTP clients that fetch their script, follow its
//! URLs, check the root image's sha256 and report with their per-boot token), all under
//! one label, pinned to demo@1.
//!
//! A rollout 1 → 25% → 100% of demo@2, whose root image is corrupted on the server's disk
//! once the rollout started (the server then never serves it): the canary
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
/// Longer than the server's snapshot age (`daemon::SNAPSHOT_MAX_AGE`).
pub(crate) const SNAPSHOT_AGE: Duration = Duration::from_millis(400);

pub fn mac(i: usize) -> Mac {
    Mac([0x02, 0x7a, 0, 0, 0, u8::try_from(i).unwrap()])
}

pub fn name(i: usize) -> String {
    format!("m{i:02}")
}

/// A free loopback port (the public URL must name the port before the server starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) struct Fleet {
    pub(crate) env: Env,
    cfg: std::path::PathBuf,
    port: u16,
    rt: tokio::runtime::Runtime,
}

impl Fleet {
    fn serve(&self) -> Server {
        start_with(&self.env, &self.cfg, false)
    }

    /// Every machine in `which` boots once, at the same time; their results by index.
    pub(crate) fn boot(&self, which: &[usize]) -> BTreeMap<usize, netboot::HttpBoot> {
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

    pub(crate) fn boots(&self, i: usize) -> Vec<Value> {
        serde_json::from_str(&self.env.ok(&["machine", "boots", &name(i), "--json"])).unwrap()
    }
}

pub fn publish(env: &Env, version: &str, seed: u64) -> (String, std::path::PathBuf) {
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

pub fn state(v: &Value) -> (String, i64) {
    (
        v["rollout"]["state"].as_str().unwrap().to_string(),
        v["rollout"]["step"].as_i64().unwrap(),
    )
}

pub fn count(v: &Value, s: &str) -> u64 {
    v["counts"][s].as_u64().unwrap_or(0)
}

#[test]
fn a_bad_image_stops_at_the_canary_and_a_good_one_survives_sigkill() {
    let env = Env::new();
    publish(&env, "1", 10);
    let (_, bad_root) = publish(&env, "2", 20);
    publish(&env, "3", 30);
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
    // Once the rollout started (the server holds demo@2, verified), demo@2's root image
    // no longer matches its digest: the server never sends it (it is quarantined), so
    // every machine that boots demo@2 fails, as a broken image would.
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

/// A fleet of `n` machines under role=web pinned to demo@1, `tabula serve` started.
pub(crate) fn small_fleet(n: usize, extra: &str) -> (Fleet, Server) {
    let env = Env::new();
    publish(&env, "1", 10);
    publish(&env, "2", 20);
    for i in 0..n {
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
             public_url = \"http://127.0.0.1:{port}\"\n[api]\nlisten = \"127.0.0.1:0\"\n{extra}"
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
    let srv = fleet.serve();
    (fleet, srv)
}

#[test]
fn boot_once_boots_the_reference_once_then_the_pin_again() {
    let (fleet, _srv) = small_fleet(2, "");
    let env = &fleet.env;
    let out = env.ok(&["pin", "set", "m00", "demo@2", "--once", "--ttl", "1h"]);
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    let status = |id: &str| -> Value {
        serde_json::from_str(&env.ok(&["pin", "once-status", id, "--json"])).unwrap()
    };
    assert_eq!(status(&id)["state"], "pending");
    let explain = env.ok(&["explain", &mac(0).to_string()]);
    assert!(
        explain.contains(&format!("source     boot-once {id}")),
        "{explain}"
    );
    // A running server sees store changes within its snapshot's age (250 ms).
    std::thread::sleep(SNAPSHOT_AGE);
    let b = fleet.boot(&[0, 1]);
    assert_eq!(b[&0].image.as_deref(), Some("demo@2"));
    assert_eq!(
        b[&1].image.as_deref(),
        Some("demo@1"),
        "only the machine named"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(status(&id)["state"], "booted");
    let b = fleet.boot(&[0]);
    assert_eq!(b[&0].image.as_deref(), Some("demo@1"), "back on its pin");
    let boots = fleet.boots(0);
    assert_eq!(boots[1]["source"], format!("boot-once:{id}"));
    // Unused until its TTL: expired, and the machine never boots it.
    let out = env.ok(&["pin", "set", "m01", "demo@2", "--once", "--ttl", "1s"]);
    let late = out.split_whitespace().nth(1).unwrap().to_string();
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(status(&late)["state"], "expired");
    assert_eq!(fleet.boot(&[1])[&1].image.as_deref(), Some("demo@1"));
    // --then local: after its boot the machine is pinned to local boot.
    let out = env.ok(&["pin", "set", "m01", "demo@2", "--once", "--then", "local"]);
    let local = out.split_whitespace().nth(1).unwrap().to_string();
    std::thread::sleep(SNAPSHOT_AGE);
    assert_eq!(fleet.boot(&[1])[&1].image.as_deref(), Some("demo@2"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(status(&local)["state"], "booted");
    let explain = env.ok(&["explain", &mac(1).to_string()]);
    assert!(explain.contains("decision   local"), "{explain}");
    assert!(
        env.fails(&["pin", "set", "label:role=web", "demo@2", "--once"])
            .contains("one machine or one MAC")
    );
}

/// A webhook receiver on loopback: answers 500 to its first request and 200 after,
/// handing every request (headers lowercased, body) to the test.
/// One request a receiver got: its headers (names lowercased) and body.
type Received = (BTreeMap<String, String>, String);

fn receiver() -> (u16, std::sync::mpsc::Receiver<Received>) {
    use std::io::{BufRead, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, s) in l.incoming().enumerate() {
            let Ok(mut s) = s else { return };
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            let mut headers = BTreeMap::new();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            loop {
                line.clear();
                r.read_line(&mut line).unwrap();
                let Some((k, v)) = line.trim_end().split_once(": ") else {
                    break;
                };
                headers.insert(k.to_ascii_lowercase(), v.to_string());
            }
            let len: usize = headers["content-length"].parse().unwrap();
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let code = if n == 0 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = write!(
                s,
                "HTTP/1.1 {code}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if tx
                .send((headers, String::from_utf8(body).unwrap()))
                .is_err()
            {
                return;
            }
        }
    });
    (port, rx)
}

#[test]
fn webhooks_arrive_signed_at_least_once_and_rollouts_ask_for_reboots() {
    let (fleet, _srv) = small_fleet(1, "");
    let env = &fleet.env;
    let (port, rx) = receiver();
    let secret = tabula::notify::sign::secret_of(&[42; 24]);
    let url = format!("http://127.0.0.1:{port}/hook");
    let out = env.ok(&[
        "webhook",
        "add",
        &url,
        "--events",
        "booted,boot_once.*,rollout.*",
        "--secret",
        &secret,
    ]);
    let id = out.split_whitespace().nth(2).unwrap().to_string();
    let out = env.ok(&["pin", "set", "m00", "demo@2", "--once"]);
    let once = out.split_whitespace().nth(1).unwrap().to_string();
    std::thread::sleep(SNAPSHOT_AGE);
    assert_eq!(fleet.boot(&[0])[&0].image.as_deref(), Some("demo@2"));
    let key = tabula::notify::sign::key(&secret).unwrap();
    let mut got: Vec<(String, Value)> = Vec::new();
    let t = Instant::now();
    let done = |got: &[(String, Value)]| {
        got.iter().any(|(_, p)| p["type"] == "boot_once.booted")
            && got.iter().filter(|(i, _)| *i == got[0].0).count() >= 2
    };
    while !done(&got) {
        let (h, body) = rx.recv_timeout(Duration::from_secs(20)).expect("webhook");
        let sig = tabula::notify::sign::signature(
            &key,
            &h["webhook-id"],
            h["webhook-timestamp"].parse().unwrap(),
            body.as_bytes(),
        );
        assert_eq!(
            h["webhook-signature"], sig,
            "signed the Standard Webhooks way"
        );
        let p: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(p["version"], 1);
        assert_eq!(p["id"], h["webhook-id"].as_str());
        got.push((h["webhook-id"].clone(), p));
        assert!(t.elapsed() < Duration::from_secs(30));
    }
    let types: Vec<&str> = got
        .iter()
        .map(|(_, p)| p["type"].as_str().unwrap())
        .collect();
    // The first delivery was answered 500 and sent again with the same id.
    assert_eq!(types[0], "boot_once.created", "{types:?}");
    assert!(
        got.iter().filter(|(i, _)| *i == got[0].0).count() >= 2,
        "retried: {types:?}"
    );
    assert!(types.contains(&"boot.booted"), "{types:?}");
    let booted = got
        .iter()
        .find(|(_, p)| p["type"] == "boot_once.booted")
        .unwrap();
    assert_eq!(booted.1["data"]["id"], once.as_str());
    assert_eq!(booted.1["data"]["state"], "booted");
    // The log shows the retried delivery as delivered on its second try (the answer is
    // logged just after the receiver has it).
    let t = Instant::now();
    loop {
        let log: Vec<Value> =
            serde_json::from_str(&env.ok(&["webhook", "deliveries", &id, "--json"])).unwrap();
        if log
            .iter()
            .any(|d| d["attempts"] == 2 && d["state"] == "delivered")
        {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{log:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // --reboot webhook: each admitted machine's reboot is asked for.
    env.ok(&[
        "rollout", "create", "r", "--target", "role=web", "--to", "demo@2", "--steps", "100%",
        "--reboot", "webhook",
    ]);
    env.ok(&["rollout", "start", "r"]);
    let t = Instant::now();
    loop {
        let (_, body) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("reboot webhook");
        let p: Value = serde_json::from_str(&body).unwrap();
        if p["type"] == "rollout.reboot_requested" {
            assert_eq!(p["data"]["machine"], "m00");
            assert_eq!(p["data"]["rollout"], "r");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30));
    }
}
